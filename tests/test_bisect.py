"""``patches bisect`` on the real llama.cpp tree: 32 first-parent upstream commits (one of them a merge of
a side branch), one in the middle breaks the .args patch. Bisect names exactly that commit within
ceil(log2(32)) + 1 apply checks; patches that still apply are not reported; a range without a
breaking commit reports none; a rebase git can resolve is offered and written with --write."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from support.upstream import (
    ARGS_PATCH,
    MAIN_CPP,
    UPSTREAM_MAIN_CPP,
    Upstream,
    cli,
    cli_json,
    make_patch,
    new_project,
    replace_line,
)

from locara_build.core.workdir import Project, WorkDir
from locara_build.upstream.bisect import find_breaking_commits

RANGE = 32
BREAKS_AT = 20  # the commit (1-based in from..to) that rewrites main()
README_AT = 9  # changes README line 10
MERGE_AT = 10  # merges a side branch


@dataclass
class History:
    up: Upstream
    root: str
    commits: list[str]  # first-parent commits after b100, oldest first
    docs_patch: tuple[str, bytes]  # touches a file no upstream commit changes
    readme_patch: tuple[str, bytes]  # pre-image blobs exist nowhere upstream


@pytest.fixture(scope="module")
def hist(tmp_path_factory: pytest.TempPathFactory) -> History:
    up = Upstream.create(tmp_path_factory.mktemp("up") / "llama.cpp.git")
    root = up.tag("b100")
    readme = up.read("README.md")
    docs = up.read("docs/build.md")
    docs_patch = make_patch(up, root, "docs: mention locara-build",
                            {"docs/build.md": replace_line(docs, 3, "Built and shipped weekly by locara-build.")}, number=2)
    readme_patch = make_patch(
        up, root, "docs: say who built it",
        {"README.md": replace_line(replace_line(readme, 60, "local edit, never published"), 7,
                                   "<b>LLM inference in C/C++ (built by locara-build)</b>")},
        local_first={"README.md": replace_line(readme, 60, "local edit, never published")},
    )
    commits: list[str] = []
    for i in range(1, RANGE + 1):
        if i == README_AT:
            sha = up.commit(f"docs: refresh the release badge (#{400 + i})",
                            {"README.md": replace_line(readme, 10, "[![Release](badge)](link)")})
        elif i == MERGE_AT:
            side = commits[-2]
            for j in range(3):
                side = up.commit(f"side: step {j}", {f"docs/side-{j}.md": f"{j}\n"}, parent=side, branch="side")
            sha = up.commit(f"Merge branch 'side' (#{400 + i})", parents=["master", "side"])
        elif i == BREAKS_AT:
            sha = up.commit(f"server: keep the exit code in main (#{400 + i})", {
                MAIN_CPP: UPSTREAM_MAIN_CPP.replace("    return llama_server(argc, argv);\n",
                                                    "    const int rc = llama_server(argc, argv);\n    return rc;\n"),
            })
        else:
            sha = up.commit(f"misc: change {i} (#{400 + i})", {f"docs/bisect-{i}.md": f"{i}\n"})
        commits.append(sha)
        if i == 15:
            up.tag("b115")
    up.tag("b132")
    return History(up, root, commits, docs_patch, readme_patch)


@pytest.fixture(scope="module")
def bwork(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("work")


def _project(hist: History, tmp_path: Path, work: Path, series: list[tuple[str, bytes] | str]) -> Path:
    extra = {s[0]: s[1] for s in series if isinstance(s, tuple)}
    names = [s if isinstance(s, str) else s[0] for s in series]
    project = new_project(tmp_path / "p", series=names, extra_patches=extra)
    cli_json(project, work, "sync", "--upstream", str(hist.up.path), "--ref", "b100")
    return project


def test_bisect_names_the_breaking_commit_within_the_check_budget(hist: History, tmp_path: Path, bwork: Path) -> None:
    project = _project(hist, tmp_path, bwork, [ARGS_PATCH, hist.docs_patch])
    checked: list[tuple[str, str, bool]] = []
    report = find_breaking_commits(Project(project), WorkDir(bwork), on_check=lambda p, c, ok: checked.append((p, c, ok)))

    assert report.candidates == RANGE  # first-parent only: the side branch's commits are not candidates
    assert report.to_commit == hist.commits[-1] and report.to_label == "b132"
    [br] = report.breakages
    assert br.patch.name == ARGS_PATCH
    assert br.first_bad.sha == hist.commits[BREAKS_AT - 1]
    assert br.first_bad.subject == f"server: keep the exit code in main (#{400 + BREAKS_AT})"
    assert br.first_bad.pr == 400 + BREAKS_AT
    assert br.last_good == hist.commits[BREAKS_AT - 2]
    assert [c.file for c in br.conflicts] == [MAIN_CPP] and br.conflicts[0].hunks[0].number == 1

    args_checks = [c for c in checked if c[0] == ARGS_PATCH]
    assert len(args_checks) == br.checks <= 6  # ceil(log2(32)) + 1 (the check at `to`)
    assert {c for _, c, ok in args_checks if not ok} >= {hist.commits[BREAKS_AT - 1]}
    assert [name for name, _, _ in checked].count(hist.docs_patch[0]) == 1  # one check at `to`: still applies
    assert report.still_apply == [hist.docs_patch[0]]
    assert br.rebase is not None and br.rebase.status == "conflict" and br.rebase.conflicts == [MAIN_CPP]


def test_bisect_cli_json_and_text(hist: History, tmp_path: Path, bwork: Path) -> None:
    project = _project(hist, tmp_path, bwork, [ARGS_PATCH])
    out = cli_json(project, bwork, "patches", "bisect")
    [br] = out["breakages"]
    assert br["first_bad"]["sha"] == hist.commits[BREAKS_AT - 1] and br["first_bad"]["pr"] == 420
    assert br["checks"] <= 6 and out["checks"] == br["checks"]
    res = cli(project, bwork, "patches", "bisect")
    assert res.returncode == 0, res.stderr
    assert f"broken by upstream {hist.commits[BREAKS_AT - 1][:10]}" in res.stderr and "(PR #420)" in res.stderr
    assert f"{MAIN_CPP}: hunk #1" in res.stderr and "rebase: conflict" in res.stderr

    # patches check against latest names the same commit (the canary's report)
    chk = cli_json(project, bwork, "patches", "check", "--ref", "latest", expect=4)
    assert chk["patches"][0]["status"] == "FAILED"
    assert chk["patches"][0]["bisect"]["first_bad"]["sha"] == hist.commits[BREAKS_AT - 1]


def test_no_breaking_commit_reports_none(hist: History, tmp_path: Path, bwork: Path) -> None:
    project = _project(hist, tmp_path, bwork, [ARGS_PATCH, hist.docs_patch])
    out = cli_json(project, bwork, "patches", "bisect", "--to", "b115")
    assert out["breakages"] == [] and out["still_apply"] == [ARGS_PATCH, hist.docs_patch[0]]
    assert out["checks"] == 2 and "no patch breaks" in out["note"]
    same = cli_json(project, bwork, "patches", "bisect", "--to", "b100")
    assert same["breakages"] == [] and same["checks"] == 0 and "nothing to bisect" in same["note"]


def test_write_rebases_a_patch_git_can_resolve(hist: History, tmp_path: Path, bwork: Path) -> None:
    name, original = hist.readme_patch
    project = _project(hist, tmp_path, bwork, [hist.readme_patch])
    # its pre-image blobs are unknown upstream, so git am -3 cannot fall back: FAILED at b132
    chk = cli_json(project, bwork, "patches", "check", "--ref", "b132", expect=4)
    assert chk["patches"][0]["status"] == "FAILED"

    dry = cli_json(project, bwork, "patches", "bisect")
    [br] = dry["breakages"]
    assert br["first_bad"]["sha"] == hist.commits[README_AT - 1]
    rb = br["rebase"]
    assert rb["status"] == "resolved" and rb["onto"] == hist.commits[-1] and rb["written"] is None
    assert "+[![Release](badge)](link)" in rb["diff"] or " [![Release](badge)](link)" in rb["patch"]
    assert (project / "patches" / name).read_bytes() == original  # not written without --write

    res = cli(project, bwork, "patches", "bisect", "--write")
    assert res.returncode == 0, res.stderr
    assert "git resolved it" in res.stderr and f"written to {project / 'patches' / name}" in res.stderr
    written = (project / "patches" / name).read_text()
    assert written == rb["patch"] and "(built by locara-build)" in written
    assert "local edit" not in written  # the unpublished change is not smuggled in
    # the refreshed patch applies cleanly at the new upstream and keeps its message
    after = cli_json(project, bwork, "patches", "check", "--ref", "b132")
    assert after["patches"][0]["status"] == "clean"
    assert "Subject: [PATCH] docs: say who built it" in written
    # and it is exactly what `patches refresh` would write from the applied tree (byte-stable)
    cli_json(project, bwork, "sync", "--ref", "b132")
    cli_json(project, bwork, "patches", "apply")
    assert cli_json(project, bwork, "patches", "refresh")["changed"] is False
    assert (project / "patches" / name).read_text() == written
