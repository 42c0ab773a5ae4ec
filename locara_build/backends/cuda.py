from __future__ import annotations

from dataclasses import dataclass

from ..cmakevalue import CMakeValue


@dataclass(frozen=True)
class CudaBackend:
    name: str = "cuda"
    supported_os: frozenset[str] = frozenset({"linux", "windows"})

    def cmake_defines(self, recipe: object) -> dict[str, CMakeValue]:
        return {"GGML_CUDA": True}

    def requirements(self, recipe: object) -> tuple[str, ...]:
        return ("nvcc>=12.0",)


BACKEND = CudaBackend()
