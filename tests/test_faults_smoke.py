"""Fault suite: the smoke test's server never gets healthy, or its port is taken.

Exit 6 after the timeout with the server log's tail and a `next:` line; the server is always
stopped; the build output stays as it was (no smoke.json is written for a failed run)."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
from support.faults import StandInEnv, error_of, hint_of, prepared_env, snapshot, wait_gone


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> StandInEnv:
    return prepared_env(tmp_path_factory.mktemp("smoke"), build=True)


def test_server_never_healthy_exit_6_after_timeout_with_log_tail(built: StandInEnv) -> None:
    out = Path(built.recipe_plan()["output_dir"])
    before = snapshot(out)
    start = time.monotonic()
    res = built.cli("smoke", "-r", "tiny", "--timeout", "2", env={"STANDIN_MODE": "never-healthy"})
    took = time.monotonic() - start
    assert res.returncode == 6, res.stderr
    assert took < 30
    err = error_of(res.stderr)
    assert "did not become healthy within 2s" in err and "HTTP 503" in err
    assert "stand-in: loading model" in err  # the log's tail
    log = Path(err.split("Server log: ", 1)[1].split(".log", 1)[0] + ".log")
    assert log.is_file() and log.parent == built.work / "logs"
    assert "smoke.timeout" in hint_of(res.stderr) and "--timeout" in hint_of(res.stderr)
    assert snapshot(out) == before and not (out / "smoke.json").exists()
    assert not wait_gone(out / "bin" / "llama-server"), "the server must be stopped"


def test_server_that_dies_exit_6(built: StandInEnv) -> None:
    out = Path(built.recipe_plan()["output_dir"])
    before = snapshot(out)
    res = built.cli("smoke", "-r", "tiny", env={"STANDIN_MODE": "exit"})
    assert res.returncode == 6, res.stderr
    assert "exited with status 3 before becoming healthy" in error_of(res.stderr)
    assert "failed to load model" in res.stderr
    assert "missing shared library" in hint_of(res.stderr)
    assert snapshot(out) == before


def test_port_already_taken_exit_6(built: StandInEnv) -> None:
    out = Path(built.recipe_plan()["output_dir"])
    before = snapshot(out)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        res = built.cli("smoke", "-r", "tiny", "--port", str(port))
    assert res.returncode == 6, res.stderr
    assert f"port {port} on 127.0.0.1 is already in use" in error_of(res.stderr)
    assert "--port" in hint_of(res.stderr)
    assert snapshot(out) == before


def test_a_fixed_port_serves_both_smoke_runs(built: StandInEnv) -> None:
    """`smoke --port P` starts two servers on P, one after the other (with arguments, then from
    llama-server.args). The first one's closed connections leave P in TIME_WAIT for a minute, which
    every server ignores (SO_REUSEADDR), so the second must start there too
    (a port somebody *listens* on is still refused: the test above)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    res = built.cli("smoke", "-r", "tiny", "--port", str(port))
    assert res.returncode == 0, res.stderr
    out = Path(built.recipe_plan()["output_dir"])
    assert (out / "smoke.json").is_file()
