"""Extra toolchains: discovery and provisioning of what some recipes need beyond cmake and a host
compiler: Vulkan headers new enough for ggml-vulkan (:mod:`.vulkan`), zig for Windows cross-builds
(:mod:`.zig`), wine for Windows smoke tests (:mod:`.wine`), the CUDA toolkit's cuBLAS, driver stub and
runtime libraries (:mod:`.cuda`).

Stages ask through the functions below; each forwards to the recipe's platform
(``locara_build.platforms``) and backend (``locara_build.backends``) objects, which may implement
these optional methods (a missing one contributes nothing)::

    plan_cmake_defines(recipe) -> dict  CMake entries that depend on this host's toolchains; the plan
                                        shows them in configure_args (e.g. -DVulkan_INCLUDE_DIR)
    plan_env(recipe) -> dict            environment for configure + build; the plan shows it
    prepare(recipe) -> None             provision what the two above promised (build calls it first)
    smoke_env(recipe) -> dict           environment for the server under test (smoke)
    smoke_emulator(recipe) -> list      command prefix that runs the server when the recipe says none
                                        (qemu-aarch64-static for arm64 on an x86-64 host)
    runtime_dirs(recipe) -> list[Path]  where ``ship.runtime`` libraries are found (package)

Hooks run only for recipes this host can build (``Platform.can_build_on``): planning a macOS
recipe on Linux asks nothing of the host. Provisioned files live in :func:`toolchains_dir`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from locara_build import backends, platforms
from locara_build.cmakevalue import CMakeValue

from ._common import Finding, toolchains_dir

if TYPE_CHECKING:
    from locara_build.recipe import Recipe

__all__ = [
    "Finding",
    "toolchains_dir",
    "plan_cmake_defines",
    "plan_env",
    "prepare",
    "smoke_env",
    "smoke_emulator",
    "runtime_dirs",
]


def _providers(recipe: Recipe) -> list[Any]:
    platform = platforms.get(recipe.os)
    if not platform.can_build_on(platforms.host_os()):
        return []
    return [platform, backends.get(recipe.backend)]


def _collect_dict(recipe: Recipe, hook: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for provider in _providers(recipe):
        fn = getattr(provider, hook, None)
        if fn is not None:
            out.update(fn(recipe))
    return out


def plan_cmake_defines(recipe: Recipe) -> dict[str, CMakeValue]:
    return _collect_dict(recipe, "plan_cmake_defines")


def plan_env(recipe: Recipe) -> dict[str, str]:
    return _collect_dict(recipe, "plan_env")


def smoke_env(recipe: Recipe) -> dict[str, str]:
    return _collect_dict(recipe, "smoke_env")


def smoke_emulator(recipe: Recipe) -> list[str]:
    """The first provider's emulator (an emulator is a property of the host, not of the recipe: the
    same arm64 recipe runs natively on its CI runner)."""
    for provider in _providers(recipe):
        fn = getattr(provider, "smoke_emulator", None)
        if fn is not None:
            found = fn(recipe)
            if found:
                return list(found)
    return []


def prepare(recipe: Recipe) -> None:
    for provider in _providers(recipe):
        fn = getattr(provider, "prepare", None)
        if fn is not None:
            fn(recipe)


def runtime_dirs(recipe: Recipe) -> list[Path]:
    out: list[Path] = []
    for provider in _providers(recipe):
        fn = getattr(provider, "runtime_dirs", None)
        if fn is not None:
            out += [d for d in fn(recipe) if d not in out]
    return out
