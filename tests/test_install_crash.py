"""Install is crash-consistent at every instruction (issue 19.5): a real SIGKILL at every failpoint.

``locara_build.install.install._checkpoint`` sits before and after every filesystem step of install, switch,
record, prune and rollback. For N = 1, 2, ... the real CLI runs with the N-th checkpoint armed
(tests/support/failpoint.py), is SIGKILLed while it waits there, and the prefix must then hold:

* ``current`` -> a complete ``versions/<dir>`` (its record and run.sh present) that state.json lists;
* ``highest_seen`` >= the version ``current`` points to (recorded before the switch), so a mirror
  replaying an older release is refused right after the crash;
* the next run finishes the job: the new version current, the old one previous, no ``<v>+...``
  duplicate of a finished folder, no temp leftovers;
* ``--rollback`` goes to a different, complete version.

N runs until the install finishes without reaching the N-th checkpoint, so a new filesystem step
with its checkpoint is covered without touching this file.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import pytest
from support.faults import run_cli, start_cli
from support.httpserver import LoopbackServer
from support.release_kit import NEW, OLD, make_keys, make_lock, release_for

from locara_build.core.version import Version
from locara_build.release.publish import publish_dir

FAILPOINT = "locara_build.install.install:_checkpoint"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):
    """Three signed releases on a loopback mirror: OLD < MID < NEW."""
    tmp = tmp_path_factory.mktemp("crash")
    keys = make_keys(tmp / "keys")
    root = tmp / "site"
    versions = []
    for name, lock in (("old", make_lock(**OLD)), ("mid", make_lock(**OLD, revision=2)), ("new", make_lock(**NEW))):
        rel = release_for(tmp / name, lock, keys, recipes=["linux-x86_64-cpu"])
        publish_dir(rel.out, root)
        versions.append(rel.version)
    with LoopbackServer(root) as srv:
        yield tmp, keys, srv, versions


def _install(srv: LoopbackServer, prefix: Path, pub: Path, version: str, *extra: str):
    return run_cli("install", "--from", srv.base_url, "--prefix", str(prefix), "--trust", str(pub), "--timeout", "5",
                   "--version", version, *extra, timeout=120)


def _start(srv: LoopbackServer, prefix: Path, pub: Path, n: int, *args: str):
    return start_cli("install", "--from", srv.base_url, "--prefix", str(prefix), "--trust", str(pub), "--timeout", "5",
                     *args, failpoint=f"{FAILPOINT}@{n}")


def _base_prefix(site, where: Path) -> Path:
    """OLD then MID installed: current -> MID, previous OLD (the next install prunes OLD)."""
    tmp, keys, srv, (old, mid, _new) = site
    prefix = where / "base"
    if not prefix.exists():
        for v in (old, mid):
            res = _install(srv, prefix, keys.pub, v)
            assert res.returncode == 0, res.stderr
    return prefix


def _state(prefix: Path) -> dict:
    return json.loads((prefix / "state.json").read_text())


def _check_consistent(prefix: Path, label: str) -> str:
    """The invariants after a crash; returns the folder `current` points to."""
    link = prefix / "current"
    assert link.is_symlink(), f"{label}: no `current`"
    target = os.readlink(link)
    assert target.startswith("versions/"), f"{label}: current -> {target}"
    name = target.split("/", 1)[1]
    folder = prefix / "versions" / name
    assert (folder / "run.sh").is_file() and (folder / ".locara-install.json").is_file(), f"{label}: {name} incomplete"
    state = _state(prefix)
    assert name in state["installed"], f"{label}: current {name} is not recorded in state.json"
    record = json.loads((folder / ".locara-install.json").read_text())
    highest = Version.parse(state["highest_seen"]["version"], state["highest_seen"].get("commit_date"))
    assert Version.parse(record["version"], record.get("commit_date")) <= highest, f"{label}: highest_seen below current"
    return name


def _no_leftovers(prefix: Path, label: str) -> None:
    names = sorted(p.name for p in (prefix / "versions").iterdir())
    assert not [n for n in names if n.startswith(".") or "+" in n], f"{label}: leftovers or duplicates: {names}"
    downloads = prefix / ".downloads"
    left = sorted(p.name for p in downloads.iterdir() if p.is_file()) if downloads.is_dir() else []
    assert not left, f"{label}: partial downloads left: {left}"  # (.downloads/store/ is update.py's cache)
    assert not list(prefix.glob(".current.tmp-*")) and not list(prefix.glob(".state.json.*")), f"{label}: temp files left"


def _kill_at(proc, n: int) -> bool:
    """SIGKILL the run waiting at checkpoint n; False when it finished without reaching it."""
    import time

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if "FAILPOINT" in proc.stderr:
            proc.signal_group(signal.SIGKILL)
            proc.wait()
            return True
        if proc.proc.poll() is not None:
            rc = proc.wait()
            assert rc == 0, f"checkpoint {n}: the run failed:\n{proc.stderr[-3000:]}"
            return False
        time.sleep(0.02)
    proc.kill()
    raise AssertionError(f"checkpoint {n}: never reached:\n{proc.stderr[-3000:]}")


def test_upgrade_killed_at_every_checkpoint(site, tmp_path: Path) -> None:
    _tmp, keys, srv, (old, mid, new) = site
    base = _base_prefix(site, tmp_path)
    reached = 0
    for n in range(1, 60):
        prefix = tmp_path / f"p{n}"
        shutil.copytree(base, prefix, symlinks=True)
        proc = _start(srv, prefix, keys.pub, n, "--version", new)
        if not _kill_at(proc, n):
            break
        reached = n
        label = f"killed at checkpoint {n}"
        name = _check_consistent(prefix, label)
        assert name in (mid, new), f"{label}: current -> {name}"
        state = _state(prefix)
        if name == new or state["highest_seen"]["version"] == new:
            # a mirror replaying the older MID release right after the crash: refused
            res = _install(srv, prefix, keys.pub, mid)
            assert res.returncode == 8 and "downgrade" in res.stderr, f"{label}: replay accepted:\n{res.stderr}"
        res = _install(srv, prefix, keys.pub, new)
        assert res.returncode == 0, f"{label}: the next run failed:\n{res.stderr}"
        assert os.readlink(prefix / "current") == f"versions/{new}", label
        _no_leftovers(prefix, label)
        state = _state(prefix)
        assert state["current"] == new and state["previous"] == mid, f"{label}: {state}"
        assert sorted(state["installed"]) == sorted(p.name for p in (prefix / "versions").iterdir()), label
        if n % 4 == 0:
            res = run_cli("install", "--prefix", str(prefix), "--rollback", timeout=60)
            assert res.returncode == 0, f"{label}: {res.stderr}"
            assert os.readlink(prefix / "current") == f"versions/{mid}", label
        shutil.rmtree(prefix)
    # download, extract, record, rename, state, symlink, rename, state, prune (state, trash, remove)
    assert reached >= 14, f"only {reached} checkpoints: the install steps are no longer all marked"


def test_adopts_a_finished_version_never_duplicates(site, tmp_path: Path) -> None:
    """Killed right after versions/<new> was renamed into place, before any record: the next run
    adopts that folder (no download, no `<new>+cpu` twin)."""
    _tmp, keys, srv, (old, mid, new) = site
    base = _base_prefix(site, tmp_path)
    for n in range(1, 30):
        prefix = tmp_path / f"a{n}"
        shutil.copytree(base, prefix, symlinks=True)
        proc = _start(srv, prefix, keys.pub, n, "--version", new)
        assert _kill_at(proc, n)
        if (prefix / "versions" / new).is_dir() and new not in _state(prefix)["installed"]:
            break
        shutil.rmtree(prefix)
    else:
        raise AssertionError("no checkpoint between the rename into versions/ and the state record")
    assert os.readlink(prefix / "current") == f"versions/{mid}"
    srv.requests.clear()
    res = _install(srv, prefix, keys.pub, new)
    assert res.returncode == 0, res.stderr
    assert "adopting" in res.stderr
    assert not [p for (m, p, _h) in srv.requests if p.endswith(".tar.gz")], "the adopted version was downloaded again"
    assert os.readlink(prefix / "current") == f"versions/{new}"
    _no_leftovers(prefix, "adopted")


def test_rollback_killed_at_every_checkpoint(site, tmp_path: Path) -> None:
    _tmp, keys, srv, (old, mid, new) = site
    base = _base_prefix(site, tmp_path)
    reached = 0
    for n in range(1, 30):
        prefix = tmp_path / f"r{n}"
        shutil.copytree(base, prefix, symlinks=True)
        proc = start_cli("install", "--prefix", str(prefix), "--rollback", failpoint=f"{FAILPOINT}@{n}")
        if not _kill_at(proc, n):
            break
        reached = n
        label = f"rollback killed at checkpoint {n}"
        before = _check_consistent(prefix, label)
        assert before in (old, mid), label
        res = run_cli("install", "--prefix", str(prefix), "--rollback", timeout=60)
        assert res.returncode == 0, f"{label}: {res.stderr}"
        after = os.readlink(prefix / "current").split("/", 1)[1]
        assert after != before and after in (old, mid), f"{label}: rolled back from {before} to {after}"
        _no_leftovers(prefix, label)
        shutil.rmtree(prefix)
    assert reached >= 5, reached


def test_rollback_refuses_without_a_real_other_version(site, tmp_path: Path) -> None:
    _tmp, keys, srv, (old, mid, new) = site
    prefix = tmp_path / "one"
    assert _install(srv, prefix, keys.pub, old).returncode == 0
    res = run_cli("install", "--prefix", str(prefix), "--rollback", timeout=60)
    assert res.returncode == 2 and "no previous version" in res.stderr
    # a state naming a previous that is the current one, or a folder that is gone / incomplete
    assert _install(srv, prefix, keys.pub, mid).returncode == 0
    state = _state(prefix)
    state["previous"] = mid
    (prefix / "state.json").write_text(json.dumps(state))
    shutil.rmtree(prefix / "versions" / old)
    res = run_cli("install", "--prefix", str(prefix), "--rollback", timeout=60)
    assert res.returncode == 2 and "no previous version" in res.stderr, res.stderr
    assert os.readlink(prefix / "current") == f"versions/{mid}"
    (prefix / "versions" / old).mkdir()  # an empty folder is not a version
    res = run_cli("install", "--prefix", str(prefix), "--rollback", timeout=60)
    assert res.returncode == 2, res.stderr
    assert os.readlink(prefix / "current") == f"versions/{mid}"
