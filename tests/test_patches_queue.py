"""The patch queue on the real llama.cpp tree: apply (deterministic, idempotent, all-or-nothing), check
(clean / 3-way / FAILED with files and hunks), refresh (byte-stable), and the resolve routine."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.upstream import (
    ARGS_PATCH,
    MAIN_CPP,
    REPO,
    UPSTREAM_MAIN_CPP,
    Upstream,
    cli,
    cli_json,
    git,
    make_patch,
    new_project,
    patched_main_cpp,
    replace_line,
)

README_PATCH_SUBJECT = "docs: say who built it"


@dataclass
class Queue:
    up: Upstream
    root: str
    c1: str  # b1000: unrelated upstream change
    c2: str  # b1001: rewrites the lines the .args patch touches
    drift: str  # branch readme-drift: README changed 3 lines below the README patch
    merged: str  # branch merged-upstream: upstream took the .args patch as is
    readme_patch: tuple[str, bytes]


@pytest.fixture(scope="module")
def q(tmp_path_factory: pytest.TempPathFactory) -> Queue:
    up = Upstream.create(tmp_path_factory.mktemp("up") / "llama.cpp.git")
    root = up.rev("master")
    readme = up.read("README.md")
    name, data = make_patch(up, root, README_PATCH_SUBJECT,
                            {"README.md": replace_line(readme, 7, "<b>LLM inference in C/C++ (built by locara-build)</b>")},
                            body="Test patch: shows the 3-way status.", number=2)
    c1 = up.commit("docs: unrelated (#301)", {"docs/locara-unrelated.md": "x\n"})
    up.tag("b1000", c1)
    drift = up.commit("docs: new release badge (#303)", {"README.md": replace_line(readme, 10, "[![Release](badge)](link)")},
                      parent=c1, branch="readme-drift")
    c2 = up.commit("server: keep the exit code in main (#302)", {
        MAIN_CPP: UPSTREAM_MAIN_CPP.replace("    return llama_server(argc, argv);\n",
                                            "    const int rc = llama_server(argc, argv);\n    return rc;\n"),
    }, parent=c1)
    up.tag("b1001", c2)
    merged = up.commit("server: args file (#304)", {MAIN_CPP: patched_main_cpp()}, parent=c1, branch="merged-upstream")
    return Queue(up, root, c1, c2, drift, merged, (name, data))


@pytest.fixture(scope="module")
def qwork(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One work dir (mirror + source tree) for the module: re-applying on an existing tree is incremental."""
    return tmp_path_factory.mktemp("work")


def tree_state(work: Path) -> dict[str, object]:
    tree = work / "src" / "llama.cpp"
    stamp = work / "src" / "llama.cpp.json"
    return {
        "head": git("rev-parse", "HEAD", cwd=tree).strip(),
        "branch": git("symbolic-ref", "--short", "-q", "HEAD", cwd=tree).strip(),
        "stamp": stamp.read_bytes() if stamp.exists() else None,
        "status": git("status", "--porcelain", cwd=tree),
        "in_progress": (tree / ".git" / "rebase-apply").exists(),
        "main.cpp": (tree / MAIN_CPP).read_bytes(),
    }


def patches_bytes(project: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((project / "patches").iterdir())}


def synced(q: Queue, tmp_path: Path, work: Path, ref: str = "b1000", **kw) -> Path:  # noqa: ANN003
    project = new_project(tmp_path / "p", **kw)
    cli_json(project, work, "sync", "--upstream", str(q.up.path), "--ref", ref)
    return project


def test_apply_deterministic_idempotent_and_refresh_byte_stable(q: Queue, tmp_path: Path, qwork: Path) -> None:
    project = synced(q, tmp_path, qwork)
    out = cli_json(project, qwork, "patches", "apply")
    assert out["noop"] is False and out["commit"] == q.c1 and out["patches"] == [ARGS_PATCH]
    tree = Path(out["tree"])
    assert tree == qwork / "src" / "llama.cpp"
    assert git("rev-parse", "HEAD^", cwd=tree).strip() == q.c1
    assert git("log", "-1", "--format=%s|%cn|%ce", cwd=tree).strip() == (
        "server: read default arguments from llama-server.args|locara-build|locara-build@localhost")
    assert "llama-server.args" in (tree / MAIN_CPP).read_text()
    state = tree_state(qwork)
    assert state["status"] == "" and state["branch"] == "locara/patched"
    stamp = json.loads(state["stamp"])
    assert stamp["commit"] == q.c1 and stamp["head"] == out["head"]

    start = time.monotonic()
    again = cli_json(project, qwork, "patches", "apply")
    assert again["noop"] is True and again["head"] == out["head"]
    assert time.monotonic() - start < 5
    assert tree_state(qwork) == state

    before = patches_bytes(project)
    for _ in range(2):
        res = cli_json(project, qwork, "patches", "refresh")
        assert res["changed"] is False and res["unchanged"] == [ARGS_PATCH]
        assert patches_bytes(project) == before
    assert before[ARGS_PATCH] == (REPO / "patches" / ARGS_PATCH).read_bytes()

    # same inputs, another work dir: the same patched HEAD sha
    other = tmp_path / "work2"
    assert cli_json(project, other, "patches", "apply")["head"] == out["head"]


