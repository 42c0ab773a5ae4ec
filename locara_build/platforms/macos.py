from __future__ import annotations

from dataclasses import dataclass

from ..cmakevalue import CMakeValue


@dataclass(frozen=True)
class MacOS:
    name: str = "macos"
    exe_suffix: str = ""
    archive: str = "tar.gz"
    signing: str = "macos"
    shared_lib_globs: tuple[str, ...] = ("*.dylib", "*.so")

    def cmake_defines(self, recipe: object) -> dict[str, CMakeValue]:
        return {"CMAKE_INSTALL_RPATH": "@loader_path", "CMAKE_BUILD_WITH_INSTALL_RPATH": True}

    def requirements(self, recipe: object, host_os: str) -> tuple[str, ...]:
        return ("xcode", "cc", "cxx")

    def can_build_on(self, host_os: str) -> bool:
        return host_os == "macos"


PLATFORM = MacOS()
