"""Shared pieces of toolchain provisioning: the findings ``doctor`` prints, the cache layout,
a lock so two builds never provision the same thing at once, and verified downloads."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from locara_build.core.digest import sha256_file
from locara_build.core.filelock import file_lock
from locara_build.core.workdir import resolve_work_dir

__all__ = ["Finding", "toolchains_dir", "ensure_dir", "provision_lock", "sha256_file", "staging_dir", "publish_dir"]


@dataclass(frozen=True)
class Finding:
    """One line of ``doctor``: what was looked for, whether it is usable, and why (or why not)."""

    name: str
    ok: bool
    version: str = ""
    path: str = ""
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ok": self.ok,
            "version": self.version,
            "path": self.path,
            "detail": self.detail,
            **({"extra": self.extra} if self.extra else {}),
        }


def toolchains_dir() -> Path:
    """Where provisioned headers and libraries live, one folder per pinned version.

    ``$LOCARA_TOOLCHAINS_DIR``, else ``toolchains/`` in the default work dir (``$LOCARA_WORK_DIR`` or
    the per-user cache): shared by every work dir of this user, like the compiler cache, so a test's
    throw-away work dir never downloads the same 400 MB twice. Every caller (plan, build, doctor,
    package) gets the same answer without passing a work dir around.
    """
    env = os.environ.get("LOCARA_TOOLCHAINS_DIR")
    if env:
        return Path(env).expanduser().resolve()
    return resolve_work_dir(None).root / "toolchains"


def ensure_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def provision_lock() -> Iterator[None]:
    """One provisioning at a time in the shared toolchains folder."""
    with file_lock(ensure_dir(toolchains_dir()) / ".lock"):
        yield


def staging_dir(final: Path) -> Path:
    """A fresh sibling of ``final`` to build into; :func:`publish_dir` renames it into place."""
    staging = final.with_name(f".{final.name}.partial-{os.getpid()}")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    return staging


def publish_dir(staging: Path, final: Path) -> Path:
    """Atomically move a completed ``staging`` folder to ``final`` (a folder that exists is complete)."""
    if final.exists():
        shutil.rmtree(staging, ignore_errors=True)
        return final
    os.replace(staging, final)
    return final
