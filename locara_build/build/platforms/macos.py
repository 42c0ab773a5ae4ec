from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from locara_build.build.cmakevalue import CMakeValue
from locara_build.build.platforms.binfmt import BinaryInfo, read_macho

if TYPE_CHECKING:
    from locara_build.build.tooltypes import HostSetup, Tool


@dataclass(frozen=True)
class MacOS:
    name: str = "macos"
    exe_suffix: str = ""
    archive: str = "tar.gz"
    signing: str = "macos"
    shared_lib_globs: tuple[str, ...] = ("*.dylib", "*.so")
    launchers: tuple[str, ...] = ("run.sh",)
    plugin_globs: tuple[str, ...] = ("libggml-*.so",)
    loader_folds_case: bool = False

    def cmake_defines(self, recipe: object) -> dict[str, CMakeValue]:
        return {"CMAKE_INSTALL_RPATH": "@loader_path", "CMAKE_BUILD_WITH_INSTALL_RPATH": True}

    def requirements(self, recipe: object, host_os: str) -> tuple[str, ...]:
        return ("xcode", "cc", "cxx")

    def host_setup(self, recipe: object, host_os: str, tools: Mapping[str, Tool]) -> HostSetup:
        from locara_build.build.tooltypes import HostSetup

        return HostSetup()

    def can_build_on(self, host_os: str) -> bool:
        return host_os == "macos"

    def inspect_binary(self, path: Path) -> BinaryInfo:
        return read_macho(path)

    def system_library(self, name: str) -> str | None:
        if name.startswith(("/usr/lib/", "/System/Library/")):
            return "macOS"
        return None

    def finds_beside(self, info: BinaryInfo) -> bool:
        return any(p.startswith(("@loader_path", "@executable_path")) for p in info.runpath)

    def strip_commands(self, path: Path, debug_file: Path | None) -> list[list[str]]:
        return [["strip", "-x", str(path)]]  # before codesign (release signs what ships)


PLATFORM = MacOS()
