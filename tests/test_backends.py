"""Contract tests: the exact CMake configure argv of every backend recipe, and the host toolchain
entries the plan adds (Vulkan headers, CUDA toolkit pieces, the zig cross toolchain)."""

from __future__ import annotations

from pathlib import Path

import pytest

from locara_build.build import backends, platforms, provision
from locara_build.build.cmake_args import configure_args
from locara_build.build.recipe import Recipe, load_recipes
from locara_build.build.toolchains import cuda, vulkan
from locara_build.core.workdir import Project

REPO = Path(__file__).resolve().parent.parent
SRC, BUILD = Path("/w/src/llama.cpp"), Path("/w/cmake/x")
PREFIX = f"-ffile-prefix-map={SRC}=llama.cpp -ffile-prefix-map={BUILD}=build"

COMMON = [
    "-DBUILD_SHARED_LIBS=ON",
    "-DCMAKE_BUILD_TYPE=Release",
]
TAIL = [
    "-DLLAMA_BUILD_APP=OFF",
    "-DLLAMA_BUILD_COMMON=ON",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_SERVER=ON",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_TOOLS=ON",
    "-DLLAMA_BUILD_UI=OFF",
]
ONE_VARIANT = ["-DGGML_AVX=ON", "-DGGML_AVX2=ON"]  # + BMI2/F16C/FMA/SSE42, placed in sort order below


@pytest.fixture(scope="module")
def recipes() -> dict[str, Recipe]:
    return load_recipes(Project(REPO))


def args_of(recipe: Recipe) -> list[str]:
    toolchain = Path("/p") / recipe.toolchain if recipe.toolchain else None
    return configure_args(recipe, SRC, BUILD, toolchain)


def head(toolchain: str | None = None) -> list[str]:
    out = ["-S", str(SRC), "-B", str(BUILD), "-G", "Ninja"]
    return out + ([f"-DCMAKE_TOOLCHAIN_FILE=/p/{toolchain}"] if toolchain else [])


def test_vulkan_release_args(recipes: dict[str, Recipe]) -> None:
    assert args_of(recipes["linux-x86_64-vulkan"]) == [
        *head(), *COMMON,
        "-DCMAKE_BUILD_WITH_INSTALL_RPATH=ON",
        f"-DCMAKE_CXX_FLAGS={PREFIX}", f"-DCMAKE_C_FLAGS={PREFIX}",
        "-DCMAKE_INSTALL_RPATH=$ORIGIN",
        "-DGGML_BACKEND_DL=ON", "-DGGML_CCACHE=ON", "-DGGML_CPU_ALL_VARIANTS=ON", "-DGGML_NATIVE=OFF",
        "-DGGML_RPC=ON", "-DGGML_VULKAN=ON",
        *TAIL, "-DLLAMA_OPENSSL=ON", "-DLLAMA_USE_PREBUILT_UI=OFF",
    ]


def test_vulkan_ci_args(recipes: dict[str, Recipe]) -> None:
    r = recipes["linux-x86_64-vulkan-ci"]
    assert r.flavour == "ci" and not r.is_release
    assert args_of(r) == [
        *head(), *COMMON,
        "-DCMAKE_BUILD_WITH_INSTALL_RPATH=ON",
        f"-DCMAKE_CXX_FLAGS={PREFIX}", f"-DCMAKE_C_FLAGS={PREFIX}",
        "-DCMAKE_INSTALL_RPATH=$ORIGIN",
        *ONE_VARIANT, "-DGGML_BACKEND_DL=ON", "-DGGML_BMI2=ON", "-DGGML_CCACHE=ON", "-DGGML_CPU_ALL_VARIANTS=OFF",
        "-DGGML_F16C=ON", "-DGGML_FMA=ON", "-DGGML_NATIVE=OFF", "-DGGML_RPC=ON", "-DGGML_SSE42=ON", "-DGGML_VULKAN=ON",
        *TAIL, "-DLLAMA_OPENSSL=ON", "-DLLAMA_USE_PREBUILT_UI=OFF",
    ]


