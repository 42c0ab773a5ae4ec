"""The one subprocess boundary.

Every external program locara-build starts goes through :func:`run` (wait for it) or
:func:`spawn` (a long-lived process such as a llama-server under test). Both echo ``+ cmd``
(secrets redacted), accept an ``error`` class so a failure surfaces with the exit code of the
stage that ran it, and never leak the environment's secrets into messages.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from . import log
from .errors import LocaraError
from .redact import SECRET_ENV, redact

__all__ = ["Result", "run", "spawn", "Process", "which", "format_cmd"]

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class Result:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    duration: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def format_cmd(argv: Sequence[PathLike]) -> str:
    return redact(shlex.join(str(a) for a in argv))


def which(name: str, path: str | None = None) -> str | None:
    return shutil.which(name, path=path)


def _merged_env(env: Mapping[str, str] | None, unset: Sequence[str] = ()) -> dict[str, str] | None:
    """The child's environment: ours + ``env`` - ``unset`` - the secrets (:data:`SECRET_ENV`) the
    caller did not pass explicitly. No child ever inherits a credential by accident."""
    secrets = [k for k in SECRET_ENV if k in os.environ and k not in (env or {})]
    if env is None and not unset and not secrets:
        return None
    merged = dict(os.environ)
    merged.update(env or {})
    for key in (*unset, *secrets):
        merged.pop(key, None)
    return merged


def _tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def run(
    argv: Sequence[PathLike],
    *,
    cwd: PathLike | None = None,
    env: Mapping[str, str] | None = None,
    unset_env: Sequence[str] = (),
    input: str | bytes | None = None,
    timeout: float | None = None,
    check: bool = True,
    error: type[LocaraError] = LocaraError,
    what: str | None = None,
    hint: str | None = None,
    log_path: PathLike | None = None,
    on_line: Callable[[str], None] | None = None,
    echo: bool = True,
    binary: bool = False,
) -> Result:
    """Run ``argv`` to completion.

    * ``on_line``/``log_path``: stream stdout+stderr (merged) line by line, to the callback and to
      the log file, instead of capturing them in memory (``Result.stdout`` then holds the tail).
    * ``check``: a non-zero exit raises ``error`` naming ``what`` (default: the program), the
      exit status, the last lines of output and ``hint``.
    * ``timeout``: seconds; the process group is killed and ``error`` raised.
    """
    args = [str(a) for a in argv]
    label = what or Path(args[0]).name
    if echo:
        log.detail("+ " + format_cmd(args))
    start = time.monotonic()
    full_env = _merged_env(env, unset_env)
    try:
        if on_line is not None or log_path is not None:
            rc, out = _run_streaming(args, cwd, full_env, timeout, log_path, on_line)
            err = ""
        else:
            proc = subprocess.run(
                args,
                cwd=cwd,
                env=full_env,
                input=input.encode() if isinstance(input, str) and binary else input,
                capture_output=True,
                text=not binary,
                timeout=timeout,
                start_new_session=True,
            )
            rc = proc.returncode
            out = proc.stdout if not binary else proc.stdout.decode("latin-1")
            err = proc.stderr if not binary else proc.stderr.decode("utf-8", "replace")
    except FileNotFoundError as exc:
        raise error(
            f"{label}: cannot run `{args[0]}`: program not found ({exc.strerror}).",
            hint=hint or f"Install `{Path(args[0]).name}` or put it on PATH; `locara-build doctor` lists what is missing.",
        ) from None
    except subprocess.TimeoutExpired:
        raise error(
            f"{label}: `{format_cmd(args)}` did not finish within {timeout:g}s and was killed.",
            hint=hint or "Check what it waits for (network, a lock, a hung child) and run again.",
        ) from None
    result = Result(tuple(args), rc, out, err, time.monotonic() - start)
    if check and rc != 0:
        raise error(_failure_message(label, args, rc, out, err, log_path), hint=hint)
    return result


def _failure_message(
    label: str, args: list[str], rc: int, out: str, err: str, log_path: PathLike | None
) -> str:
    tail = _tail(redact(err) or redact(out))
    where = f" Full log: {log_path}." if log_path else ""
    status = f"signal {-rc}" if rc < 0 else f"exit status {rc}"
    msg = f"{label} failed ({status}): `{format_cmd(args)}`.{where}"
    if tail:
        msg += "\nLast lines:\n" + tail
    return msg


def _run_streaming(
    args: list[str],
    cwd: PathLike | None,
    env: Mapping[str, str] | None,
    timeout: float | None,
    log_path: PathLike | None,
    on_line: Callable[[str], None] | None,
) -> tuple[int, str]:
    logf: IO[str] | None = open(log_path, "a", encoding="utf-8") if log_path else None  # noqa: SIM115
    tail: list[str] = []
    proc = subprocess.Popen(
        args,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        start_new_session=True,
    )
    timer: threading.Timer | None = None
    timed_out = threading.Event()
    if timeout is not None:

        def _kill() -> None:
            timed_out.set()
            _killpg(proc)

        timer = threading.Timer(timeout, _kill)
        timer.start()
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip("\n")
            if logf:
                logf.write(redact(line) + "\n")  # log files are output too: no secret in them
            tail.append(line)
            if len(tail) > 200:
                del tail[:100]
            if on_line:
                on_line(line)
        rc = proc.wait()
    except BaseException:
        _killpg(proc)
        raise
    finally:
        if timer:
            timer.cancel()
        if logf:
            logf.close()
    if timed_out.is_set():
        raise subprocess.TimeoutExpired(args, timeout or 0)
    return rc, "\n".join(tail)


def _killpg(proc: subprocess.Popen[str] | subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class Process:
    """A long-lived child (e.g. llama-server). Use as a context manager: it is always stopped."""

    def __init__(self, popen: subprocess.Popen[bytes], argv: list[str], log_path: Path | None):
        self._popen = popen
        self.argv = argv
        self.log_path = log_path

    @property
    def pid(self) -> int:
        return self._popen.pid

    def poll(self) -> int | None:
        return self._popen.poll()

    def wait(self, timeout: float | None = None) -> int:
        return self._popen.wait(timeout)

    def stop(self, grace: float = 5.0) -> int:
        """SIGTERM the process group, then SIGKILL after ``grace`` seconds."""
        if self._popen.poll() is None:
            try:
                os.killpg(self._popen.pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                self._popen.wait(grace)
            except subprocess.TimeoutExpired:
                _killpg(self._popen)
                self._popen.wait()
        else:  # leader gone: make sure no grandchild lingers
            _killpg(self._popen)
        return self._popen.returncode

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path or not self.log_path.exists():
            return ""
        return _tail(redact(self.log_path.read_text("utf-8", "replace")), lines)

    def __enter__(self) -> Process:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def spawn(
    argv: Sequence[PathLike],
    *,
    cwd: PathLike | None = None,
    env: Mapping[str, str] | None = None,
    log_path: PathLike | None = None,
    error: type[LocaraError] = LocaraError,
) -> Process:
    """Start ``argv`` in its own process group with output going to ``log_path``."""
    args = [str(a) for a in argv]
    log.detail("+ " + format_cmd(args) + " &")
    out: IO[bytes] | int = subprocess.DEVNULL
    if log_path is not None:
        out = open(log_path, "ab")  # noqa: SIM115 - owned by the child
    try:
        popen = subprocess.Popen(
            args,
            cwd=cwd,
            env=_merged_env(env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        raise error(f"cannot start `{format_cmd(args)}`: {exc.strerror or exc}.") from None
    finally:
        if not isinstance(out, int):
            out.close()
    return Process(popen, args, Path(log_path) if log_path else None)