def test_check_reports_failed_file_hunk_and_the_breaking_commit(q: Queue, tmp_path: Path, qwork: Path) -> None:
    project = synced(q, tmp_path, qwork)
    cli_json(project, qwork, "patches", "apply")
    lock = project / "recipes" / "upstream.lock"
    lock_before, state = lock.read_bytes(), tree_state(qwork)

    out = cli_json(project, qwork, "patches", "check", "--ref", "b1001", expect=4)
    assert out["ok"] is False and out["commit"] == q.c2 and out["counts"]["FAILED"] == 1
    [p] = out["patches"]
    assert (p["patch"], p["status"], p["files"]) == (ARGS_PATCH, "FAILED", [MAIN_CPP])
    [conflict] = p["conflicts"]
    assert conflict["file"] == MAIN_CPP
    assert [h["hunk"] for h in conflict["hunks"]] == [1] and conflict["hunks"][0]["header"].startswith("@@ -1,5 +1,")
    assert p["bisect"]["first_bad"]["sha"] == q.c2 and p["bisect"]["first_bad"]["pr"] == 302

    res = cli(project, qwork, "patches", "check", "--ref", "b1001")
    assert res.returncode == 4
    assert "FAILED" in res.stderr and f"{MAIN_CPP}: hunk #1" in res.stderr
    assert "broken by upstream" in res.stderr and "(PR #302)" in res.stderr

    assert cli_json(project, qwork, "patches", "check")["patches"][0]["status"] == "clean"  # default: the lock
    assert lock.read_bytes() == lock_before and tree_state(qwork) == state  # nothing touched


def test_conflicting_apply_restores_the_tree_then_the_routine_fixes_it(q: Queue, tmp_path: Path, qwork: Path) -> None:
    project = synced(q, tmp_path, qwork)
    cli_json(project, qwork, "patches", "apply")
    state = tree_state(qwork)
    cli_json(project, qwork, "sync", "--ref", "b1001")

    res = cli(project, qwork, "--json", "patches", "apply")
    assert res.returncode == 4, res.stderr
    err = json.loads(res.stdout)["error"]
    assert err["details"]["patch"] == ARGS_PATCH and err["details"]["conflicts"][0]["file"] == MAIN_CPP
    for needle in (ARGS_PATCH, f"{MAIN_CPP}: hunk #1", "git am -3", "git am --continue", "locara-build patches refresh",
                   "back at " + str(state["head"])[:12]):
        assert needle in res.stderr, needle
    assert tree_state(qwork) == state  # HEAD, branch, stamp, clean status, no am in progress, same bytes

    # The routine from the hint (docs/patches.md): reproduce, resolve, continue, refresh, apply.
    tree = qwork / "src" / "llama.cpp"
    git("checkout", "-q", "-B", "locara/patched", q.c2, cwd=tree)
    with pytest.raises(RuntimeError):
        git("am", "-3", str(project / "patches" / ARGS_PATCH), cwd=tree)
    patched = (REPO / "patches" / ARGS_PATCH).read_text()
    assert "<<<<<<<" in (tree / MAIN_CPP).read_text()
    git("checkout", "--theirs", "--", MAIN_CPP, cwd=tree)  # the patch's side: its main() replaces upstream's
    git("add", MAIN_CPP, cwd=tree)
    git("am", "--continue", cwd=tree)
    refreshed = cli_json(project, qwork, "patches", "refresh")
    assert refreshed["written"] == [ARGS_PATCH]
    new_patch = (project / "patches" / ARGS_PATCH).read_text()
    assert new_patch != patched and "-    const int rc = llama_server(argc, argv);" in new_patch
    out = cli_json(project, qwork, "patches", "apply")
    assert out["noop"] is False and out["commit"] == q.c2
    assert cli_json(project, qwork, "patches", "check")["ok"] is True
    assert cli_json(project, qwork, "patches", "refresh")["changed"] is False


