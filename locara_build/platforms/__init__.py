"""Target operating systems behind one small protocol and a registry, plus host detection.

This package is the only place that looks at ``sys.platform`` / ``platform.machine()``.
"""

from __future__ import annotations

import platform as _platform
import sys
from typing import TYPE_CHECKING, Protocol

from ..cmakevalue import CMakeValue

if TYPE_CHECKING:
    from ..recipe import Recipe

__all__ = ["Platform", "REGISTRY", "get", "host_os", "host_arch", "ARCHES"]

ARCHES = ("x86_64", "arm64")


class Platform(Protocol):
    name: str
    exe_suffix: str
    archive: str  # default archive format: "tar.gz" | "zip"
    signing: str  # default signing kind: "none" | "authenticode" | "macos"
    shared_lib_globs: tuple[str, ...]  # how its shared libraries / backend plugins are named

    def cmake_defines(self, recipe: Recipe) -> dict[str, CMakeValue]: ...

    def requirements(self, recipe: Recipe, host_os: str) -> tuple[str, ...]:
        """Toolchain requirements to build ``recipe`` on ``host_os`` (cross builds need more)."""
        ...

    def can_build_on(self, host_os: str) -> bool: ...


def _registry() -> dict[str, Platform]:
    from . import linux, macos, windows

    return {p.name: p for p in (linux.PLATFORM, windows.PLATFORM, macos.PLATFORM)}


REGISTRY: dict[str, Platform] = _registry()


def get(name: str) -> Platform:
    return REGISTRY[name]


def host_os() -> str:
    if sys.platform.startswith("linux"):
        return "linux"
    if sys.platform == "darwin":
        return "macos"
    if sys.platform in ("win32", "cygwin"):
        return "windows"
    return sys.platform


def host_arch() -> str:
    machine = _platform.machine().lower()
    return {"amd64": "x86_64", "x64": "x86_64", "aarch64": "arm64"}.get(machine, machine)
