"""What this machine can run: OS, CPU architecture, NVIDIA driver, Vulkan devices, Apple silicon.

``install --backend auto`` picks, among the release's artifacts for this OS/arch, the first that fits
this host, trying them in the order of the backends' ``auto_rank`` (:mod:`locara_build.build.backends`):

1. ``cuda`` when ``nvidia-smi`` reports a driver at least the artifact's ``min_cuda_driver``
   (Linux and Windows alike: ``nvidia-smi.exe`` comes with the Windows driver);
2. ``rocm`` when ``rocminfo`` lists an AMD GPU agent (``gfx...``);
3. ``vulkan`` when ``vulkaninfo --summary`` lists a device that is not a CPU implementation
   (``deviceType = PHYSICAL_DEVICE_TYPE_CPU``, or named llvmpipe / lavapipe / SwiftShader: those
   run on the CPU and are slower than the CPU backend itself);
4. ``metal`` on macOS / arm64 (Apple silicon);
5. ``universal`` (every backend as a plugin) when a GPU was found but no artifact of its own backend fits;
6. ``cpu`` otherwise (``universal`` when the release has no CPU artifact for this OS/arch).

Only artifacts of this OS *and* CPU architecture are candidates (an arm64 board never gets an
x86-64 build), and none whose ``requirements.cpu`` this CPU lacks: x86-64 levels
(``x86-64-v3: ...``) against /proc/cpuinfo's ``flags``, arm64 ones (``armv8.2-a+dotprod+fp16: ...``)
against its ``Features``.

Every decision carries a one-line reason the installer prints. Detection programs are run through
:func:`locara_build.core.run.run` with a short timeout; a missing or failing program means "not present".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from locara_build.build import backends
from locara_build.build.platforms import host as platforms
from locara_build.core.errors import ConfigError, LocaraError
from locara_build.core.run import run, which

if TYPE_CHECKING:  # the artifacts are release.json's typed entries (pipeline/records.py)
    from locara_build.pipeline.records import ReleaseArtifact

__all__ = [
    "VulkanDevice",
    "HostInfo",
    "detect",
    "parse_nvidia_smi",
    "parse_vulkaninfo",
    "choose_artifact",
    "BACKENDS",
    "parse_cpu_flags",
    "missing_cpu_features",
    "SMOKE_DEVICES",
    "find_device",
]

BACKENDS = ("auto", "cpu", "vulkan", "cuda", "metal", "rocm", "universal")
CPU_VULKAN_NAMES = re.compile(r"llvmpipe|lavapipe|swiftshader|softpipe", re.I)
_TIMEOUT = 15.0


@dataclass(frozen=True)
class VulkanDevice:
    name: str
    device_type: str  # PHYSICAL_DEVICE_TYPE_DISCRETE_GPU | _INTEGRATED_GPU | _VIRTUAL_GPU | _CPU | _OTHER
    driver: str = ""

    @property
    def is_cpu(self) -> bool:
        return self.device_type.endswith("_CPU") or bool(CPU_VULKAN_NAMES.search(self.name + " " + self.driver))


@dataclass(frozen=True)
class HostInfo:
    os: str
    arch: str
    cuda_driver: str | None = None  # e.g. "535.129.03"; None without a working nvidia-smi
    gpus: tuple[str, ...] = ()
    vulkan_devices: tuple[VulkanDevice, ...] = field(default=())
    cpu_flags: frozenset[str] | None = None  # /proc/cpuinfo's flags; None where not known (then not checked)
    amd_gpus: tuple[str, ...] = ()  # rocminfo's GPU agents (gfx1100, ...)

    @property
    def apple_silicon(self) -> bool:
        return self.os == "macos" and self.arch == "arm64"

    @property
    def vulkan_gpus(self) -> tuple[VulkanDevice, ...]:
        return tuple(d for d in self.vulkan_devices if not d.is_cpu)

    def to_dict(self) -> dict[str, Any]:
        return {
            "os": self.os,
            "arch": self.arch,
            "cuda_driver": self.cuda_driver,
            "gpus": list(self.gpus),
            "vulkan_devices": [{"name": d.name, "type": d.device_type, "cpu": d.is_cpu} for d in self.vulkan_devices],
            "cpu_flags_known": self.cpu_flags is not None,
            "amd_gpus": list(self.amd_gpus),
        }


def parse_nvidia_smi(text: str) -> tuple[str | None, tuple[str, ...]]:
    """Output of ``nvidia-smi --query-gpu=driver_version,name --format=csv,noheader``."""
    driver, names = None, []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",", 1)]
        if len(parts) == 2 and re.fullmatch(r"\d+(\.\d+)*", parts[0]):
            driver = driver or parts[0]
            names.append(parts[1])
    return driver, tuple(names)


def parse_vulkaninfo(text: str) -> tuple[VulkanDevice, ...]:
    """Devices from ``vulkaninfo --summary`` (the ``GPUn:`` blocks)."""
    devices = []
    current: dict[str, str] | None = None
    for line in text.splitlines():
        if re.match(r"^GPU\d+:\s*$", line.strip()):
            if current is not None:
                devices.append(current)
            current = {}
            continue
        if current is not None:
            m = re.match(r"^\s+(\w+)\s*=\s*(.*)$", line)
            if m:
                current[m[1]] = m[2].strip()
            elif line.strip() and not line.startswith((" ", "\t")):
                devices.append(current)
                current = None
    if current is not None:
        devices.append(current)
    return tuple(
        VulkanDevice(d.get("deviceName", "?"), d.get("deviceType", "PHYSICAL_DEVICE_TYPE_OTHER"), d.get("driverName", ""))
        for d in devices
        if d
    )


# The x86-64 micro-architecture levels (x86-64 psABI), as /proc/cpuinfo names the features.
# A level includes the ones below it.
X86_64_LEVELS: dict[int, tuple[str, ...]] = {
    2: ("cx16", "lahf_lm", "popcnt", "sse4_1", "sse4_2", "ssse3"),
    3: ("abm", "avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "movbe", "xsave"),
    4: ("avx512bw", "avx512cd", "avx512dq", "avx512f", "avx512vl"),
}
_LEVEL = re.compile(r"^\s*x86-64-v([234])\b")


def parse_cpu_flags(cpuinfo: str) -> frozenset[str] | None:
    """The feature flags of the first processor in /proc/cpuinfo (x86: ``flags``, arm64:
    ``Features``), None if absent."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return None


