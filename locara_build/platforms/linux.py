from __future__ import annotations

from dataclasses import dataclass

from ..cmakevalue import CMakeValue


@dataclass(frozen=True)
class Linux:
    name: str = "linux"
    exe_suffix: str = ""
    archive: str = "tar.gz"
    signing: str = "none"
    shared_lib_globs: tuple[str, ...] = ("*.so", "*.so.*")

    def cmake_defines(self, recipe: object) -> dict[str, CMakeValue]:
        # Binaries find their libraries and backend plugins beside themselves.
        return {"CMAKE_INSTALL_RPATH": "$ORIGIN", "CMAKE_BUILD_WITH_INSTALL_RPATH": True}

    def requirements(self, recipe: object, host_os: str) -> tuple[str, ...]:
        return ("cc", "cxx")

    def can_build_on(self, host_os: str) -> bool:
        return host_os == "linux"


PLATFORM = Linux()
