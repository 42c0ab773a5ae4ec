"""ROCm/HIP (AMD GPUs): ``GGML_HIP=ON`` built with ROCm's clang (``hipcc``/``amdclang++``).

ggml-hip needs ROCm/HIP >= 6.1 (``ggml/src/ggml-hip/CMakeLists.txt``: "At least ROCM/HIP V6.1 is
required"); Debian 12's ``hipcc`` is 5.2.3, so this backend is built on CI from AMD's own ROCm apt
repository (docs/backends.md, "ROCm"). The ROCm runtime (libamdhip64, hipBLAS, rocBLAS and its
Tensile kernels: gigabytes) is the user's ROCm install, never shipped, as upstream's release does.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from locara_build.build.cmakevalue import CMakeValue

if TYPE_CHECKING:
    from locara_build.build.tooltypes import HostSetup, Tool

MIN_HIP = "6.1"


@dataclass(frozen=True)
class RocmBackend:
    name: str = "rocm"
    supported_os: frozenset[str] = frozenset({"linux"})
    auto_rank: int | None = 20  # install --backend auto: see Backend.auto_rank

    def cmake_defines(self, recipe: object) -> dict[str, CMakeValue]:
        return {"GGML_HIP": True}

    def requirements(self, recipe: object) -> tuple[str, ...]:
        return (f"hipcc>={MIN_HIP}",)

    def host_setup(self, recipe: object, host_os: str, tools: Mapping[str, Tool]) -> HostSetup:
        from locara_build.build.tooltypes import HostSetup

        hipcc = tools.get("hipcc")
        if hipcc is None or not hipcc.found or not hipcc.path:
            return HostSetup()
        root = Path(hipcc.path).resolve().parent.parent  # /opt/rocm-X.Y/bin/hipcc -> /opt/rocm-X.Y
        env = {"HIP_PATH": os.environ.get("HIP_PATH", str(root))}
        clang = root / "llvm" / "bin" / "clang"
        if clang.is_file() and "HIPCXX" not in os.environ:
            env["HIPCXX"] = str(clang)  # upstream: HIPCXX="$(hipconfig -l)/clang"
        return HostSetup(env=env, notes=(f"ROCm {hipcc.version} at {root}",))


BACKEND = RocmBackend()