# arm64 -march extensions as the kernel's /proc/cpuinfo ``Features`` names them (HWCAP names).
ARM64_FEATURES: dict[str, tuple[str, ...]] = {
    "dotprod": ("asimddp",),
    "fp16": ("fphp", "asimdhp"),
    "sve": ("sve",),
    "i8mm": ("i8mm",),
    "sve2": ("sve2",),
    "sme": ("sme",),
}
_ARM_MARCH = re.compile(r"^\s*armv\d+(?:\.\d+)?-a((?:\+[a-z0-9]+)*)\s*:")


def _cpu_flags() -> frozenset[str] | None:
    try:
        return parse_cpu_flags(Path("/proc/cpuinfo").read_text("utf-8", "replace"))
    except OSError:  # not Linux: not checked
        return None


def missing_cpu_features(requirement: str, flags: frozenset[str] | None) -> list[str]:
    """What this CPU lacks of a release.json ``requirements.cpu`` such as ``x86-64-v3: AVX2, ...``
    (empty when it has it all, when the requirement names no level, or when the flags are unknown)."""
    if flags is None:
        return []
    arm = _ARM_MARCH.match(requirement)
    if arm is not None:
        need_arm = {f for ext in arm[1].split("+") if ext for f in ARM64_FEATURES.get(ext, ())}
        return sorted(need_arm - flags)
    m = _LEVEL.match(requirement)
    if m is None:
        return []
    need = {f for level, names in X86_64_LEVELS.items() if level <= int(m[1]) for f in names}
    return sorted(need - flags)


def _probe(argv: list[str]) -> str | None:
    if which(argv[0]) is None:
        return None
    try:
        res = run(argv, check=False, timeout=_TIMEOUT, echo=False)
    except LocaraError:
        return None
    return res.stdout if res.ok else None


# Devices a recipe's smoke test can name (``smoke.device``): the hardware its backend's kernels
# need. Without one the smoke runs on the CPU backends the build ships (locara_build.smoke.smoke).
SMOKE_DEVICES: dict[str, str] = {
    "nvidia-gpu": "an NVIDIA GPU with a working driver (nvidia-smi lists it)",
    "amd-gpu": "an AMD GPU with ROCm (rocminfo lists a gfx agent)",
    "vulkan": "a Vulkan device of the build's architecture (a GPU, or lavapipe on the CPU)",
}

_GFX = re.compile(r"^\s*Name:\s*(gfx[0-9a-f]+)\s*$", re.M)


