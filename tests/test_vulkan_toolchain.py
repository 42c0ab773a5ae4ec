"""Vulkan: header probing, provisioning of trixie's headers (real apt, cached), device detection."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from locara_build.build import platforms
from locara_build.build.toolchains import probes, vulkan

# `vulkaninfo --summary` on this kind of host (Debian 12, mesa-vulkan-drivers, no GPU), devices part
LAVAPIPE = """\
Devices:
========
GPU0:
\tapiVersion         = 1.3.230
\tdriverVersion      = 0.0.1
\tvendorID           = 0x10005
\tdeviceID           = 0x0000
\tdeviceType         = PHYSICAL_DEVICE_TYPE_CPU
\tdeviceName         = llvmpipe (LLVM 15.0.6, 256 bits)
\tdriverID           = DRIVER_ID_MESA_LLVMPIPE
\tdriverName         = llvmpipe
\tdriverInfo         = Mesa 22.3.6 (LLVM 15.0.6)
\tconformanceVersion = 1.3.1.1
"""
GPU_AND_LAVAPIPE = """\
Devices:
========
GPU0:
\tapiVersion         = 1.4.303
\tdeviceType         = PHYSICAL_DEVICE_TYPE_DISCRETE_GPU
\tdeviceName         = NVIDIA GeForce RTX 4090
\tdriverName         = NVIDIA
GPU1:
\tapiVersion         = 1.3.230
\tdeviceType         = PHYSICAL_DEVICE_TYPE_CPU
\tdeviceName         = llvmpipe (LLVM 15.0.6, 256 bits)
\tdriverName         = llvmpipe
"""


def test_parse_vulkaninfo_lavapipe_only() -> None:
    devs = vulkan.parse_vulkaninfo_summary("Instance Extensions: ...\n" + LAVAPIPE)
    assert [(d.index, d.name, d.is_cpu, d.is_real_gpu) for d in devs] == [(0, "llvmpipe (LLVM 15.0.6, 256 bits)", True, False)]
    real, line = vulkan.describe_devices(devs)
    assert not real and "lavapipe" in line and "GGML_VK_VISIBLE_DEVICES=0" in line


def test_parse_vulkaninfo_real_gpu() -> None:
    devs = vulkan.parse_vulkaninfo_summary(GPU_AND_LAVAPIPE)
    assert [d.is_real_gpu for d in devs] == [True, False]
    real, line = vulkan.describe_devices(devs)
    assert real and "RTX 4090" in line
    assert vulkan.describe_devices(None)[0] is False and vulkan.describe_devices([])[0] is False


def test_host_devices_when_vulkaninfo_exists() -> None:
    if shutil.which("vulkaninfo") is None:
        pytest.skip("vulkaninfo not installed")
    tool = probes.vulkan_device()
    assert tool.name == "vulkan-device"
    if tool.found:
        assert tool.extra["real_gpu"] in ("true", "false")


def test_system_headers_are_probed_not_guessed() -> None:
    core = Path("/usr/include/vulkan/vulkan_core.h")
    if not core.exists():
        pytest.skip("no system Vulkan headers")
    h = vulkan.probe(Path("/usr/include"))
    assert h is not None and h.version.count(".") == 2
    assert h.usable == ("VK_EXT_layer_settings" in core.read_text(errors="replace"))


def test_provision_trixie_headers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Real `apt-get download` of the pinned libvulkan-dev (seconds; cached in the toolchains dir)."""
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        pytest.skip("not a Debian/Ubuntu host")
    if platforms.host_arch() != "x86_64":
        pytest.skip("the pin's sha256 is for amd64")
    headers = vulkan.provision(platforms.host_arch())
    assert headers.usable and headers.source == "provisioned"
    assert headers.version == "1.4.309"
    inc = headers.include_dir
    assert inc == vulkan.provisioned_dir() / "usr" / "include"
    assert "LayerSettingEXT" in (inc / "vulkan" / "vulkan_structs.hpp").read_text()
    assert (vulkan.provisioned_dir() / "PROVENANCE.json").is_file()
    spirv = vulkan.spirv_config_dir(vulkan.provisioned_dir() / "usr")
    assert spirv is not None and (spirv / "SPIRV-HeadersConfig.cmake").is_file()
    assert (inc / "spirv" / "unified1" / "spirv.hpp").is_file()
    # cached: a second call is instant and identical
    assert vulkan.provision(platforms.host_arch()) == headers
    # doctor sees them (and explains) when the system's are too old
    sys_headers = vulkan.probe(Path("/usr/include"))
    if sys_headers is not None and not sys_headers.usable and not __import__("os").environ.get("VULKAN_SDK"):
        monkeypatch.delenv("LOCARA_VULKAN_INCLUDE", raising=False)
        tool = probes.vulkan_headers()
        assert tool is not None and tool.found and tool.version == "1.4.309"
        assert tool.extra["origin"] == "provisioned" and "trixie" in tool.detail and "1.3.239" in tool.detail


def test_operator_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inc = tmp_path / "inc"
    (inc / "vulkan").mkdir(parents=True)
    (inc / "vulkan" / "vulkan_core.h").write_text(
        "#define VK_HEADER_VERSION 296\n#define VK_HEADER_VERSION_COMPLETE VK_MAKE_API_VERSION(0, 1, 3, VK_HEADER_VERSION)\n"
        "#define VK_EXT_layer_settings 1\nstruct VkLayerSettingEXT;\n"
    )
    (inc / "vulkan" / "vulkan.hpp").write_text("struct LayerSettingEXT;\n")
    monkeypatch.setenv("LOCARA_VULKAN_INCLUDE", str(inc))
    chosen = vulkan.select()
    assert chosen is not None and chosen.source == "LOCARA_VULKAN_INCLUDE" and chosen.version == "1.3.296"
    assert vulkan.planned_include_dir("linux") == inc
