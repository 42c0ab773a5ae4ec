"""Fault suite: the disk fills up while packaging and while releasing.

The dist / releases folder is a small tmpfs (this process may mount one: root), else the process
under test gets an RLIMIT_FSIZE (EFBIG) at the same moment. A fault point pauses the real CLI right
before it writes the archive (package) / the release folder (weekly's release); the disk is then
filled, and the run goes on into ENOSPC.

Decision (docs/reliability.md): out of space is exit 2 ("usage or configuration": the host needs
more room or another --out / --work-dir), `error.kind` "disk"; the message names the folder and the
free space, `next:` says to free space and run the same command again. Never a traceback (exit 1),
nothing partial left that could pass for output (no archive without its record, no temp files, no
half release folder), earlier packages / releases byte for byte intact; the same command then
finishes once there is room, reusing every finished stage.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.faults import StandInEnv, disk_limit, error_of, hint_of, snapshot, standin_env


def _snap(path: Path) -> dict[str, str]:
    return {k: v for k, v in snapshot(path).items() if k != ".ballast"}


def _new_upstream(env: StandInEnv) -> None:
    readme = env.up.read("README.md")
    env.up.commit("docs: readme (#6001)", {"README.md": readme + "more\n"}, tag="b101")


@pytest.fixture
def env(tmp_path: Path) -> StandInEnv:
    e = standin_env(tmp_path)
    for args in (("sync", "--upstream", str(e.up.path)), ("patches", "apply")):
        res = e.cli(*args)
        assert res.returncode == 0, res.stderr
    return e


def test_disk_full_while_packaging(env: StandInEnv) -> None:
    dist = env.work / "dist"
    with disk_limit(dist, 2 << 20) as disk:
        for args in (("build", "-r", "tiny"), ("package", "-r", "tiny")):
            res = env.cli(*args)
            assert res.returncode == 0, res.stderr
        before = _snap(dist)
        _new_upstream(env)
        for args in (("sync", "--ref", "b101"), ("patches", "apply"), ("build", "-r", "tiny")):
            res = env.cli(*args)
            assert res.returncode == 0, res.stderr
        version = env.plan()["version"]
        run = env.start("--json", "package", "-r", "tiny", failpoint="locara_build.package.archive:write_archive")
        run.wait_for(r"^FAILPOINT ")
        disk.squeeze(run.proc.pid)
        run.resume()
        rc = run.wait(60)
        assert rc == 2, f"exit {rc} ({disk.kind})\n{run.stderr}"
        assert "Traceback" not in run.stderr and "unexpected error" not in run.stderr
        err = error_of(run.stderr)
        assert "package tiny:" in err and str(dist / version) in err
        assert ("no space left on device" if disk.kind == "tmpfs" else "file size limit exceeded") in err
        assert "Free space" in hint_of(run.stderr) and "run the same command again" in hint_of(run.stderr)
        assert json.loads(run.stdout)["error"]["kind"] == "disk"
        # nothing of the new version that could pass for a package; the old one byte for byte
        assert not (dist / version).exists() or sorted(p.name for p in (dist / version).iterdir()) == []
        assert _snap(dist) | {version: "dir"} == before | {version: "dir"}
        disk.relax()
        res = env.cli("--json", "package", "-r", "tiny")
        assert res.returncode == 0, res.stderr
        art = json.loads(res.stdout)
        assert art


def test_disk_full_while_releasing(env: StandInEnv) -> None:
    releases = env.work / "releases"
    with disk_limit(releases, 2 << 20) as disk:
        res = env.cli(*env.weekly_args())
        assert res.returncode == 0, res.stderr
        before = _snap(releases)
        state = (env.work / "state" / "weekly.json").read_bytes()
        _new_upstream(env)
        run = env.start(*env.weekly_args("--json"), failpoint="locara_build.release.release:_write_release")
        run.wait_for(r"^FAILPOINT ")
        disk.squeeze(run.proc.pid)
        run.resume()
        rc = run.wait(60)
        assert rc == 2, f"exit {rc} ({disk.kind})\n{run.stderr}"
        assert "Traceback" not in run.stderr
        err = error_of(run.stderr)
        assert "release 2026.10.02-b101-r1:" in err and str(releases) in err
        assert "Free space" in hint_of(run.stderr)
        assert _snap(releases) == before  # no half release folder, no temp dir, the old release intact
        assert (env.work / "state" / "weekly.json").read_bytes() == state
        report = json.loads((env.work / "reports" / "weekly-latest.json").read_text())
        assert report["status"] == "failed" and report["exit_code"] == 2
        disk.relax()
        res = env.cli(*env.weekly_args("--json"))
        assert res.returncode == 0, res.stderr
        out = json.loads(res.stdout)
        assert out["status"] == "released" and out["version"] == "2026.10.02-b101-r1"
        assert out["recipes"][0]["stages"] == {"build": "reused", "smoke": "reused", "package": "reused"}
