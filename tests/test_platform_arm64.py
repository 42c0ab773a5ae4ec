"""Linux arm64, for real: cross-built on this x86-64 host with clang against a Debian arm64 sysroot,
then smoke-tested under qemu-user with the tiny model (a real completion, chat, the UI, and a start
with no arguments from ``llama-server.args``), then packaged. Through the CLI, as users run it:
sync -> patches apply -> build -> smoke -> package.

* ``linux-arm64-cpu-ci`` (one CPU variant, ARMv8.2-A + dotprod + fp16);
* ``linux-arm64-cpu`` (the release: all 8 arm64 CPU variants as plugins; the server's log must
  show which one llama.cpp loaded under qemu's ``max`` CPU).

Both are cold builds of 15-60 minutes on 2 shared cores (docs/backends.md has the numbers), so they
are marked ``slow``. They share the persistent work dir of tests/test_backends_slow.py
(``$LOCARA_SLOW_WORK_DIR``): a second run reuses the finished builds.

Needs: clang >= 15, binutils-aarch64-linux-gnu, qemu-user-static, dpkg-deb + apt-get (the sysroot
is unpacked from deb.debian.org). scripts/setup.sh installs them.
"""

from __future__ import annotations

import json
import re
import subprocess
import tarfile
from pathlib import Path

import pytest
from support.pipeline import Pipeline, PipelineError, llama_pipeline
from test_backends_slow import slow_root

from locara_build.build import platforms

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(4 * 3600),
    pytest.mark.skipif(platforms.host_os() != "linux" or platforms.host_arch() != "x86_64",
                       reason="the cross case: an x86-64 Linux host"),
]

EM_AARCH64 = 0xB7


def _pipeline(recipe: str) -> Pipeline:
    try:
        return llama_pipeline(slow_root(), recipe)
    except PipelineError as exc:
        pytest.fail(str(exc))


def _machine(data: bytes) -> int | None:
    if data[:4] != b"\x7fELF":
        return None
    return int.from_bytes(data[18:20], "little")


def _package(p: Pipeline) -> Path:
    res = p.cli("package", "-r", p.recipe, "--json", timeout=1800)
    assert res.returncode == 0, res.stderr[-4000:]
    artifact = p.recipe_plan["artifact"]["file"]
    found = sorted(p.work.rglob(artifact))
    assert found, f"no {artifact} under {p.work}"
    return found[-1]


def _check_arm64_pipeline(p: Pipeline) -> tuple[dict, str]:
    # every shipped binary is an aarch64 ELF
    for f in p.bin_dir.iterdir():
        if f.is_file() and not f.is_symlink():
            assert _machine(f.read_bytes()[:20]) == EM_AARCH64, f
    header = subprocess.run(["readelf", "-h", str(p.bin_dir / "llama-server")], capture_output=True, text=True).stdout
    assert "AArch64" in header
    # linked against the sysroot's glibc / libstdc++ / OpenSSL, found beside it at run time ($ORIGIN)
    dyn = subprocess.run(["readelf", "-d", str(p.bin_dir / "llama-server")], capture_output=True, text=True).stdout
    assert "libssl.so.3" in dyn and "[$ORIGIN]" in dyn
    assert p.plan["recipes"][0]["env"]["LOCARA_AARCH64_SYSROOT"].endswith("sysroot-debian-bookworm-arm64")

    smoke = p.smoke_record
    assert smoke["status"] == "passed" and smoke["coverage"] == "full", smoke
    server = smoke["server"]
    assert Path(server["argv"][0]).name.startswith("qemu-aarch64")  # ran under qemu-user, not natively
    assert server["completion"]["tokens"] == 16 and server["completion"]["tokens_per_second"] > 0
    assert server["chat"]["completion_tokens"] > 0
    assert server["ui"]["checked"] is True
    assert smoke["args_file"]["completion"]["tokens"] == 16  # started with NO arguments, from llama-server.args
    assert Path(smoke["args_file"]["model_path"]).name.endswith(".gguf")
    log = Path(server["log"]).read_text(errors="replace")
    assert "model loaded" in log and "eval time" in log, log[-3000:]
    print(f"\n{p.recipe}: build {p.seconds['build']:.0f}s, smoke {p.seconds['smoke']:.0f}s under qemu, "
          f"{server['completion']['tokens_per_second']} tokens/s")
    return smoke, log


def _check_package(p: Pipeline) -> Path:
    archive = _package(p)
    with tarfile.open(archive) as tf:
        members = {m.name: m for m in tf.getmembers()}
        names = list(members)
        assert any(n.endswith("/bin/llama-server") for n in names)
        assert any(n.endswith("/run.sh") for n in names)
        for m in tf.getmembers():
            if m.isfile():
                data = tf.extractfile(m).read(20)  # type: ignore[union-attr]
                machine = _machine(data)
                assert machine in (None, EM_AARCH64), (m.name, machine)  # nothing of the build host ships
        buildinfo = json.loads(tf.extractfile(next(n for n in names if n.endswith("BUILDINFO.json"))).read())  # type: ignore[union-attr]
    req = buildinfo["requirements"]
    assert req["glibc"].startswith(">= ") and req["libstdc++"].startswith("GLIBCXX >= ")  # read from the aarch64 ELFs
    assert req["system_libraries"]["libssl.so.3"].startswith("OpenSSL 3")
    print(f"package {archive.name}: {archive.stat().st_size / (1 << 20):.1f} MiB")
    return archive


def test_arm64_ci_cross_build_runs_under_qemu_and_packages() -> None:
    p = _pipeline("linux-arm64-cpu-ci")
    _check_arm64_pipeline(p)
    names = sorted(f.name for f in p.bin_dir.iterdir())
    assert "libggml-cpu.so" in names and not [n for n in names if n.startswith("libggml-cpu-")]
    _check_package(p)


def test_arm64_release_loads_the_best_cpu_variant_under_qemu() -> None:
    p = _pipeline("linux-arm64-cpu")
    names = sorted(f.name for f in p.bin_dir.iterdir())
    variants = sorted(n for n in names if n.startswith("libggml-cpu-"))
    assert variants == [f"libggml-cpu-{v}.so" for v in (
        "armv8.0_1", "armv8.2_1", "armv8.2_2", "armv8.2_3", "armv8.6_1", "armv8.6_2", "armv9.2_1", "armv9.2_2")], variants
    _, log = _check_arm64_pipeline(p)
    loaded = re.findall(r"loaded CPU backend from \S*?(libggml-cpu-[\w.]+\.so)", log)
    assert loaded, log[-3000:]
    print(f"qemu-aarch64 (cpu max) made llama.cpp load {loaded[0]}")
    _check_package(p)
