from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from locara_build.build.cmakevalue import CMakeValue

if TYPE_CHECKING:
    from locara_build.build.tooltypes import HostSetup, Tool


@dataclass(frozen=True)
class CudaBackend:
    name: str = "cuda"
    supported_os: frozenset[str] = frozenset({"linux", "windows"})
    auto_rank: int | None = 10  # install --backend auto: see Backend.auto_rank

    def cmake_defines(self, recipe: object) -> dict[str, CMakeValue]:
        return {"GGML_CUDA": True}

    def requirements(self, recipe: object) -> tuple[str, ...]:
        # the bundled runtime is libcudart.so.13 etc. (locara_build.build.toolchains.cuda.runtime_libraries);
        # a recipe that says requirements.cuda = "12" (windows-x86_64-cuda) is built with CUDA 12.8+
        major = str((getattr(recipe, "requirements", {}) or {}).get("cuda", "13")).split(".")[0]
        return ("nvcc>=12.8,<13",) if major == "12" else ("nvcc>=13.0",)

    def _native(self, recipe: object) -> bool:
        """nvcc builds only for the OS it runs on (for Windows it needs MSVC): the Linux toolkit hooks
        below (locara_build.build.toolchains.cuda) touch nothing for a recipe of another OS
        (windows-x86_64-cuda planned on Linux); on Windows, CMake's FindCUDAToolkit uses $CUDA_PATH."""
        import locara_build.build.platforms.host as platforms

        return getattr(recipe, "os", "linux") == platforms.host_os() == "linux"

    def host_setup(self, recipe: object, host_os: str, tools: Mapping[str, Tool]) -> HostSetup:
        from locara_build.build.tooltypes import HostSetup

        nvcc = tools.get("nvcc")
        if nvcc is None or not nvcc.found or not nvcc.path:
            return HostSetup()
        root = Path(nvcc.path).resolve().parent.parent
        runtime = tuple(str(d) for d in (root / "lib64", root / "lib", root / "bin") if d.is_dir())
        # nvcc on PATH may be a wrapper script outside the toolkit: ask the toolkit itself, and
        # add the provisioned cuBLAS (locara_build.build.toolchains.cuda).
        runtime = (*(str(d) for d in self.runtime_dirs(recipe)), *runtime)
        env = {} if nvcc.extra.get("on_path") == "true" else {"CUDACXX": nvcc.path}
        return HostSetup(env=env, runtime_dirs=tuple(dict.fromkeys(runtime)))

    # --- toolchain hooks (locara_build.build.toolchains) --------------------------------------------

    def plan_cmake_defines(self, recipe: object) -> dict[str, CMakeValue]:
        """The toolkit's nvcc and root; the provisioned cuBLAS / driver stub when the toolkit lacks them."""
        from locara_build.build.toolchains import cuda

        return dict(cuda.cmake_defines()) if self._native(recipe) else {}

    def prepare(self, recipe: object) -> None:
        from locara_build.build.toolchains import cuda

        if self._native(recipe):
            cuda.prepare()

    def runtime_dirs(self, recipe: object) -> list[Path]:
        """Where libcudart / libcublas / libcublasLt (``ship.runtime``) are found on this host."""
        from locara_build.build.toolchains import cuda

        if self._native(recipe):
            return cuda.runtime_dirs()
        import os

        import locara_build.build.platforms.host as platforms

        root = os.environ.get("CUDA_PATH")
        if getattr(recipe, "os", "") == "windows" == platforms.host_os() and root:
            return [Path(root) / "bin"]  # cudart64_12.dll, cublas64_12.dll, cublasLt64_12.dll
        return []


BACKEND = CudaBackend()