def test_vulkan_smoke_contract(recipes: dict[str, Recipe]) -> None:
    for name in ("linux-x86_64-vulkan", "linux-x86_64-vulkan-ci"):
        smoke = recipes[name].smoke
        assert smoke.args == ("-ngl", "99", "-lv", "4")  # -lv 4: ggml's INFO lines reach the log
        assert smoke.env["GGML_VK_VISIBLE_DEVICES"] == "0"  # ggml-vulkan skips CPU devices (lavapipe) otherwise
        assert not smoke.skip
        log = (
            "llama_model_load_from_file_impl: using device Vulkan0 (llvmpipe (LLVM 15.0.6, 256 bits)) (unknown id) - 23 MiB free\n"
            "load_tensors: offloaded 3/3 layers to GPU\n"
        )
        import re

        assert all(re.search(p, log) for p in smoke.expect)
        assert not re.search(smoke.expect[1], "load_tensors: offloaded 2/3 layers to GPU")
    assert not any("vulkan" in lib.lower() for lib in recipes["linux-x86_64-vulkan"].ship.libraries + recipes["linux-x86_64-vulkan"].ship.runtime)


CUDA_RELEASE_ARCHS = "75-virtual;80-virtual;86-real;89-real;90-virtual;120a-real;121a-real"


def test_cuda_release_args(recipes: dict[str, Recipe]) -> None:
    cuda_prefix = f"-Xcompiler=-ffile-prefix-map={SRC}=llama.cpp -Xcompiler=-ffile-prefix-map={BUILD}=build"
    assert args_of(recipes["linux-x86_64-cuda"]) == [
        *head(), *COMMON,
        "-DCMAKE_BUILD_WITH_INSTALL_RPATH=ON",
        f"-DCMAKE_CUDA_ARCHITECTURES={CUDA_RELEASE_ARCHS}",
        f"-DCMAKE_CUDA_FLAGS={cuda_prefix}",
        f"-DCMAKE_CXX_FLAGS={PREFIX}", f"-DCMAKE_C_FLAGS={PREFIX}",
        "-DCMAKE_INSTALL_RPATH=$ORIGIN",
        "-DGGML_BACKEND_DL=ON", "-DGGML_CCACHE=ON", "-DGGML_CPU_ALL_VARIANTS=ON", "-DGGML_CUDA=ON",
        "-DGGML_CUDA_NCCL=OFF", "-DGGML_NATIVE=OFF", "-DGGML_RPC=ON",
        *TAIL, "-DLLAMA_OPENSSL=ON", "-DLLAMA_USE_PREBUILT_UI=OFF",
    ]


def test_cuda_ci_args(recipes: dict[str, Recipe]) -> None:
    args = args_of(recipes["linux-x86_64-cuda-ci"])
    assert "-DCMAKE_CUDA_ARCHITECTURES=89-real" in args
    assert "-DGGML_CPU_ALL_VARIANTS=OFF" in args and "-DGGML_AVX2=ON" in args
    release = set(args_of(recipes["linux-x86_64-cuda"]))
    assert set(args) - release == {
        "-DCMAKE_CUDA_ARCHITECTURES=89-real", "-DGGML_CPU_ALL_VARIANTS=OFF", "-DGGML_AVX=ON", "-DGGML_AVX2=ON",
        "-DGGML_BMI2=ON", "-DGGML_F16C=ON", "-DGGML_FMA=ON", "-DGGML_SSE42=ON",
    }


