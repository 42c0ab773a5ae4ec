"""Attacks through the patch series: a patch may only change files inside llama.cpp's tree.

Hand-written `git format-patch` files, as an outsider slipping one into patches/ would write them:
a hook in `.git/hooks/` (git am runs post-applypatch), `.git` spelled the ways NTFS and HFS+ read it
(`.GIT`, `.git.`, `.g<U+200C>it`, C-quoted), `../` in git headers, in renames and in a traditional
(non-git) diff section hidden after an innocent one, absolute paths, backslashes, symlinks whose
target leads out of the tree (absolute, `../../..`, retargeting an existing link via its `index`
line), and a write through a symlink an earlier patch created.

Before: the first ones were refused by git with "context does not match upstream" (a misleading
routine: "resolve it in the tree"), and a symlink to /etc/passwd was applied (exit 0). Now: exit 4,
"patch X writes outside the source tree: PATH (reason)", for `patches apply` and `patches check`,
checked before git sees the patch, the source tree and its stamp exactly as before.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.faults import StandInEnv, error_of, hint_of, standin_env, tree_state

HEADER = """From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001
From: Mallory <mallory@example.invalid>
Date: Thu, 1 Oct 2026 00:00:00 +0000
Subject: [PATCH] {subject}

---
"""


def _new_file(path: str, lines: list[str], mode: str = "100644") -> str:
    body = "".join(f"+{line}\n" for line in lines)
    return (f"diff --git a/{path} b/{path}\nnew file mode {mode}\nindex 0000000000000000000000000000000000000000..1111111111111111111111111111111111111111\n"
            f"--- /dev/null\n+++ b/{path}\n@@ -0,0 +1,{len(lines)} @@\n{body}")


def _symlink(path: str, target: str) -> str:
    return (f"diff --git a/{path} b/{path}\nnew file mode 120000\n--- /dev/null\n+++ b/{path}\n@@ -0,0 +1 @@\n+{target}\n"
            "\\ No newline at end of file\n")


README_EDIT = "diff --git a/README.md b/README.md\n--- a/README.md\n+++ b/README.md\n@@ -1 +1 @@\n-stand-in\n+stand-in (patched)\n"

ATTACKS: dict[str, tuple[str, str, str]] = {
    # name -> (diff text, path the error must name, reason phrase)
    "git-hook": (_new_file(".git/hooks/post-applypatch", ["#!/bin/sh", "touch /tmp/locara-owned"], "100755"),
                 ".git/hooks/post-applypatch", ".git"),
    "git-config-upper": (_new_file(".GIT/config", ["[core]", "\tfsmonitor = touch /tmp/locara-owned"]), ".GIT/config", ".git"),
    "git-ntfs-trailing-dot": (_new_file(".git./hooks/pre-commit", ["x"]), ".git./hooks/pre-commit", ".git"),
    "git-ntfs-shortname": (_new_file("GIT~1/hooks/pre-commit", ["x"]), "GIT~1/hooks/pre-commit", ".git"),
    "git-hfs-ignorable": ('diff --git "a/.g\\342\\200\\214it/config" "b/.g\\342\\200\\214it/config"\nnew file mode 100644\n'
                          '--- /dev/null\n+++ "b/.g\\342\\200\\214it/config"\n@@ -0,0 +1 @@\n+x\n', ".g\u200cit/config", ".git"),
    "git-nested": (_new_file("ggml/.git/hooks/post-checkout", ["x"]), "ggml/.git/hooks/post-checkout", ".git"),
    "dotdot": (_new_file("../../evil", ["owned"]), "../../evil", "`..`"),
    "dotdot-middle": (_new_file("docs/../../evil", ["owned"]), "docs/../../evil", "`..`"),
    "dotdot-quoted": ('diff --git "a/\\056\\056/evil" "b/\\056\\056/evil"\nnew file mode 100644\n--- /dev/null\n'
                      '+++ "b/\\056\\056/evil"\n@@ -0,0 +1 @@\n+owned\n', "../evil", "`..`"),
    "dotdot-backslash": (_new_file("..\\\\evil", ["owned"]), "..\\\\evil", "`..`"),
    "absolute": (_new_file("/tmp/locara-evil", ["owned"]), "/tmp/locara-evil", "absolute"),
    "absolute-windows": (_new_file("C:/Windows/evil.dll", ["owned"]), "C:/Windows/evil.dll", "absolute"),
    "rename-out": ("diff --git a/README.md b/../README.md\nsimilarity index 100%\nrename from README.md\nrename to ../README.md\n",
                   "../README.md", "`..`"),
    "traditional-after-innocent": (README_EDIT + "--- a/../tradevil\n+++ b/../tradevil\n@@ -0,0 +1 @@\n+owned\n",
                                   "../tradevil", "`..`"),
    # a form feed inside a hunk line (legal in C sources): a parser splitting on it loses count and
    # would read the next header as hunk body
    "hunk-formfeed-then-dotdot": ("diff --git a/README.md b/README.md\n--- a/README.md\n+++ b/README.md\n@@ -1 +1 @@\n"
                                  "-stand-in\n+stand\x0cin\n" + _new_file("../evil", ["owned"]), "../evil", "`..`"),
    "hunk-count-lies": ("diff --git a/README.md b/README.md\n--- a/README.md\n+++ b/README.md\n@@ -1,9 +1,9 @@\n"
                        "-stand-in\n+x\n" + _new_file("../evil", ["owned"]), "../evil", "`..`"),
    "symlink-binary-literal": ("diff --git a/lnk b/lnk\nnew file mode 120000\nindex 0000000..1111111\nGIT binary patch\n"
                               "literal 11\nSc${NkPE?@+EzHqaV}\n\nliteral 0\nHcmV?d00001\n\n", "lnk", "symlink"),
    "symlink-absolute": (_symlink("evil-link", "/etc/passwd"), "evil-link", "symlink"),
    "symlink-climbs-out": (_symlink("docs/evil", "../../../etc/shadow"), "docs/evil", "symlink"),
    "symlink-into-git": (_symlink("evil", ".git/config"), "evil", "symlink"),
    "symlink-retarget": ("diff --git a/LICENSE b/LICENSE\nindex 1111111111111111111111111111111111111111..2222222222222222222222222222222222222222 120000\n"
                         "--- a/LICENSE\n+++ b/LICENSE\n@@ -1 +1 @@\n-LICENSE.txt\n\\ No newline at end of file\n+/etc/passwd\n"
                         "\\ No newline at end of file\n", "LICENSE", "symlink"),
    "write-through-symlink": (_symlink("lnk", "docs") + _new_file("lnk/x", ["owned"]), "lnk/x", "through the symlink lnk"),
}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandInEnv]:
    env = standin_env(tmp_path_factory.mktemp("attack-patches"))
    assert env.cli("sync", "--upstream", str(env.up.path)).returncode == 0
    res = env.cli("patches", "apply")
    assert res.returncode == 0, res.stderr
    yield env


@pytest.mark.parametrize("case", sorted(ATTACKS))
def test_patch_writing_outside_the_tree_is_refused_before_git_runs(case: str, env: StandInEnv) -> None:
    diff, path, reason = ATTACKS[case]
    name = f"0002-{case}.patch"
    series = env.project / "patches" / "series"
    good_series = series.read_text()
    (env.project / "patches" / name).write_text(HEADER.format(subject=case) + diff)
    series.write_text(good_series + f"{name}\n")
    before = tree_state(env.tree)
    try:
        for command in (["patches", "apply"], ["patches", "check"]):
            res = env.cli(*command)
            assert res.returncode == 4, (command, res.stderr[-2000:])
            err = error_of(res.stderr)
            assert f"patch {name} writes outside the source tree: {path!r}" in err, err
            assert reason in err, err
            assert "context does not match" not in res.stderr and "Traceback" not in res.stderr
            assert "nothing was applied" in hint_of(res.stderr)
            assert tree_state(env.tree) == before
        assert not Path("/tmp/locara-owned").exists() and not (env.tree / ".git" / "hooks" / "post-applypatch").exists()
    finally:
        series.write_text(good_series)
        (env.project / "patches" / name).unlink()


def test_a_symlink_inside_the_tree_is_still_fine(env: StandInEnv) -> None:
    """The rule is about leaving the tree, not about symlinks: one to a sibling file applies."""
    name = "0002-inside-link.patch"
    series = env.project / "patches" / "series"
    good_series = series.read_text()
    (env.project / "patches" / name).write_text(HEADER.format(subject="link inside") + _symlink("docs-link", "README.md"))
    series.write_text(good_series + f"{name}\n")
    try:
        res = env.cli("patches", "apply")
        assert res.returncode == 0, res.stderr[-2000:]
        assert (env.tree / "docs-link").is_symlink()
    finally:
        series.write_text(good_series)
        (env.project / "patches" / name).unlink()
        assert env.cli("patches", "apply").returncode == 0


@pytest.mark.parametrize("target", ["outside.patch", "/etc/passwd"])
def test_a_patch_file_that_is_a_symlink_out_of_patches_is_refused(target: str, env: StandInEnv, tmp_path: Path) -> None:
    """patches/series names a file of the project: a symlink leading elsewhere (another checkout's
    patch, a host file) is refused before it is read, exit 4, naming the line and where it leads."""
    name = "0002-elsewhere.patch"
    series = env.project / "patches" / "series"
    good_series = series.read_text()
    outside = tmp_path / "outside.patch"
    outside.write_text(HEADER.format(subject="from elsewhere") + _new_file("x.c", ["int x;"]))
    (env.project / "patches" / name).symlink_to(outside if target == "outside.patch" else Path(target))
    series.write_text(good_series + f"{name}\n")
    before = tree_state(env.tree)
    try:
        res = env.cli("patches", "apply")
        assert res.returncode == 4, res.stderr[-2000:]
        err = error_of(res.stderr)
        assert f"series:2: patch `{name}` is a symlink leading out of" in err and "Traceback" not in res.stderr, err
        assert tree_state(env.tree) == before
    finally:
        series.write_text(good_series)
        (env.project / "patches" / name).unlink()
