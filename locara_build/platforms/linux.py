from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from locara_build.cmakevalue import CMakeValue
from locara_build.platforms.binfmt import BinaryInfo, read_elf

if TYPE_CHECKING:
    from locara_build.toolchain import HostSetup, Tool

# Libraries an artifact never ships: every glibc system has them, or the user's driver / distro
# provides them (docs/packaging.md, "What ships"). Anything else a binary needs must be in bin/.
SYSTEM_LIBRARIES: tuple[tuple[str, str], ...] = (
    ("ld-linux*.so.*", "glibc (the dynamic loader)"),
    ("libc.so.6", "glibc"),
    ("libm.so.6", "glibc"),
    ("libpthread.so.0", "glibc"),
    ("libdl.so.2", "glibc"),
    ("librt.so.1", "glibc"),
    ("libresolv.so.2", "glibc"),
    ("libutil.so.1", "glibc"),
    ("libstdc++.so.6", "the GCC C++ runtime (libstdc++6)"),
    ("libgcc_s.so.1", "the GCC runtime (libgcc-s1)"),
    ("libgomp.so.1", "the GCC OpenMP runtime (libgomp1)"),
    ("libssl.so.3", "OpenSSL 3 (libssl3)"),
    ("libcrypto.so.3", "OpenSSL 3 (libssl3)"),
    ("libvulkan.so.1", "the Vulkan loader of the user's GPU driver (never shipped)"),
    ("libcuda.so.1", "the NVIDIA driver"),
)


@dataclass(frozen=True)
class Linux:
    name: str = "linux"
    exe_suffix: str = ""
    archive: str = "tar.gz"
    signing: str = "none"
    shared_lib_globs: tuple[str, ...] = ("*.so", "*.so.*")
    launchers: tuple[str, ...] = ("run.sh",)
    plugin_globs: tuple[str, ...] = ("libggml-*.so",)

    def cmake_defines(self, recipe: object) -> dict[str, CMakeValue]:
        # Binaries find their libraries and backend plugins beside themselves.
        return {"CMAKE_INSTALL_RPATH": "$ORIGIN", "CMAKE_BUILD_WITH_INSTALL_RPATH": True}

    def requirements(self, recipe: object, host_os: str) -> tuple[str, ...]:
        return ("cc", "cxx")

    def host_setup(self, recipe: object, host_os: str, tools: Mapping[str, Tool]) -> HostSetup:
        from locara_build.toolchain import HostSetup

        return HostSetup()

    def can_build_on(self, host_os: str) -> bool:
        return host_os == "linux"

    def inspect_binary(self, path: Path) -> BinaryInfo:
        return read_elf(path)

    def system_library(self, name: str) -> str | None:
        for pattern, why in SYSTEM_LIBRARIES:
            if fnmatch.fnmatchcase(name, pattern):
                return why
        return None

    def finds_beside(self, info: BinaryInfo) -> bool:
        return any(p in ("$ORIGIN", "${ORIGIN}") for p in info.runpath)

    def strip_commands(self, path: Path, debug_file: Path | None) -> list[list[str]]:
        if debug_file is None:
            return [["strip", "--strip-unneeded", str(path)]]
        return [
            ["objcopy", "--only-keep-debug", str(path), str(debug_file)],
            ["strip", "--strip-unneeded", str(path)],
            ["objcopy", f"--add-gnu-debuglink={debug_file}", str(path)],
        ]


PLATFORM = Linux()
