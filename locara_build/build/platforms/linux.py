from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from locara_build.build.cmakevalue import CMakeValue
from locara_build.build.platforms.binfmt import BinaryInfo, read_elf

if TYPE_CHECKING:
    from locara_build.build.tooltypes import HostSetup, Tool

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
    loader_folds_case: bool = False

    def cmake_defines(self, recipe: object) -> dict[str, CMakeValue]:
        # Binaries find their libraries and backend plugins beside themselves.
        return {"CMAKE_INSTALL_RPATH": "$ORIGIN", "CMAKE_BUILD_WITH_INSTALL_RPATH": True}

    def requirements(self, recipe: object, host_os: str) -> tuple[str, ...]:
        if getattr(recipe, "arch", "x86_64") == "arm64":
            # clang >= 15 (armv9.2-a+sme for the SME CPU variants). A cross build on x86-64 also
            # needs binutils-aarch64 and dpkg-deb for the sysroot: doctor adds those for such a host
            # (this answer must not depend on the machine: `ci render` uses it).
            return ("clang>=15",)
        return ("cc", "cxx")

    def host_setup(self, recipe: object, host_os: str, tools: Mapping[str, Tool]) -> HostSetup:
        from locara_build.build.tooltypes import HostSetup

        return HostSetup()

    def can_build_on(self, host_os: str) -> bool:
        return host_os == "linux"

    # --- toolchain hooks (locara_build.build.toolchains): Linux arm64 cross builds + qemu-user -------

    def plan_env(self, recipe: object) -> dict[str, str]:
        """arm64: the clang and (cross) the sysroot the toolchain file reads, shown in the plan."""
        if getattr(recipe, "arch", "") != "arm64":
            return {}
        from locara_build.build.toolchains import arm64

        return arm64.plan_env()

    def prepare(self, recipe: object) -> None:
        """arm64 on an x86-64 host: unpack the Debian arm64 sysroot (cached; once)."""
        from locara_build.build.toolchains import arm64

        if getattr(recipe, "arch", "") == "arm64" and arm64.is_cross():
            arm64.provision_sysroot(vulkan=getattr(recipe, "backend", "") == "vulkan")

    def smoke_env(self, recipe: object) -> dict[str, str]:
        if getattr(recipe, "arch", "") != "arm64":
            return {}
        from locara_build.build.toolchains import arm64

        return arm64.smoke_env()

    def smoke_emulator(self, recipe: object) -> list[str]:
        """``qemu-aarch64-static`` when an arm64 build is smoke-tested on an x86-64 host."""
        if getattr(recipe, "arch", "") != "arm64":
            return []
        from locara_build.build.toolchains import arm64

        return arm64.smoke_emulator()

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
        strip, objcopy = _binutils_for(path)
        if debug_file is None:
            return [[strip, "--strip-unneeded", str(path)]]
        return [
            [objcopy, "--only-keep-debug", str(path), str(debug_file)],
            [strip, "--strip-unneeded", str(path)],
            [objcopy, f"--add-gnu-debuglink={debug_file}", str(path)],
        ]


_EM_AARCH64 = 0xB7  # ELF e_machine


def elf_machine(path: Path) -> int | None:
    """``e_machine`` of an ELF file (0x3E x86-64, 0xB7 aarch64), None for anything else."""
    try:
        with open(path, "rb") as f:
            head = f.read(20)
    except OSError:
        return None
    if len(head) < 20 or head[:4] != b"\x7fELF":
        return None
    return int.from_bytes(head[18:20], "little" if head[5] == 1 else "big")


def _binutils_for(path: Path) -> tuple[str, str]:
    """strip/objcopy that understand ``path``: the host's binutils only know the host's machine, an
    aarch64 ELF on an x86-64 host needs binutils-aarch64-linux-gnu's."""
    import locara_build.build.platforms.host as platforms

    if elf_machine(path) == _EM_AARCH64 and platforms.host_arch() != "arm64":
        return "aarch64-linux-gnu-strip", "aarch64-linux-gnu-objcopy"
    return "strip", "objcopy"


PLATFORM = Linux()
