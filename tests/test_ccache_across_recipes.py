"""Two recipes of one work dir that compile the same CUDA code share ccache's objects.

linux-x86_64-cuda and linux-x86_64-all (every backend as a plugin) compile the same ggml-cuda
translation units with the same flags; only the reproducibility maps differ, because they name each
recipe's CMake dir (``-Xcompiler=-ffile-prefix-map=<work>/cmake/<recipe>=build``). ccache hashes that
opaque nvcc option verbatim, so before ``CCACHE_IGNOREOPTIONS`` the second recipe recompiled every
CUDA object (hours for 7 architectures on 2 cores). Real nvcc, real ccache, the env `build` uses."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest

from locara_build.build.build import ccache_env
from locara_build.build.cmake_args import prefix_map_flags
from locara_build.core import run as _run

NVCC = _run.which("nvcc") or ("/usr/local/cuda/bin/nvcc" if Path("/usr/local/cuda/bin/nvcc").exists() else None)

CU = r"""
#include <cstdio>
__global__ void scale(float * x, float a, int n) { int i = blockIdx.x * blockDim.x + threadIdx.x; if (i < n) x[i] *= a; }
const char * where() { return __FILE__; }
"""


def _compile(work: Path, recipe: str, cache: Path, *, ignore: bool) -> tuple[list[str], bytes]:
    src = work / "src" / "llama.cpp"
    cmake_dir = work / "cmake" / recipe
    obj_dir = cmake_dir / "ggml" / "src" / "ggml-cuda"
    obj_dir.mkdir(parents=True, exist_ok=True)
    stats = work / f"{recipe}.stats"
    env = ccache_env(cache, work, stats)
    if not ignore:
        env.pop("CCACHE_IGNOREOPTIONS")
    host = [f"-Xcompiler={f}" for f in shlex.split(prefix_map_flags(src, cmake_dir))]  # as cmake_args puts them in CMAKE_CUDA_FLAGS
    argv = ["ccache", str(NVCC), *host, "-O2", "--generate-code=arch=compute_75,code=[compute_75]",
            "-x", "cu", "-c", str(src / "ggml" / "scale.cu"), "-o", "ggml/src/ggml-cuda/scale.cu.o"]
    subprocess.run(argv, cwd=cmake_dir, env={**_run.os.environ, **env}, check=True, capture_output=True, text=True, timeout=600)
    obj = (obj_dir / "scale.cu.o").read_bytes()
    return stats.read_text().split(), obj


@pytest.mark.skipif(not (NVCC and _run.which("ccache")), reason="needs nvcc and ccache")
@pytest.mark.parametrize("ignore", [True, False], ids=["with-ignoreoptions", "without"])
def test_a_cuda_object_of_one_recipe_is_a_hit_for_another(tmp_path: Path, ignore: bool) -> None:
    work = tmp_path / "work"
    (work / "src" / "llama.cpp" / "ggml").mkdir(parents=True)
    (work / "src" / "llama.cpp" / "ggml" / "scale.cu").write_text(CU)
    cache = tmp_path / "ccache"
    first, obj_a = _compile(work, "linux-x86_64-cuda", cache, ignore=ignore)
    assert "cache_miss" in first
    second, obj_b = _compile(work, "linux-x86_64-all", cache, ignore=ignore)
    if ignore:
        assert "direct_cache_hit" in second, second
        assert obj_b == obj_a
    else:  # the reason for the setting: the map's path alone made it a miss
        assert "cache_miss" in second, second
    # either way no build-host path is in the object: the maps did their work
    assert str(work).encode() not in obj_b and b"llama.cpp/ggml/scale.cu" in obj_b
