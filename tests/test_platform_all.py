"""One Linux artifact with every backend as a plugin (`linux-x86_64-all-ci`, backend `universal`), and
the Windows Vulkan cross build, for real (slow: cold builds of 10-40 minutes on 2 cores; numbers in
docs/backends.md).

* `linux-x86_64-all-ci`: ONE build gives libggml-cpu.so and libggml-vulkan.so beside one llama-server;
  the recipe's smoke runs every layer on lavapipe and the server's own log must name `Vulkan0`; a second
  run of the same bin/ without `GGML_VK_VISIBLE_DEVICES` (ggml-vulkan then skips CPU-type devices) must
  compute on the CPU, and its log must say so. The package carries both plugins and no Vulkan loader.
* `windows-x86_64-vulkan`: zig cross build with ggml-vulkan linked in; the .exe imports vulkan-1.dll
  (the driver's) and nothing but system DLLs; under wine it starts and answers.
"""

from __future__ import annotations

import re
import subprocess
import tarfile
from pathlib import Path

import pytest
from support.pipeline import Pipeline, PipelineError, llama_pipeline
from test_backends_slow import slow_root

from locara_build.build import hostdetect
from locara_build.smoke import smoke as smoke_mod

pytestmark = [pytest.mark.slow, pytest.mark.timeout(4 * 3600)]


def _pipeline(recipe: str) -> Pipeline:
    try:
        return llama_pipeline(slow_root(), recipe)
    except PipelineError as exc:
        pytest.fail(str(exc))


def _package(p: Pipeline) -> Path:
    res = p.cli("package", "-r", p.recipe, "--json", timeout=1800)
    assert res.returncode == 0, res.stderr[-4000:]
    found = sorted(p.work.rglob(p.recipe_plan["artifact"]["file"]))
    assert found
    return found[-1]


def test_universal_one_build_every_backend_a_plugin_cpu_and_vulkan_runs() -> None:
    p = _pipeline("linux-x86_64-all-ci")
    names = sorted(f.name for f in p.bin_dir.iterdir())
    assert "libggml-cpu.so" in names and "libggml-vulkan.so" in names and "llama-server" in names
    assert not [n for n in names if n.startswith("libvulkan")]  # the driver's loader never ships
    # the plugins are loaded at run time, not linked: llama-server does not need them
    dyn = subprocess.run(["readelf", "-d", str(p.bin_dir / "llama-server")], capture_output=True, text=True).stdout
    assert "libggml-vulkan" not in dyn and "libggml-cpu" not in dyn

    # the recipe's smoke: every layer on lavapipe, proven by the server's own log
    rec = p.smoke_record
    assert rec["status"] == "passed" and rec["coverage"] == "full", rec
    assert rec["ran_on"].startswith("Vulkan0 (llvmpipe"), rec["ran_on"]
    assert rec["args_file"]["completion"]["tokens"] == 16
    vk_log = Path(rec["server"]["log"]).read_text(errors="replace")
    assert re.search(r"offloaded (\d+)/\1 layers to GPU", vk_log)

    # the same bin/ on the CPU: lavapipe is a CPU-type device that ggml-vulkan skips unless named
    model = next((p.work / "smoke" / "models").glob("*.gguf"))
    log = p.work / "logs" / "universal-cpu-run.log"
    options = smoke_mod.SmokeOptions(args=("-lv", "4"), env={}, ui_dir=smoke_mod.default_ui_dir())
    cpu = smoke_mod.smoke_server(p.bin_dir, model, options=options, log_path=log)
    text = log.read_text(errors="replace")
    assert cpu["completion"]["tokens"] == 16
    assert smoke_mod.ran_on(text) == "CPU", text[-3000:]
    assert "using device Vulkan" not in text
    assert re.search(r"load_backend: loaded (?:Vulkan|CPU) backend", text), text[-3000:]
    print(f"\nuniversal: Vulkan (lavapipe) {rec['server']['completion']['tokens_per_second']} tok/s, "
          f"CPU {cpu['completion']['tokens_per_second']} tok/s; build {p.seconds['build']:.0f}s")

    archive = _package(p)
    with tarfile.open(archive) as tf:
        members = tf.getnames()
    assert any(n.endswith("/bin/libggml-vulkan.so") for n in members)
    assert any(n.endswith("/bin/libggml-cpu.so") for n in members)
    assert not [n for n in members if "libvulkan" in n]
    print(f"package {archive.name}: {archive.stat().st_size / (1 << 20):.1f} MiB")


def test_windows_vulkan_cross_build_imports_only_system_dlls_and_runs_under_wine() -> None:
    p = _pipeline("windows-x86_64-vulkan")
    exe = p.bin_dir / "llama-server.exe"
    imports = subprocess.run(["objdump", "-p", str(exe)], capture_output=True, text=True).stdout
    dlls = sorted({m.lower() for m in re.findall(r"DLL Name:\s*(\S+)", imports)})
    assert "vulkan-1.dll" in dlls, dlls
    from locara_build.build.platforms import windows

    assert all(windows.PLATFORM.system_library(d) for d in dlls), dlls  # nothing to ship beside it
    rec = p.smoke_record
    assert rec["status"] == "passed", rec
    assert rec["server"]["completion"]["tokens"] == 16 and rec["args_file"]["completion"]["tokens"] == 16
    from locara_build.build.toolchains import wine

    if hostdetect.find_device("vulkan") and wine.display_prefix() is not None:
        # wine's Vulkan through xvfb-run reaches lavapipe: every layer on Vulkan0, per the server's log
        assert rec["coverage"] == "full" and rec["ran_on"].startswith("Vulkan0"), rec
        assert "xvfb-run" in rec["server"]["argv"] or rec["server"]["argv"][0] == "wine", rec["server"]["argv"]
    print(f"\nwindows vulkan under wine: ran on {rec['ran_on']}, coverage {rec['coverage']}, "
          f"{rec['server']['completion']['tokens_per_second']} tok/s; build {p.seconds['build']:.0f}s")
    archive = _package(p)
    assert archive.name.endswith(".zip")
