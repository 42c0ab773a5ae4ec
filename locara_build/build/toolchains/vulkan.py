"""Vulkan headers and devices.

ggml-vulkan.cpp uses ``VK_EXT_layer_settings`` (``vk::LayerSettingEXT``), which the Vulkan headers
gained in 1.3.261. Debian 12's ``libvulkan-dev`` is 1.3.239: ggml configures, then fails to compile.
So the headers are *probed* (the extension's name in ``vulkan_core.h`` and ``LayerSettingEXT`` in the
C++ headers), never guessed from a distribution name, and when no usable headers are on the host we
provision a pinned ``libvulkan-dev`` .deb from Debian trixie into ``<toolchains>/`` with an apt
configuration of our own (the system stays bookworm) and pass ``-DVulkan_INCLUDE_DIR=...`` to CMake.
The headers are all that is taken: the program links the system's ``libvulkan.so`` and at run time
loads the user's ``libvulkan.so.1`` (it comes with the driver; we never ship a Vulkan loader).

CI runners install the LunarG SDK instead (``$VULKAN_SDK/include`` is probed first).

Devices: ``vulkaninfo --summary`` tells a real GPU from lavapipe (Mesa's CPU implementation):
``deviceType = PHYSICAL_DEVICE_TYPE_CPU`` and ``driverName = llvmpipe``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from locara_build.build.toolchains._common import (
    ensure_dir,
    provision_lock,
    publish_dir,
    sha256_file,
    staging_dir,
    toolchains_dir,
)
from locara_build.core import run as _run
from locara_build.core.errors import BuildError

__all__ = [
    "PIN",
    "MIN_VERSION",
    "Headers",
    "Device",
    "probe",
    "system_headers",
    "provisioned_dir",
    "planned_include_dir",
    "plan_defines",
    "spirv_config_dir",
    "select",
    "provision",
    "parse_vulkaninfo_summary",
    "devices",
    "describe_devices",
]


@dataclass(frozen=True)
class AptPin:
    """One Debian package from a suite the host does not use, pinned by version and hash."""

    package: str
    version: str
    sha256: dict[str, str]  # Debian architecture ("all" for arch-independent) -> sha256 of the .deb

    @property
    def upstream_version(self) -> str:
        return self.version.split("-")[0]

    def deb_name(self, arch: str) -> str:
        deb_arch = "all" if "all" in self.sha256 else arch
        return f"{self.package}_{self.version.split(':')[-1]}_{deb_arch}.deb"

    def sha256_for(self, arch: str) -> str | None:
        return self.sha256.get("all") or self.sha256.get(arch)


# Bump both together (same Vulkan SDK release): `apt-cache policy libvulkan-dev spirv-headers` with
# the private config (docs/backends.md, "Vulkan"). spirv-headers: ggml-vulkan's CMake needs
# `find_package(SPIRV-Headers CONFIG)`, which Debian 12 does not install by default either.
APT_SOURCE = "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main"
PIN = AptPin(
    package="libvulkan-dev",
    version="1.4.309.0-1",
    sha256={"amd64": "8d329d465e16168afff58b1bd0dd6db46aac2cc3f56054a481b25a04e90b345a"},
)
SPIRV_PIN = AptPin(
    package="spirv-headers",
    version="1.6.1+1.4.309.0-1",
    sha256={"all": "dc18db866d63680351c40ac6b6bece34cb52da64a7799ce1cc4f16f6bff4d064"},
)
PINS = (PIN, SPIRV_PIN)
MIN_VERSION = (1, 3, 261)  # the first headers with VK_EXT_layer_settings
_DEB_ARCH = {"x86_64": "amd64", "arm64": "arm64"}


@dataclass(frozen=True)
class Headers:
    include_dir: Path
    version: str  # "1.4.309"
    layer_settings: bool  # VK_EXT_layer_settings in the C and C++ headers
    cpp: bool  # vulkan.hpp present (ggml-vulkan is C++)
    source: str  # "LOCARA_VULKAN_INCLUDE" | "sdk" ($VULKAN_SDK) | "system" | "provisioned"

    @property
    def usable(self) -> bool:
        return self.layer_settings and self.cpp

    def why_not(self) -> str:
        if not self.cpp:
            return f"{self.include_dir}/vulkan/vulkan.hpp is missing (ggml-vulkan needs the C++ headers)"
        if not self.layer_settings:
            return (
                f"Vulkan headers {self.version} in {self.include_dir} lack VK_EXT_layer_settings "
                f"(vk::LayerSettingEXT, headers >= {'.'.join(map(str, MIN_VERSION))}): ggml-vulkan.cpp would not compile"
            )
        return ""


_HEADER_VERSION = re.compile(r"^#define\s+VK_HEADER_VERSION\s+(\d+)\s*$", re.M)
_HEADER_COMPLETE = re.compile(r"^#define\s+VK_HEADER_VERSION_COMPLETE\s+VK_MAKE_API_VERSION\(\s*0\s*,\s*(\d+)\s*,\s*(\d+)\s*,", re.M)


def probe(include_dir: Path, source: str = "system") -> Headers | None:
    """Read the headers under ``include_dir`` (which holds ``vulkan/``); None when there are none."""
    core = include_dir / "vulkan" / "vulkan_core.h"
    try:
        text = core.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    patch = _HEADER_VERSION.search(text)
    complete = _HEADER_COMPLETE.search(text)
    version = (
        f"{complete.group(1)}.{complete.group(2)}.{patch.group(1)}" if complete and patch else (patch.group(1) if patch else "?")
    )
    c_has = "VK_EXT_layer_settings" in text and "VkLayerSettingEXT" in text
    hpp_files = sorted((include_dir / "vulkan").glob("vulkan*.hpp"))
    cpp = (include_dir / "vulkan" / "vulkan.hpp").is_file()
    cpp_has = any("LayerSettingEXT" in p.read_text(encoding="utf-8", errors="replace") for p in hpp_files)
    return Headers(include_dir=include_dir, version=version, layer_settings=c_has and cpp_has, cpp=cpp, source=source)


def system_headers() -> list[Headers]:
    """Headers found where CMake's FindVulkan looks (``$VULKAN_SDK/include``, then the system), after
    ``$LOCARA_VULKAN_INCLUDE`` when an operator points at headers of their own."""
    found: list[Headers] = []
    sdk = os.environ.get("VULKAN_SDK")
    candidates: list[tuple[Path, str]] = []
    forced = os.environ.get("LOCARA_VULKAN_INCLUDE")  # an operator's own unpacked headers
    if forced:
        candidates.append((Path(forced), "LOCARA_VULKAN_INCLUDE"))
    if sdk:
        candidates.append((Path(sdk) / "include", "sdk"))
    candidates += [(Path("/usr/include"), "system"), (Path("/usr/local/include"), "system")]
    for path, source in candidates:
        headers = probe(path, source)
        if headers is not None:
            found.append(headers)
    return found


def provisioned_dir() -> Path:
    return toolchains_dir() / f"vulkan-headers-{PIN.upstream_version}"


def _provisioned_include() -> Path:
    return provisioned_dir() / "usr" / "include"


def spirv_config_dir(prefix: Path) -> Path | None:
    """The folder holding ``SPIRV-HeadersConfig.cmake`` under ``prefix`` (ggml-vulkan's CMake does
    ``find_package(SPIRV-Headers CONFIG REQUIRED)``), or None."""
    for pattern in ("share/cmake/SPIRV-Headers", "lib/cmake/SPIRV-Headers", "lib/*/cmake/SPIRV-Headers", "lib64/cmake/SPIRV-Headers"):
        for d in sorted(prefix.glob(pattern)):
            if (d / "SPIRV-HeadersConfig.cmake").is_file():
                return d
    return None


def _spirv_for(headers: Headers) -> Path | None:
    prefixes = [headers.include_dir.parent]
    if headers.source == "system":
        prefixes += [Path("/usr"), Path("/usr/local")]
    return next((d for d in (spirv_config_dir(p) for p in prefixes) if d is not None), None)


def select() -> Headers | None:
    """The headers a Vulkan build uses: usable SDK/system headers (with SPIRV-Headers beside them),
    else the provisioned ones (None: none yet)."""
    for headers in system_headers():
        if headers.usable and (headers.source == "LOCARA_VULKAN_INCLUDE" or _spirv_for(headers) is not None):
            return headers
    provisioned = probe(_provisioned_include(), "provisioned")
    if provisioned is not None and provisioned.usable and spirv_config_dir(provisioned_dir() / "usr") is not None:
        return provisioned
    return None


def planned_include_dir(host_os: str) -> Path | None:
    """What ``Vulkan_INCLUDE_DIR`` the plan passes: None when FindVulkan's own choice is usable
    (SDK or system headers new enough, or a host we do not provision on), else the provisioned
    include dir (``build`` provisions it first, see :func:`provision`)."""
    chosen = select()
    if chosen is not None:
        return chosen.include_dir if chosen.source in ("provisioned", "LOCARA_VULKAN_INCLUDE") else None
    if host_os != "linux":
        return None  # Windows/macOS runners: the LunarG SDK ($VULKAN_SDK), found by FindVulkan
    return _provisioned_include()


def plan_defines(host_os: str) -> dict[str, str]:
    """CMake entries for a Vulkan build on this host: ``Vulkan_INCLUDE_DIR`` and ``SPIRV-Headers_DIR``
    of the provisioned (or operator's) headers; nothing when the SDK / system ones are usable."""
    include = planned_include_dir(host_os)
    if include is None:
        return {}
    out = {"Vulkan_INCLUDE_DIR": str(include)}
    if include == _provisioned_include():
        out["SPIRV-Headers_DIR"] = str(provisioned_dir() / "usr" / "share" / "cmake" / "SPIRV-Headers")
    else:
        spirv = spirv_config_dir(include.parent)
        if spirv is not None:
            out["SPIRV-Headers_DIR"] = str(spirv)
    return out


def _apt_options(root: Path) -> list[str]:
    return [
        "-o", f"Dir::Etc::SourceList={root / 'sources.list'}",
        "-o", "Dir::Etc::SourceParts=/dev/null",
        "-o", f"Dir::State::Lists={root / 'lists'}",
        "-o", f"Dir::Cache={root / 'cache'}",
        "-o", "APT::Sandbox::User=root",
        "-o", "Debug::NoLocking=1",
    ]


def provision(host_arch: str = "x86_64") -> Headers:
    """Fetch and unpack the pinned headers into ``<toolchains>/vulkan-headers-<ver>/`` (cached).

    Only the .deb is downloaded (``apt-get download``; apt checks it against the suite's signed
    index) and its sha256 is compared with the pin; nothing is installed on the system.
    """
    final = provisioned_dir()
    headers = probe(final / "usr" / "include", "provisioned")
    if headers is not None and headers.usable and spirv_config_dir(final / "usr") is not None:
        return headers
    for tool in ("apt-get", "dpkg-deb"):
        if _run.which(tool) is None:
            raise BuildError(
                f"the Vulkan headers on this host are too old or missing, and `{tool}` is not available to "
                f"provision {PIN.package} {PIN.version} from Debian trixie.",
                hint="Install the LunarG Vulkan SDK (>= 1.3.261) and set VULKAN_SDK, or install newer "
                "Vulkan headers (libvulkan-dev / vulkan-headers) from your distribution.",
            )
    with provision_lock():
        headers = probe(final / "usr" / "include", "provisioned")
        if headers is not None and headers.usable and spirv_config_dir(final / "usr") is not None:
            return headers
        apt_root = ensure_dir(toolchains_dir() / "apt-trixie")
        (apt_root / "lists" / "partial").mkdir(parents=True, exist_ok=True)
        (apt_root / "cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
        (apt_root / "sources.list").write_text(APT_SOURCE + "\n", encoding="utf-8")
        downloads = ensure_dir(apt_root / "debs")
        arch = _DEB_ARCH.get(host_arch, host_arch)
        debs = [(pin, downloads / pin.deb_name(arch), pin.sha256_for(arch)) for pin in PINS]
        for _pin, deb, want in debs:
            if deb.exists() and want and sha256_file(deb) != want:
                deb.unlink()
        missing = [pin for pin, deb, _want in debs if not deb.exists()]
        if missing:
            opts = _apt_options(apt_root)
            hint = (
                "Check that deb.debian.org is reachable (or your apt proxy). If trixie has moved on "
                "from the pinned versions, bump PIN/SPIRV_PIN in locara_build/build/toolchains/vulkan.py "
                "(docs/backends.md). Or install the LunarG SDK and set VULKAN_SDK."
            )
            _run.run(["apt-get", *opts, "update"], error=BuildError, what="apt-get update (trixie)", hint=hint, timeout=300)
            _run.run(
                ["apt-get", *opts, "download", *(f"{pin.package}={pin.version}" for pin in missing)],
                cwd=downloads,
                error=BuildError,
                what="apt-get download " + " ".join(pin.package for pin in missing),
                hint=hint,
                timeout=300,
            )
        provenance = []
        for pin, deb, want in debs:
            got = sha256_file(deb)
            if want and got != want:
                raise BuildError(
                    f"{deb} has sha256 {got}, not the pinned {want}.",
                    hint="Delete it and run again; if Debian republished the package, review and bump the pin.",
                )
            provenance.append({"package": pin.package, "version": pin.version, "deb": deb.name, "sha256": got})
        staging = staging_dir(final)
        for _pin, deb, _want in debs:
            _run.run(["dpkg-deb", "-x", str(deb), str(staging)], error=BuildError, what="dpkg-deb -x")
        headers = probe(staging / "usr" / "include", "provisioned")
        if headers is None or not headers.usable or spirv_config_dir(staging / "usr") is None:
            shutil.rmtree(staging, ignore_errors=True)
            raise BuildError(
                f"{PIN.package} {PIN.version} + {SPIRV_PIN.package} {SPIRV_PIN.version} unpacked, but they are not "
                f"usable: {headers.why_not() if headers and not headers.usable else 'vulkan_core.h or SPIRV-HeadersConfig.cmake missing'}.",
                hint="Pin newer packages in locara_build/build/toolchains/vulkan.py.",
            )
        (staging / "PROVENANCE.json").write_text(
            json.dumps({"apt_source": APT_SOURCE, "packages": provenance}, indent=2, sort_keys=True) + "\n",
            encoding="utf-8",
        )
        if final.exists():  # an older, incomplete provisioning (e.g. before SPIRV-Headers was pinned)
            shutil.rmtree(final)
        publish_dir(staging, final)
    result = probe(final / "usr" / "include", "provisioned")
    assert result is not None
    return result


# --- devices ------------------------------------------------------------------------------------

REAL_GPU_TYPES = frozenset(
    {"PHYSICAL_DEVICE_TYPE_DISCRETE_GPU", "PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU", "PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU"}
)


@dataclass(frozen=True)
class Device:
    index: int
    name: str
    type: str  # PHYSICAL_DEVICE_TYPE_*
    driver: str  # driverName (llvmpipe, NVIDIA, radv, ...)
    api_version: str

    @property
    def is_cpu(self) -> bool:
        """lavapipe / SwiftShader: a Vulkan device that computes on the CPU."""
        return self.type == "PHYSICAL_DEVICE_TYPE_CPU" or self.driver == "llvmpipe" or self.name.startswith("llvmpipe")

    @property
    def is_real_gpu(self) -> bool:
        return not self.is_cpu and self.type in REAL_GPU_TYPES

    def to_dict(self) -> dict[str, object]:
        return {
            "index": self.index,
            "name": self.name,
            "type": self.type,
            "driver": self.driver,
            "api_version": self.api_version,
            "cpu": self.is_cpu,
            "real_gpu": self.is_real_gpu,
        }


_GPU_HEADER = re.compile(r"^GPU(\d+):\s*$")
_FIELD = re.compile(r"^\s+(\w+)\s*=\s*(.*?)\s*$")


def parse_vulkaninfo_summary(text: str) -> list[Device]:
    """Devices from ``vulkaninfo --summary`` (its ``Devices:`` section)."""
    out: list[Device] = []
    fields: dict[str, str] = {}
    index: int | None = None

    def flush() -> None:
        if index is not None:
            out.append(
                Device(
                    index=index,
                    name=fields.get("deviceName", "?"),
                    type=fields.get("deviceType", "?"),
                    driver=fields.get("driverName", ""),
                    api_version=fields.get("apiVersion", ""),
                )
            )

    in_devices = False
    for line in text.splitlines():
        if line.strip() == "Devices:":
            in_devices = True
            continue
        if not in_devices:
            continue
        header = _GPU_HEADER.match(line)
        if header:
            flush()
            index = int(header.group(1))
            fields = {}
            continue
        m = _FIELD.match(line)
        if m and index is not None:
            fields[m.group(1)] = m.group(2)
    flush()
    return out


def devices(timeout: float = 60) -> list[Device] | None:
    """Vulkan devices on this host (None when ``vulkaninfo`` is missing or fails: no loader/driver)."""
    exe = _run.which("vulkaninfo")
    if exe is None:
        return None
    result = _run.run([exe, "--summary"], check=False, timeout=timeout, echo=False, env={"DISPLAY": ""})
    if not result.ok:
        return None
    return parse_vulkaninfo_summary(result.stdout)


def describe_devices(found: Sequence[Device] | None) -> tuple[bool, str]:
    """(has a real GPU, one line for people)."""
    if found is None:
        return False, "no Vulkan loader/driver (vulkaninfo missing or failed): Vulkan builds cannot be smoke-tested"
    if not found:
        return False, "Vulkan loader present but no device"
    names = "; ".join(f"{d.index}: {d.name} ({d.type.removeprefix('PHYSICAL_DEVICE_TYPE_')})" for d in found)
    if any(d.is_real_gpu for d in found):
        return True, f"real Vulkan GPU: {names}"
    return False, (
        f"only a CPU Vulkan device (lavapipe): {names}; smoke tests run on it with GGML_VK_VISIBLE_DEVICES=0, "
        "speed says nothing about a GPU"
    )
