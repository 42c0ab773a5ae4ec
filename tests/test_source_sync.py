"""``locara-build sync`` against a local upstream made of the real llama.cpp tree: tags, channels, refs,
failures (exit 3, lock untouched), the cached mirror (fetched, never re-cloned) and the lock's revision."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.upstream import Upstream, cli, cli_json, new_project

from locara_build.upstream.lock import read_lock, write_lock


@dataclass
class Tagged:
    up: Upstream
    root: str
    a: str  # v0.10.0 (older commit, higher version)
    b: str
    c: str  # b1000 (older commit, higher build number)
    d: str  # b999 + v0.9.0 (newest on master)
    e: str  # branch "feature" only


@pytest.fixture(scope="module")
def tagged(tmp_path_factory: pytest.TempPathFactory) -> Tagged:
    up = Upstream.create(tmp_path_factory.mktemp("up") / "llama.cpp.git")
    root = up.rev("master")
    a = up.commit("docs: a (#101)", {"docs/locara-a.md": "a\n"})
    up.tag("v0.10.0", a)
    b = up.commit("docs: b (#102)", {"docs/locara-b.md": "b\n"})
    c = up.commit("docs: c (#103)", {"docs/locara-c.md": "c\n"})
    up.tag("b1000", c)
    d = up.commit("docs: d (#104)", {"docs/locara-d.md": "d\n"})
    up.tag("b999", d)
    up.tag("v0.9.0", d)
    e = up.commit("feature: e", {"docs/locara-e.md": "e\n"}, parent="master", branch="feature")
    return Tagged(up, root, a, b, c, d, e)


@pytest.fixture(scope="module")
def shared_work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("work")


def test_latest_is_the_highest_build_number_not_the_newest_or_lexically_last_tag(tagged: Tagged, tmp_path: Path, shared_work: Path) -> None:
    project = new_project(tmp_path / "p")
    out = cli_json(project, shared_work, "sync", "--upstream", str(tagged.up.path))
    assert out["new"]["commit"] == tagged.c  # b1000 > b999 although b999 is newer and sorts last as text
    assert out["new"]["tag"] == "b1000"
    assert out["new"]["ref"] == "latest" and out["new"]["channel"] == "build" and out["new"]["revision"] == 1
    assert out["new"]["source"] == str(tagged.up.path)
    assert out["written"] and out["old"] is None
    lock = read_lock(project / "recipes" / "upstream.lock")
    assert lock.commit == tagged.c and lock.commit_date.endswith("Z")


def test_stable_channel_picks_the_highest_version(tagged: Tagged, tmp_path: Path, shared_work: Path) -> None:
    project = new_project(tmp_path / "p")
    out = cli_json(project, shared_work, "sync", "--upstream", str(tagged.up.path), "--channel", "stable")
    assert (out["new"]["commit"], out["new"]["tag"]) == (tagged.a, "v0.10.0")  # v0.10.0 > v0.9.0
    # the channel is remembered: a plain sync stays on it
    out = cli_json(project, shared_work, "sync")
    assert (out["new"]["channel"], out["new"]["tag"], out["written"]) == ("stable", "v0.10.0", False)


def test_explicit_tag_branch_and_commit(tagged: Tagged, tmp_path: Path, shared_work: Path) -> None:
    project = new_project(tmp_path / "p")
    up = str(tagged.up.path)
    out = cli_json(project, shared_work, "sync", "--upstream", up, "--ref", "b999")
    assert (out["new"]["commit"], out["new"]["tag"], out["new"]["ref"]) == (tagged.d, "b999", "b999")
    res = cli(project, shared_work, "sync", "--ref", "feature")  # default upstream: the lock's source
    assert res.returncode == 0, res.stderr
    lock = read_lock(project / "recipes" / "upstream.lock")
    assert (lock.commit, lock.tag, lock.ref, lock.source) == (tagged.e, "", "feature", up)
    assert "1 new upstream commits between them" in res.stderr and "feature: e" in res.stderr
    out = cli_json(project, shared_work, "sync", "--ref", tagged.c)
    assert (out["new"]["commit"], out["new"]["tag"]) == (tagged.c, "b1000")  # the tag on that commit
    assert out["distance"]["relation"] == "behind"
    out = cli_json(project, shared_work, "sync", "--ref", tagged.b[:9])
    assert (out["new"]["commit"], out["new"]["tag"], out["new"]["ref"]) == (tagged.b, "", tagged.b[:9])


def test_unknown_ref_exits_3_and_leaves_the_lock_byte_for_byte(tagged: Tagged, tmp_path: Path, shared_work: Path) -> None:
    project = new_project(tmp_path / "p")
    cli_json(project, shared_work, "sync", "--upstream", str(tagged.up.path))
    lock = project / "recipes" / "upstream.lock"
    before = lock.read_bytes()
    for ref in ("b123456", "no-such-branch", "0123456789abcdef0123456789abcdef01234567"):
        res = cli(project, shared_work, "sync", "--ref", ref)
        assert res.returncode == 3, res.stderr
        assert f"unknown ref `{ref}`" in res.stderr and str(tagged.up.path) in res.stderr
        assert "--ref latest" in res.stderr  # the next step
        assert lock.read_bytes() == before


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_upstream_exits_3_lock_untouched_no_half_mirror(tagged: Tagged, tmp_path: Path) -> None:
    project = new_project(tmp_path / "p")
    work = tmp_path / "work"
    cli_json(project, work, "sync", "--upstream", str(tagged.up.path))
    lock = project / "recipes" / "upstream.lock"
    before = lock.read_bytes()
    url = f"http://127.0.0.1:{_closed_port()}/ggml-org/llama.cpp"
    start = time.monotonic()
    res = cli(project, work, "sync", "--upstream", url)
    assert res.returncode == 3, res.stderr
    assert time.monotonic() - start < 30
    assert f"cannot fetch upstream {url}" in res.stderr and "The lock was not changed" in res.stderr
    assert lock.read_bytes() == before
    assert sorted(p.name for p in (work / "mirrors").iterdir() if p.suffix == ".git") == [
        p.name for p in (work / "mirrors").iterdir() if p.suffix == ".git" and "127.0.0.1" not in p.name
    ]
    # a missing local path is a source error too
    res = cli(project, work, "sync", "--upstream", str(tmp_path / "nowhere"))
    assert res.returncode == 3 and "does not exist" in res.stderr
    assert lock.read_bytes() == before


def test_hanging_upstream_times_out_with_exit_3(tmp_path: Path) -> None:
    """A server that accepts the connection and never answers: the low-speed limit ends the fetch."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    port = server.getsockname()[1]
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.5)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                held.append(conn)  # read nothing, answer nothing
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        project = new_project(tmp_path / "p")
        start = time.monotonic()
        res = cli(project, tmp_path / "work", "sync", "--upstream", f"http://127.0.0.1:{port}/llama.cpp.git",
                  env={"LOCARA_NET_TIMEOUT": "2", "LOCARA_FETCH_TIMEOUT": "30"})
        took = time.monotonic() - start
    finally:
        stop.set()
        thread.join()
        for c in held:
            c.close()
        server.close()
    assert res.returncode == 3, res.stderr
    assert took < 25, took
    assert not (project / "recipes" / "upstream.lock").exists()


