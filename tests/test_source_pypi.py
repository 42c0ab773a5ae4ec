"""The ``pypi:`` source end to end: the llama.cpp commits vendored by the real llama-cpp-python sdists
(0.3.35 -> 0.3.36, both shallow), imported into one mirror; then the patched tree; caching; unsafe sdists."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

from support.llama import sdist_tarball
from support.llama import test_cache as llama_cache
from support.upstream import ARGS_PATCH, MAIN_CPP, PYPI_COMMITS, cli, cli_json, git, new_project

from locara_build.upstream.lock import read_lock


def _sdists() -> dict[str, str]:
    for version in PYPI_COMMITS:
        sdist_tarball(version)  # cached in the test cache (downloaded once per machine)
    return {"LOCARA_PYPI_SDISTS": str(llama_cache())}


def _offline(tmp_path: Path) -> dict[str, str]:
    """pip can reach nothing: any download attempt fails."""
    empty = tmp_path / "no-links"
    empty.mkdir(exist_ok=True)
    return {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(empty), "LOCARA_PYPI_SDISTS": ""}


def test_pypi_update_then_patched_tree(tmp_path: Path) -> None:
    env = _sdists()
    project = new_project(tmp_path / "p")
    work = tmp_path / "work"
    first = cli_json(project, work, "sync", "--upstream", "pypi:llama-cpp-python==0.3.35", env=env)
    new = first["new"]
    assert (new["source"], new["commit"], new["tag"], new["ref"]) == (
        "pypi:llama-cpp-python==0.3.35", PYPI_COMMITS["0.3.35"], "", PYPI_COMMITS["0.3.35"])
    assert new["commit_date"] == "2026-08-16T12:53:13Z"

    res = cli(project, work, "sync", "--upstream", "pypi:llama_cpp_python==0.3.36", env=env)
    assert res.returncode == 0, res.stderr
    lock = read_lock(project / "recipes" / "upstream.lock")
    assert (lock.source, lock.commit, lock.commit_date, lock.revision) == (
        "pypi:llama-cpp-python==0.3.36", PYPI_COMMITS["0.3.36"], "2026-10-01T02:11:48Z", 1)
    assert f"{PYPI_COMMITS['0.3.35'][:10]} (2026-08-16) -> {PYPI_COMMITS['0.3.36'][:10]} (2026-10-01)" in res.stderr
    assert "shallow" in res.stderr and "cannot be counted" in res.stderr
    mirrors = sorted(p.name for p in (work / "mirrors").iterdir() if p.suffix == ".git")
    assert mirrors == ["pypi-llama-cpp-python.git"]  # one mirror holds every imported version

    out = cli_json(project, work, "patches", "apply")
    tree = work / "src" / "llama.cpp"
    assert out["commit"] == PYPI_COMMITS["0.3.36"] and out["patches"] == [ARGS_PATCH]
    assert git("rev-parse", "HEAD^", cwd=tree).strip() == PYPI_COMMITS["0.3.36"]
    assert "llama-server.args" in (tree / MAIN_CPP).read_text()
    stamp = json.loads((work / "src" / "llama.cpp.json").read_text())
    assert stamp["commit"] == PYPI_COMMITS["0.3.36"] and stamp["head"] == out["head"]
    assert git("status", "--porcelain", cwd=tree) == ""

    # checking the series at the other imported commit needs no network; bisect cannot cross a shallow gap
    chk = cli_json(project, work, "patches", "check", "--ref", PYPI_COMMITS["0.3.35"], env=_offline(tmp_path))
    assert chk["patches"][0]["status"] == "clean"
    res = cli(project, work, "patches", "bisect", "--from", PYPI_COMMITS["0.3.35"], "--to", PYPI_COMMITS["0.3.36"])
    assert res.returncode == 3 and "is not an ancestor" in res.stderr  # two shallow commits: no history between
    assert "nothing to bisect" in cli(project, work, "patches", "bisect").stderr  # `--to` latest = the pinned commit


def test_real_pip_download_is_cached_for_the_next_sync(tmp_path: Path) -> None:
    """``pip download`` for real (the sdist comes from the test cache via --find-links; pip still
    resolves the build backend from the index), then a second sync that cannot download anything."""
    sdist_tarball("0.3.36")
    project = new_project(tmp_path / "p")
    work = tmp_path / "work"
    res = cli(project, work, "sync", "--upstream", "pypi:llama-cpp-python==0.3.36",
              env={"PIP_FIND_LINKS": str(llama_cache()), "LOCARA_PYPI_SDISTS": ""})
    assert res.returncode == 0, res.stderr
    assert "pip download llama-cpp-python==0.3.36" in res.stderr
    assert (work / "pypi" / "llama-cpp-python-0.3.36" / "llama_cpp_python-0.3.36.tar.gz").is_file()
    lock_bytes = (project / "recipes" / "upstream.lock").read_bytes()

    again = cli(project, work, "sync", "--json", env=_offline(tmp_path))
    assert again.returncode == 0, again.stderr
    assert "pip download" not in again.stderr
    assert json.loads(again.stdout)["written"] is False
    assert (project / "recipes" / "upstream.lock").read_bytes() == lock_bytes


def test_unknown_version_exits_3_and_keeps_the_lock(tmp_path: Path) -> None:
    project = new_project(tmp_path / "p")
    work = tmp_path / "work"
    cli_json(project, work, "sync", "--upstream", "pypi:llama-cpp-python==0.3.36", env=_sdists())
    before = (project / "recipes" / "upstream.lock").read_bytes()
    res = cli(project, work, "sync", "--upstream", "pypi:llama-cpp-python==0.0.1", env=_offline(tmp_path))
    assert res.returncode == 3, res.stderr
    assert "pip download failed" in res.stderr and "llama-cpp-python==0.0.1" in res.stderr
    assert (project / "recipes" / "upstream.lock").read_bytes() == before


def _tar(path: Path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))


def test_unsafe_or_gitless_sdists_are_refused(tmp_path: Path) -> None:
    sdists = tmp_path / "sdists"
    sdists.mkdir()
    top = "llama_cpp_python-9.9.9"
    _tar(sdists / f"{top}.tar.gz", {f"{top}/PKG-INFO": b"x", f"{top}/.git/../../../escaped.txt": b"evil"})
    _tar(sdists / "llama_cpp_python-9.9.8.tar.gz", {"llama_cpp_python-9.9.8/PKG-INFO": b"x"})
    project = new_project(tmp_path / "p")
    work = tmp_path / "work"
    env = {"LOCARA_PYPI_SDISTS": str(sdists)}
    res = cli(project, work, "sync", "--upstream", "pypi:llama-cpp-python==9.9.9", env=env)
    assert res.returncode == 3 and "cannot unpack" in res.stderr
    assert not list(tmp_path.rglob("escaped.txt"))
    res = cli(project, work, "sync", "--upstream", "pypi:llama-cpp-python==9.9.8", env=env)
    assert res.returncode == 3 and "carries no git metadata" in res.stderr
    assert not (project / "recipes" / "upstream.lock").exists()
