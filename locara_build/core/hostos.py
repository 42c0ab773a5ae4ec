"""The operating system this runs on, in the names recipes use. The one place in the package that
reads ``sys.platform``: a leaf, so ``core`` modules (extraction, downloads) ask it without importing
``build``, and :mod:`locara_build.build.platforms.host` re-uses it."""

from __future__ import annotations

import sys

__all__ = ["host_os", "is_linux", "is_windows"]


def host_os() -> str:
    """``linux``, ``macos`` or ``windows`` (Cygwin counts as Windows); else ``sys.platform`` as is."""
    if sys.platform.startswith("linux"):
        return "linux"
    if sys.platform == "darwin":
        return "macos"
    if sys.platform in ("win32", "cygwin"):
        return "windows"
    return sys.platform


def is_windows() -> bool:
    return host_os() == "windows"


def is_linux() -> bool:
    return host_os() == "linux"
