"""Fault suite: a build that fails midway, through `weekly` and `build`.

Upstream b101 adds a source file that does not compile (the other one does). Exit 5; the message
names the failing edge and the full log (which holds the compiler's error) and shows its tail; the
`next:` line says what to run; the previous build output, the previous release and the weekly
state are byte for byte as they were; no half output dir or staging debris. (A build killed with
SIGKILL: tests/test_faults_weekly.py::test_sigkill_mid_build_then_rerun.)
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from support.faults import error_of, hint_of, prepared_env, snapshot


def _log_path(text: str) -> Path:
    m = re.search(r"Full log: (\S+\.log)", text)
    assert m, text[-3000:]
    return Path(m[1])


def test_build_failing_midway_exit_5_keeps_previous_output_and_release(tmp_path: Path) -> None:
    env = prepared_env(tmp_path, release=True)
    builds = env.work / "builds" / "tiny"
    before = {"builds": snapshot(builds), "releases": snapshot(env.work / "releases"),
              "state": (env.work / "state" / "weekly.json").read_bytes()}
    (good_key,) = [p.name for p in builds.iterdir()]
    lock_before = env.lock.read_bytes()

    cmake = env.up.read("CMakeLists.txt")
    env.up.commit("server: add broken.c (#5151)", {
        "broken.c": "int broken(void) { return this does not compile; }\n",
        "CMakeLists.txt": cmake.replace("add_executable(llama-server main.c", "add_executable(llama-server main.c broken.c"),
    }, tag="b101")

    res = env.cli(*env.weekly_args("--json"))
    assert res.returncode == 5, res.stderr
    report = json.loads(res.stdout)
    (oc,) = report["recipes"]
    assert (oc["status"], oc["stage"], oc["error"]["exit_code"]) == ("failed", "build", 5)
    assert report["status"] == "failed" and "no release was made" in report["message"]
    assert "build of recipe `tiny` failed" in res.stderr and "FAILED:" in res.stderr and "broken.c" in res.stderr
    log = _log_path(res.stderr)
    assert log.is_file() and "this does not compile" in log.read_text() and log.parent == env.work / "logs"
    hint = hint_of(res.stderr)
    assert "locara-build build -r tiny" in hint and good_key in hint  # "earlier builds ... are untouched: <key>"

    # the lock names the last good (released) commit again, so CI never commits b101
    assert env.lock.read_bytes() == lock_before
    assert "locara-build sync --ref b101" in report["message"] and "was put back" in res.stderr

    # the same through `build` alone, once synced to b101: error + next lines from the CLI
    assert env.cli("sync", "--ref", "b101").returncode == 0
    res = env.cli("build", "-r", "tiny")
    assert res.returncode == 5, res.stderr
    err = error_of(res.stderr)
    assert "build of recipe `tiny` failed (exit status 1)" in err and "broken.c" in err and "Last lines:" in err
    assert _log_path(err).is_file()
    assert "patches check" in hint_of(res.stderr)

    after = {"builds": snapshot(builds), "releases": snapshot(env.work / "releases"),
             "state": (env.work / "state" / "weekly.json").read_bytes()}
    assert after == before  # previous output + release + state byte for byte; no new key dir, no .partial
    assert sorted(p.name for p in builds.iterdir()) == [good_key]
