"""What a recipe asks of this host's toolchains, asked of its platform and backend objects (the
registries): CMake entries and environment the plan shows, provisioning before a build, the smoke
test's environment and emulator, where runtime libraries come from, and the host setup of a build.

Each forwards to the recipe's platform (``locara_build.build.platforms``) and backend
(``locara_build.build.backends``) objects, which may implement these optional methods (a missing one
contributes nothing); see :mod:`locara_build.build.toolchains` for the hooks. This module sits above the
registries: nothing they import imports it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from locara_build.build import backends, platforms, toolchain
from locara_build.build.cmakevalue import CMakeValue
from locara_build.build.tooltypes import HostSetup, Tool

if TYPE_CHECKING:
    from locara_build.build.recipe import Recipe

__all__ = ["host_setup", "plan_cmake_defines", "plan_env", "prepare", "runtime_dirs", "smoke_device_gap", "smoke_emulator", "smoke_env", "smoke_wrapper"]


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


def smoke_wrapper(recipe: Recipe) -> list[str]:
    """What runs before the emulator (the recipe's or the host's): e.g. ``xvfb-run -a`` for a
    Vulkan .exe under wine on a host without a display. Empty for most recipes."""
    out: list[str] = []
    for provider in _providers(recipe):
        fn = getattr(provider, "smoke_wrapper", None)
        if fn is not None:
            out += fn(recipe)
    return out


def smoke_device_gap(recipe: Recipe) -> str | None:
    """Why the recipe's smoke device, though this host has it, cannot be reached by the build's
    emulator here (None: nothing in the way)."""
    for provider in _providers(recipe):
        fn = getattr(provider, "smoke_device_gap", None)
        if fn is not None and (why := fn(recipe)):
            return str(why)
    return None


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


def host_setup(recipe: Any, tools: Mapping[str, Tool] | None = None) -> HostSetup:
    """The platform's then the backend's host preparation for building ``recipe`` here."""
    tools = tools if tools is not None else toolchain.probe_all()
    host = platforms.host_os()
    plat = platforms.get(recipe.os).host_setup(recipe, host, tools)
    back = backends.get(recipe.backend).host_setup(recipe, host, tools)
    return plat.merged(back)
