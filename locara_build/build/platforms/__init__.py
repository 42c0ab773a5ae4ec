"""Target operating systems behind one small protocol and a registry, plus host detection.

Host detection (:mod:`.host`) reads ``platform.machine()``; the operating system comes from
:mod:`locara_build.core.hostos`, the one place that reads ``sys.platform``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from locara_build.build.cmakevalue import CMakeValue
from locara_build.build.platforms import host
from locara_build.build.platforms.binfmt import BinaryInfo
from locara_build.build.platforms.host import ARCHES

if TYPE_CHECKING:
    from collections.abc import Mapping

    from locara_build.build.recipe import Recipe
    from locara_build.build.tooltypes import HostSetup, Tool

__all__ = ["Platform", "BinaryInfo", "REGISTRY", "get", "host_os", "host_arch", "host_exe_suffix", "ARCHES"]



class Platform(Protocol):
    @property
    def name(self) -> str:
        ...

    @property
    def exe_suffix(self) -> str:
        ...

    @property
    def archive(self) -> str:
        # default archive format: "tar.gz" | "zip"
        ...

    @property
    def signing(self) -> str:
        # default signing kind: "none" | "authenticode" | "macos"
        ...

    @property
    def shared_lib_globs(self) -> tuple[str, ...]:
        # how its shared libraries / backend plugins are named
        ...

    def cmake_defines(self, recipe: Recipe) -> dict[str, CMakeValue]: ...

    def requirements(self, recipe: Recipe, host_os: str) -> tuple[str, ...]:
        """Toolchain requirements to build ``recipe`` on ``host_os`` (cross builds need more)."""
        ...

    def can_build_on(self, host_os: str) -> bool: ...

    def host_setup(self, recipe: Recipe, host_os: str, tools: Mapping[str, Tool]) -> HostSetup:
        """Environment / extra CMake entries this host needs to build ``recipe`` (never in the plan:
        they hold host paths), e.g. ``LOCARA_ZIG`` for the zig wrapper scripts."""
        ...

    # --- packaging (locara_build.package.package) -------------------------------------------------
    @property
    def launchers(self) -> tuple[str, ...]:
        # launcher files at the top of the artifact (run.sh / run.cmd)
        ...

    @property
    def plugin_globs(self) -> tuple[str, ...]:
        # GGML_BACKEND_DL plugins: loaded with dlopen(), no DT_NEEDED points at them
        ...

    @property
    def loader_folds_case(self) -> bool:
        # the loader matches library names case-insensitively (Windows: KERNEL32.dll = kernel32.dll)
        ...

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
    from locara_build.build.platforms import linux, macos, windows

    known: tuple[Platform, ...] = (linux.PLATFORM, windows.PLATFORM, macos.PLATFORM)  # checked against the protocol
    return {p.name: p for p in known}


REGISTRY: dict[str, Platform] = _registry()


def get(name: str) -> Platform:
    return REGISTRY[name]


# The host, asked through :mod:`.host` at call time (a test that patches ``host.host_os`` changes
# what every module sees, whether it imported the package or the leaf).
def host_os() -> str:
    return host.host_os()


def host_arch() -> str:
    return host.host_arch()


def host_exe_suffix() -> str:
    return host.host_exe_suffix()
