"""``universal``: one Linux artifact that carries every backend as a ``GGML_BACKEND_DL`` plugin.

One CMake build with each backend the recipe switches on (``GGML_VULKAN``, ``GGML_CUDA``,
``GGML_HIP`` in its ``[cmake]``) next to the CPU variants: ggml-base, libllama and the server are
compiled once, every backend is a ``libggml-<backend>.so`` beside them, and llama.cpp loads what the
user's machine can run (a plugin whose driver is missing simply fails to load). Requirements and
toolchain hooks are those of the backends switched on.

Named ``universal``, not ``all``: ``install --backend all`` already means "auto's artifact with every
file of it" (the per-file installer).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from locara_build.build.cmakevalue import CMakeValue, is_on

if TYPE_CHECKING:
    from locara_build.build.tooltypes import HostSetup, Tool

# CMake switch -> backend name in this registry
SWITCHES = (("GGML_VULKAN", "vulkan"), ("GGML_CUDA", "cuda"), ("GGML_HIP", "rocm"))


def enabled(recipe: Any) -> list[str]:
    """The GPU backends ``recipe`` switches on, in a fixed order."""
    cmake = getattr(recipe, "cmake", {}) or {}
    return [name for switch, name in SWITCHES if is_on(cmake.get(switch, False))]


_LOOKUP: list[Any] = []  # the registry's get(), handed over by locara_build.build.backends when it is built


def bind(lookup: Any) -> None:
    """Give this backend the registry's lookup (called by the registry: no import cycle)."""
    _LOOKUP[:] = [lookup]


def _subs(recipe: Any) -> list[Any]:
    return [_LOOKUP[0](name) for name in enabled(recipe)]


@dataclass(frozen=True)
class UniversalBackend:
    name: str = "universal"
    supported_os: frozenset[str] = frozenset({"linux"})
    auto_rank: int | None = 50  # install --backend auto: see Backend.auto_rank

    def cmake_defines(self, recipe: object) -> dict[str, CMakeValue]:
        out: dict[str, CMakeValue] = {"GGML_CPU": True, "GGML_BACKEND_DL": True}
        for sub in _subs(recipe):
            out.update(sub.cmake_defines(recipe))
        return out

    def requirements(self, recipe: object) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r for sub in _subs(recipe) for r in sub.requirements(recipe)))

    def host_setup(self, recipe: object, host_os: str, tools: Mapping[str, Tool]) -> HostSetup:
        from locara_build.build.tooltypes import HostSetup

        setup = HostSetup()
        for sub in _subs(recipe):
            setup = setup.merged(sub.host_setup(recipe, host_os, tools))
        return setup

    # --- toolchain hooks: those of the backends switched on ------------------------------------

    def plan_cmake_defines(self, recipe: object) -> dict[str, CMakeValue]:
        out: dict[str, CMakeValue] = {}
        for sub in _subs(recipe):
            fn = getattr(sub, "plan_cmake_defines", None)
            if fn is not None:
                out.update(fn(recipe))
        return out

    def prepare(self, recipe: object) -> None:
        for sub in _subs(recipe):
            fn = getattr(sub, "prepare", None)
            if fn is not None:
                fn(recipe)

    def runtime_dirs(self, recipe: object) -> list[Path]:
        out: list[Path] = []
        for sub in _subs(recipe):
            fn = getattr(sub, "runtime_dirs", None)
            if fn is not None:
                out += [d for d in fn(recipe) if d not in out]
        return out


BACKEND = UniversalBackend()
