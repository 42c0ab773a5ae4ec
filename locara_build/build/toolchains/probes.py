"""``doctor`` probes for the extra toolchains, as :class:`locara_build.build.toolchain.Tool` objects.

:mod:`locara_build.build.toolchain` registers these in its ``TOOLS`` table, so ``doctor``, ``build``'s
requirement check and the backends' ``host_setup`` all see the same answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import locara_build.build.platforms.host as platforms

if TYPE_CHECKING:
    from locara_build.build.tooltypes import Tool

__all__ = ["vulkan_headers", "vulkan_device", "cublas"]

_VK_FIX = (
    "nothing on Debian/Ubuntu with apt: `build` provisions trixie's libvulkan-dev headers itself; "
    "elsewhere install the LunarG Vulkan SDK (>= 1.3.261) and set VULKAN_SDK, or set "
    "LOCARA_VULKAN_INCLUDE=<dir holding vulkan/vulkan.hpp>"
)


def vulkan_headers() -> Tool | None:
    """Headers ggml-vulkan can use: SDK/system ones that have VK_EXT_layer_settings, else the
    provisioned (or, on Linux, to-be-provisioned) trixie headers. None: nothing usable and nothing
    to provision here (the caller then reports what it finds, e.g. a too-old system version)."""
    from locara_build.build.toolchains import vulkan
    from locara_build.build.tooltypes import Tool

    chosen = vulkan.select()
    too_old = [h for h in vulkan.system_headers() if not h.usable]
    why_old = "; ".join(h.why_not() for h in too_old)
    if chosen is not None:
        origin = chosen.source
        detail = f"Vulkan headers {chosen.version} ({origin}, has VK_EXT_layer_settings)"
        if origin == "provisioned":
            detail = (
                f"Vulkan headers {chosen.version} provisioned from Debian trixie ({vulkan.PIN.package} "
                f"{vulkan.PIN.version} + {vulkan.SPIRV_PIN.package} {vulkan.SPIRV_PIN.version}), passed as "
                "-DVulkan_INCLUDE_DIR / -DSPIRV-Headers_DIR" + (f"; {why_old}" if why_old else "")
            )
        return Tool("vulkan-headers", True, chosen.version, str(chosen.include_dir), detail, _VK_FIX, {"origin": origin})
    planned = vulkan.planned_include_dir(platforms.host_os())
    if planned is not None:
        version = ".".join(vulkan.PIN.upstream_version.split(".")[:3])
        return Tool(
            "vulkan-headers",
            True,
            version,
            str(planned),
            f"{why_old or 'no usable Vulkan headers + SPIRV-Headers on this host'}; `build` provisions "
            f"{vulkan.PIN.package} {vulkan.PIN.version} + {vulkan.SPIRV_PIN.package} {vulkan.SPIRV_PIN.version} "
            f"from Debian trixie into {planned.parent.parent} (seconds, once) and passes -DVulkan_INCLUDE_DIR",
            _VK_FIX,
            {"origin": "provisioned", "provisioned": "false"},
        )
    return None


def vulkan_device() -> Tool:
    """Is there a real Vulkan GPU here, or only lavapipe (a CPU device)?"""
    from locara_build.build.toolchains import vulkan
    from locara_build.build.tooltypes import Tool

    found = vulkan.devices()
    real, line = vulkan.describe_devices(found)
    fix = "apt-get install mesa-vulkan-drivers vulkan-tools (lavapipe: Vulkan on the CPU, for smoke tests)"
    if not found:
        return Tool("vulkan-device", False, None, None, line, fix)
    names = "; ".join(d.name for d in found)
    return Tool(
        "vulkan-device",
        True,
        found[0].api_version or None,
        None,
        line,
        fix,
        {"real_gpu": str(real).lower(), "devices": names, "types": ",".join(d.type for d in found)},
    )


def cublas() -> Tool:
    from locara_build.build.toolchains import cuda
    from locara_build.build.tooltypes import Tool

    fix = "nothing: `build` fetches the pinned nvidia-cublas wheel from PyPI; or install the toolkit's cuBLAS"
    tk = cuda.find()
    if tk is None:
        return Tool("cublas", False, None, None, "no CUDA toolkit (nvcc) found", fix)
    for finding in cuda.findings():
        if finding.name.startswith("cublas"):
            return Tool("cublas", finding.ok, finding.version or None, finding.path or None, finding.detail, fix)
    return Tool("cublas", False, None, None, "unknown", fix)
