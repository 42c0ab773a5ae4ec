"""CMake configure arguments for a recipe: the pure part of the build (contract-tested).

Order of cache entries (later wins): recipe defaults/recipe ``[cmake]`` < platform
(rpath) < backend (``GGML_CUDA=ON`` ...) < reproducibility flags. Entries are emitted sorted,
so the same inputs always give the same argv.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from locara_build.build import backends, platforms
from locara_build.build.cmakevalue import CMakeValue, is_on, render_define
from locara_build.build.recipe import Recipe
from locara_build.core.errors import ConfigError

__all__ = ["build_info_entries", "cache_entries", "configure_args", "prefix_map_flags"]

# A cache entry's name: no `=`, `:` (a type), spaces or leading `-` (recipevalues.CMAKE_KEY).
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.+-]*")
# Characters that end a CMakeCache.txt line (or a C string): never inside one -D argument.
_LINE_BREAK = re.compile(r"[\x00\r\n\x0b\x0c\x85\u2028\u2029]")

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
    if is_on(entries.get("GGML_CUDA", "")):  # cuda, or cuda inside `universal`
        existing = str(entries.get("CMAKE_CUDA_FLAGS", "")).strip()
        host = " ".join(f"-Xcompiler={flag}" for flag in prefix.split())
        entries["CMAKE_CUDA_FLAGS"] = f"{existing} {host}".strip()
    if is_on(entries.get("GGML_HIP", "")):  # HIP: ROCm's clang takes them as they are
        existing = str(entries.get("CMAKE_HIP_FLAGS", "")).strip()
        entries["CMAKE_HIP_FLAGS"] = f"{existing} {prefix}".strip()
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
    args += [_define(recipe, k, entries[k]) for k in sorted(entries)]
    for arg in args[:6]:
        if _LINE_BREAK.search(arg):
            raise ConfigError(
                f"recipe `{recipe.name}`: the path {arg!r} holds a line break or NUL, which CMake cannot take.",
                hint="Use a work directory (--work-dir / $LOCARA_WORK_DIR) whose path is one plain line.",
            )
    return args


def _define(recipe: Recipe, key: str, value: CMakeValue) -> str:
    """One ``-DKEY=VALUE``; refuses what would split into more than one cache entry. Recipe values
    are checked when the recipe loads (file and line named there); this also covers the entries
    that come from the host (toolchain paths, the work dir) and from code."""
    arg = render_define(key, value)
    if not _KEY.fullmatch(key) or _LINE_BREAK.search(arg):
        raise ConfigError(
            f"recipe `{recipe.name}`: CMake entry {arg[:120]!r} has a name that is not a plain CMake variable or a "
            "value with a line break or NUL (it would write extra lines into CMakeCache.txt).",
            hint=f"Fix the entry in {recipe.path} ([cmake]) or the path it comes from; one entry is one line.",
        )
    return arg