def test_cuda_release_archs_match_upstream_default_and_nvcc13(recipes: dict[str, Recipe]) -> None:
    """Upstream's default set for CUDA >= 12.9 (ggml/src/ggml-cuda/CMakeLists.txt, non-native),
    every entry targetable by nvcc 13 (`nvcc --list-gpu-arch`: compute_75..compute_121)."""
    value = str(recipes["linux-x86_64-cuda"].cmake["CMAKE_CUDA_ARCHITECTURES"])
    assert value == CUDA_RELEASE_ARCHS
    assert cuda.arch_supported(value, cuda.KNOWN_ARCHS[13]) == []
    # what CUDA 13 dropped would be caught:
    assert cuda.arch_supported("50-virtual;61-virtual;70-virtual;75-virtual", cuda.KNOWN_ARCHS[13]) == [
        "50-virtual", "61-virtual", "70-virtual"]


def test_cuda_runtime_policy(recipes: dict[str, Recipe]) -> None:
    for name in ("linux-x86_64-cuda", "linux-x86_64-cuda-ci"):
        r = recipes[name]
        assert r.ship.runtime == cuda.runtime_libraries(13)
        assert r.requirements["min_cuda_driver"] == cuda.MIN_DRIVER[13] == "580.65.06"
        # smoke-tested on an NVIDIA GPU where there is one, else on the CPU variants the build ships
        # (plugins: the binary starts without libcuda.so.1); never skipped outright
        assert r.smoke.device == "nvidia-gpu" and not r.smoke.skip
        assert r.cmake["GGML_BACKEND_DL"] is True
        assert r"using device CUDA0 \(" in r.smoke.expect and "-ngl" in r.smoke.args
        assert "nvcc>=13.0" in backends.get("cuda").requirements(r)
        assert not any("libcuda.so" in g for g in r.ship.runtime)  # the driver is never shipped


def test_windows_args(recipes: dict[str, Recipe]) -> None:
    r = recipes["windows-x86_64-cpu"]
    assert args_of(r) == [
        *head("recipes/toolchains/zig-x86_64-windows-gnu.cmake"),
        "-DBUILD_SHARED_LIBS=OFF", "-DCMAKE_BUILD_TYPE=Release",
        f"-DCMAKE_CXX_FLAGS={PREFIX}", f"-DCMAKE_C_FLAGS={PREFIX}",
        *ONE_VARIANT, "-DGGML_BACKEND_DL=OFF", "-DGGML_BMI2=ON", "-DGGML_CCACHE=ON", "-DGGML_CPU=ON",
        "-DGGML_CPU_ALL_VARIANTS=OFF", "-DGGML_F16C=ON", "-DGGML_FMA=ON", "-DGGML_NATIVE=OFF", "-DGGML_OPENMP=OFF",
        "-DGGML_RPC=ON", "-DGGML_SSE42=ON",
        *TAIL, "-DLLAMA_OPENSSL=OFF", "-DLLAMA_USE_PREBUILT_UI=OFF",
    ]
    assert r.archive == "zip" and r.signing == "authenticode"
    assert r.smoke.emulator == ("wine",) and r.smoke.env["WINEDEBUG"] == "-all"
    assert "AVX2" in r.requirements["cpu"]


def test_metal_args(recipes: dict[str, Recipe]) -> None:
    r = recipes["macos-arm64-metal"]
    assert args_of(r) == [
        *head(), *COMMON,
        "-DCMAKE_BUILD_WITH_INSTALL_RPATH=ON",
        f"-DCMAKE_CXX_FLAGS={PREFIX}", f"-DCMAKE_C_FLAGS={PREFIX}",
        "-DCMAKE_INSTALL_RPATH=@loader_path", "-DCMAKE_OSX_DEPLOYMENT_TARGET=13.3",
        "-DGGML_CCACHE=ON", "-DGGML_METAL=ON", "-DGGML_METAL_EMBED_LIBRARY=ON", "-DGGML_NATIVE=OFF", "-DGGML_RPC=ON",
        "-DLLAMA_BUILD_APP=OFF", "-DLLAMA_BUILD_BORINGSSL=ON", *TAIL[1:], "-DLLAMA_USE_PREBUILT_UI=OFF",
    ]
    assert r.signing == "macos" and r.archive == "tar.gz"
    assert r.smoke.args == ("-ngl", "99", "-lv", "4") and r.smoke.expect[0] == r"using device MTL0 \("