def test_mirror_is_fetched_not_recloned_and_revision_follows_the_commit(tmp_path: Path) -> None:
    up = Upstream.create(tmp_path / "llama.cpp.git")
    c1 = up.commit("server: one (#201)", {"docs/one.md": "1\n"})
    up.tag("b2000", c1)
    project = new_project(tmp_path / "p")
    work = tmp_path / "work"
    first = cli_json(project, work, "sync", "--upstream", str(up.path))
    assert first["mirror"]["created"] is True
    mirror = Path(first["mirror"]["path"])
    assert mirror.parent == work / "mirrors" and mirror.name.endswith(".git")
    marker = mirror / "locara-test-marker"
    marker.write_text("still the same mirror")
    lock = project / "recipes" / "upstream.lock"
    before = lock.read_bytes()

    again = cli_json(project, work, "sync")
    assert again["mirror"] == {"path": str(mirror), "created": False, "fetched": True}
    assert marker.exists()
    assert again["written"] is False and lock.read_bytes() == before  # nothing changed: no churn

    # a revision bumped by weekly survives a sync that finds the same commit
    write_lock(lock, read_lock(lock).with_revision(3))
    assert cli_json(project, work, "sync")["new"]["revision"] == 3

    # two new upstream commits, the newer tagged: fetched (tags too) into the same mirror
    up.commit("ggml: two (#202)", {"docs/two.md": "2\n"})
    c3 = up.commit("server: three (#203)", {"docs/three.md": "3\n"})
    up.tag("b2002", c3)
    res = cli(project, work, "sync")
    assert res.returncode == 0, res.stderr
    new = read_lock(lock)
    assert (new.commit, new.tag, new.revision) == (c3, "b2002", 1)
    assert f"{c1[:10]} (b2000" in res.stderr and f"-> {c3[:10]} (b2002" in res.stderr
    assert "2 new upstream commits between them" in res.stderr
    assert "server: three (#203)" in res.stderr and "ggml: two (#202)" in res.stderr
    assert marker.exists()


def test_corrupted_lock_is_replaced_by_sync(tagged: Tagged, tmp_path: Path, shared_work: Path) -> None:
    project = new_project(tmp_path / "p")
    lock = project / "recipes" / "upstream.lock"
    lock.write_text("this is not toml = = =\n")
    res = cli(project, shared_work, "sync", "--upstream", str(tagged.up.path))
    assert res.returncode == 0, res.stderr
    assert "corrupted" in res.stderr
    assert read_lock(lock).commit == tagged.c


def test_bad_flags_are_usage_errors(tagged: Tagged, tmp_path: Path, shared_work: Path) -> None:
    project = new_project(tmp_path / "p")
    res = cli(project, shared_work, "sync", "--upstream", str(tagged.up.path), "--channel", "nightly")
    assert res.returncode == 2 and "unknown channel `nightly`" in res.stderr
    res = cli(project, shared_work, "sync", "--upstream", "pypi:llama-cpp-python>=0.3")
    assert res.returncode == 2 and "one exact version" in res.stderr
    assert not (project / "recipes" / "upstream.lock").exists()
