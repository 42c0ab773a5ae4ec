from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from locara_build.build.cmakevalue import CMakeValue
from locara_build.build.platforms.binfmt import BinaryInfo, read_pe

if TYPE_CHECKING:
    from locara_build.build.tooltypes import HostSetup, Tool

# DLLs every supported Windows (10+) has, or the GPU driver installs. Compared case-insensitively.
SYSTEM_DLLS: tuple[tuple[str, str], ...] = (
    ("api-ms-win-*.dll", "Windows (API set)"),
    ("ext-ms-win-*.dll", "Windows (API set)"),
    *(
        (name, "Windows")
        for name in (
            "kernel32.dll", "kernelbase.dll", "ntdll.dll", "user32.dll", "gdi32.dll", "advapi32.dll",
            "shell32.dll", "shlwapi.dll", "ole32.dll", "oleaut32.dll", "ws2_32.dll", "wsock32.dll",
            "mswsock.dll", "iphlpapi.dll", "bcrypt.dll", "crypt32.dll", "secur32.dll", "ncrypt.dll",
            "dbghelp.dll", "psapi.dll", "version.dll", "winmm.dll", "msvcrt.dll", "ucrtbase.dll",
            "userenv.dll", "rpcrt4.dll", "synchronization.dll", "powrprof.dll", "setupapi.dll",
        )
    ),
    ("vulkan-1.dll", "the Vulkan loader of the user's GPU driver (never shipped)"),
    ("nvcuda.dll", "the NVIDIA driver"),
)


@dataclass(frozen=True)
class Windows:
    name: str = "windows"
    exe_suffix: str = ".exe"
    archive: str = "zip"
    signing: str = "authenticode"
    shared_lib_globs: tuple[str, ...] = ("*.dll",)
    launchers: tuple[str, ...] = ("run.cmd",)
    plugin_globs: tuple[str, ...] = ("ggml-*.dll",)
    loader_folds_case: bool = True

    def cmake_defines(self, recipe: object) -> dict[str, CMakeValue]:
        return {}

    def requirements(self, recipe: object, host_os: str) -> tuple[str, ...]:
        # Cross-building from Linux uses zig's clang + mingw-w64 headers (see docs/backends.md).
        # A recipe without a toolchain file (windows-x86_64-cuda: nvcc needs MSVC) builds only on Windows.
        if not getattr(recipe, "toolchain", None):
            return ("msvc",)
        return ("zig",) if host_os == "linux" else ("cc", "cxx")

    def host_setup(self, recipe: object, host_os: str, tools: Mapping[str, Tool]) -> HostSetup:
        from locara_build.build.tooltypes import HostSetup

        zig = tools.get("zig")
        if host_os != "windows" and zig is not None and zig.found and zig.path:
            # recipes/toolchains/zig/* call "$LOCARA_ZIG" cc|c++|ar|ranlib|rc
            return HostSetup(env={"LOCARA_ZIG": zig.path}, notes=(f"LOCARA_ZIG={zig.path}",))
        return HostSetup()

    def can_build_on(self, host_os: str) -> bool:
        return host_os in ("windows", "linux")

    # --- toolchain hooks (locara_build.build.toolchains) --------------------------------------------

    def plan_env(self, recipe: object) -> dict[str, str]:
        """Cross-building on Linux: ``LOCARA_ZIG`` for the toolchain wrappers, zig's cache, and a
        ccache compiler check that sees through the wrapper scripts (shown in the plan)."""
        import locara_build.build.platforms.host as platforms
        from locara_build.build.toolchains import zig

        if platforms.host_os() == "windows" or not getattr(recipe, "toolchain", None):
            return {}  # native (MSVC) recipes: nothing of this host in their plan
        return zig.plan_env()

    def plan_cmake_defines(self, recipe: object) -> dict[str, CMakeValue]:
        """Vulkan cross-built with zig: the generated import library of vulkan-1.dll (shown in the plan;
        locara_build/build/toolchains/vulkan_win.py), found by FindVulkan as ``Vulkan_LIBRARY``."""
        include = self._vulkan_include(recipe)
        if include is None:
            return {}
        from locara_build.build.toolchains import vulkan_win

        return {"Vulkan_LIBRARY": str(vulkan_win.import_lib(include))}

    def prepare(self, recipe: object) -> None:
        include = self._vulkan_include(recipe)
        if include is None:
            return
        from locara_build.build.toolchains import vulkan, vulkan_win, zig

        if not (include / "vulkan" / "vulkan_core.h").is_file():
            import locara_build.build.platforms.host as platforms

            vulkan.provision(platforms.host_arch())  # the backend's prepare may not have run yet
        vulkan_win.provision(include, zig.require().path)

    def _vulkan_include(self, recipe: object) -> Path | None:
        import locara_build.build.platforms.host as platforms
        from locara_build.build.toolchains import vulkan

        if getattr(recipe, "backend", "") != "vulkan" or platforms.host_os() == "windows" or not getattr(recipe, "toolchain", None):
            return None
        return vulkan.planned_include_dir(platforms.host_os()) or Path("/usr/include")

    def smoke_env(self, recipe: object) -> dict[str, str]:
        """Running the .exe under wine: a private prefix in the toolchains dir, no debug noise."""
        import locara_build.build.platforms.host as platforms
        from locara_build.build.toolchains import wine

        if platforms.host_os() == "windows":
            return {}
        return wine.smoke_env(xvfb=self._wine_vulkan(recipe) and wine.uses_xvfb())

    def smoke_wrapper(self, recipe: object) -> list[str]:
        """Before the emulator: a virtual X display when a Vulkan build runs under wine with none."""
        from locara_build.build.toolchains import wine

        if not self._wine_vulkan(recipe):
            return []
        return wine.display_prefix() or []

    def smoke_device_gap(self, recipe: object) -> str | None:
        """Why the Vulkan device this host has is out of the .exe's reach under wine, or None."""
        from locara_build.build.toolchains import wine

        if self._wine_vulkan(recipe) and wine.display_prefix() is None:
            return ("under wine, Vulkan needs an X display (wine's graphics driver) and this host has "
                    "neither $DISPLAY nor xvfb-run (Debian: apt-get install xvfb)")
        return None

    @staticmethod
    def _wine_vulkan(recipe: object) -> bool:
        import locara_build.build.platforms.host as platforms

        return getattr(recipe, "backend", "") == "vulkan" and platforms.host_os() != "windows"

    def inspect_binary(self, path: Path) -> BinaryInfo:
        return read_pe(path)

    def system_library(self, name: str) -> str | None:
        lower = name.lower()
        for pattern, why in SYSTEM_DLLS:
            if fnmatch.fnmatchcase(lower, pattern):
                return why
        return None

    def finds_beside(self, info: BinaryInfo) -> bool:
        return True  # the loader searches the executable's directory first

    def strip_commands(self, path: Path, debug_file: Path | None) -> list[list[str]]:
        return []  # PE builds keep symbols in a separate .pdb; Authenticode signs what ships as built


PLATFORM = Windows()