def test_host_hooks_ask_nothing_for_recipes_this_host_cannot_build(recipes: dict[str, Recipe], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(platforms.host, "host_os", lambda: "linux")
    r = recipes["macos-arm64-metal"]
    assert provision.plan_cmake_defines(r) == {} and provision.plan_env(r) == {} and provision.smoke_env(r) == {}


def _headers(tmp: Path, version: tuple[int, int, int], layer_settings: bool) -> Path:
    inc = tmp / f"inc-{'.'.join(map(str, version))}"
    (inc / "vulkan").mkdir(parents=True)
    core = (
        f"#define VK_HEADER_VERSION {version[2]}\n"
        f"#define VK_HEADER_VERSION_COMPLETE VK_MAKE_API_VERSION(0, {version[0]}, {version[1]}, VK_HEADER_VERSION)\n"
    )
    if layer_settings:
        core += "#define VK_EXT_layer_settings 1\ntypedef struct VkLayerSettingEXT { int x; } VkLayerSettingEXT;\n"
    (inc / "vulkan" / "vulkan_core.h").write_text(core)
    (inc / "vulkan" / "vulkan.hpp").write_text("// c++\n")
    (inc / "vulkan" / "vulkan_structs.hpp").write_text("struct LayerSettingEXT {};\n" if layer_settings else "\n")
    return inc


def test_plan_passes_provisioned_vulkan_headers_when_the_system_ones_are_too_old(
    recipes: dict[str, Recipe], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(platforms.host, "host_os", lambda: "linux")
    monkeypatch.setenv("LOCARA_TOOLCHAINS_DIR", str(tmp_path / "tc"))
    monkeypatch.delenv("LOCARA_VULKAN_INCLUDE", raising=False)
    old = vulkan.probe(_headers(tmp_path, (1, 3, 239), False))
    assert old is not None and not old.usable and "VK_EXT_layer_settings" in old.why_not()
    monkeypatch.setattr(vulkan, "system_headers", lambda: [old])
    r = recipes["linux-x86_64-vulkan"]
    prefix = tmp_path / "tc" / f"vulkan-headers-{vulkan.PIN.upstream_version}" / "usr"
    want = {"Vulkan_INCLUDE_DIR": str(prefix / "include"), "SPIRV-Headers_DIR": str(prefix / "share/cmake/SPIRV-Headers")}
    assert provision.plan_cmake_defines(r) == want
    args = configure_args(r, SRC, BUILD, None, provision.plan_cmake_defines(r))
    assert f"-DVulkan_INCLUDE_DIR={prefix / 'include'}" in args
    assert f"-DSPIRV-Headers_DIR={prefix / 'share/cmake/SPIRV-Headers'}" in args

    # new enough SDK headers, but no SPIRV-Headers CMake package beside them: still provisioned
    new = vulkan.probe(_headers(tmp_path, (1, 4, 309), True), "sdk")
    assert new is not None
    monkeypatch.setattr(vulkan, "system_headers", lambda: [old, new])
    assert provision.plan_cmake_defines(r) == want
    # ... with it: FindVulkan's / find_package's own choice, nothing added
    spirv = tmp_path / "share" / "cmake" / "SPIRV-Headers"
    spirv.mkdir(parents=True)
    (spirv / "SPIRV-HeadersConfig.cmake").write_text("# test\n")
    assert new is not None and new.usable and new.version == "1.4.309"
    monkeypatch.setattr(vulkan, "system_headers", lambda: [old, new])
    assert provision.plan_cmake_defines(r) == {}
    # other backends are untouched
    assert provision.plan_cmake_defines(recipes["linux-x86_64-cpu"]) == {}


def test_plan_env_of_the_windows_cross_build(recipes: dict[str, Recipe], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(platforms.host, "host_os", lambda: "linux")
    env = provision.plan_env(recipes["windows-x86_64-cpu"])
    from locara_build.build.toolchains import zig

    found = zig.find()
    if found is None:
        pytest.skip("no zig here (pip install ziglang)")
    assert env["LOCARA_ZIG"] == str(found.path)
    assert env["CCACHE_COMPILERCHECK"] == "%compiler% --version"
    smoke = provision.smoke_env(recipes["windows-x86_64-cpu"])
    assert smoke["WINEDEBUG"] == "-all" and smoke["WINEPREFIX"].endswith("wineprefix")
    assert provision.plan_env(recipes["linux-x86_64-cpu"]) == {}


def test_cuda_plan_defines_with_a_wheel_toolkit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A toolkit without cuBLAS and without a driver stub (NVIDIA's PyPI wheels, as on this host)."""
    monkeypatch.setenv("LOCARA_TOOLCHAINS_DIR", str(tmp_path / "tc"))
    tk = cuda.Toolkit(
        nvcc=Path("/opt/cuda/bin/nvcc"), root=Path("/opt/cuda"), version="13.0.88", archs=(75, 89, 120),
        lib_dir=Path("/opt/cuda/lib"), include_dir=Path("/opt/cuda/include"), cublas_lib=None, driver_lib=None,
    )
    pin = cuda.CUBLAS_PINS[13]
    base = tmp_path / "tc" / f"cublas-{pin.version}"
    assert cuda.cmake_defines(tk) == {
        "CMAKE_CUDA_COMPILER": "/opt/cuda/bin/nvcc",
        "CUDAToolkit_ROOT": "/opt/cuda",
        "CUDA_cublas_LIBRARY": str(base / "lib" / "libcublas.so"),
        "CUDA_cublasLt_LIBRARY": str(base / "lib" / "libcublasLt.so"),
        "CMAKE_CUDA_STANDARD_INCLUDE_DIRECTORIES": str(base / "include"),
        "CUDA_cuda_driver_LIBRARY": str(tmp_path / "tc" / "cuda-stubs" / "libcuda.so"),
    }
    assert cuda.runtime_dirs(tk) == [Path("/opt/cuda/lib"), base / "lib"]
    full = cuda.Toolkit(**{**tk.__dict__, "cublas_lib": Path("/opt/cuda/lib"), "driver_lib": Path("/opt/cuda/lib/stubs/libcuda.so")})
    assert cuda.cmake_defines(full) == {"CMAKE_CUDA_COMPILER": "/opt/cuda/bin/nvcc", "CUDAToolkit_ROOT": "/opt/cuda"}


def test_driver_libraries_are_never_packaged() -> None:
    """The Vulkan loader and the NVIDIA driver come with the user's driver: the packager's closure
    treats them as system libraries (never shipped), on Linux and Windows."""
    linux, windows = platforms.get("linux"), platforms.get("windows")
    assert linux.system_library("libvulkan.so.1") and linux.system_library("libcuda.so.1")
    assert windows.system_library("vulkan-1.dll") and windows.system_library("nvcuda.dll")
    # ...while the CUDA runtime we bundle is not a system library: it must ship
    assert linux.system_library("libcudart.so.13") is None and linux.system_library("libcublasLt.so.13") is None


def test_metal_plan_and_doctor_on_linux(recipes: dict[str, Recipe], tmp_path: Path) -> None:
    """On a Linux host the Metal recipe is planned exactly, and doctor says why it is not built here."""
    from locara_build.build import doctor
    from locara_build.build.toolchain import Tool

    r = recipes["macos-arm64-metal"]
    tools = {n: Tool(n, True, "99", f"/usr/bin/{n}") for n in ("cmake", "ninja", "cc", "cxx")}
    tools["xcode"] = Tool("xcode", False, detail="Xcode exists only on macOS", fix="use the macOS runner")
    report = doctor.check_recipe(r, tools, host_os="linux", host_arch="x86_64")
    assert not report.build.ok
    assert any("cannot be built on a linux host" in why for why in report.build.reasons)
    assert r.runner.startswith("macos")
