"""Fault suite: `weekly` interrupted at every stage, killed, and run twice at once.

The stand-in pipeline (tests/support/faults.py) runs every real stage in seconds. A fault point
pauses the real CLI inside a stage; the test then sends Ctrl-C (SIGINT to the process group) or
SIGTERM. Each interrupted run must exit 130 saying how to resume, leave no half-written output
(no temp files, no half build dir, no server still running), write an "interrupted" report; the
next run must not redo the stages that finished (report `stages`: "reused") and the end result
must be byte-identical to an uninterrupted run's.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest
from support.faults import (
    StandInEnv,
    error_of,
    hint_of,
    kill_pids,
    processes_running,
    standin_env,
    wait_gone,
)

from locara_build.release.release import verify_release_dir
from locara_build.release.signing.minisign import PublicKey

# (stage, fault point: where the run is paused when the signal comes, what must be true afterwards)
STAGES = [
    ("sync", "locara_build.upstream.source:write_lock"),  # upstream fetched into the mirror, lock not yet written
    ("patches", "locara_build.upstream.patchqueue:write_stamp"),  # patches applied with git am, stamp not yet written
    ("build", None),  # mid-compile: the stand-in's slow step ($STANDIN_SLOW), cmake/ninja running
    ("smoke", "locara_build.smoke.smoke:_wait_healthy"),  # the server under test has been started
    ("package", "locara_build.package.archive:_finish"),  # the archive fully written to its temp name
    ("release", "locara_build.release.release:_replace_dir"),  # the signed release staged, not yet renamed
]


def _report(env: StandInEnv) -> dict:
    return json.loads((env.work / "reports" / "weekly-latest.json").read_text())


def _interrupt(env: StandInEnv, stage: str, point: str | None, sig: int, plan: dict) -> str:
    if point is None:
        run = env.start(*env.weekly_from_scratch(), env={"STANDIN_SLOW": "1"})
        run.wait_for_file(Path(plan["cmake_dir"]) / "slow.started")
    else:
        run = env.start(*env.weekly_from_scratch(), failpoint=point)
        run.wait_for(r"^FAILPOINT ")
    if sig == signal.SIGINT:
        run.signal_group(signal.SIGINT)  # what Ctrl-C in a terminal does
    else:
        run.signal(signal.SIGTERM)  # what CI / systemd / docker stop do
    rc = run.wait(60)
    assert rc == 130, f"{stage}: exit {rc}\n{run.stderr[-3000:]}"
    assert "interrupted" in run.stderr and "run the same command again" in run.stderr
    assert "Traceback" not in run.stderr
    return run.stderr


def _no_debris(env: StandInEnv, plan: dict, version: str) -> None:
    work = env.work
    out = Path(plan["output_dir"])
    assert not [p for p in out.parent.glob(".*partial*")] if out.parent.is_dir() else True
    dist = work / "dist" / version
    if dist.is_dir():
        names = sorted(p.name for p in dist.iterdir())
        assert not [n for n in names if n.startswith(".")], names
        artifact = plan["artifact"]["file"]
        assert (artifact in names) == (f"{artifact}.json" in names), f"an artifact without its record: {names}"
    releases = work / "releases"
    if releases.is_dir():
        assert not [p.name for p in releases.iterdir() if p.name.startswith(".")]
    assert not list((work / "tmp").iterdir()) if (work / "tmp").is_dir() else True
    assert not (env.tree / ".git" / "rebase-apply").exists()
    assert not wait_gone(out / "bin" / "llama-server"), "a smoke server outlived the run"


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """An uninterrupted weekly on an identical pipeline: what every interrupted one must end with."""
    env = standin_env(tmp_path_factory.mktemp("weekly-ref"))
    res = env.cli(*env.weekly_args("--upstream", str(env.up.path), "--json"))
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    release = Path(report["release_dir"])
    return {"report": report, "artifact": (release / report["recipes"][0]["artifact"]).read_bytes()}


@pytest.mark.parametrize("first", ["SIGINT", "SIGTERM"])
def test_interrupted_at_every_stage_then_resumed(first: str, reference: dict, tmp_path: Path) -> None:
    env = standin_env(tmp_path)
    res = env.cli("sync", "--upstream", str(env.up.path))  # only to learn the plan's paths
    assert res.returncode == 0, res.stderr
    plan = env.recipe_plan()
    version = env.plan()["version"]
    env.lock.unlink()  # weekly starts from nothing: no lock, no mirror use yet
    other = "SIGTERM" if first == "SIGINT" else "SIGINT"
    signals = [getattr(signal, first if i % 2 == 0 else other) for i in range(len(STAGES))]
    out = Path(plan["output_dir"])

    for i, ((stage, point), sig) in enumerate(zip(STAGES, signals, strict=True)):
        err = _interrupt(env, stage, point, sig, plan)
        _no_debris(env, plan, version)
        report = _report(env)
        assert report["status"] == "interrupted" and report["exit_code"] == 130 and report["ok"] is False
        if stage == "sync":
            assert not env.lock.exists(), "the lock is written only once the new source is complete"
        if stage == "patches":
            assert not env.stamp.exists()  # the tree is not claimed complete
        if i >= 3:  # the patched tree was finished by the build-stage run: never redone after
            assert "patch llama.cpp" not in err, err
            assert env.stamp.exists()
        if stage == "build":
            assert not out.exists(), "no half build output"
        if stage == "smoke":
            assert (out / "build.json").is_file() and not (out / "smoke.json").exists()
            assert report["recipes"][0]["stages"] == {"build": "done"}  # the last run was stopped mid-build
        if stage == "package":
            assert (out / "smoke.json").is_file()
            assert report["recipes"][0]["stages"] == {"build": "reused", "smoke": "done"}
        if stage == "release":
            assert report["recipes"][0]["stages"] == {"build": "reused", "smoke": "reused", "package": "done"}
            assert not (env.work / "releases" / version).exists()

    res = env.cli(*env.weekly_args("--json"))
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["status"] == "released"
    assert report["recipes"][0]["stages"] == {"build": "reused", "smoke": "reused", "package": "reused"}
    assert "first use: full clone" not in res.stderr  # the mirror made by the first run is kept
    release = Path(report["release_dir"])
    verify_release_dir(release, [PublicKey.from_file(env.pub)])
    assert (release / report["recipes"][0]["artifact"]).read_bytes() == reference["artifact"]
    _no_debris(env, plan, version)
    # and once more: nothing left to do
    res = env.cli(*env.weekly_args("--json"))
    assert res.returncode == 0 and json.loads(res.stdout)["status"] == "up-to-date"


def test_sigkill_mid_build_then_rerun(tmp_path: Path) -> None:
    """SIGKILL gives no chance to clean up: the re-run stops the orphaned cmake/ninja, discards
    the half build and finishes; exactly one complete output dir, no staging debris."""
    env = standin_env(tmp_path)
    assert env.cli("sync", "--upstream", str(env.up.path)).returncode == 0
    plan = env.recipe_plan()
    out = Path(plan["output_dir"])
    run = env.start(*env.weekly_args(), env={"STANDIN_SLOW": "1"})
    run.wait_for_file(Path(plan["cmake_dir"]) / "slow.started")
    run.signal_group(signal.SIGKILL)
    assert run.wait(30) == -signal.SIGKILL
    assert not out.exists()
    orphans = processes_running(plan["cmake_dir"])  # cmake/ninja run in their own session: still going
    try:
        res = env.cli(*env.weekly_args("--json"))
        assert res.returncode == 0, res.stderr
        report = json.loads(res.stdout)
        assert report["status"] == "released" and report["recipes"][0]["stages"]["build"] == "done"
        if orphans:
            assert "was interrupted" in res.stderr
        assert not wait_gone(plan["cmake_dir"], 5)
        assert sorted(p.name for p in out.parent.iterdir()) == [out.name]
        assert (out / "build.json").is_file() and (out / "smoke.json").is_file()
    finally:
        kill_pids(processes_running(plan["cmake_dir"]))


def test_two_weekly_runs_on_one_work_dir(tmp_path: Path) -> None:
    env = standin_env(tmp_path)
    assert env.cli("sync", "--upstream", str(env.up.path)).returncode == 0
    first = env.start(*env.weekly_args("--json"), failpoint="locara_build.pipeline.weekly:_recipe_pipeline")
    try:
        first.wait_for(r"^FAILPOINT ")
        report_path = env.work / "reports" / "weekly-latest.json"
        report_before = report_path.read_bytes() if report_path.exists() else None
        # a second run refuses at once (exit 10) and names the holder and the way out
        start = time.monotonic()
        res = env.cli(*env.weekly_args())
        assert res.returncode == 10, res.stderr
        assert time.monotonic() - start < 30
        err = error_of(res.stderr)
        assert f"pid {first.proc.pid}" in err and "is running on the work dir" in err
        assert "--wait" in hint_of(res.stderr)
        # ... without touching the running one's report
        assert (report_path.read_bytes() if report_path.exists() else None) == report_before
        # a third waits its turn
        waiter = env.start(*env.weekly_args("--wait", "--json"))
        time.sleep(2)
        assert waiter.proc.poll() is None, waiter.stderr
        first.resume()
        assert first.wait(120) == 0, first.stderr
        assert json.loads(first.stdout)["status"] == "released"
        assert waiter.wait(120) == 0, waiter.stderr
        assert json.loads(waiter.stdout)["status"] == "up-to-date"
    finally:
        first.kill()
    release = env.work / "releases" / env.plan()["version"]
    verify_release_dir(release, [PublicKey.from_file(env.pub)])
    assert _report(env)["status"] == "up-to-date"