def parse_rocminfo(text: str) -> tuple[str, ...]:
    """GPU agents (``gfx1100``...) from ``rocminfo``, in order, duplicates kept once."""
    return tuple(dict.fromkeys(_GFX.findall(text)))


def find_device(kind: str, arch: str | None = None) -> str | None:
    """The ``kind`` device this host has, as a name for logs and records ("NVIDIA L4, driver
    580.95.05"); None when it has none. ``arch``: the build's CPU architecture; a build run under
    an emulator (arm64 under qemu-user on x86-64) reaches no driver of its own architecture."""
    if kind not in SMOKE_DEVICES:
        raise ConfigError(f"unknown smoke device `{kind}`.", hint=f"Use one of: {', '.join(SMOKE_DEVICES)}.")
    if arch is not None and arch != platforms.host_arch():
        return None
    if kind == "amd-gpu":
        out = _probe(["rocminfo"])
        agents = parse_rocminfo(out) if out else ()
        return f"AMD {agents[0]} (rocminfo)" if agents else None
    if kind == "vulkan":
        out = _probe(["vulkaninfo", "--summary"])
        devices = parse_vulkaninfo(out) if out else ()
        return f"{devices[0].name} ({devices[0].device_type.removeprefix('PHYSICAL_DEVICE_TYPE_')})" if devices else None
    if kind == "nvidia-gpu":
        out = _probe(["nvidia-smi", "--query-gpu=driver_version,name", "--format=csv,noheader"])
        driver, names = parse_nvidia_smi(out) if out else (None, ())
        return f"{names[0]}, driver {driver}" if driver and names else None
    raise ConfigError(f"unknown smoke device `{kind}`.", hint=f"Use one of: {', '.join(SMOKE_DEVICES)}.")


def detect(*, gpus: bool = True) -> HostInfo:
    """This host. ``gpus=False`` skips the GPU probes (nvidia-smi, vulkaninfo: ~0.2 s), which only
    ``--backend auto`` needs; the CPU check applies to every choice."""
    os_name, arch = platforms.host_os(), platforms.host_arch()
    driver, names = None, ()
    vk: tuple[VulkanDevice, ...] = ()
    if gpus:
        out = _probe(["nvidia-smi", "--query-gpu=driver_version,name", "--format=csv,noheader"])
        if out:
            driver, names = parse_nvidia_smi(out)
        out = _probe(["vulkaninfo", "--summary"])
        if out:
            vk = parse_vulkaninfo(out)
        out = _probe(["rocminfo"])
        amd = parse_rocminfo(out) if out else ()
    else:
        amd = ()
    flags = _cpu_flags() if arch in ("x86_64", "arm64") else None
    return HostInfo(os=os_name, arch=arch, cuda_driver=driver, gpus=names, vulkan_devices=vk, cpu_flags=flags,
                    amd_gpus=amd)


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text))


def _auto_cuda(art: ReleaseArtifact, host: HostInfo, by_backend: dict[str, ReleaseArtifact], notes: list[str]) -> str | None:
    need = str(art.requirements.get("min_cuda_driver", ""))
    if host.cuda_driver is None:
        notes.append("no NVIDIA driver found (nvidia-smi)")
    elif need and _version_tuple(host.cuda_driver) < _version_tuple(need):
        notes.append(f"NVIDIA driver {host.cuda_driver} is older than the {need} the CUDA build needs")
    else:
        gpu = host.gpus[0] if host.gpus else "an NVIDIA GPU"
        return f"CUDA: {gpu} with driver {host.cuda_driver}" + (f" (needs >= {need})" if need else "")
    return None


def _auto_rocm(art: ReleaseArtifact, host: HostInfo, by_backend: dict[str, ReleaseArtifact], notes: list[str]) -> str | None:
    if host.amd_gpus:
        return f"ROCm: AMD {host.amd_gpus[0]} (rocminfo)"
    notes.append("no AMD GPU with ROCm found (rocminfo)")
    return None


def _auto_vulkan(art: ReleaseArtifact, host: HostInfo, by_backend: dict[str, ReleaseArtifact], notes: list[str]) -> str | None:
    gpus = host.vulkan_gpus
    if gpus:
        return f"Vulkan: {gpus[0].name} ({gpus[0].device_type.replace('PHYSICAL_DEVICE_TYPE_', '').lower()})"
    cpu_only = [d.name for d in host.vulkan_devices if d.is_cpu]
    notes.append(
        f"Vulkan only offers CPU implementations ({', '.join(cpu_only)})" if cpu_only else "no Vulkan device found"
    )
    return None


