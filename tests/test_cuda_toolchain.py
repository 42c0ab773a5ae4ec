"""CUDA: nvcc discovery and architectures, cuBLAS provisioning, the link-only driver stub."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from locara_build.build.toolchains import cuda

NVCC13_ARCHS = "compute_75\ncompute_80\ncompute_86\ncompute_87\ncompute_88\ncompute_89\ncompute_90\ncompute_100\ncompute_110\ncompute_103\ncompute_120\ncompute_121\n"


def test_parse_arch_list() -> None:
    assert cuda.parse_arch_list(NVCC13_ARCHS) == tuple(sorted(cuda.KNOWN_ARCHS[13]))


@pytest.mark.parametrize(
    ("entry", "cc"), [("89-real", 89), ("120a-real", 120), ("90-virtual", 90), ("86", 86), ("121f-virtual", 121)]
)
def test_parse_arch(entry: str, cc: int) -> None:
    assert cuda.parse_arch(entry) == cc


def test_min_driver_and_runtime() -> None:
    assert cuda.min_driver(13) == "580.65.06"
    assert cuda.runtime_libraries(13) == ("libcudart.so.13*", "libcublas.so.13*", "libcublasLt.so.13*")


@pytest.fixture(scope="module")
def toolkit() -> cuda.Toolkit:
    tk = cuda.find()
    if tk is None:
        pytest.skip("no nvcc on this host")
    return tk


def test_real_nvcc(toolkit: cuda.Toolkit) -> None:
    """The host's nvcc (behind a wrapper script on PATH here) is traced to its toolkit."""
    assert (toolkit.root / "bin" / "nvcc").exists() and toolkit.nvcc == toolkit.root / "bin" / "nvcc"
    assert toolkit.archs and (toolkit.lib_dir / f"libcudart.so.{toolkit.major}").exists()
    if toolkit.major == 13:
        assert set(toolkit.archs) == cuda.KNOWN_ARCHS[13]
        release = "75-virtual;80-virtual;86-real;89-real;90-virtual;120a-real;121a-real"
        assert cuda.arch_supported(release, toolkit.archs) == []


def test_prepare_provisions_cublas_and_stub(toolkit: cuda.Toolkit) -> None:
    """Real provisioning: the pinned nvidia-cublas wheel from the package index (cached after the
    first run, ~420 MB), and the libcuda.so link stub."""
    if toolkit.major not in cuda.CUBLAS_PINS and toolkit.cublas_lib is None:
        pytest.skip(f"no cuBLAS pin for CUDA {toolkit.major}")
    cuda.prepare()
    dirs = cuda.runtime_dirs()
    for pattern in cuda.runtime_libraries(toolkit.major):
        assert any(sorted(d.glob(pattern)) for d in dirs), pattern
    defines = cuda.cmake_defines()
    if "CUDA_cublas_LIBRARY" in defines:
        lib = Path(defines["CUDA_cublas_LIBRARY"])
        assert lib.is_symlink() and lib.resolve().name == f"libcublas.so.{toolkit.major}"
        assert (Path(defines["CMAKE_CUDA_STANDARD_INCLUDE_DIRECTORIES"]) / "cublas_v2.h").is_file()
    if "CUDA_cuda_driver_LIBRARY" in defines:
        stub = Path(defines["CUDA_cuda_driver_LIBRARY"])
        if shutil.which("readelf"):
            out = subprocess.run(["readelf", "-d", str(stub)], capture_output=True, text=True, check=True).stdout
            assert "Library soname: [libcuda.so.1]" in out  # binaries record the driver's soname
            syms = subprocess.run(["nm", "-D", "--defined-only", str(stub)], capture_output=True, text=True, check=True).stdout
            # the driver API ggml-cuda's VMM pool uses must be defined, or `--as-needed` drops the stub
            for name in ("cuMemCreate", "cuMemMap", "cuMemAddressReserve", "cuDeviceGetAttribute", "cuGetErrorString"):
                assert f" T {name}\n" in syms, name
