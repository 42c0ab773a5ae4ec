"""CMake contract: the EXACT configure argv of every recipe, so any change to flags is a visible diff.

Host-dependent entries that the toolchain hooks put in the plan (``locara_build.build.toolchains``:
``-DVulkan_INCLUDE_DIR`` of provisioned headers, the CUDA toolkit's paths) are checked apart: they
must be exactly what the hooks say for this host, and nothing else may vary.

When a recipe, defaults.toml, a platform or a backend changes flags, update EXPECTED below in the
same change: the diff of this file is the review of what the build will do differently.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from support.llama import vendored_llama
from support.pipeline import UPSTREAM, UPSTREAM_COMMIT

from locara_build.build import provision
from locara_build.build.cmake_args import build_info_entries
from locara_build.build.cmakevalue import render_define
from locara_build.build.plan import make_plan
from locara_build.build.recipe import load_recipes
from locara_build.core.workdir import Project, WorkDir
from locara_build.upstream.lock import Lock

REPO = Path(__file__).resolve().parent.parent
WORK = Path("/w")
LOCK = Lock(source=UPSTREAM, ref="latest", channel="build", commit=UPSTREAM_COMMIT, tag="",
            commit_date="2026-10-01T02:11:48Z", synced_at="2026-10-02T09:00:00Z")

# Everything after `-S <work>/src/llama.cpp -B <work>/cmake/<recipe> -G Ninja`, host entries removed.
EXPECTED: dict[str, list[str]] = {
    "linux-x86_64-cpu": [
        '-DBUILD_SHARED_LIBS=ON',
        '-DCMAKE_BUILD_TYPE=Release',
        '-DCMAKE_BUILD_WITH_INSTALL_RPATH=ON',
        '-DCMAKE_CXX_FLAGS=-ffile-prefix-map=<work>/src/llama.cpp=llama.cpp -ffile-prefix-map=<work>/cmake/linux-x86_64-cpu=build',
        '-DCMAKE_C_FLAGS=-ffile-prefix-map=<work>/src/llama.cpp=llama.cpp -ffile-prefix-map=<work>/cmake/linux-x86_64-cpu=build',
        '-DCMAKE_INSTALL_RPATH=$ORIGIN',
        '-DGGML_BACKEND_DL=ON',
        '-DGGML_CCACHE=ON',
        '-DGGML_CPU=ON',
        '-DGGML_CPU_ALL_VARIANTS=ON',
        '-DGGML_NATIVE=OFF',
        '-DGGML_RPC=ON',
        '-DLLAMA_BUILD_APP=OFF',
        '-DLLAMA_BUILD_COMMIT=0c1e570',
        '-DLLAMA_BUILD_COMMON=ON',
        '-DLLAMA_BUILD_EXAMPLES=OFF',
        '-DLLAMA_BUILD_NUMBER=0',
        '-DLLAMA_BUILD_SERVER=ON',
        '-DLLAMA_BUILD_TESTS=OFF',
        '-DLLAMA_BUILD_TOOLS=ON',
        '-DLLAMA_BUILD_UI=OFF',
        '-DLLAMA_OPENSSL=ON',
        '-DLLAMA_USE_PREBUILT_UI=OFF',
    ],
    "linux-x86_64-cpu-ci": [
        '-DBUILD_SHARED_LIBS=ON',
        '-DCMAKE_BUILD_TYPE=Release',
        '-DCMAKE_BUILD_WITH_INSTALL_RPATH=ON',
        '-DCMAKE_CXX_FLAGS=-ffile-prefix-map=<work>/src/llama.cpp=llama.cpp -ffile-prefix-map=<work>/cmake/linux-x86_64-cpu-ci=build',
        '-DCMAKE_C_FLAGS=-ffile-prefix-map=<work>/src/llama.cpp=llama.cpp -ffile-prefix-map=<work>/cmake/linux-x86_64-cpu-ci=build',
        '-DCMAKE_INSTALL_RPATH=$ORIGIN',
        '-DGGML_AVX=ON',
        '-DGGML_AVX2=ON',
        '-DGGML_BACKEND_DL=ON',
        '-DGGML_BMI2=ON',
        '-DGGML_CCACHE=ON',
        '-DGGML_CPU=ON',
        '-DGGML_CPU_ALL_VARIANTS=OFF',
        '-DGGML_F16C=ON',
        '-DGGML_FMA=ON',
        '-DGGML_NATIVE=OFF',
        '-DGGML_RPC=ON',
        '-DGGML_SSE42=ON',
        '-DLLAMA_BUILD_APP=OFF',
        '-DLLAMA_BUILD_COMMIT=0c1e570',
        '-DLLAMA_BUILD_COMMON=ON',
        '-DLLAMA_BUILD_EXAMPLES=OFF',
        '-DLLAMA_BUILD_NUMBER=0',
        '-DLLAMA_BUILD_SERVER=ON',
        '-DLLAMA_BUILD_TESTS=OFF',
        '-DLLAMA_BUILD_TOOLS=ON',
        '-DLLAMA_BUILD_UI=OFF',
        '-DLLAMA_OPENSSL=ON',
        '-DLLAMA_USE_PREBUILT_UI=OFF',
    ],
    "linux-x86_64-cuda": [
        '-DBUILD_SHARED_LIBS=ON',
        '-DCMAKE_BUILD_TYPE=Release',
        '-DCMAKE_BUILD_WITH_INSTALL_RPATH=ON',
        '-DCMAKE_CUDA_ARCHITECTURES=75-virtual;80-virtual;86-real;89-real;90-virtual;120a-real;121a-real',
        '-DCMAKE_CUDA_FLAGS=-Xcompiler=-ffile-prefix-map=<work>/src/llama.cpp=llama.cpp -Xcompiler=-ffile-prefix-map=<work>/cmake/linux-x86_64-cuda=build',
        '-DCMAKE_CXX_FLAGS=-ffile-prefix-map=<work>/src/llama.cpp=llama.cpp -ffile-prefix-map=<work>/cmake/linux-x86_64-cuda=build',
        '-DCMAKE_C_FLAGS=-ffile-prefix-map=<work>/src/llama.cpp=llama.cpp -ffile-prefix-map=<work>/cmake/linux-x86_64-cuda=build',
        '-DCMAKE_INSTALL_RPATH=$ORIGIN',
        '-DGGML_BACKEND_DL=ON',
        '-DGGML_CCACHE=ON',
        '-DGGML_CPU_ALL_VARIANTS=ON',
        '-DGGML_CUDA=ON',
        '-DGGML_CUDA_NCCL=OFF',
        '-DGGML_NATIVE=OFF',
        '-DGGML_RPC=ON',
        '-DLLAMA_BUILD_APP=OFF',
        '-DLLAMA_BUILD_COMMIT=0c1e570',
        '-DLLAMA_BUILD_COMMON=ON',
        '-DLLAMA_BUILD_EXAMPLES=OFF',
        '-DLLAMA_BUILD_NUMBER=0',
        '-DLLAMA_BUILD_SERVER=ON',
        '-DLLAMA_BUILD_TESTS=OFF',
        '-DLLAMA_BUILD_TOOLS=ON',
        '-DLLAMA_BUILD_UI=OFF',
        '-DLLAMA_OPENSSL=ON',
        '-DLLAMA_USE_PREBUILT_UI=OFF',
    ],
    "linux-x86_64-cuda-ci": [
        '-DBUILD_SHARED_LIBS=ON',
        '-DCMAKE_BUILD_TYPE=Release',
        '-DCMAKE_BUILD_WITH_INSTALL_RPATH=ON',
        '-DCMAKE_CUDA_ARCHITECTURES=89-real',
        '-DCMAKE_CUDA_FLAGS=-Xcompiler=-ffile-prefix-map=<work>/src/llama.cpp=llama.cpp -Xcompiler=-ffile-prefix-map=<work>/cmake/linux-x86_64-cuda-ci=build',
        '-DCMAKE_CXX_FLAGS=-ffile-prefix-map=<work>/src/llama.cpp=llama.cpp -ffile-prefix-map=<work>/cmake/linux-x86_64-cuda-ci=build',
        '-DCMAKE_C_FLAGS=-ffile-prefix-map=<work>/src/llama.cpp=llama.cpp -ffile-prefix-map=<work>/cmake/linux-x86_64-cuda-ci=build',
        '-DCMAKE_INSTALL_RPATH=$ORIGIN',
        '-DGGML_AVX=ON',
        '-DGGML_AVX2=ON',
        '-DGGML_BACKEND_DL=ON',
        '-DGGML_BMI2=ON',
        '-DGGML_CCACHE=ON',
        '-DGGML_CPU_ALL_VARIANTS=OFF',
        '-DGGML_CUDA=ON',
        '-DGGML_CUDA_NCCL=OFF',
        '-DGGML_F16C=ON',
        '-DGGML_FMA=ON',
        '-DGGML_NATIVE=OFF',
        '-DGGML_RPC=ON',
        '-DGGML_SSE42=ON',
        '-DLLAMA_BUILD_APP=OFF',
        '-DLLAMA_BUILD_COMMIT=0c1e570',
        '-DLLAMA_BUILD_COMMON=ON',
        '-DLLAMA_BUILD_EXAMPLES=OFF',
        '-DLLAMA_BUILD_NUMBER=0',
        '-DLLAMA_BUILD_SERVER=ON',
        '-DLLAMA_BUILD_TESTS=OFF',
        '-DLLAMA_BUILD_TOOLS=ON',
        '-DLLAMA_BUILD_UI=OFF',
        '-DLLAMA_OPENSSL=ON',
        '-DLLAMA_USE_PREBUILT_UI=OFF',
    ],
    "linux-x86_64-vulkan": [
        '-DBUILD_SHARED_LIBS=ON',
        '-DCMAKE_BUILD_TYPE=Release',
        '-DCMAKE_BUILD_WITH_INSTALL_RPATH=ON',
        '-DCMAKE_CXX_FLAGS=-ffile-prefix-map=<work>/src/llama.cpp=llama.cpp -ffile-prefix-map=<work>/cmake/linux-x86_64-vulkan=build',
        '-DCMAKE_C_FLAGS=-ffile-prefix-map=<work>/src/llama.cpp=llama.cpp -ffile-prefix-map=<work>/cmake/linux-x86_64-vulkan=build',
        '-DCMAKE_INSTALL_RPATH=$ORIGIN',
        '-DGGML_BACKEND_DL=ON',
        '-DGGML_CCACHE=ON',
        '-DGGML_CPU_ALL_VARIANTS=ON',
        '-DGGML_NATIVE=OFF',
        '-DGGML_RPC=ON',
        '-DGGML_VULKAN=ON',
        '-DLLAMA_BUILD_APP=OFF',
        '-DLLAMA_BUILD_COMMIT=0c1e570',
        '-DLLAMA_BUILD_COMMON=ON',
        '-DLLAMA_BUILD_EXAMPLES=OFF',
        '-DLLAMA_BUILD_NUMBER=0',
        '-DLLAMA_BUILD_SERVER=ON',
        '-DLLAMA_BUILD_TESTS=OFF',
        '-DLLAMA_BUILD_TOOLS=ON',
        '-DLLAMA_BUILD_UI=OFF',
        '-DLLAMA_OPENSSL=ON',
        '-DLLAMA_USE_PREBUILT_UI=OFF',
    ],
    "linux-x86_64-vulkan-ci": [
        '-DBUILD_SHARED_LIBS=ON',
        '-DCMAKE_BUILD_TYPE=Release',
        '-DCMAKE_BUILD_WITH_INSTALL_RPATH=ON',
        '-DCMAKE_CXX_FLAGS=-ffile-prefix-map=<work>/src/llama.cpp=llama.cpp -ffile-prefix-map=<work>/cmake/linux-x86_64-vulkan-ci=build',
        '-DCMAKE_C_FLAGS=-ffile-prefix-map=<work>/src/llama.cpp=llama.cpp -ffile-prefix-map=<work>/cmake/linux-x86_64-vulkan-ci=build',
        '-DCMAKE_INSTALL_RPATH=$ORIGIN',
        '-DGGML_AVX=ON',
        '-DGGML_AVX2=ON',
        '-DGGML_BACKEND_DL=ON',
        '-DGGML_BMI2=ON',
        '-DGGML_CCACHE=ON',
        '-DGGML_CPU_ALL_VARIANTS=OFF',
        '-DGGML_F16C=ON',
        '-DGGML_FMA=ON',
        '-DGGML_NATIVE=OFF',
        '-DGGML_RPC=ON',
        '-DGGML_SSE42=ON',
        '-DGGML_VULKAN=ON',
        '-DLLAMA_BUILD_APP=OFF',
        '-DLLAMA_BUILD_COMMIT=0c1e570',
        '-DLLAMA_BUILD_COMMON=ON',
        '-DLLAMA_BUILD_EXAMPLES=OFF',
        '-DLLAMA_BUILD_NUMBER=0',
        '-DLLAMA_BUILD_SERVER=ON',
        '-DLLAMA_BUILD_TESTS=OFF',
        '-DLLAMA_BUILD_TOOLS=ON',
        '-DLLAMA_BUILD_UI=OFF',
        '-DLLAMA_OPENSSL=ON',
        '-DLLAMA_USE_PREBUILT_UI=OFF',
    ],
    "macos-arm64-metal": [
        '-DBUILD_SHARED_LIBS=ON',
        '-DCMAKE_BUILD_TYPE=Release',
        '-DCMAKE_BUILD_WITH_INSTALL_RPATH=ON',
        '-DCMAKE_CXX_FLAGS=-ffile-prefix-map=<work>/src/llama.cpp=llama.cpp -ffile-prefix-map=<work>/cmake/macos-arm64-metal=build',
        '-DCMAKE_C_FLAGS=-ffile-prefix-map=<work>/src/llama.cpp=llama.cpp -ffile-prefix-map=<work>/cmake/macos-arm64-metal=build',
        '-DCMAKE_INSTALL_RPATH=@loader_path',
        '-DCMAKE_OSX_DEPLOYMENT_TARGET=13.3',
        '-DGGML_CCACHE=ON',
        '-DGGML_METAL=ON',
        '-DGGML_METAL_EMBED_LIBRARY=ON',
        '-DGGML_NATIVE=OFF',
        '-DGGML_RPC=ON',
        '-DLLAMA_BUILD_APP=OFF',
        '-DLLAMA_BUILD_BORINGSSL=ON',
        '-DLLAMA_BUILD_COMMIT=0c1e570',
        '-DLLAMA_BUILD_COMMON=ON',
        '-DLLAMA_BUILD_EXAMPLES=OFF',
        '-DLLAMA_BUILD_NUMBER=0',
        '-DLLAMA_BUILD_SERVER=ON',
        '-DLLAMA_BUILD_TESTS=OFF',
        '-DLLAMA_BUILD_TOOLS=ON',
        '-DLLAMA_BUILD_UI=OFF',
        '-DLLAMA_USE_PREBUILT_UI=OFF',
    ],
    "windows-x86_64-cpu": [
        '-DCMAKE_TOOLCHAIN_FILE=<project>/recipes/toolchains/zig-x86_64-windows-gnu.cmake',
        '-DBUILD_SHARED_LIBS=OFF',
        '-DCMAKE_BUILD_TYPE=Release',
        '-DCMAKE_CXX_FLAGS=-ffile-prefix-map=<work>/src/llama.cpp=llama.cpp -ffile-prefix-map=<work>/cmake/windows-x86_64-cpu=build',
        '-DCMAKE_C_FLAGS=-ffile-prefix-map=<work>/src/llama.cpp=llama.cpp -ffile-prefix-map=<work>/cmake/windows-x86_64-cpu=build',
        '-DGGML_AVX=ON',
        '-DGGML_AVX2=ON',
        '-DGGML_BACKEND_DL=OFF',
        '-DGGML_BMI2=ON',
        '-DGGML_CCACHE=ON',
        '-DGGML_CPU=ON',
        '-DGGML_CPU_ALL_VARIANTS=OFF',
        '-DGGML_F16C=ON',
        '-DGGML_FMA=ON',
        '-DGGML_NATIVE=OFF',
        '-DGGML_OPENMP=OFF',
        '-DGGML_RPC=ON',
        '-DGGML_SSE42=ON',
        '-DLLAMA_BUILD_APP=OFF',
        '-DLLAMA_BUILD_COMMIT=0c1e570',
        '-DLLAMA_BUILD_COMMON=ON',
        '-DLLAMA_BUILD_EXAMPLES=OFF',
        '-DLLAMA_BUILD_NUMBER=0',
        '-DLLAMA_BUILD_SERVER=ON',
        '-DLLAMA_BUILD_TESTS=OFF',
        '-DLLAMA_BUILD_TOOLS=ON',
        '-DLLAMA_BUILD_UI=OFF',
        '-DLLAMA_OPENSSL=OFF',
        '-DLLAMA_USE_PREBUILT_UI=OFF',
    ],
    # issue 22: arm64 (clang toolchain file), Windows CUDA/Vulkan, macOS Intel, ROCm, universal
    "linux-arm64-cpu": [
        '-DCMAKE_TOOLCHAIN_FILE=<project>/recipes/toolchains/clang-aarch64-linux-gnu.cmake',
        '-DBUILD_SHARED_LIBS=ON',
        '-DCMAKE_BUILD_TYPE=Release',
        '-DCMAKE_BUILD_WITH_INSTALL_RPATH=ON',
        '-DCMAKE_CXX_FLAGS=-ffile-prefix-map=<work>/src/llama.cpp=llama.cpp -ffile-prefix-map=<work>/cmake/linux-arm64-cpu=build',
        '-DCMAKE_C_FLAGS=-ffile-prefix-map=<work>/src/llama.cpp=llama.cpp -ffile-prefix-map=<work>/cmake/linux-arm64-cpu=build',
        '-DCMAKE_INSTALL_RPATH=$ORIGIN',
        '-DGGML_BACKEND_DL=ON',
        '-DGGML_CCACHE=ON',
        '-DGGML_CPU=ON',
        '-DGGML_CPU_ALL_VARIANTS=ON',
        '-DGGML_NATIVE=OFF',
        '-DGGML_OPENMP=OFF',
        '-DGGML_RPC=ON',
        '-DLLAMA_BUILD_APP=OFF',
        '-DLLAMA_BUILD_COMMIT=0c1e570',
        '-DLLAMA_BUILD_COMMON=ON',
        '-DLLAMA_BUILD_EXAMPLES=OFF',
        '-DLLAMA_BUILD_NUMBER=0',
        '-DLLAMA_BUILD_SERVER=ON',
        '-DLLAMA_BUILD_TESTS=OFF',
        '-DLLAMA_BUILD_TOOLS=ON',
        '-DLLAMA_BUILD_UI=OFF',
        '-DLLAMA_OPENSSL=ON',
        '-DLLAMA_USE_PREBUILT_UI=OFF',
    ],
    "linux-arm64-cpu-ci": [
        '-DCMAKE_TOOLCHAIN_FILE=<project>/recipes/toolchains/clang-aarch64-linux-gnu.cmake',
        '-DBUILD_SHARED_LIBS=ON',
        '-DCMAKE_BUILD_TYPE=Release',
        '-DCMAKE_BUILD_WITH_INSTALL_RPATH=ON',
        '-DCMAKE_CXX_FLAGS=-ffile-prefix-map=<work>/src/llama.cpp=llama.cpp -ffile-prefix-map=<work>/cmake/linux-arm64-cpu-ci=build',
        '-DCMAKE_C_FLAGS=-ffile-prefix-map=<work>/src/llama.cpp=llama.cpp -ffile-prefix-map=<work>/cmake/linux-arm64-cpu-ci=build',
        '-DCMAKE_INSTALL_RPATH=$ORIGIN',
        '-DGGML_BACKEND_DL=ON',
        '-DGGML_CCACHE=ON',
        '-DGGML_CPU=ON',
        '-DGGML_CPU_ALL_VARIANTS=OFF',
        '-DGGML_CPU_ARM_ARCH=armv8.2-a+dotprod+fp16',
        '-DGGML_NATIVE=OFF',
        '-DGGML_OPENMP=OFF',
        '-DGGML_RPC=ON',
        '-DLLAMA_BUILD_APP=OFF',
        '-DLLAMA_BUILD_COMMIT=0c1e570',
        '-DLLAMA_BUILD_COMMON=ON',
        '-DLLAMA_BUILD_EXAMPLES=OFF',
        '-DLLAMA_BUILD_NUMBER=0',
        '-DLLAMA_BUILD_SERVER=ON',
        '-DLLAMA_BUILD_TESTS=OFF',
        '-DLLAMA_BUILD_TOOLS=ON',
        '-DLLAMA_BUILD_UI=OFF',
        '-DLLAMA_OPENSSL=ON',
        '-DLLAMA_USE_PREBUILT_UI=OFF',
    ],
    "linux-arm64-vulkan": [
        '-DCMAKE_TOOLCHAIN_FILE=<project>/recipes/toolchains/clang-aarch64-linux-gnu.cmake',
        '-DBUILD_SHARED_LIBS=ON',
        '-DCMAKE_BUILD_TYPE=Release',
        '-DCMAKE_BUILD_WITH_INSTALL_RPATH=ON',
        '-DCMAKE_CXX_FLAGS=-ffile-prefix-map=<work>/src/llama.cpp=llama.cpp -ffile-prefix-map=<work>/cmake/linux-arm64-vulkan=build',
        '-DCMAKE_C_FLAGS=-ffile-prefix-map=<work>/src/llama.cpp=llama.cpp -ffile-prefix-map=<work>/cmake/linux-arm64-vulkan=build',
        '-DCMAKE_INSTALL_RPATH=$ORIGIN',
        '-DGGML_BACKEND_DL=ON',
        '-DGGML_CCACHE=ON',
        '-DGGML_CPU_ALL_VARIANTS=ON',
        '-DGGML_NATIVE=OFF',
        '-DGGML_OPENMP=OFF',
        '-DGGML_RPC=ON',
        '-DGGML_VULKAN=ON',
        '-DLLAMA_BUILD_APP=OFF',
        '-DLLAMA_BUILD_COMMIT=0c1e570',
        '-DLLAMA_BUILD_COMMON=ON',
        '-DLLAMA_BUILD_EXAMPLES=OFF',
        '-DLLAMA_BUILD_NUMBER=0',
        '-DLLAMA_BUILD_SERVER=ON',
        '-DLLAMA_BUILD_TESTS=OFF',
        '-DLLAMA_BUILD_TOOLS=ON',
        '-DLLAMA_BUILD_UI=OFF',
        '-DLLAMA_OPENSSL=ON',
        '-DLLAMA_USE_PREBUILT_UI=OFF',
    ],
    "linux-x86_64-all": [
        '-DBUILD_SHARED_LIBS=ON',
        '-DCMAKE_BUILD_TYPE=Release',
        '-DCMAKE_BUILD_WITH_INSTALL_RPATH=ON',
        '-DCMAKE_CUDA_ARCHITECTURES=75-virtual;80-virtual;86-real;89-real;90-virtual;120a-real;121a-real',
        # the CUDA objects get the same maps as in linux-x86_64-cuda (no build path in libggml-cuda.so,
        # and one ccache entry for both recipes' CUDA objects: build.CCACHE_IGNORE_OPTIONS)
        '-DCMAKE_CUDA_FLAGS=-Xcompiler=-ffile-prefix-map=<work>/src/llama.cpp=llama.cpp -Xcompiler=-ffile-prefix-map=<work>/cmake/linux-x86_64-all=build',
        '-DCMAKE_CXX_FLAGS=-ffile-prefix-map=<work>/src/llama.cpp=llama.cpp -ffile-prefix-map=<work>/cmake/linux-x86_64-all=build',
        '-DCMAKE_C_FLAGS=-ffile-prefix-map=<work>/src/llama.cpp=llama.cpp -ffile-prefix-map=<work>/cmake/linux-x86_64-all=build',
        '-DCMAKE_INSTALL_RPATH=$ORIGIN',
        '-DGGML_BACKEND_DL=ON',
        '-DGGML_CCACHE=ON',
        '-DGGML_CPU=ON',
        '-DGGML_CPU_ALL_VARIANTS=ON',
        '-DGGML_CUDA=ON',
        '-DGGML_CUDA_NCCL=OFF',
        '-DGGML_NATIVE=OFF',
        '-DGGML_RPC=ON',
        '-DGGML_VULKAN=ON',
        '-DLLAMA_BUILD_APP=OFF',
        '-DLLAMA_BUILD_COMMIT=0c1e570',
        '-DLLAMA_BUILD_COMMON=ON',
        '-DLLAMA_BUILD_EXAMPLES=OFF',
        '-DLLAMA_BUILD_NUMBER=0',
        '-DLLAMA_BUILD_SERVER=ON',
        '-DLLAMA_BUILD_TESTS=OFF',
        '-DLLAMA_BUILD_TOOLS=ON',
        '-DLLAMA_BUILD_UI=OFF',
        '-DLLAMA_OPENSSL=ON',
        '-DLLAMA_USE_PREBUILT_UI=OFF',
    ],
    "linux-x86_64-all-ci": [
        '-DBUILD_SHARED_LIBS=ON',
        '-DCMAKE_BUILD_TYPE=Release',
        '-DCMAKE_BUILD_WITH_INSTALL_RPATH=ON',
        '-DCMAKE_CUDA_ARCHITECTURES=75-virtual;80-virtual;86-real;89-real;90-virtual;120a-real;121a-real',
        '-DCMAKE_CXX_FLAGS=-ffile-prefix-map=<work>/src/llama.cpp=llama.cpp -ffile-prefix-map=<work>/cmake/linux-x86_64-all-ci=build',
        '-DCMAKE_C_FLAGS=-ffile-prefix-map=<work>/src/llama.cpp=llama.cpp -ffile-prefix-map=<work>/cmake/linux-x86_64-all-ci=build',
        '-DCMAKE_INSTALL_RPATH=$ORIGIN',
        '-DGGML_AVX=ON',
        '-DGGML_AVX2=ON',
        '-DGGML_BACKEND_DL=ON',
        '-DGGML_BMI2=ON',
        '-DGGML_CCACHE=ON',
        '-DGGML_CPU=ON',
        '-DGGML_CPU_ALL_VARIANTS=OFF',
        '-DGGML_CUDA=OFF',
        '-DGGML_CUDA_NCCL=OFF',
        '-DGGML_F16C=ON',
        '-DGGML_FMA=ON',
        '-DGGML_NATIVE=OFF',
        '-DGGML_RPC=ON',
        '-DGGML_SSE42=ON',
        '-DGGML_VULKAN=ON',
        '-DLLAMA_BUILD_APP=OFF',
        '-DLLAMA_BUILD_COMMIT=0c1e570',
        '-DLLAMA_BUILD_COMMON=ON',
        '-DLLAMA_BUILD_EXAMPLES=OFF',
        '-DLLAMA_BUILD_NUMBER=0',
        '-DLLAMA_BUILD_SERVER=ON',
        '-DLLAMA_BUILD_TESTS=OFF',
        '-DLLAMA_BUILD_TOOLS=ON',
        '-DLLAMA_BUILD_UI=OFF',
        '-DLLAMA_OPENSSL=ON',
        '-DLLAMA_USE_PREBUILT_UI=OFF',
    ],
    "linux-x86_64-rocm": [
        '-DBUILD_SHARED_LIBS=ON',
        '-DCMAKE_BUILD_TYPE=Release',
        '-DCMAKE_BUILD_WITH_INSTALL_RPATH=ON',
        '-DCMAKE_CXX_FLAGS=-ffile-prefix-map=<work>/src/llama.cpp=llama.cpp -ffile-prefix-map=<work>/cmake/linux-x86_64-rocm=build',
        '-DCMAKE_C_FLAGS=-ffile-prefix-map=<work>/src/llama.cpp=llama.cpp -ffile-prefix-map=<work>/cmake/linux-x86_64-rocm=build',
        # ROCm's clang: the same maps, so no build path ends up in libggml-hip.so
        '-DCMAKE_HIP_FLAGS=-ffile-prefix-map=<work>/src/llama.cpp=llama.cpp -ffile-prefix-map=<work>/cmake/linux-x86_64-rocm=build',
        '-DCMAKE_INSTALL_RPATH=$ORIGIN',
        '-DGGML_BACKEND_DL=ON',
        '-DGGML_CCACHE=ON',
        '-DGGML_CPU_ALL_VARIANTS=ON',
        '-DGGML_HIP=ON',
        '-DGGML_NATIVE=OFF',
        '-DGGML_RPC=ON',
        '-DGPU_TARGETS=gfx906;gfx908;gfx90a;gfx942;gfx1030;gfx1100;gfx1101;gfx1102;gfx1103;gfx1150;gfx1151;gfx1152;gfx1200;gfx1201',
        '-DLLAMA_BUILD_APP=OFF',
        '-DLLAMA_BUILD_COMMIT=0c1e570',
        '-DLLAMA_BUILD_COMMON=ON',
        '-DLLAMA_BUILD_EXAMPLES=OFF',
        '-DLLAMA_BUILD_NUMBER=0',
        '-DLLAMA_BUILD_SERVER=ON',
        '-DLLAMA_BUILD_TESTS=OFF',
        '-DLLAMA_BUILD_TOOLS=ON',
        '-DLLAMA_BUILD_UI=OFF',
        '-DLLAMA_OPENSSL=ON',
        '-DLLAMA_USE_PREBUILT_UI=OFF',
    ],
    "macos-x86_64-cpu": [
        '-DBUILD_SHARED_LIBS=ON',
        '-DCMAKE_BUILD_TYPE=Release',
        '-DCMAKE_BUILD_WITH_INSTALL_RPATH=ON',
        '-DCMAKE_CXX_FLAGS=-ffile-prefix-map=<work>/src/llama.cpp=llama.cpp -ffile-prefix-map=<work>/cmake/macos-x86_64-cpu=build',
        '-DCMAKE_C_FLAGS=-ffile-prefix-map=<work>/src/llama.cpp=llama.cpp -ffile-prefix-map=<work>/cmake/macos-x86_64-cpu=build',
        '-DCMAKE_INSTALL_RPATH=@loader_path',
        '-DCMAKE_OSX_ARCHITECTURES=x86_64',
        '-DCMAKE_OSX_DEPLOYMENT_TARGET=13.3',
        '-DGGML_AVX=ON',
        '-DGGML_AVX2=ON',
        '-DGGML_BMI2=ON',
        '-DGGML_CCACHE=ON',
        '-DGGML_CPU=ON',
        '-DGGML_F16C=ON',
        '-DGGML_FMA=ON',
        '-DGGML_METAL=OFF',
        '-DGGML_NATIVE=OFF',
        '-DGGML_RPC=ON',
        '-DGGML_SSE42=ON',
        '-DLLAMA_BUILD_APP=OFF',
        '-DLLAMA_BUILD_BORINGSSL=ON',
        '-DLLAMA_BUILD_COMMIT=0c1e570',
        '-DLLAMA_BUILD_COMMON=ON',
        '-DLLAMA_BUILD_EXAMPLES=OFF',
        '-DLLAMA_BUILD_NUMBER=0',
        '-DLLAMA_BUILD_SERVER=ON',
        '-DLLAMA_BUILD_TESTS=OFF',
        '-DLLAMA_BUILD_TOOLS=ON',
        '-DLLAMA_BUILD_UI=OFF',
        '-DLLAMA_USE_PREBUILT_UI=OFF',
    ],
    "windows-x86_64-cuda": [
        '-DBUILD_SHARED_LIBS=ON',
        '-DCMAKE_BUILD_TYPE=Release',
        '-DCMAKE_CUDA_ARCHITECTURES=50-virtual;61-virtual;70-virtual;75-virtual;80-virtual;86-real;89-real;90-virtual;120a-real',
        '-DCMAKE_CUDA_FLAGS=-Xcompiler=-ffile-prefix-map=<work>/src/llama.cpp=llama.cpp -Xcompiler=-ffile-prefix-map=<work>/cmake/windows-x86_64-cuda=build',
        '-DCMAKE_CXX_FLAGS=-ffile-prefix-map=<work>/src/llama.cpp=llama.cpp -ffile-prefix-map=<work>/cmake/windows-x86_64-cuda=build',
        '-DCMAKE_C_FLAGS=-ffile-prefix-map=<work>/src/llama.cpp=llama.cpp -ffile-prefix-map=<work>/cmake/windows-x86_64-cuda=build',
        '-DGGML_BACKEND_DL=ON',
        '-DGGML_CCACHE=ON',
        '-DGGML_CPU_ALL_VARIANTS=ON',
        '-DGGML_CUDA=ON',
        '-DGGML_CUDA_NCCL=OFF',
        '-DGGML_NATIVE=OFF',
        '-DGGML_RPC=ON',
        '-DLLAMA_BUILD_APP=OFF',
        '-DLLAMA_BUILD_COMMIT=0c1e570',
        '-DLLAMA_BUILD_COMMON=ON',
        '-DLLAMA_BUILD_EXAMPLES=OFF',
        '-DLLAMA_BUILD_NUMBER=0',
        '-DLLAMA_BUILD_SERVER=ON',
        '-DLLAMA_BUILD_TESTS=OFF',
        '-DLLAMA_BUILD_TOOLS=ON',
        '-DLLAMA_BUILD_UI=OFF',
        '-DLLAMA_OPENSSL=OFF',
        '-DLLAMA_USE_PREBUILT_UI=OFF',
    ],
    "windows-x86_64-vulkan": [
        '-DCMAKE_TOOLCHAIN_FILE=<project>/recipes/toolchains/zig-x86_64-windows-gnu.cmake',
        '-DBUILD_SHARED_LIBS=OFF',
        '-DCMAKE_BUILD_TYPE=Release',
        '-DCMAKE_CXX_FLAGS=-ffile-prefix-map=<work>/src/llama.cpp=llama.cpp -ffile-prefix-map=<work>/cmake/windows-x86_64-vulkan=build',
        '-DCMAKE_C_FLAGS=-ffile-prefix-map=<work>/src/llama.cpp=llama.cpp -ffile-prefix-map=<work>/cmake/windows-x86_64-vulkan=build',
        '-DGGML_AVX=ON',
        '-DGGML_AVX2=ON',
        '-DGGML_BACKEND_DL=OFF',
        '-DGGML_BMI2=ON',
        '-DGGML_CCACHE=ON',
        '-DGGML_CPU_ALL_VARIANTS=OFF',
        '-DGGML_F16C=ON',
        '-DGGML_FMA=ON',
        '-DGGML_NATIVE=OFF',
        '-DGGML_OPENMP=OFF',
        '-DGGML_RPC=ON',
        '-DGGML_SSE42=ON',
        '-DGGML_VULKAN=ON',
        '-DLLAMA_BUILD_APP=OFF',
        '-DLLAMA_BUILD_COMMIT=0c1e570',
        '-DLLAMA_BUILD_COMMON=ON',
        '-DLLAMA_BUILD_EXAMPLES=OFF',
        '-DLLAMA_BUILD_NUMBER=0',
        '-DLLAMA_BUILD_SERVER=ON',
        '-DLLAMA_BUILD_TESTS=OFF',
        '-DLLAMA_BUILD_TOOLS=ON',
        '-DLLAMA_BUILD_UI=OFF',
        '-DLLAMA_OPENSSL=OFF',
        '-DLLAMA_USE_PREBUILT_UI=OFF',
    ],
}


def _plan(name: str):
    return make_plan(Project(REPO), WorkDir(WORK), [name], lock=LOCK).recipes[0]


def _key(arg: str) -> str:
    return arg[2:].split("=", 1)[0] if arg.startswith("-D") else arg


def test_every_recipe_has_a_contract() -> None:
    recipes = set(load_recipes(Project(REPO)))
    missing = sorted(recipes - set(EXPECTED))
    gone = sorted(set(EXPECTED) - recipes)
    assert not missing, f"add the exact configure args of {missing} to EXPECTED in {__file__}"
    assert not gone, f"remove {gone} from EXPECTED in {__file__}: no such recipe any more"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_exact_configure_args(name: str) -> None:
    rp = _plan(name)
    args = list(rp.configure_args)
    assert args[:6] == ["-S", f"{WORK}/src/llama.cpp", "-B", f"{WORK}/cmake/{name}", "-G", "Ninja"]
    host = provision.plan_cmake_defines(rp.recipe)
    host_args = [a for a in args[6:] if _key(a) in host]
    assert sorted(host_args) == sorted(render_define(k, v) for k, v in host.items())
    rest = [a.replace(str(REPO), "<project>").replace(f"{WORK}/", "<work>/") for a in args[6:] if _key(a) not in host]
    assert rest == EXPECTED[name]


def test_entries_are_sorted_and_unique() -> None:
    for name in EXPECTED:
        defines = [a for a in _plan(name).configure_args if a.startswith("-D") and not a.startswith("-DCMAKE_TOOLCHAIN_FILE=")]
        keys = [_key(a) for a in defines]
        assert keys == sorted(keys) and len(keys) == len(set(keys)), name


def test_upstream_release_flags_and_offline_ui() -> None:
    for name, args in EXPECTED.items():
        rp = _plan(name)
        recipe = rp.recipe
        # never -march=native; no network at build time for the web UI (we ship our own, --path)
        assert "-DGGML_NATIVE=OFF" in args, name
        assert "-DLLAMA_USE_PREBUILT_UI=OFF" in args and "-DLLAMA_BUILD_UI=OFF" in args, name
        assert "-DLLAMA_BUILD_APP=OFF" in args and "-DLLAMA_BUILD_TESTS=OFF" in args, name
        assert "-DLLAMA_BUILD_SERVER=ON" in args and "-DLLAMA_BUILD_TOOLS=ON" in args, name
        # build paths stay out of the binaries
        assert any(a.startswith("-DCMAKE_C_FLAGS=-ffile-prefix-map=<work>/src/llama.cpp=llama.cpp") for a in args), name
        assert rp.env["SOURCE_DATE_EPOCH"] == str(LOCK.source_date_epoch)
        if recipe.os == "linux" and recipe.is_release:
            # upstream's Linux release flags (.github/workflows/release.yml)
            for flag in ("-DGGML_BACKEND_DL=ON", "-DGGML_CPU_ALL_VARIANTS=ON", "-DCMAKE_INSTALL_RPATH=$ORIGIN",
                         "-DCMAKE_BUILD_WITH_INSTALL_RPATH=ON", "-DGGML_RPC=ON"):
                assert flag in args, (name, flag)
        if "-DGGML_CPU_ALL_VARIANTS=OFF" in args and recipe.arch == "x86_64":
            # SOURCE_DATE_EPOCH turns ggml's ISA defaults off: a single variant names its ISA
            for flag in ("-DGGML_SSE42=ON", "-DGGML_AVX=ON", "-DGGML_AVX2=ON", "-DGGML_FMA=ON", "-DGGML_F16C=ON"):
                assert flag in args, (name, flag)


def test_build_info_comes_from_the_upstream_lock() -> None:
    assert build_info_entries(UPSTREAM_COMMIT, "") == {"LLAMA_BUILD_COMMIT": "0c1e570", "LLAMA_BUILD_NUMBER": 0}
    assert build_info_entries(UPSTREAM_COMMIT, "b7123") == {"LLAMA_BUILD_COMMIT": "0c1e570", "LLAMA_BUILD_NUMBER": 7123}
    assert build_info_entries(UPSTREAM_COMMIT, "v0.4.0")["LLAMA_BUILD_NUMBER"] == 0


# Cache entries that are CMake's or a find module's own, not llama.cpp options.
NOT_UPSTREAM_OPTIONS = {"CUDAToolkit_ROOT", "Vulkan_INCLUDE_DIR", "SPIRV-Headers_DIR", "Vulkan_LIBRARY"}


def test_every_entry_exists_in_the_real_llama_cpp_tree() -> None:
    """A misspelt or removed option (e.g. a GGML_METAL_USE_BF16 that upstream no longer has) is
    silently ignored by CMake; check every key against upstream's CMake files."""
    tree = vendored_llama("0.3.36")
    text = "\n".join(
        p.read_text(encoding="utf-8", errors="replace")
        for p in tree.rglob("*")
        if p.is_file() and (p.name == "CMakeLists.txt" or p.suffix == ".cmake")
    )
    unknown: dict[str, list[str]] = {}
    for name in EXPECTED:
        for arg in _plan(name).configure_args:
            if not arg.startswith("-D"):
                continue
            key = _key(arg)
            if key.startswith(("CMAKE_", "CUDA_")) or key in NOT_UPSTREAM_OPTIONS:
                continue
            if not re.search(rf"\b{re.escape(key)}\b", text):
                unknown.setdefault(key, []).append(name)
    assert not unknown, f"cache entries unknown to llama.cpp's CMake files: {unknown}"
