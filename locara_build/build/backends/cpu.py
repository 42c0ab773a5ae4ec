from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from locara_build.build.cmakevalue import CMakeValue

if TYPE_CHECKING:
    from locara_build.build.tooltypes import HostSetup, Tool


@dataclass(frozen=True)
class CpuBackend:
    name: str = "cpu"
    supported_os: frozenset[str] = frozenset({"linux", "windows", "macos"})
    auto_rank: int | None = 60  # install --backend auto: see Backend.auto_rank

    def cmake_defines(self, recipe: object) -> dict[str, CMakeValue]:
        return {"GGML_CPU": True}

    def requirements(self, recipe: object) -> tuple[str, ...]:
        return ()

    def host_setup(self, recipe: object, host_os: str, tools: Mapping[str, Tool]) -> HostSetup:
        from locara_build.build.tooltypes import HostSetup

        return HostSetup()


BACKEND = CpuBackend()
