"""Real builds of the extra backends, end to end through the CLI: sync -> patches apply -> build ->
smoke -> package. Marked ``slow``: left out of CI (each is a cold 10-40 minute build on 2 cores);
run them by hand::

    pytest -m slow tests/test_backends_slow.py            # all three
    pytest -m slow -k vulkan tests/test_backends_slow.py  # one

They share one persistent work dir (``$LOCARA_SLOW_WORK_DIR``, default ``<test cache>/slow-backends``)
so a second run reuses the finished builds (keyed output dirs) and is quick. Measured numbers are
in docs/backends.md.

* Vulkan (``linux-x86_64-vulkan-ci``): headers provisioned automatically; smoke runs with every
  layer offloaded to lavapipe and the server's own log must name the Vulkan device.
* Windows (``windows-x86_64-cpu``): cross-built with zig; smoke runs the .exe under wine and gets
  a completion; the .exe imports nothing but Windows system DLLs.
* CUDA (``linux-x86_64-cuda-ci``): compiles with nvcc for sm_89; without a GPU the smoke runs on
  the CPU variant the build ships (the CUDA plugin cannot load without the driver), with one on
  CUDA0; the package carries the CUDA plugin and the bundled runtime, never libcuda.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest
from support.llama import test_cache
from support.pipeline import Pipeline, PipelineError, llama_pipeline

pytestmark = [pytest.mark.slow, pytest.mark.timeout(4 * 3600)]


def slow_root() -> Path:
    env = os.environ.get("LOCARA_SLOW_WORK_DIR")
    root = Path(env) if env else test_cache() / "slow-backends"
    root.mkdir(parents=True, exist_ok=True)
    return root


def built_windows_exe() -> Path | None:
    """The llama-server.exe of a finished slow Windows build, if any (used by the Authenticode test)."""
    builds = slow_root() / "work" / "builds" / "windows-x86_64-cpu"
    found = sorted(builds.glob("*/bin/llama-server.exe"), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def _pipeline(recipe: str) -> Pipeline:
    try:
        return llama_pipeline(slow_root(), recipe)
    except PipelineError as exc:
        pytest.fail(str(exc))


def _package(p: Pipeline, *options: str) -> Path | None:
    """`locara-build package` (+ ``options``, e.g. --models, --out) when the packaging stage exists; the archive path."""
    res = p.cli("package", "-r", p.recipe, *options, "--json", timeout=1800)
    if res.returncode == 2 and "No such command" in res.stderr:
        return None
    assert res.returncode == 0, res.stderr[-4000:]
    artifact = Path(json.loads(res.stdout)["packages"][0]["artifact"])
    assert artifact.is_file() and artifact.name == p.recipe_plan["artifact"]["file"], artifact
    return artifact


def _names(archive: Path) -> list[str]:
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive) as zf:
            return zf.namelist()
    with tarfile.open(archive) as tf:
        return tf.getnames()


def _server_log(p: Pipeline) -> str:
    logs = sorted((p.work / "logs").glob(f"smoke-{p.recipe}-*.log"), key=lambda f: f.stat().st_mtime)
    logs = [f for f in logs if not f.name.endswith("-args.log")]
    assert logs, "no smoke log"
    return logs[-1].read_text(errors="replace")


def test_vulkan_build_smoke_package_on_lavapipe() -> None:
    if shutil.which("glslc") is None or shutil.which("vulkaninfo") is None:
        pytest.skip("needs glslc and a Vulkan loader/driver (mesa-vulkan-drivers)")
    p = _pipeline("linux-x86_64-vulkan-ci")
    args = p.recipe_plan["configure_args"]
    sys_hdr = Path("/usr/include/vulkan/vulkan_core.h")
    if sys_hdr.exists() and "VK_EXT_layer_settings" not in sys_hdr.read_text(errors="replace") and not os.environ.get("VULKAN_SDK"):
        assert any(a.startswith("-DVulkan_INCLUDE_DIR=") and "vulkan-headers-" in a for a in args), args
    names = {f.name for f in p.bin_dir.iterdir()}
    assert "libggml-vulkan.so" in names and "llama-server" in names
    assert not any(n.startswith("libvulkan") for n in names)  # the loader comes with the driver
    smoke = p.smoke_record
    assert smoke["status"] == "passed"
    log = _server_log(p)
    from locara_build.build.toolchains import vulkan

    real_gpu, _ = vulkan.describe_devices(vulkan.devices())
    device = r"using device Vulkan0 \(" if real_gpu else r"using device Vulkan0 \(llvmpipe"  # lavapipe here
    assert re.search(device, log), log[-3000:]
    assert re.search(r"offloaded (\d+)/\1 layers to GPU", log)
    print("vulkan:", json.dumps({"seconds": p.seconds, "tokens_per_second": smoke["server"]["completion"]["tokens_per_second"]}))
    archive = _package(p)
    if archive is not None:
        members = _names(archive)
        assert any(m.endswith("bin/libggml-vulkan.so") for m in members)
        assert not any("libvulkan.so" in m for m in members), "the Vulkan loader must not ship"


def test_windows_cross_build_runs_under_wine() -> None:
    if shutil.which("wine") is None and shutil.which("wine64") is None:
        pytest.skip("needs wine")
    p = _pipeline("windows-x86_64-cpu")
    exe = p.bin_dir / "llama-server.exe"
    assert exe.is_file()
    objdump = shutil.which("x86_64-w64-mingw32-objdump") or shutil.which("objdump")
    if objdump:
        out = subprocess.run([objdump, "-p", str(exe)], capture_output=True, text=True, check=True).stdout
        dlls = sorted({m.lower() for m in re.findall(r"DLL Name: (\S+)", out)})
        from locara_build.build.platforms import windows

        assert dlls and all(windows.PLATFORM.system_library(d) for d in dlls), dlls
    smoke = p.smoke_record
    assert smoke["status"] == "passed"
    assert smoke["server"]["completion"]["tokens"] == 16
    print("windows:", json.dumps({"seconds": p.seconds, "tokens_per_second": smoke["server"]["completion"]["tokens_per_second"],
                                  "exe_bytes": exe.stat().st_size}))
    archive = _package(p)
    if archive is not None:
        assert archive.name.endswith(".zip")
        assert any(m.endswith("bin/llama-server.exe") for m in _names(archive))


def test_cuda_compiles_and_packages_with_bundled_runtime() -> None:
    from locara_build.build.toolchains import cuda

    if cuda.find() is None:
        pytest.skip("needs nvcc (CUDA >= 13)")
    p = _pipeline("linux-x86_64-cuda-ci")
    names = {f.name for f in p.bin_dir.iterdir()}
    assert "libggml-cuda.so" in names
    for lib in ("libcudart.so.13", "libcublas.so.13", "libcublasLt.so.13"):
        assert lib in names, names
    assert not any(n.startswith("libcuda.so") for n in names)  # the driver never ships
    if shutil.which("readelf"):
        dyn = subprocess.run(["readelf", "-d", str(p.bin_dir / "libggml-cuda.so")], capture_output=True, text=True).stdout
        assert "[libcuda.so.1]" in dyn and "[libcublas.so.13]" in dyn and "$ORIGIN" in dyn
    smoke = p.smoke_record
    assert smoke["status"] == "passed"
    if smoke["coverage"] == "cpu-fallback":  # no GPU here: the shipped server still serves, on its CPU variant
        assert smoke["ran_on"] == "CPU" and "CUDA kernels not exercised" in smoke["reason"]
        assert "using device CUDA" not in _server_log(p)
    else:  # a GPU host: every layer on CUDA0, from the server's own log
        assert re.search(r"using device CUDA0 \(", _server_log(p))
    print("cuda:", json.dumps({"seconds": p.seconds}))
    archive = _package(p)
    if archive is not None:
        members = _names(archive)
        for lib in ("libggml-cuda.so", "libcudart.so.13", "libcublas.so.13", "libcublasLt.so.13"):
            assert any(m.endswith(f"bin/{lib}") for m in members), lib
