"""The one subprocess boundary.

Every external program locara-build starts goes through :func:`run` (wait for it) or
:func:`spawn` (a long-lived process such as a llama-server under test). Both echo ``+ cmd``
(secrets redacted), accept an ``error`` class so a failure surfaces with the exit code of the
stage that ran it, and never leak the environment's secrets into messages.
"""

from __future__ import annotations

import contextlib
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

from locara_build.core import log
from locara_build.core.errors import LocaraError
from locara_build.core.redact import SECRET_ENV, redact

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
    echo: bool = True,
    binary: bool = False,
) -> Result:
    """Run ``argv`` to completion, capturing its output (long-running children: :func:`spawn`,
    :func:`follow`).

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
        raise error(_failure_message(label, args, rc, out, err), hint=hint)
    return result


def _failure_message(label: str, args: list[str], rc: int, out: str, err: str) -> str:
    tail = _tail(redact(err) or redact(out))
    status = f"signal {-rc}" if rc < 0 else f"exit status {rc}"
    msg = f"{label} failed ({status}): `{format_cmd(args)}`."
    if tail:
        msg += "\nLast lines:\n" + tail
    return msg


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


# --- supervised children: a build tool followed through its log, orphans of killed runs -----------


def follow(
    argv: Sequence[PathLike],
    *,
    env: Mapping[str, str] | None,
    log_path: Path,
    pid_file: Path,
    on_line: Callable[[str], None],
    error: type[LocaraError] = LocaraError,
) -> int:
    """Run ``argv`` in its own process group with output appended to ``log_path``; feed new lines
    to ``on_line`` as they arrive; return its exit status. Its pid is in ``pid_file`` while it runs,
    so :func:`stop_orphan` can stop it if this process is killed; an exception here (Ctrl-C)
    stops it first."""
    offset = log_path.stat().st_size if log_path.exists() else 0
    proc = spawn(argv, env=env, log_path=log_path, error=error)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = pid_file.with_name(f".{pid_file.name}.{os.getpid()}")
    tmp.write_text(f"{proc.pid}\n")
    os.replace(tmp, pid_file)
    exited = threading.Event()  # set the moment the child exits: no polling latency after the build

    def wait_for_exit() -> None:
        proc.wait()
        exited.set()

    threading.Thread(target=wait_for_exit, name=f"wait-{proc.pid}", daemon=True).start()
    pending = b""
    try:
        with open(log_path, "rb") as fh:
            fh.seek(offset)
            while True:
                finished = exited.is_set()
                chunk = fh.read()
                if chunk:
                    pending += chunk
                    *complete, pending = pending.split(b"\n")
                    for raw in complete:
                        on_line(raw.decode("utf-8", "replace").rstrip("\r"))
                if finished:
                    break
                if not chunk:
                    exited.wait(0.1)
        if pending:
            on_line(pending.decode("utf-8", "replace"))
    except BaseException:
        proc.stop(grace=5)
        raise
    finally:
        pid_file.unlink(missing_ok=True)
    return proc.wait()


def command_line(pid: int) -> str | None:
    """The command line of a running process (None when it is gone)."""
    proc = Path(f"/proc/{pid}/cmdline")
    if proc.parent.parent.is_dir() and Path("/proc/self").exists():
        try:
            return proc.read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            return None
    try:
        res = run(["ps", "-o", "command=", "-p", str(pid)], check=False, echo=False, timeout=10)
    except Exception:  # noqa: BLE001
        return None
    return res.stdout if res.ok else None


def stop_orphan(pid_file: Path, *, marker: str, on_found: Callable[[int], None] | None = None) -> None:
    """Stop the process group a killed earlier run left running (its pid in ``pid_file``), if that
    pid still runs a command naming ``marker`` (e.g. its build dir: never a recycled pid)."""
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        pid_file.unlink(missing_ok=True)
        return
    cmd = command_line(pid)
    if cmd and marker in cmd:
        if on_found is not None:
            on_found(pid)
        for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, sig)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and command_line(pid):
                time.sleep(0.1)
            if not command_line(pid):
                break
    pid_file.unlink(missing_ok=True)
