"""Target operating systems behind one small protocol and a registry, plus host detection.

This package is the only place that looks at ``sys.platform`` / ``platform.machine()``.
"""

from __future__ import annotations

import platform as _platform
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from locara_build.cmakevalue import CMakeValue
from locara_build.platforms.binfmt import BinaryInfo

if TYPE_CHECKING:
    from collections.abc import Mapping

    from locara_build.recipe import Recipe
    from locara_build.toolchain import HostSetup, Tool

__all__ = ["Platform", "BinaryInfo", "REGISTRY", "get", "host_os", "host_arch", "ARCHES"]

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

    def host_setup(self, recipe: Recipe, host_os: str, tools: Mapping[str, Tool]) -> HostSetup:
        """Environment / extra CMake entries this host needs to build ``recipe`` (never in the plan:
        they hold host paths), e.g. ``LOCARA_ZIG`` for the zig wrapper scripts."""
        ...

    # --- packaging (locara_build.package) -------------------------------------------------
    launchers: tuple[str, ...]  # launcher files at the top of the artifact (run.sh / run.cmd)
    plugin_globs: tuple[str, ...]  # GGML_BACKEND_DL plugins: loaded with dlopen(), no DT_NEEDED points at them
    loader_folds_case: bool  # the loader matches library names case-insensitively (Windows: KERNEL32.dll = kernel32.dll)

    def inspect_binary(self, path: Path) -> BinaryInfo:
        """Libraries ``path`` needs at load time, its own soname and runpath (readelf/objdump/otool)."""
        ...

    def system_library(self, name: str) -> str | None:
        """Why ``name`` is never shipped (what on the user's system provides it), or None if it must ship."""
        ...

    def finds_beside(self, info: BinaryInfo) -> bool:
        """True if the loader looks for ``info``'s libraries in the binary's own directory first."""
        ...

    def strip_commands(self, path: Path, debug_file: Path | None) -> list[list[str]]:
        """argv lists that strip ``path`` in place (keeping its debug symbols in ``debug_file`` when
        given); empty when this platform's binaries are not stripped by the packager."""
        ...


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


def host_exe_suffix() -> str:
    return ".exe" if host_os() == "windows" else ""