def _auto_metal(art: ReleaseArtifact, host: HostInfo, by_backend: dict[str, ReleaseArtifact], notes: list[str]) -> str | None:
    return "Metal: Apple silicon" if host.apple_silicon else None


def _auto_universal(art: ReleaseArtifact, host: HostInfo, by_backend: dict[str, ReleaseArtifact], notes: list[str]) -> str | None:
    gpu_here = host.vulkan_gpus or host.amd_gpus or host.cuda_driver
    if not (gpu_here or "cpu" not in by_backend):
        return None
    found = "a GPU" if gpu_here else "no CPU-only build in this release"
    return f"all backends as plugins ({found}; llama.cpp picks at run time)" + (
        ": " + "; ".join(notes) if notes else "")


def _auto_cpu(art: ReleaseArtifact, host: HostInfo, by_backend: dict[str, ReleaseArtifact], notes: list[str]) -> str | None:
    return "CPU" + (": " + "; ".join(notes) if notes else "")


# What ``--backend auto`` asks of the host for each backend's artifact: the reason it fits, or None
# (after noting why not in ``notes``). The ORDER they are tried in is the backends' ``auto_rank``.
_AutoFit = Callable[["ReleaseArtifact", HostInfo, dict[str, "ReleaseArtifact"], list[str]], str | None]
_AUTO_FITS: dict[str, _AutoFit] = {
    "cuda": _auto_cuda,
    "rocm": _auto_rocm,
    "vulkan": _auto_vulkan,
    "metal": _auto_metal,
    "universal": _auto_universal,
    "cpu": _auto_cpu,
}


def choose_artifact(
    artifacts: Sequence[ReleaseArtifact], host: HostInfo, *, backend: str = "auto", flavour: str = "release"
) -> tuple[ReleaseArtifact, str]:
    """The artifact for ``host`` and why (one of ``artifacts``, a release manifest's ``artifacts``).
    Only ``flavour`` artifacts are candidates (default: release)."""
    if backend not in BACKENDS:
        raise ConfigError(f"--backend {backend}: unknown backend.", hint=f"Use one of: {', '.join(BACKENDS)}.")
    mine = [a for a in artifacts if a.os == host.os and a.arch == host.arch and a.flavour == flavour]
    if not mine:
        offered = ", ".join(sorted(f"{a.os}-{a.arch}-{a.backend} ({a.flavour})" for a in artifacts))
        raise ConfigError(
            f"this release has no {flavour} artifact for {host.os}/{host.arch} (it offers: {offered}).",
            hint="Pick another release, or pass --flavour if you want a ci/dev build.",
        )
    unfit: dict[str, str] = {}  # backend -> why this CPU cannot run it (it would die of SIGILL)
    for a in mine:
        cpu = str(a.requirements.get("cpu", ""))
        missing = missing_cpu_features(cpu, host.cpu_flags)
        if missing:
            unfit[a.backend] = f"the {a.backend} build needs {cpu.split(':')[0]}; this CPU lacks {', '.join(missing)}"
    if unfit and all(a.backend in unfit for a in mine):
        raise ConfigError(
            f"no artifact of this release runs on this CPU: {'; '.join(unfit.values())}.",
            hint="Use an older release built for a lower CPU baseline (x86-64 level / ARMv8 version), or build "
            "one yourself with a recipe that lowers it (docs/backends.md).",
        )
    if backend in unfit:
        raise ConfigError(f"--backend {backend}: {unfit[backend]}.", hint="Use --backend auto to pick one this CPU runs.")
    notes = list(unfit.values())
    by_backend = {a.backend: a for a in mine if a.backend not in unfit}
    if backend != "auto":
        if backend not in by_backend:
            raise ConfigError(
                f"this release has no {backend} artifact for {host.os}/{host.arch} (it has: {', '.join(sorted(by_backend))}).",
                hint="Use --backend auto or one of those.",
            )
        return by_backend[backend], f"--backend {backend} asked for"
    for name in backends.auto_order():  # most preferred first: each backend's auto_rank
        art, fits = by_backend.get(name), _AUTO_FITS.get(name)
        if art is not None and fits is not None:
            why = fits(art, host, by_backend, notes)
            if why is not None:
                return art, why
    raise ConfigError(
        f"no artifact of this release fits this {host.os}/{host.arch} host ({'; '.join(notes) or 'no CPU build'}).",
        hint=f"Pick one explicitly with --backend ({', '.join(sorted(by_backend))}).",
    )
