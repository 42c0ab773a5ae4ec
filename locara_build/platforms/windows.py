from __future__ import annotations

from dataclasses import dataclass

from ..cmakevalue import CMakeValue


@dataclass(frozen=True)
class Windows:
    name: str = "windows"
    exe_suffix: str = ".exe"
    archive: str = "zip"
    signing: str = "authenticode"
    shared_lib_globs: tuple[str, ...] = ("*.dll",)

    def cmake_defines(self, recipe: object) -> dict[str, CMakeValue]:
        return {}

    def requirements(self, recipe: object, host_os: str) -> tuple[str, ...]:
        # Cross-building from Linux uses zig's clang + mingw-w64 headers (see docs/backends.md).
        return ("zig",) if host_os == "linux" else ("cc", "cxx")

    def can_build_on(self, host_os: str) -> bool:
        return host_os in ("windows", "linux")


PLATFORM = Windows()
