"""Backend auto-selection: the real `vulkaninfo` of this host (lavapipe = a CPU device), and stand-in
`nvidia-smi` / `vulkaninfo` programs for GPUs this machine does not have (named stand_in)."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
from support.records_kit import release_artifact

from locara_build.build import hostdetect
from locara_build.build.hostdetect import HostInfo, VulkanDevice, choose_artifact
from locara_build.core.errors import ConfigError

ARTS = [
    release_artifact(os="linux", arch="x86_64", backend="cpu"),
    release_artifact(os="linux", arch="x86_64", backend="vulkan"),
    release_artifact(os="linux", arch="x86_64", backend="cuda", requirements={"min_cuda_driver": "580.65.06"}),
    release_artifact(os="linux", arch="x86_64", flavour="ci", backend="cpu"),
    release_artifact(os="macos", arch="arm64", backend="metal"),
    release_artifact(os="windows", arch="x86_64", backend="cpu"),
]


def _stand_in(bindir: Path, name: str, output: str, rc: int = 0) -> None:
    bindir.mkdir(exist_ok=True)
    script = bindir / name
    script.write_text(f"#!/bin/sh\ncat <<'EOF'\n{output}\nEOF\nexit {rc}\n")
    script.chmod(0o755)


@pytest.mark.skipif(shutil.which("vulkaninfo") is None, reason="needs vulkaninfo (Debian vulkan-tools) to read a real device list")
def test_real_vulkaninfo_lavapipe_is_a_cpu_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # no stand-ins
    host = hostdetect.detect()
    assert host.os == "linux" and host.arch == "x86_64"
    assert host.vulkan_devices, "mesa-vulkan-drivers provide lavapipe here"
    assert all(d.is_cpu for d in host.vulkan_devices)
    art, why = choose_artifact(ARTS, host)
    assert art.backend == "cpu" and art.flavour == "release"
    assert "CPU implementations" in why and "llvmpipe" in why


def test_stand_in_nvidia_smi_driver_new_enough_picks_cuda(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _stand_in(tmp_path / "bin", "nvidia-smi", "580.95.05, NVIDIA H100 80GB HBM3")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    host = hostdetect.detect()
    assert host.cuda_driver == "580.95.05" and host.gpus == ("NVIDIA H100 80GB HBM3",)
    art, why = choose_artifact(ARTS, host)
    assert art.backend == "cuda" and "H100" in why and "580.95.05" in why


def test_stand_in_nvidia_smi_old_driver_falls_back_and_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _stand_in(tmp_path / "bin", "nvidia-smi", "535.129.03, Tesla T4")
    _stand_in(tmp_path / "bin", "vulkaninfo", "Devices:\n========\nGPU0:\n\tdeviceType = PHYSICAL_DEVICE_TYPE_DISCRETE_GPU\n"
              "\tdeviceName = Tesla T4\n\tdriverName = NVIDIA\nGPU1:\n\tdeviceType = PHYSICAL_DEVICE_TYPE_CPU\n"
              "\tdeviceName = llvmpipe (LLVM 15.0.6, 256 bits)\n\tdriverName = llvmpipe")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    host = hostdetect.detect()
    art, why = choose_artifact(ARTS, host)
    assert art.backend == "vulkan" and "Tesla T4" in why and "discrete_gpu" in why
    no_vulkan_art = [a for a in ARTS if a.backend != "vulkan"]
    art, why = choose_artifact(no_vulkan_art, host)
    assert art.backend == "cpu" and "535.129.03 is older than the 580.65.06" in why


def test_stand_in_broken_nvidia_smi_means_no_driver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _stand_in(tmp_path / "bin", "nvidia-smi", "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.", rc=9)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    assert hostdetect.detect().cuda_driver is None


def test_parsers_and_other_hosts() -> None:
    text = ("GPU0:\n\tapiVersion = 1.3.230\n\tdeviceType = PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU\n"
            "\tdeviceName = Intel(R) UHD Graphics 620 (KBL GT2)\n\tdriverName = Intel open-source Mesa driver\n"
            "GPU1:\n\tdeviceType = PHYSICAL_DEVICE_TYPE_OTHER\n\tdeviceName = SwiftShader Device (Subzero)\n")
    devs = hostdetect.parse_vulkaninfo(text)
    assert [d.is_cpu for d in devs] == [False, True]
    assert hostdetect.parse_nvidia_smi("550.54.15, NVIDIA A100\n550.54.15, NVIDIA A100\n") == ("550.54.15", ("NVIDIA A100",) * 2)
    mac = HostInfo(os="macos", arch="arm64")
    assert choose_artifact(ARTS, mac) == (ARTS[4], "Metal: Apple silicon")
    win = HostInfo(os="windows", arch="x86_64", vulkan_devices=(VulkanDevice("lavapipe", "PHYSICAL_DEVICE_TYPE_CPU"),))
    assert choose_artifact(ARTS, win)[0] is ARTS[5]
    assert choose_artifact(ARTS, HostInfo(os="linux", arch="x86_64"), flavour="ci")[0] is ARTS[3]
    with pytest.raises(ConfigError, match="no release artifact for linux/arm64"):
        choose_artifact(ARTS, HostInfo(os="linux", arch="arm64"))
    with pytest.raises(ConfigError, match="unknown backend"):
        choose_artifact(ARTS, mac, backend="tpu")  # rocm and universal are backends now (issue 22)


WIN_V3 = release_artifact(os="windows", arch="x86_64", backend="cpu",
                          requirements={"cpu": "x86-64-v3: AVX2, FMA, F16C (Intel Haswell 2013+, AMD Zen / Excavator and newer)"})
LINUX_V3_VULKAN = dataclasses.replace(ARTS[1], requirements={"cpu": "x86-64-v3"})


def test_real_cpu_flags_of_this_host_and_the_x86_64_levels() -> None:
    flags = hostdetect.detect().cpu_flags
    assert flags is not None and {"sse2", "sse4_2"} <= flags  # this machine's /proc/cpuinfo, an x86-64 CPU
    v2 = frozenset(hostdetect.X86_64_LEVELS[2])
    v3 = v2 | frozenset(hostdetect.X86_64_LEVELS[3])
    assert hostdetect.missing_cpu_features("x86-64-v3: AVX2, FMA", v3) == []
    assert hostdetect.missing_cpu_features("x86-64-v3: AVX2, FMA", v2) == sorted(hostdetect.X86_64_LEVELS[3])
    assert hostdetect.missing_cpu_features("x86-64-v4", v3) == sorted(hostdetect.X86_64_LEVELS[4])
    assert hostdetect.missing_cpu_features("x86-64-v3", None) == []  # unknown (not Linux): not checked
    assert hostdetect.missing_cpu_features("any x86-64 CPU", v2) == []  # names no level
    cpuinfo = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse2 avx2 fma\n\nprocessor\t: 1\nflags\t\t: fpu\n"
    assert hostdetect.parse_cpu_flags(cpuinfo) == frozenset({"fpu", "sse2", "avx2", "fma"})
    assert hostdetect.parse_cpu_flags("Processor\t: ARMv7\n") is None


def test_an_artifact_this_cpu_cannot_run_is_never_chosen() -> None:
    """A pre-Haswell x86-64 CPU (v2 only) and a release whose Windows build needs x86-64-v3: refused
    with what the CPU lacks (exit 2), instead of an install that dies of SIGILL at the first token."""
    old_cpu = frozenset(hostdetect.X86_64_LEVELS[2]) | {"sse2", "avx"}
    win_old = HostInfo(os="windows", arch="x86_64", cpu_flags=old_cpu)
    with pytest.raises(ConfigError, match=r"no artifact of this release runs on this CPU: the cpu build needs x86-64-v3; "
                                          r"this CPU lacks abm, avx2, bmi1, bmi2, f16c, fma, movbe, xsave"):
        choose_artifact([WIN_V3], win_old)
    win_new = HostInfo(os="windows", arch="x86_64", cpu_flags=old_cpu | frozenset(hostdetect.X86_64_LEVELS[3]))
    assert choose_artifact([WIN_V3], win_new)[0] is WIN_V3
    assert choose_artifact([WIN_V3], HostInfo(os="windows", arch="x86_64"))[0] is WIN_V3  # flags unknown
    # auto falls back past an unfit backend and says why; asking for it by name is refused
    gpu = (VulkanDevice("Radeon RX 6600", "PHYSICAL_DEVICE_TYPE_DISCRETE_GPU"),)
    linux_old = HostInfo(os="linux", arch="x86_64", cpu_flags=old_cpu, vulkan_devices=gpu)
    art, why = choose_artifact([ARTS[0], LINUX_V3_VULKAN], linux_old)
    assert art is ARTS[0] and "the vulkan build needs x86-64-v3; this CPU lacks" in why
    with pytest.raises(ConfigError, match="--backend vulkan: the vulkan build needs x86-64-v3"):
        choose_artifact([ARTS[0], LINUX_V3_VULKAN], linux_old, backend="vulkan")


def test_a_named_backend_skips_the_gpu_probes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`install --backend X` never runs nvidia-smi / vulkaninfo (only `auto` needs them); the CPU is still read."""
    marker = tmp_path / "ran"
    for tool in ("nvidia-smi", "vulkaninfo"):
        _stand_in(tmp_path / "bin", tool, "")
        script = tmp_path / "bin" / tool
        script.write_text(f"#!/bin/sh\necho {tool} >> {marker}\n")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    host = hostdetect.detect(gpus=False)
    assert not marker.exists() and host.cuda_driver is None and host.vulkan_devices == ()
    assert host.cpu_flags is not None
    hostdetect.detect()
    assert sorted(marker.read_text().split()) == ["nvidia-smi", "vulkaninfo"]
