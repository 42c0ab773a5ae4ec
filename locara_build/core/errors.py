"""Typed errors. Each class has its own exit code; only the CLI layer catches them.

Every message is one paragraph that names the file / line / patch / command at fault, and
``hint`` says what to do next. The exit codes are the contract documented in docs/cli.md.
"""

from __future__ import annotations

import errno
import os
import shutil
from typing import Any

__all__ = [
    "LocaraError",
    "ConfigError",
    "RecipeError",
    "LockError",
    "SourceError",
    "PatchError",
    "BuildError",
    "SmokeError",
    "SignError",
    "VerifyError",
    "NetworkError",
    "BusyError",
    "DiskFullError",
    "NO_SPACE_ERRNOS",
    "is_no_space",
    "disk_full",
    "EXIT_CODES",
]


class LocaraError(Exception):
    """Base class. ``exit_code`` 1 is reserved for unexpected failures."""

    exit_code: int = 1
    kind: str = "error"

    def __init__(self, message: str, *, hint: str | None = None, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details or {}

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "exit_code": self.exit_code,
            "message": self.message,
            "hint": self.hint,
            "details": self.details,
        }


class ConfigError(LocaraError):
    """Usage or configuration: flags, recipes, lock, keys given wrongly."""

    exit_code = 2
    kind = "config"


class RecipeError(ConfigError):
    kind = "recipe"


class LockError(ConfigError):
    kind = "lock"


class SourceError(LocaraError):
    """Upstream unreachable, ref unknown, source tree missing or not matching the lock."""

    exit_code = 3
    kind = "source"


class PatchError(LocaraError):
    exit_code = 4
    kind = "patch"


class BuildError(LocaraError):
    exit_code = 5
    kind = "build"


class SmokeError(LocaraError):
    exit_code = 6
    kind = "smoke"


class SignError(LocaraError):
    exit_code = 7
    kind = "sign"


class VerifyError(LocaraError):
    """Checksum, signature, expiry, downgrade, unsafe archive."""

    exit_code = 8
    kind = "verify"


class NetworkError(LocaraError):
    """Publish or download failed (network, remote refused)."""

    exit_code = 9
    kind = "network"


class BusyError(LocaraError):
    """Another locara-build run holds the work-dir lock."""

    exit_code = 10
    kind = "busy"


class DiskFullError(ConfigError):
    """Out of disk space (ENOSPC), over a quota (EDQUOT) or a file-size limit (EFBIG) while writing
    output. Exit 2: the host's setup needs fixing (free space, or --out / --work-dir elsewhere);
    the stage that hit it leaves nothing partial behind, so the same command can simply run again."""

    kind = "disk"


#: errno values that mean "the file system cannot take more data".
NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})

_NO_SPACE_WORDS = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded",
                   errno.EFBIG: "file size limit exceeded"}


def is_no_space(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in NO_SPACE_ERRNOS


def disk_full(exc: OSError, where: str | os.PathLike[str], what: str, *, kept: str = "") -> DiskFullError:
    """The error for ``exc`` (see :func:`is_no_space`) raised while ``what`` wrote under ``where``."""
    path = os.fspath(where)
    try:
        free = f"{shutil.disk_usage(path).free:,} bytes free"
    except OSError:
        free = "free space unknown"
    file = f" (writing {exc.filename})" if exc.filename else ""
    return DiskFullError(
        f"{what}: {_NO_SPACE_WORDS.get(exc.errno or 0, os.strerror(exc.errno or 0))} in {path}{file}; {free}. "
        "Nothing partial was left behind." + (f" {kept}" if kept else ""),
        hint="Free space on that file system (or point --out / --work-dir at a bigger one), then run the same "
        "command again.",
        details={"path": path, "errno": exc.errno},
    )


EXIT_CODES: dict[int, str] = {
    0: "ok",
    1: "unexpected failure",
    2: "usage or configuration (recipe, lock, flags, keys; out of disk space)",
    3: "upstream / source",
    4: "patch conflict",
    5: "build failure",
    6: "smoke test failure",
    7: "signing / notarization",
    8: "verification failure (checksum, signature, expiry, downgrade, unsafe archive)",
    9: "publish / download (network)",
    10: "busy: another run holds the work-dir lock",
    130: "interrupted (Ctrl-C / SIGTERM); finished stages are kept",
}
