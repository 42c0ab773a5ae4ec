"""CMake configure arguments for a recipe: the pure part of the build (contract-tested).

Order of cache entries (later wins): recipe defaults/recipe ``[cmake]`` < platform
(rpath) < backend (``GGML_CUDA=ON`` ...) < reproducibility flags. Entries are emitted sorted,
so the same inputs always give the same argv.
"""

from __future__ import annotations

from pathlib import Path

from . import backends, platforms
from .cmakevalue import CMakeValue, render_define
from .recipe import Recipe

__all__ = ["cache_entries", "configure_args", "prefix_map_flags"]

# Flags whose values we extend (never replace) with reproducibility options.
_FLAG_VARS = ("CMAKE_C_FLAGS", "CMAKE_CXX_FLAGS")


def prefix_map_flags(source_dir: Path, cmake_dir: Path) -> str:
    """Keep build-host paths out of binaries (``__FILE__``, debug info)."""
    return f"-ffile-prefix-map={source_dir}=llama.cpp -ffile-prefix-map={cmake_dir}=build"


def cache_entries(recipe: Recipe, source_dir: Path, cmake_dir: Path) -> dict[str, CMakeValue]:
    entries: dict[str, CMakeValue] = dict(recipe.cmake)
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


def configure_args(recipe: Recipe, source_dir: Path, cmake_dir: Path, toolchain: Path | None) -> list[str]:
    """Everything after ``cmake`` for the configure step."""
    args = ["-S", str(source_dir), "-B", str(cmake_dir), "-G", "Ninja"]
    if toolchain is not None:
        args.append(f"-DCMAKE_TOOLCHAIN_FILE={toolchain}")
    entries = cache_entries(recipe, source_dir, cmake_dir)
    args += [render_define(k, entries[k]) for k in sorted(entries)]
    return args
