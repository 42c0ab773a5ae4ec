from __future__ import annotations

from dataclasses import dataclass

from ..cmakevalue import CMakeValue


@dataclass(frozen=True)
class MetalBackend:
    name: str = "metal"
    supported_os: frozenset[str] = frozenset({"macos"})

    def cmake_defines(self, recipe: object) -> dict[str, CMakeValue]:
        return {"GGML_METAL": True}

    def requirements(self, recipe: object) -> tuple[str, ...]:
        return ("xcode",)


BACKEND = MetalBackend()
