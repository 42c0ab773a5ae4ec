from __future__ import annotations

from dataclasses import dataclass

from ..cmakevalue import CMakeValue


@dataclass(frozen=True)
class CpuBackend:
    name: str = "cpu"
    supported_os: frozenset[str] = frozenset({"linux", "windows", "macos"})

    def cmake_defines(self, recipe: object) -> dict[str, CMakeValue]:
        return {"GGML_CPU": True}

    def requirements(self, recipe: object) -> tuple[str, ...]:
        return ()


BACKEND = CpuBackend()
