"""How this host can smoke-test a recipe, decided before anything runs: the device it finds, the
coverage that gives (full / cpu-fallback / skip), and the key a smoke result is valid for; after a
run, what an artifact with several GPU plugins left untested (``partial``).

Asked by ``doctor`` (what this host can do), ``weekly`` (is the smoke result still valid) and
``smoke`` itself; it sits below all three, so none of them imports another for it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

from locara_build.build import hostdetect, provision
from locara_build.build.cmakevalue import is_on
from locara_build.build.recipe import Recipe
from locara_build.pipeline import records
from locara_build.pipeline.records import SmokeRecord

if TYPE_CHECKING:
    from locara_build.build.plan import RecipePlan

__all__ = ["SMOKE_RECORD", "SMOKE_SCHEMA", "device_plan", "not_exercised", "read_smoke_record", "smoke_key",
           "valid_smoke_record"]

#: The smoke record: the one file a build output gains after the build (written by ``smoke``).
SMOKE_RECORD = SmokeRecord.FILE
#: The smoke record's schema; part of the smoke key, so a new shape re-runs the test.
SMOKE_SCHEMA = SmokeRecord.SCHEMA

_BACKEND_NAMES = {"cuda": "CUDA", "vulkan": "Vulkan", "metal": "Metal", "rocm": "ROCm/HIP", "universal": "GPU"}
#: The smoke device a GPU backend's kernels need (``smoke.device`` names one of these).
_DEVICE_OF = {"cuda": "nvidia-gpu", "rocm": "amd-gpu", "vulkan": "vulkan"}
#: ggml's device names (``using device CUDA0 (...)`` in the server log) -> backend
_BACKEND_OF_DEVICE = (("CUDA", "cuda"), ("ROCm", "rocm"), ("Vulkan", "vulkan"), ("Metal", "metal"), ("MTL", "metal"))


def smoke_key(recipe: Recipe, device: str | None) -> str:
    """What a smoke result is a function of besides the build: the recipe's smoke settings and
    whether the device they name was there. A changed setting, or a GPU that appeared, re-runs it."""
    blob = {"smoke": recipe.smoke.to_dict(), "device_found": bool(device), "schema": SMOKE_SCHEMA}
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:16]


def _backend_dl(recipe: Recipe) -> bool:
    return is_on(recipe.cmake.get("GGML_BACKEND_DL", ""))


def device_plan(recipe: Recipe) -> tuple[str | None, str, str]:
    """How this host smoke-tests ``recipe``: (device found, coverage, note), coverage one of
    ``full`` | ``cpu-fallback`` | ``skip``."""
    if recipe.smoke.skip:
        return None, "skip", recipe.smoke.skip
    kind = recipe.smoke.device
    if not kind:
        return None, "full", ""
    found = hostdetect.find_device(kind, arch=recipe.arch)  # an emulated build reaches no driver
    gap = provision.smoke_device_gap(recipe) if found else None  # e.g. wine's Vulkan without a display
    if found and not gap:
        return found, "full", ""
    needs = hostdetect.SMOKE_DEVICES[kind]
    if gap:  # the build starts without the device (ggml-vulkan reports none) and serves on the CPU
        return None, "cpu-fallback", f"served on the CPU: this host has {found}, but {gap}"
    if _backend_dl(recipe):
        return None, "cpu-fallback", (
            f"the smoke-test host had no {kind}: served on the CPU backends the build ships; "
            f"{_BACKEND_NAMES.get(recipe.backend, recipe.backend)} kernels not exercised"
        )
    return None, "skip", (
        f"needs {needs}; this build links the {recipe.backend} backend into the binary (GGML_BACKEND_DL off), "
        "so it cannot start without the driver"
    )


def not_exercised(recipe: Recipe, ran_on: str, used_devices: tuple[str, ...] = ()) -> str:
    """After a passed run that computed on ``ran_on`` (``Vulkan0 (llvmpipe ...)``, ``CPU``) and every
    device in ``used_devices`` (each ``using device X`` of the log: ``CUDA0``, ``Vulkan0``): the GPU
    plugins an artifact with several of them (``universal``) ships but this run did not exercise, as
    one sentence naming each and why; "" for every other backend, or when nothing was left out. A
    pass on Vulkan says nothing about the CUDA kernels."""
    from locara_build.build.backends import universal

    if recipe.backend != "universal":
        return ""
    used = {backend for device in (ran_on, *used_devices)
            for prefix, backend in _BACKEND_OF_DEVICE if device.startswith(prefix)}
    parts = []
    for name in universal.enabled(recipe):
        if name in used:
            continue
        device = _DEVICE_OF.get(name)
        here = hostdetect.find_device(device, arch=recipe.arch) if device else None
        why = f"this host has {here}, but the server computed on {ran_on}" if here else f"this host has no {device}"
        parts.append(f"{_BACKEND_NAMES.get(name, name)} plugin not exercised ({why})")
    return "; ".join(parts)


def read_smoke_record(output_dir: Path) -> SmokeRecord | None:
    """The smoke record in a build output; None when there is none or it does not read as a
    :class:`SmokeRecord` (an older shape, a hand edit, garbage): no valid smoke result, run it again."""
    path = SmokeRecord.path(output_dir)
    if not path.is_file():
        return None
    try:
        return records.read(SmokeRecord, path)
    except records.RecordError:
        return None


def valid_smoke_record(rp: RecipePlan) -> SmokeRecord | None:
    """The smoke record of this very build, these smoke settings and this device situation, whatever
    its status (the one staleness rule: the package record and weekly's reuse both ask this)."""
    rec = read_smoke_record(rp.output_dir)
    if rec is None or rec.build_key != rp.build_key:
        return None
    return rec if rec.smoke_key == smoke_key(rp.recipe, device_plan(rp.recipe)[0]) else None