def test_three_way_status_and_refresh_after_drift(q: Queue, tmp_path: Path, qwork: Path) -> None:
    name, data = q.readme_patch
    project = synced(q, tmp_path, qwork, series=[ARGS_PATCH, name], extra_patches={name: data})
    out = cli_json(project, qwork, "patches", "check", "--ref", "readme-drift")
    assert [(p["patch"], p["status"]) for p in out["patches"]] == [(ARGS_PATCH, "clean"), (name, "3-way")]
    assert out["ok"] is True

    # sync onto the drifted commit: apply resolves it with git am -3, refresh records the new context
    cli_json(project, qwork, "sync", "--ref", "readme-drift")
    applied = cli_json(project, qwork, "patches", "apply")
    assert applied["commit"] == q.drift
    assert "(built by locara-build)" in (qwork / "src" / "llama.cpp" / "README.md").read_text()
    res = cli_json(project, qwork, "patches", "refresh")
    assert res["written"] == [name] and res["unchanged"] == [ARGS_PATCH]
    assert "[![Release](badge)](link)" in (project / "patches" / name).read_text()
    assert [p["status"] for p in cli_json(project, qwork, "patches", "check")["patches"]] == ["clean", "clean"]


def test_refresh_follows_the_branch_drops_patches_and_keeps_series_comments(q: Queue, tmp_path: Path, qwork: Path) -> None:
    name, data = q.readme_patch
    project = synced(q, tmp_path, qwork, extra_patches={name: data})
    (project / "patches" / "series").write_text(f"# our series\n{ARGS_PATCH}\n{name}\n")
    cli_json(project, qwork, "patches", "apply")
    tree = qwork / "src" / "llama.cpp"
    git("reset", "-q", "--hard", "HEAD~1", cwd=tree)  # drop the README patch from the branch
    res = cli_json(project, qwork, "patches", "refresh")
    assert res["removed"] == [name] and res["series"] == [ARGS_PATCH] and res["series_rewritten"] is True
    assert (project / "patches" / "series").read_text() == f"# our series\n{ARGS_PATCH}\n"
    assert not (project / "patches" / name).exists()
    assert cli_json(project, qwork, "patches", "refresh")["changed"] is False


def test_apply_refuses_a_dirty_tree_and_a_fresh_conflict_leaves_no_stamp(q: Queue, tmp_path: Path, qwork: Path) -> None:
    project = synced(q, tmp_path, qwork)
    cli_json(project, qwork, "patches", "apply")
    tree = qwork / "src" / "llama.cpp"
    (tree / "README.md").write_text("edited by hand\n")
    try:
        cli_json(project, qwork, "sync", "--ref", "readme-drift")
        res = cli(project, qwork, "patches", "apply")
        assert res.returncode == 4 and "uncommitted changes" in res.stderr and "README.md" in res.stderr
    finally:
        git("checkout", "--", "README.md", cwd=tree)

    fresh = tmp_path / "fresh-work"
    cli_json(project, fresh, "sync", "--ref", "b1001")
    res = cli(project, fresh, "patches", "apply")
    assert res.returncode == 4 and "without a stamp" in res.stderr
    assert not (fresh / "src" / "llama.cpp.json").exists()
    assert git("rev-parse", "HEAD", cwd=fresh / "src" / "llama.cpp").strip() == q.c2
    assert git("status", "--porcelain", cwd=fresh / "src" / "llama.cpp") == ""
    shutil.rmtree(fresh)


def test_a_patch_upstream_already_has_is_reported_and_refresh_drops_it(q: Queue, tmp_path: Path, qwork: Path) -> None:
    project = synced(q, tmp_path, qwork)
    out = cli_json(project, qwork, "patches", "check", "--ref", "merged-upstream")
    assert out["ok"] is True and out["patches"][0]["status"] == "upstream"
    res = cli(project, qwork, "patches", "check", "--ref", "merged-upstream")
    assert "already applied upstream" in res.stderr

    cli_json(project, qwork, "sync", "--ref", "merged-upstream")
    res = cli(project, qwork, "patches", "apply", "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["already_upstream"] == [ARGS_PATCH] and "already applied upstream" in res.stderr
    assert git("rev-parse", "HEAD", cwd=qwork / "src" / "llama.cpp").strip() == q.merged
    dropped = cli_json(project, qwork, "patches", "refresh")
    assert dropped["removed"] == [ARGS_PATCH] and dropped["series"] == []
    assert not (project / "patches" / ARGS_PATCH).exists()
