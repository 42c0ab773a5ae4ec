from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from locara_build.cmakevalue import CMakeValue

if TYPE_CHECKING:
    from locara_build.toolchain import HostSetup, Tool


@dataclass(frozen=True)
class CudaBackend:
    name: str = "cuda"
    supported_os: frozenset[str] = frozenset({"linux", "windows"})

    def cmake_defines(self, recipe: object) -> dict[str, CMakeValue]:
        return {"GGML_CUDA": True}

    def requirements(self, recipe: object) -> tuple[str, ...]:
        # the bundled runtime is libcudart.so.13 etc. (locara_build.toolchains.cuda.runtime_libraries)
        return ("nvcc>=13.0",)

    def host_setup(self, recipe: object, host_os: str, tools: Mapping[str, Tool]) -> HostSetup:
        from locara_build.toolchain import HostSetup

        nvcc = tools.get("nvcc")
        if nvcc is None or not nvcc.found or not nvcc.path:
            return HostSetup()
        root = Path(nvcc.path).resolve().parent.parent
        runtime = tuple(str(d) for d in (root / "lib64", root / "lib", root / "bin") if d.is_dir())
        # nvcc on PATH may be a wrapper script outside the toolkit: ask the toolkit itself, and
        # add the provisioned cuBLAS (locara_build.toolchains.cuda).
        runtime = (*(str(d) for d in self.runtime_dirs(recipe)), *runtime)
        env = {} if nvcc.extra.get("on_path") == "true" else {"CUDACXX": nvcc.path}
        return HostSetup(env=env, runtime_dirs=tuple(dict.fromkeys(runtime)))

    # --- toolchain hooks (locara_build.toolchains) --------------------------------------------

    def plan_cmake_defines(self, recipe: object) -> dict[str, CMakeValue]:
        """The toolkit's nvcc and root; the provisioned cuBLAS / driver stub when the toolkit lacks them."""
        from locara_build.toolchains import cuda

        return dict(cuda.cmake_defines())

    def prepare(self, recipe: object) -> None:
        from locara_build.toolchains import cuda

        cuda.prepare()

    def runtime_dirs(self, recipe: object) -> list[Path]:
        """Where libcudart / libcublas / libcublasLt (``ship.runtime``) are found on this host."""
        from locara_build.toolchains import cuda

        return cuda.runtime_dirs()


BACKEND = CudaBackend()
