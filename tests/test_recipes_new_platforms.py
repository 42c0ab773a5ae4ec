"""The platforms of issue 22 as data: Linux arm64 (CPU, Vulkan), Windows CUDA and Vulkan, macOS Intel,
ROCm, and linux-x86_64-all (backend `universal`: every backend as a plugin of one build).

Plan and CMake contract (the exact configure entries each recipe gives), doctor's answer on this
host, the CI workflow's runner/setup for each, and `install`'s artifact choice for arm64 vs x86-64
and Windows GPU vs CPU. The real builds are in tests/test_platform_arm64.py.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.records_kit import release_artifact

from locara_build.build import backends, doctor, hostdetect, platforms, toolchain
from locara_build.build.hostdetect import HostInfo, VulkanDevice, choose_artifact
from locara_build.build.recipe import load_recipes
from locara_build.core.errors import ConfigError
from locara_build.core.workdir import Project
from locara_build.pipeline import ci

REPO = Path(__file__).resolve().parent.parent
NEW = (
    "linux-arm64-cpu",
    "linux-arm64-cpu-ci",
    "linux-arm64-vulkan",
    "windows-x86_64-cuda",
    "windows-x86_64-vulkan",
    "macos-x86_64-cpu",
    "linux-x86_64-rocm",
    "linux-x86_64-all",
    "linux-x86_64-all-ci",
)


@pytest.fixture(scope="module")
def plans(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    work = tmp_path_factory.mktemp("work")
    res = subprocess.run(
        ["python", "-m", "locara_build", "--project", str(REPO), "--work-dir", str(work), "plan", "--json",
         *(a for n in NEW for a in ("-r", n))],
        capture_output=True, text=True, timeout=300,
    )
    assert res.returncode == 0, res.stderr
    return {r["name"]: r for r in json.loads(res.stdout)["recipes"]}


def _defines(rp: dict[str, Any]) -> dict[str, str]:
    out = {}
    for arg in rp["configure_args"]:
        m = re.match(r"^-D([^=:]+)(?::\w+)?=(.*)$", arg)
        if m:
            out[m[1]] = m[2]
    return out


# --- CMake contract --------------------------------------------------------------------------------


def test_arm64_cpu_release_builds_every_arm_variant_with_clang(plans: dict[str, dict[str, Any]]) -> None:
    rp = plans["linux-arm64-cpu"]
    d = _defines(rp)
    assert rp["os"] == "linux" and rp["arch"] == "arm64" and rp["runner"] == "ubuntu-22.04-arm"
    assert d["CMAKE_TOOLCHAIN_FILE"].endswith("recipes/toolchains/clang-aarch64-linux-gnu.cmake")
    # upstream's release flags: every variant a plugin, chosen at run time
    assert d["GGML_BACKEND_DL"] == "ON" and d["GGML_CPU_ALL_VARIANTS"] == "ON" and d["GGML_NATIVE"] == "OFF"
    assert d["GGML_OPENMP"] == "OFF"  # clang's libomp is not on users' systems
    assert "GGML_CPU_ARM_ARCH" not in d
    assert d["CMAKE_INSTALL_RPATH"] == "$ORIGIN"
    assert Path(rp["env"]["LOCARA_CLANG"]).name.startswith("clang")  # the toolchain file reads it
    assert Path(rp["env"]["LOCARA_CLANGXX"]).name.startswith("clang++")
    if platforms.host_arch() != "arm64":
        assert rp["env"]["LOCARA_AARCH64_SYSROOT"].endswith("sysroot-debian-bookworm-arm64")
    assert rp["artifact"]["file"].endswith("-linux-arm64-cpu.tar.gz")


def test_arm64_ci_flavour_is_one_variant_of_the_same_build(plans: dict[str, dict[str, Any]]) -> None:
    rel, ci_ = _defines(plans["linux-arm64-cpu"]), _defines(plans["linux-arm64-cpu-ci"])
    assert ci_["GGML_CPU_ALL_VARIANTS"] == "OFF" and ci_["GGML_CPU_ARM_ARCH"] == "armv8.2-a+dotprod+fp16"
    assert plans["linux-arm64-cpu-ci"]["flavour"] == "ci"
    differ = {k for k in set(rel) | set(ci_) if rel.get(k) != ci_.get(k)}
    # only the variant choice and the per-build-dir paths differ
    assert differ <= {"GGML_CPU_ALL_VARIANTS", "GGML_CPU_ARM_ARCH", "CMAKE_C_FLAGS", "CMAKE_CXX_FLAGS"}, differ


def test_arm64_vulkan_adds_the_vulkan_plugin_and_provisioned_headers(plans: dict[str, dict[str, Any]]) -> None:
    d = _defines(plans["linux-arm64-vulkan"])
    assert d["GGML_VULKAN"] == "ON" and d["GGML_CPU_ALL_VARIANTS"] == "ON"
    assert d["CMAKE_TOOLCHAIN_FILE"].endswith("clang-aarch64-linux-gnu.cmake")
    assert plans["linux-arm64-vulkan"]["smoke"]["device"] == "vulkan"


def test_windows_cuda_is_cuda_12_with_the_runtime_dlls_and_nothing_of_this_host(plans: dict[str, dict[str, Any]]) -> None:
    rp = plans["windows-x86_64-cuda"]
    d = _defines(rp)
    assert rp["runner"] == "windows-2022" and rp["toolchain"] is None
    assert d["GGML_CUDA"] == "ON" and d["GGML_BACKEND_DL"] == "ON" and d["GGML_CPU_ALL_VARIANTS"] == "ON"
    archs = d["CMAKE_CUDA_ARCHITECTURES"].split(";")
    assert "61-virtual" in archs and "50-virtual" in archs  # Pascal/Maxwell: why CUDA 12, not 13
    assert "120a-real" in archs  # Blackwell: why >= 12.8
    # planned on Linux: no host nvcc path, no zig environment in a native MSVC recipe
    assert "CMAKE_CUDA_COMPILER" not in d and "CUDAToolkit_ROOT" not in d
    assert "LOCARA_ZIG" not in rp["env"]
    assert rp["ship"]["runtime"] == ["cudart64_12.dll", "cublas64_12.dll", "cublasLt64_12.dll"]
    assert rp["requirements"]["cuda"] == "12" and rp["requirements"]["min_cuda_driver"] == "528.33"
    assert rp["signing"] == "authenticode" and rp["artifact"]["format"] == "zip"
    recipe = load_recipes(Project(REPO), ["windows-x86_64-cuda"])["windows-x86_64-cuda"]
    assert backends.get("cuda").requirements(recipe) == ("nvcc>=12.8,<13",)


def test_windows_vulkan_is_the_zig_cross_build_plus_vulkan(plans: dict[str, dict[str, Any]]) -> None:
    rp = plans["windows-x86_64-vulkan"]
    d = _defines(rp)
    assert d["CMAKE_TOOLCHAIN_FILE"].endswith("zig-x86_64-windows-gnu.cmake") and rp["runner"] == "ubuntu-22.04"
    assert d["GGML_VULKAN"] == "ON" and d["BUILD_SHARED_LIBS"] == "OFF" and d["GGML_BACKEND_DL"] == "OFF"
    assert rp["smoke"]["emulator"] == ["wine"]


def test_macos_intel_is_cpu_with_metal_off(plans: dict[str, dict[str, Any]]) -> None:
    rp = plans["macos-x86_64-cpu"]
    d = _defines(rp)
    assert rp["arch"] == "x86_64" and rp["runner"] == "macos-15-intel"
    assert d["GGML_METAL"] == "OFF" and d["CMAKE_OSX_ARCHITECTURES"] == "x86_64" and d["GGML_AVX2"] == "ON"
    assert rp["signing"] == "macos"


def test_rocm_targets_the_documented_gpu_list(plans: dict[str, dict[str, Any]]) -> None:
    d = _defines(plans["linux-x86_64-rocm"])
    assert d["GGML_HIP"] == "ON" and d["GGML_BACKEND_DL"] == "ON"
    targets = d["GPU_TARGETS"].split(";")
    for asked in ("gfx1030", "gfx1100", "gfx1101", "gfx1102", "gfx1103", "gfx1150", "gfx1151", "gfx1152", "gfx906"):
        assert asked in targets
    docs = (REPO / "docs" / "backends.md").read_text()
    for t in targets:  # every target is explained in the docs' table
        assert f"`{t}`" in docs, t


def test_all_is_one_build_with_every_backend_as_a_plugin(plans: dict[str, dict[str, Any]]) -> None:
    rel, proof = _defines(plans["linux-x86_64-all"]), _defines(plans["linux-x86_64-all-ci"])
    assert plans["linux-x86_64-all"]["backend"] == "universal"
    assert rel["GGML_BACKEND_DL"] == "ON" and rel["GGML_CPU_ALL_VARIANTS"] == "ON"
    assert rel["GGML_VULKAN"] == "ON" and rel["GGML_CUDA"] == "ON"
    assert proof["GGML_VULKAN"] == "ON" and proof["GGML_CUDA"] == "OFF" and proof["GGML_CPU_ALL_VARIANTS"] == "OFF"
    recipes = load_recipes(Project(REPO), ["linux-x86_64-all", "linux-x86_64-all-ci"])
    uni = backends.get("universal")
    assert set(uni.requirements(recipes["linux-x86_64-all"])) == {"nvcc>=13.0", "glslc", "vulkan-headers>=1.3.261"}
    assert set(uni.requirements(recipes["linux-x86_64-all-ci"])) == {"glslc", "vulkan-headers>=1.3.261"}
    assert plans["linux-x86_64-all"]["ship"]["runtime"] and plans["linux-x86_64-all-ci"]["ship"]["runtime"] == []


# --- doctor on this host --------------------------------------------------------------------------


def _report(name: str) -> doctor.RecipeReport:
    recipe = load_recipes(Project(REPO), [name])[name]
    return doctor.check_recipe(recipe, toolchain.probe_all(), platforms.host_os(), platforms.host_arch())


@pytest.mark.skipif(platforms.host_arch() != "x86_64" or platforms.host_os() != "linux", reason="cross-build case: an x86-64 Linux host")
def test_doctor_arm64_on_x86_64_needs_clang_binutils_dpkg_and_qemu() -> None:
    rep = _report("linux-arm64-cpu-ci")
    assert {"clang>=15", "aarch64-binutils", "dpkg-deb"} <= set(rep.build.requirements)
    assert rep.smoke.requirements == ("qemu-aarch64",)
    if rep.smoke.ok:
        assert any("qemu-user" in n for n in rep.smoke.notes)
    # the rendered workflow must not depend on this host: the platform itself asks only for clang
    recipe = load_recipes(Project(REPO), ["linux-arm64-cpu"])["linux-arm64-cpu"]
    assert platforms.get("linux").requirements(recipe, "linux") == ("clang>=15",)


def test_doctor_says_windows_cuda_needs_its_windows_runner() -> None:
    rep = _report("windows-x86_64-cuda")
    if platforms.host_os() != "windows":
        assert not rep.build.ok
        assert any("MSVC" in r for r in rep.build.reasons)
        assert "windows runner" in rep.build.how().lower()


@pytest.mark.skipif(shutil.which("apt-cache") is None, reason="Debian's hipcc version is read with apt-cache")
def test_debian_hipcc_is_older_than_what_ggml_hip_requires() -> None:
    from support.llama import vendored_llama

    res = subprocess.run(["apt-cache", "policy", "hipcc"], capture_output=True, text=True, timeout=120)
    m = re.search(r"Candidate:\s*(\d+)\.(\d+)", res.stdout)
    if m is None:
        pytest.skip("no hipcc in this host's apt sources (not Debian 12)")
    cmake = (vendored_llama("0.3.36") / "ggml" / "src" / "ggml-hip" / "CMakeLists.txt").read_text()
    need = re.search(r"VERSION_LESS (\d+)\.(\d+)\)\s*\n\s*message\(FATAL_ERROR \"At least ROCM/HIP", cmake)
    assert need is not None, "ggml-hip no longer states its minimum HIP version"
    assert (int(m[1]), int(m[2])) < (int(need[1]), int(need[2])), (m[0], need[0])
    rep = _report("linux-x86_64-rocm")
    assert not rep.build.ok and "hipcc>=6.1" in rep.build.requirements
    assert any("hipcc" in r for r in rep.build.reasons)


# --- CI -------------------------------------------------------------------------------------------


def _workflow() -> dict[str, Any]:
    text = ci.render(Project(REPO)).files["ci/workflows/weekly.yml"].decode()
    data = yaml.safe_load(text)
    return data


def test_every_new_release_recipe_gets_its_runner_and_setups() -> None:
    recipes = load_recipes(Project(REPO))
    want = {
        "linux-arm64-cpu": ("ubuntu-22.04-arm", {"linux", "clang"}),
        "linux-arm64-vulkan": ("ubuntu-24.04-arm", {"linux", "clang", "vulkan-arm64"}),
        "windows-x86_64-cuda": ("windows-2022", {"windows", "cuda-windows"}),
        "windows-x86_64-vulkan": ("ubuntu-22.04", {"linux", "vulkan", "zig", "wine"}),
        "macos-x86_64-cpu": ("macos-15-intel", {"macos", "xcode"}),
        "linux-x86_64-rocm": ("ubuntu-22.04", {"linux", "rocm"}),
        "linux-x86_64-all": ("ubuntu-22.04", {"linux", "cuda", "vulkan"}),
    }
    for name, (runner, setups) in want.items():
        r = recipes[name]
        assert r.is_release and r.runner == runner, (name, r.runner)
        assert setups <= set(ci.recipe_setups(r)), (name, ci.recipe_setups(r))
    assert ci.model(Project(REPO))["warnings"] == []
    steps = {s.get("name", "") for s in _workflow()["jobs"]["build"]["steps"]}
    for step in ("clang (Linux arm64)", "Build tools (Windows, MSVC)", "CUDA toolkit 12.8.1 (Windows)", "ROCm 6.4.1",
                 "Vulkan headers, glslc + lavapipe (Linux arm64)"):
        assert step in steps


def test_an_arm64_recipe_on_an_x86_runner_warns(project: Path) -> None:
    path = project / "recipes" / "linux-arm64-cpu.toml"
    path.write_text(path.read_text().replace('runner = "ubuntu-22.04-arm"', 'runner = "ubuntu-22.04"'))
    warnings = ci.model(Project(project))["warnings"]
    assert any("linux-arm64-cpu" in w and "x86_64 runner" in w for w in warnings), warnings


def test_a_native_windows_recipe_without_msvc_is_refused(project: Path) -> None:
    (project / "recipes" / "windows-x86_64-vulkan.toml").write_text('os = "windows"\narch = "x86_64"\nbackend = "vulkan"\n')
    with pytest.raises(ConfigError, match="vulkan on a windows build host"):
        ci.render(Project(project))


# --- install: the artifact for this host ---------------------------------------------------------

ARTS = [
    release_artifact(os="linux", arch="x86_64", backend="cpu", requirements={"cpu": "x86-64-v2: SSE4.2"}),
    release_artifact(os="linux", arch="x86_64", backend="vulkan"),
    release_artifact(os="linux", arch="x86_64", backend="rocm"),
    release_artifact(os="linux", arch="x86_64", backend="universal",
                     requirements={"min_cuda_driver": "580.65.06"}),
    release_artifact(os="linux", arch="arm64", backend="cpu",
                     requirements={"cpu": "arm64 (ARMv8.0-A or newer); the best of 8 CPU variants"}),
    release_artifact(os="linux", arch="arm64", backend="vulkan"),
    release_artifact(os="linux", arch="arm64", flavour="ci", backend="cpu",
                     requirements={"cpu": "armv8.2-a+dotprod+fp16: ARMv8.2-A with dot product and FP16"}),
    release_artifact(os="windows", arch="x86_64", backend="cpu", requirements={"cpu": "x86-64-v3: AVX2"}),
    release_artifact(os="windows", arch="x86_64", backend="vulkan", requirements={"cpu": "x86-64-v3: AVX2"}),
    release_artifact(os="windows", arch="x86_64", backend="cuda", requirements={"min_cuda_driver": "528.33"}),
    release_artifact(os="macos", arch="x86_64", backend="cpu"),
    release_artifact(os="macos", arch="arm64", backend="metal"),
]
X86_V3 = frozenset("cx16 lahf_lm popcnt sse4_1 sse4_2 ssse3 abm avx avx2 bmi1 bmi2 f16c fma movbe xsave".split())
PI5 = frozenset("fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp".split())
PI4 = frozenset("fp asimd evtstrm crc32 cpuid".split())
RTX = VulkanDevice("NVIDIA GeForce RTX 3060", "PHYSICAL_DEVICE_TYPE_DISCRETE_GPU", "NVIDIA")
LAVAPIPE = VulkanDevice("llvmpipe (LLVM 15.0.6, 256 bits)", "PHYSICAL_DEVICE_TYPE_CPU", "llvmpipe")


def test_an_arm64_board_gets_an_arm64_build_never_an_x86_one() -> None:
    art, why = choose_artifact(ARTS, HostInfo(os="linux", arch="arm64", cpu_flags=PI4))
    assert (art.arch, art.backend) == ("arm64", "cpu") and why.startswith("CPU")
    art, _ = choose_artifact(ARTS, HostInfo(os="linux", arch="x86_64", cpu_flags=X86_V3))
    assert art.arch == "x86_64"
    art, why = choose_artifact(ARTS, HostInfo(os="linux", arch="arm64", vulkan_devices=(RTX,), cpu_flags=PI5))
    assert (art.arch, art.backend) == ("arm64", "vulkan") and "RTX 3060" in why


def test_arm64_cpu_features_gate_the_one_variant_build() -> None:
    # the ci build needs dotprod + fp16: a Pi 5 (Cortex-A76) runs it, a Pi 4 (Cortex-A72) would die of SIGILL
    assert hostdetect.missing_cpu_features("armv8.2-a+dotprod+fp16: ...", PI5) == []
    assert hostdetect.missing_cpu_features("armv8.2-a+dotprod+fp16: ...", PI4) == ["asimddp", "asimdhp", "fphp"]
    art, _ = choose_artifact(ARTS, HostInfo(os="linux", arch="arm64", cpu_flags=PI5), flavour="ci")
    assert art.flavour == "ci"
    with pytest.raises(ConfigError, match="asimddp"):
        choose_artifact(ARTS, HostInfo(os="linux", arch="arm64", cpu_flags=PI4), flavour="ci")
    # /proc/cpuinfo of arm64 names them `Features`
    assert hostdetect.parse_cpu_flags("processor\t: 0\nFeatures\t: fp asimd asimddp\n") == frozenset({"fp", "asimd", "asimddp"})


def test_windows_gpu_vs_cpu() -> None:
    art, why = choose_artifact(ARTS, HostInfo(os="windows", arch="x86_64", cuda_driver="566.36",
                                              gpus=("NVIDIA GeForce GTX 1080",), cpu_flags=None))
    assert art.backend == "cuda" and "GTX 1080" in why  # a Pascal card on a pre-580 driver: CUDA 12 runs it
    art, why = choose_artifact(ARTS, HostInfo(os="windows", arch="x86_64", cuda_driver="472.12", gpus=("GTX 970",),
                                              vulkan_devices=(RTX,)))
    assert art.backend == "vulkan" and "RTX 3060" in why  # driver 472 < 528.33: not the CUDA 12 build
    art, why = choose_artifact(ARTS, HostInfo(os="windows", arch="x86_64", vulkan_devices=(LAVAPIPE,)))
    assert art.backend == "cpu" and "CPU implementations" in why
    art, _ = choose_artifact(ARTS, HostInfo(os="windows", arch="x86_64"), backend="vulkan")
    assert art.backend == "vulkan"


def test_rocm_and_universal_choices() -> None:
    art, why = choose_artifact(ARTS, HostInfo(os="linux", arch="x86_64", amd_gpus=("gfx1100",), cpu_flags=X86_V3))
    assert art.backend == "rocm" and "gfx1100" in why
    # an NVIDIA GPU and no CUDA-only artifact in this release: the universal one carries the CUDA plugin
    art, why = choose_artifact(ARTS, HostInfo(os="linux", arch="x86_64", cuda_driver="580.95.05", gpus=("L4",),
                                              cpu_flags=X86_V3))
    assert art.backend == "universal" and "plugins" in why
    art, _ = choose_artifact(ARTS, HostInfo(os="linux", arch="x86_64", cpu_flags=X86_V3))
    assert art.backend == "cpu"
    art, _ = choose_artifact(ARTS, HostInfo(os="linux", arch="x86_64", cpu_flags=X86_V3), backend="universal")
    assert art.backend == "universal"
    assert hostdetect.parse_rocminfo("  Name:                    gfx1100\n  Name:  gfx1100\n  Name: gfx1030\n") == ("gfx1100", "gfx1030")


def test_macos_intel_gets_the_intel_build() -> None:
    art, _ = choose_artifact(ARTS, HostInfo(os="macos", arch="x86_64"))
    assert (art.arch, art.backend) == ("x86_64", "cpu")
    art, why = choose_artifact(ARTS, HostInfo(os="macos", arch="arm64"))
    assert art.backend == "metal"


def test_smoke_devices_of_another_architecture_are_never_found() -> None:
    other = "x86_64" if platforms.host_arch() == "arm64" else "arm64"
    for kind in hostdetect.SMOKE_DEVICES:
        assert hostdetect.find_device(kind, arch=other) is None
    with pytest.raises(ConfigError):
        hostdetect.find_device("tpu")


# --- release notes / release.json: what each artifact's smoke proved --------------------------------


def test_proof_levels_of_a_smoke_summary() -> None:
    from locara_build.release.notes import PROOFS, proved, with_proof

    assert proved({"status": "passed", "coverage": "full", "ran_on": "CPU"}) == "full"
    assert proved({"status": "passed", "coverage": "cpu-fallback", "reason": "no GPU"}) == "cpu-fallback"
    assert proved({"status": "skipped", "reason": "needs macOS"}) == "built-only"
    assert proved(None) == proved({"status": "not run"}) == "built-only"
    assert proved({"status": "passed", "coverage": "partial", "reason": "CUDA plugin not exercised"}) == "partial"
    assert with_proof(None) == {"status": "not run", "proved": "built-only"}
    assert set(PROOFS) == {"full", "partial", "cpu-fallback", "built-only", "not built"}


LAVAPIPE_FOUND = "llvmpipe (LLVM 15.0.6, 256 bits) (CPU)"


def test_universal_artifact_smoked_on_vulkan_is_partial_and_names_the_cuda_plugin(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """linux-x86_64-all ships CPU, Vulkan and CUDA plugins; its smoke run computes on one device (the
    log's ``using device``). A pass on Vulkan must not read as "everything was proven": the CUDA
    plugin is named as not run, with why."""
    from locara_build.release.notes import proved, smoke_cell
    from locara_build.smoke import smokeplan

    recipe = load_recipes(Project(REPO), ["linux-x86_64-all"])["linux-x86_64-all"]
    devices: dict[str, str] = {"vulkan": LAVAPIPE_FOUND}
    monkeypatch.setattr(hostdetect, "find_device", lambda kind, arch=None: devices.get(kind))
    vk = "Vulkan0 (llvmpipe (LLVM 15.0.6, 256 bits))"
    note = smokeplan.not_exercised(recipe, vk)
    assert note == "CUDA plugin not exercised (this host has no nvidia-gpu)"

    devices["nvidia-gpu"] = "NVIDIA L4, driver 580.95.05"  # a GPU host whose run still chose Vulkan
    assert smokeplan.not_exercised(recipe, vk) == (
        f"CUDA plugin not exercised (this host has NVIDIA L4, driver 580.95.05, but the server computed on {vk})")
    assert smokeplan.not_exercised(recipe, "CUDA0 (NVIDIA L4)") == (
        "Vulkan plugin not exercised (this host has llvmpipe (LLVM 15.0.6, 256 bits) (CPU), but the server "
        "computed on CUDA0 (NVIDIA L4))")
    # layers split over both GPUs (both `using device` lines in the log): nothing left out
    assert smokeplan.not_exercised(recipe, "CUDA0 (NVIDIA L4)", ("CUDA0", "Vulkan0")) == ""
    del devices["nvidia-gpu"], devices["vulkan"]
    assert smokeplan.not_exercised(recipe, "CPU") == (
        "Vulkan plugin not exercised (this host has no vulkan); CUDA plugin not exercised (this host has no nvidia-gpu)")

    # single-backend artifacts: one GPU backend, nothing else to name
    for name in ("linux-x86_64-vulkan", "linux-x86_64-cuda", "linux-x86_64-cpu"):
        assert smokeplan.not_exercised(load_recipes(Project(REPO), [name])[name], "CPU") == ""
    # the -ci flavour switches CUDA off: a Vulkan pass leaves nothing out
    ci = load_recipes(Project(REPO), ["linux-x86_64-all-ci"])["linux-x86_64-all-ci"]
    assert smokeplan.not_exercised(ci, vk) == ""

    smoke = {"status": "passed", "coverage": "partial", "ran_on": vk, "reason": note}
    assert proved(smoke) == "partial"
    assert smoke_cell({"smoke": smoke}) == f"passed on {vk}; {note}"


def test_notes_list_the_release_recipes_this_host_did_not_build(tmp_path: Path) -> None:
    from locara_build.build.plan import make_plan
    from locara_build.core.workdir import WorkDir
    from locara_build.release.notes import not_built, release_notes
    from locara_build.upstream.lock import Lock

    lock = Lock(source="pypi:llama-cpp-python==0.3.36", ref="latest", channel="build",
                commit="0c1e57098bba43ac29e6e3b677cdceebdd22334f", tag="", commit_date="2026-10-01T02:11:48Z",
                synced_at="2026-10-02T09:00:00Z")
    plan = make_plan(Project(REPO), WorkDir(tmp_path), ["linux-arm64-cpu-ci"], lock=lock)
    from locara_build.pipeline.records import ReleaseArtifact, from_dict

    art = from_dict(ReleaseArtifact, {
        "file": "locara-server-x-linux-arm64-cpu-ci.tar.gz", "name": "locara-server-x", "format": "tar.gz",
        "recipe": "linux-arm64-cpu", "recipe_hash": "0" * 16, "os": "linux", "arch": "arm64", "backend": "cpu",
        "flavour": "release", "size": 1000, "sha256": "0" * 64, "requirements": {}, "signing": "none",
        "smoke": {"status": "passed", "coverage": "full", "ran_on": "CPU"}})
    missing = {m["recipe"]: m for m in not_built(plan, [art])}
    assert "linux-arm64-cpu" not in missing and "linux-arm64-cpu-ci" not in missing  # ci flavours never ship
    assert missing["macos-x86_64-cpu"]["where"] == "its CI runner (macos-15-intel)"
    assert missing["windows-x86_64-cuda"]["where"] == "its CI runner (windows-2022)"
    notes = release_notes(plan, [art], None, None)
    assert "| proved | smoke test |" in notes and "| full | passed on CPU |" in notes
    tail = notes.split("## Not built", 1)[1]
    assert "| windows-x86_64-cuda | windows-x86_64-cuda | its CI runner (windows-2022) |" in tail


def test_vulkan_1_import_library_for_the_windows_cross_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The generated vulkan-1 import library: core commands only (what the loader exports), made by zig's
    dlltool, and readable as a PE import library that names vulkan-1.dll."""
    from locara_build.build.toolchains import vulkan_win, zig

    found = zig.find()
    if found is None:
        pytest.fail("zig (the ziglang wheel) is a dependency of locara-build on Linux")
    monkeypatch.setenv("LOCARA_TOOLCHAINS_DIR", str(tmp_path / "tc"))
    include = Path("/usr/include")
    commands = vulkan_win.core_commands(include / "vulkan" / "vulkan_core.h")
    assert "vkCreateInstance" in commands and "vkQueueSubmit" in commands
    assert "vkCmdPushDescriptorSetKHR" not in commands and "vkCreateSwapchainKHR" not in commands  # extensions
    lib = vulkan_win.provision(include, found.path)
    assert lib == vulkan_win.import_lib(include) and lib.is_file()
    defs = (lib.parent / "vulkan-1.def").read_text()
    assert defs.startswith("LIBRARY vulkan-1.dll\nEXPORTS\n") and defs.count("\n    vk") == len(commands)
    listing = subprocess.run(["nm", str(lib)], capture_output=True, text=True).stdout
    assert re.search(r"\bI __imp_vkCreateInstance$", listing, re.M) and re.search(r"\bT vkCreateInstance$", listing, re.M)
    recipe = load_recipes(Project(REPO), ["windows-x86_64-vulkan"])["windows-x86_64-vulkan"]
    assert platforms.get("windows").plan_cmake_defines(recipe)["Vulkan_LIBRARY"].endswith("libvulkan-1.a")
    assert platforms.get("windows").plan_cmake_defines(load_recipes(Project(REPO), ["windows-x86_64-cpu"])["windows-x86_64-cpu"]) == {}


# --- the arm64 cross toolchain, end to end on a small program (seconds; the llama.cpp build is slow) ---


def test_sysroot_links_are_made_relative(tmp_path: Path) -> None:
    from locara_build.build.toolchains import arm64

    root = tmp_path / "sysroot"
    (root / "lib" / "aarch64-linux-gnu").mkdir(parents=True)
    (root / "usr" / "lib" / "aarch64-linux-gnu").mkdir(parents=True)
    (root / "lib" / "aarch64-linux-gnu" / "libm.so.6").write_bytes(b"\x7fELF")
    link = root / "usr" / "lib" / "aarch64-linux-gnu" / "libm.so"
    link.symlink_to("/lib/aarch64-linux-gnu/libm.so.6")  # Debian's layout: points at the HOST's libm
    (root / "usr" / "lib" / "aarch64-linux-gnu" / "libx.so").symlink_to("libx.so.1")
    assert arm64.make_links_relative(root) == 1
    assert Path(__import__("os").readlink(link)) == Path("../../../lib/aarch64-linux-gnu/libm.so.6")
    assert link.resolve() == (root / "lib" / "aarch64-linux-gnu" / "libm.so.6").resolve()
    assert (root / arm64.RELATIVE_MARK).is_file()


CROSS_MAIN = r"""
#include <cmath>
#include <cstdio>
#include <string>
#include <thread>
#include <openssl/crypto.h>
int main(int argc, char **) {
    int e = 0;
    long double m = std::frexp((long double)(argc * 48.0L), &e);  // libm (the __frexpl trap)
    std::string s = "aarch64 ok " + std::to_string((double)m) + " " + std::to_string(e);
    std::thread t([&] { s += " thread"; });
    t.join();
    std::printf("%s %s\n", s.c_str(), OpenSSL_version(OPENSSL_VERSION));
    return 0;
}
"""


@pytest.mark.skipif(platforms.host_arch() != "x86_64" or shutil.which("qemu-aarch64-static") is None
                    or shutil.which("aarch64-linux-gnu-ld") is None, reason="needs scripts/setup.sh's arm64 tools")
def test_toolchain_file_cross_builds_a_cxx_program_that_runs_under_qemu(tmp_path: Path) -> None:
    """The real toolchain file + the real Debian arm64 sysroot + qemu-user: a C++ program using libstdc++,
    libm, threads and OpenSSL is configured, built and run, as the llama.cpp build and smoke are."""
    import os

    from locara_build.build.toolchains import arm64

    if arm64.find_clang() is None:
        pytest.fail("no clang >= 15 (scripts/setup.sh installs clang-16)")
    sysroot = arm64.provision_sysroot()
    assert not [p for p in sysroot.rglob("*") if p.is_symlink() and os.readlink(p).startswith("/")]
    src = tmp_path / "src"
    src.mkdir()
    (src / "main.cpp").write_text(CROSS_MAIN)
    (src / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.20)\nproject(cross CXX)\nfind_package(OpenSSL REQUIRED)\n"
        "find_package(Threads REQUIRED)\nadd_executable(hello main.cpp)\n"
        "target_link_libraries(hello OpenSSL::Crypto Threads::Threads)\n")
    env = {**os.environ, **arm64.plan_env()}
    cmake = toolchain.probe("cmake").path
    toolfile = REPO / "recipes" / "toolchains" / "clang-aarch64-linux-gnu.cmake"
    conf = subprocess.run([cmake, "-S", str(src), "-B", str(tmp_path / "b"), f"-DCMAKE_TOOLCHAIN_FILE={toolfile}",
                           "-DCMAKE_BUILD_TYPE=Release"], env=env, capture_output=True, text=True, timeout=600)
    assert conf.returncode == 0, conf.stdout[-3000:] + conf.stderr[-3000:]
    assert str(sysroot) in conf.stdout  # OpenSSL found in the sysroot, not the host's
    build = subprocess.run([cmake, "--build", str(tmp_path / "b")], env=env, capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    exe = tmp_path / "b" / "hello"
    assert (exe.read_bytes()[18:20]) == (0xB7).to_bytes(2, "little")  # EM_AARCH64
    run = subprocess.run([*arm64.smoke_emulator(), str(exe)], env={**os.environ, **arm64.smoke_env()},
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("aarch64 ok 0.750000 6 thread OpenSSL 3."), run.stdout
