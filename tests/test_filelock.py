"""The one advisory lock (locara_build.core.filelock): busy -> the caller's error naming the holder; a
killed holder never leaves a stale lock; waiting callers are told and then get it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from locara_build.core.errors import BusyError
from locara_build.core.filelock import file_lock

HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from locara_build.core.filelock import file_lock
    with file_lock(Path(sys.argv[1]), record_holder=True):
        print("held", flush=True)
        time.sleep(120)
""")


def _hold(path: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_busy_names_the_holder_and_a_killed_holder_frees_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "state" / "x.lock"
    proc = _hold(path)
    try:
        with pytest.raises(BusyError, match=rf"held by pid {proc.pid} since 20\d\d-"):
            with file_lock(path, busy=lambda holder: BusyError(f"held by {holder}")):
                pytest.fail("the lock was given twice")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    got = False
    with file_lock(path, busy=lambda holder: BusyError(holder)):  # SIGKILL released it: no stale lock
        got = True
    assert got


def test_a_waiting_caller_is_told_then_gets_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "y.lock"
    proc = _hold(path)
    told: list[float] = []

    def release_soon() -> None:
        told.append(time.monotonic())
        os.kill(proc.pid, signal.SIGTERM)

    try:
        with file_lock(path, on_wait=release_soon, record_holder=True):
            assert told and path.read_text().startswith(f"pid {os.getpid()} since ")
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    assert path.read_text() == ""  # the holder note goes with the lock
