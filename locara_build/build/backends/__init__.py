"""Backends (cpu, cuda, vulkan, metal, rocm, and ``universal`` = several as plugins) behind one small protocol and a registry.

A backend contributes the CMake cache entries it always needs, the toolchain requirements
``doctor`` checks, and the operating systems it can target. Everything else a recipe says.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from locara_build.build.cmakevalue import CMakeValue

if TYPE_CHECKING:
    from collections.abc import Mapping

    from locara_build.build.recipe import Recipe
    from locara_build.build.tooltypes import HostSetup, Tool

__all__ = ["Backend", "REGISTRY", "auto_order", "get"]


class Backend(Protocol):
    @property
    def name(self) -> str:
        ...

    @property
    def supported_os(self) -> frozenset[str]:
        ...

    @property
    def auto_rank(self) -> int | None:
        """Where ``install --backend auto`` tries this backend's artifact: lower first (a GPU backend
        before ``universal`` before ``cpu``); ``None`` = never picked automatically. Distinct per backend."""
        ...

    def cmake_defines(self, recipe: Recipe) -> dict[str, CMakeValue]: ...

    def requirements(self, recipe: Recipe) -> tuple[str, ...]: ...

    def host_setup(self, recipe: Recipe, host_os: str, tools: Mapping[str, Tool]) -> HostSetup:
        """Environment / extra CMake entries for this host (e.g. a provisioned Vulkan include dir)."""
        ...


def _registry() -> dict[str, Backend]:
    from locara_build.build.backends import cpu, cuda, metal, rocm, universal, vulkan

    known: tuple[Backend, ...] = (cpu.BACKEND, cuda.BACKEND, vulkan.BACKEND, metal.BACKEND, rocm.BACKEND, universal.BACKEND)
    return {b.name: b for b in known}


REGISTRY: dict[str, Backend] = _registry()


def _bind() -> None:
    from locara_build.build.backends import universal

    universal.bind(get)




def get(name: str) -> Backend:
    return REGISTRY[name]


def auto_order() -> tuple[str, ...]:
    """The backends ``install --backend auto`` may pick, most preferred first (by ``auto_rank``)."""
    ranked = [(rank, b.name) for b in REGISTRY.values() if (rank := b.auto_rank) is not None]
    return tuple(name for _, name in sorted(ranked))


_bind()
