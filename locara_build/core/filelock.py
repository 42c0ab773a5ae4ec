"""Exclusive advisory file locks: one holder at a time for a work dir's weekly run, a recipe's
build, an install prefix, a mirror, a source tree, a model download or the toolchains folder.
The kernel releases the lock when its process dies, so a killed run never leaves a stale lock
behind (``flock`` on POSIX, ``msvcrt.locking`` of the first byte on Windows)."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

__all__ = ["file_lock"]


@contextlib.contextmanager
def file_lock(
    path: Path,
    *,
    on_wait: Callable[[], None] | None = None,
    busy: Callable[[str], Exception] | None = None,
    record_holder: bool = False,
) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created with its folder) for the block.

    Held by another process: with ``busy``, raise ``busy(holder)`` at once (``holder`` is what the
    holder wrote with ``record_holder``, else "another process"); without it, wait, calling
    ``on_wait`` first (e.g. to say so). ``record_holder`` writes "pid N since T" into the file
    while the lock is held."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        if not _try_lock(fh):
            if busy is not None:
                fh.seek(0)
                raise busy(fh.read(200).strip() or "another process")
            if on_wait is not None:
                on_wait()
            _lock(fh)
        if record_holder:
            fh.seek(0)
            fh.truncate()
            fh.write(f"pid {os.getpid()} since {datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}\n")
            fh.flush()
        try:
            yield
        finally:
            if record_holder:
                fh.seek(0)
                fh.truncate()
            _unlock(fh)


try:
    import fcntl
except ImportError:  # pragma: no cover - Windows hosts (install): msvcrt locks the first byte
    import msvcrt

    def _try_lock(fh: IO[str]) -> bool:
        fh.seek(0)
        try:
            msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _lock(fh: IO[str]) -> None:
        while not _try_lock(fh):
            time.sleep(0.2)

    def _unlock(fh: IO[str]) -> None:
        fh.seek(0)
        with contextlib.suppress(OSError):
            msvcrt.locking(fh.fileno(), msvcrt.LK_UNLCK, 1)

else:

    def _try_lock(fh: IO[str]) -> bool:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _lock(fh: IO[str]) -> None:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)

    def _unlock(fh: IO[str]) -> None:
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
