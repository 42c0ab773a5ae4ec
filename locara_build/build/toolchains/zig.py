"""zig: the C/C++ cross compiler for Windows builds on Linux (``zig cc -target x86_64-windows-gnu``).

zig comes from the PyPI wheel ``ziglang`` (a dependency of locara-build on Linux), so no
download outside the package index is needed. Why zig and not Debian's mingw-w64: zig carries
newer mingw-w64 headers (``THREAD_POWER_THROTTLING_STATE``, which ggml-cpu.c uses on Windows, is
missing from bookworm's v10 and trixie's v12), a clang and an lld that target Windows, and
links its own libc++ statically, so the .exe needs no C++ runtime DLL beside it.

The CMake toolchain file ``recipes/toolchains/zig-x86_64-windows-gnu.cmake`` uses small wrapper
scripts (``recipes/toolchains/zig/``) that exec ``$LOCARA_ZIG``: :func:`build_env` sets it.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from locara_build.build.toolchains._common import toolchains_dir
from locara_build.core import run as _run
from locara_build.core.errors import BuildError

__all__ = ["Zig", "find", "require", "plan_env"]


@dataclass(frozen=True)
class Zig:
    path: Path
    version: str
    source: str  # "LOCARA_ZIG" | "ziglang wheel" | "PATH"


def _candidates() -> list[tuple[Path, str]]:
    out: list[tuple[Path, str]] = []
    env = os.environ.get("LOCARA_ZIG")
    if env:
        out.append((Path(env), "LOCARA_ZIG"))
    spec = importlib.util.find_spec("ziglang")
    if spec is not None and spec.origin:
        out.append((Path(spec.origin).parent / "zig", "ziglang wheel"))
    on_path = _run.which("zig")
    if on_path:
        out.append((Path(on_path), "PATH"))
    return out


def find() -> Zig | None:
    for path, source in _candidates():
        if path.is_file() and os.access(path, os.X_OK):
            res = _run.run([path, "version"], check=False, echo=False, timeout=60)
            if res.ok:
                return Zig(path=path, version=res.stdout.strip(), source=source)
    return None


def require() -> Zig:
    zig = find()
    if zig is None:
        raise BuildError(
            "zig is needed to cross-compile Windows binaries on Linux and was not found "
            "($LOCARA_ZIG, the `ziglang` Python package, `zig` on PATH).",
            hint="pip install ziglang (it is a locara-build dependency on Linux: reinstall locara-build), "
            "or point LOCARA_ZIG at a zig >= 0.13 binary.",
        )
    return zig


def plan_env() -> dict[str, str]:
    """Environment for a build that uses the zig wrappers (shown in the plan)."""
    zig = find()
    env = {
        # zig's own cache of compiled libc/libc++ for the target, kept with the work dir.
        "ZIG_GLOBAL_CACHE_DIR": str(toolchains_dir() / "zig-cache"),
        "ZIG_LOCAL_CACHE_DIR": str(toolchains_dir() / "zig-cache"),
        # ccache sees only the wrapper script; make it hash what the wrapper runs (zig's clang
        # version and target) so a zig upgrade never reuses stale objects.
        "CCACHE_COMPILERCHECK": "%compiler% --version",
    }
    if zig is not None:
        env["LOCARA_ZIG"] = str(zig.path)
    return env
