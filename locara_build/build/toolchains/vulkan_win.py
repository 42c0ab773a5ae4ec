"""The Vulkan loader's import library for the Windows cross build (``windows-x86_64-vulkan``).

A Windows program links ``vulkan-1.dll`` (the loader the GPU driver installs; never shipped) through an
import library. LunarG's SDK has ``vulkan-1.lib`` for MSVC; the zig/mingw-w64 toolchain has none (zig
carries no ``vulkan-1.def``). So one is generated: every *core* Vulkan command (the ``VK_VERSION_1_x``
blocks of ``vulkan_core.h``, which the loader exports) from the same headers the build compiles against,
written as ``vulkan-1.def`` and turned into ``libvulkan-1.a`` by ``zig dlltool``. Extension commands are
not exported by the loader and are left out on purpose: a build that calls one directly fails to link
here instead of failing to start on the user's machine.
"""

from __future__ import annotations

import re
from pathlib import Path

from locara_build.build.toolchains._common import (
    ensure_dir,
    provision_lock,
    publish_dir,
    sha256_file,
    staging_dir,
    toolchains_dir,
)
from locara_build.core import run as _run
from locara_build.core.errors import BuildError

__all__ = ["core_commands", "import_lib", "import_lib_dir", "provision"]

_FEATURE = re.compile(r"^#define\s+(VK_[A-Za-z0-9_]+)\s+1\s*$")
_PROTO = re.compile(r"^VKAPI_ATTR\s+[\w\s*]+?\s+VKAPI_CALL\s+(vk\w+)\s*\(")


def core_commands(header: Path) -> list[str]:
    """The commands of the ``VK_VERSION_1_x`` feature blocks of ``vulkan_core.h``, in header order."""
    out: list[str] = []
    feature = ""
    for line in header.read_text(encoding="utf-8", errors="replace").splitlines():
        m = _FEATURE.match(line)
        if m and not m.group(1).endswith(("_SPEC_VERSION", "_EXTENSION_NAME")):
            feature = m.group(1)
            continue
        p = _PROTO.match(line.strip())
        if p and feature.startswith("VK_VERSION_") and p.group(1) not in out:
            out.append(p.group(1))
    return out


def import_lib_dir(include_dir: Path) -> Path:
    """One folder per header set (the version is in the path of the provisioned headers)."""
    tag = re.sub(r"[^A-Za-z0-9.]+", "-", include_dir.parent.parent.name or "headers").strip("-")
    return toolchains_dir() / f"vulkan-1-mingw-{tag}"


def import_lib(include_dir: Path) -> Path:
    return import_lib_dir(include_dir) / "libvulkan-1.a"


def provision(include_dir: Path, zig: Path) -> Path:
    """Write ``vulkan-1.def`` and ``libvulkan-1.a`` for the headers in ``include_dir`` (cached)."""
    final = import_lib_dir(include_dir)
    if (final / "libvulkan-1.a").is_file():
        return final / "libvulkan-1.a"
    header = include_dir / "vulkan" / "vulkan_core.h"
    if not header.is_file():
        raise BuildError(f"{header} is missing: cannot generate the vulkan-1.dll import library.",
                         hint="Provision the Vulkan headers first (`locara-build build` does it for Vulkan recipes).")
    commands = core_commands(header)
    if len(commands) < 100 or "vkCreateInstance" not in commands:
        raise BuildError(f"{header}: found only {len(commands)} core Vulkan commands; the header layout changed.",
                         hint="Update locara_build/build/toolchains/vulkan_win.py for these headers.")
    with provision_lock():
        if (final / "libvulkan-1.a").is_file():
            return final / "libvulkan-1.a"
        staging = staging_dir(ensure_dir(final.parent) / final.name)
        (staging / "vulkan-1.def").write_text(
            "LIBRARY vulkan-1.dll\nEXPORTS\n" + "".join(f"    {c}\n" for c in commands), encoding="utf-8")
        _run.run([str(zig), "dlltool", "-m", "i386:x86-64", "-d", str(staging / "vulkan-1.def"),
                  "-l", str(staging / "libvulkan-1.a")], error=BuildError, what="zig dlltool (vulkan-1)")
        (staging / "PROVENANCE.txt").write_text(
            f"generated from {header} (sha256 {sha256_file(header)}): {len(commands)} core commands\n", encoding="utf-8")
        publish_dir(staging, final)
    return final / "libvulkan-1.a"
