"""CMake configure arguments for a recipe: the pure part of the build (contract-tested).

Order of cache entries (later wins): recipe defaults/recipe ``[cmake]`` < platform
(rpath) < backend (``GGML_CUDA=ON`` ...) < reproducibility flags. Entries are emitted sorted,
so the same inputs always give the same argv.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from . import backends, platforms
from .cmakevalue import CMakeValue, render_define
from .recipe import Recipe

__all__ = ["build_info_entries", "cache_entries", "configure_args", "prefix_map_flags"]

# Flags whose values we extend (never replace) with reproducibility options.
_FLAG_VARS = ("CMAKE_C_FLAGS", "CMAKE_CXX_FLAGS")


def prefix_map_flags(source_dir: Path, cmake_dir: Path) -> str:
    """Keep build-host paths out of binaries (``__FILE__``, debug info)."""
    return f"-ffile-prefix-map={source_dir}=llama.cpp -ffile-prefix-map={cmake_dir}=build"


def build_info_entries(commit: str, tag: str) -> dict[str, CMakeValue]:
    """What ``llama-server --version`` reports: the upstream commit and build number (``bNNNN`` tag),
    not the patched tree's HEAD (whose sha changes whenever a patch is re-applied)."""
    number = int(tag[1:]) if tag[:1] == "b" and tag[1:].isdigit() else 0
    return {"LLAMA_BUILD_COMMIT": commit[:7], "LLAMA_BUILD_NUMBER": number}


def cache_entries(
    recipe: Recipe, source_dir: Path, cmake_dir: Path, extra: Mapping[str, CMakeValue] | None = None
) -> dict[str, CMakeValue]:
    entries: dict[str, CMakeValue] = dict(recipe.cmake)
    entries.update(extra or {})
    for key, value in platforms.get(recipe.os).cmake_defines(recipe).items():
        entries.setdefault(key, value)
    entries.update(backends.get(recipe.backend).cmake_defines(recipe))
    prefix = prefix_map_flags(source_dir, cmake_dir)
    for var in _FLAG_VARS:
        existing = str(entries.get(var, "")).strip()
        entries[var] = f"{existing} {prefix}".strip()
    if recipe.backend == "cuda":
        existing = str(entries.get("CMAKE_CUDA_FLAGS", "")).strip()
        host = " ".join(f"-Xcompiler={flag}" for flag in prefix.split())
        entries["CMAKE_CUDA_FLAGS"] = f"{existing} {host}".strip()
    return entries


def configure_args(
    recipe: Recipe,
    source_dir: Path,
    cmake_dir: Path,
    toolchain: Path | None,
    extra: Mapping[str, CMakeValue] | None = None,
) -> list[str]:
    """Everything after ``cmake`` for the configure step (``extra``: plan-level entries such as
    :func:`build_info_entries`, below the platform/backend ones)."""
    args = ["-S", str(source_dir), "-B", str(cmake_dir), "-G", "Ninja"]
    if toolchain is not None:
        args.append(f"-DCMAKE_TOOLCHAIN_FILE={toolchain}")
    entries = cache_entries(recipe, source_dir, cmake_dir, extra)
    args += [render_define(k, entries[k]) for k in sorted(entries)]
    return args
