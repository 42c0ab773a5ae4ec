"""``doctor``: what this host can build, smoke-test and sign, and what to install for the rest.

Requirements come from three places, merged in this order (duplicates dropped):
``cmake`` + ``ninja`` (every build), the target platform's ``requirements(recipe, host_os)``
(compilers; ``zig`` for Windows cross-builds from Linux), the backend's ``requirements(recipe)``
(``nvcc>=12.0``, ``glslc``, ``vulkan-headers>=1.3.261``, ``xcode``) and the recipe's own
``requires``. Each is checked by :func:`locara_build.build.toolchain.unmet`, which names the reason and
the fix. ``build`` refuses a recipe whose build check fails, with the same words.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from locara_build.build import backends, hostdetect, platforms, toolchain
from locara_build.build.recipe import Recipe
from locara_build.build.toolchain import Tool

__all__ = [
    "Check",
    "RecipeReport",
    "DoctorReport",
    "build_requirements",
    "smoke_requirements",
    "emulated",
    "sign_requirements",
    "check_recipe",
    "doctor",
]

ALWAYS = ("cmake", "ninja")


@dataclass(frozen=True)
class Check:
    ok: bool
    requirements: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()
    fixes: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()  # ok, with a limit (e.g. smoke on the CPU only: no GPU here)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "requirements": list(self.requirements),
            "reasons": list(self.reasons),
            "fixes": list(self.fixes),
            "notes": list(self.notes),
        }

    def why(self) -> str:
        return "; ".join(self.reasons)

    def how(self) -> str:
        return "; ".join(dict.fromkeys(f for f in self.fixes if f))


@dataclass(frozen=True)
class RecipeReport:
    name: str
    os: str
    arch: str
    backend: str
    flavour: str
    runner: str
    build: Check
    smoke: Check
    sign: Check

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "os": self.os,
            "arch": self.arch,
            "backend": self.backend,
            "flavour": self.flavour,
            "runner": self.runner,
            "buildable": self.build.ok,
            "build": self.build.to_dict(),
            "smoke": self.smoke.to_dict(),
            "sign": self.sign.to_dict(),
        }


@dataclass(frozen=True)
class DoctorReport:
    host_os: str
    host_arch: str
    tools: Mapping[str, Tool]
    recipes: tuple[RecipeReport, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "host": {"os": self.host_os, "arch": self.host_arch},
            "tools": {name: tool.to_dict() for name, tool in self.tools.items()},
            "recipes": [r.to_dict() for r in self.recipes],
            "buildable": [r.name for r in self.recipes if r.build.ok],
        }


def _dedupe(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(i for i in items if i))


# what an x86-64 host needs besides the compiler to cross-build Linux arm64 (toolchains/arm64.py)
ARM64_CROSS = ("aarch64-binutils", "dpkg-deb")


def build_requirements(recipe: Recipe, host_os: str, host_arch: str | None = None) -> tuple[str, ...]:
    platform = platforms.get(recipe.os)
    backend = backends.get(recipe.backend)
    host_arch = host_arch or platforms.host_arch()
    cross = ARM64_CROSS if emulated(recipe, host_os, host_arch) else ()
    return _dedupe((*ALWAYS, *platform.requirements(recipe, host_os), *cross, *backend.requirements(recipe),
                    *recipe.requires))


def emulated(recipe: Recipe, host_os: str, host_arch: str) -> bool:
    """True when this host runs ``recipe``'s binaries under qemu-user (Linux arm64 on x86-64)."""
    return recipe.os == host_os == "linux" and recipe.arch == "arm64" and host_arch != "arm64"


def smoke_requirements(recipe: Recipe, host_os: str, host_arch: str | None = None) -> tuple[str, ...]:
    host_arch = host_arch or platforms.host_arch()
    qemu = ("qemu-aarch64",) if emulated(recipe, host_os, host_arch) else ()
    return _dedupe((*recipe.smoke.emulator[:1], *qemu))


def sign_requirements(recipe: Recipe, host_os: str) -> tuple[str, ...]:
    if recipe.signing == "authenticode" and host_os != "windows":
        return ("osslsigncode",)
    if recipe.signing == "macos":
        return ("codesign", "notarytool")
    return ()


def _check(requirements: tuple[str, ...], tools: Mapping[str, Tool], reasons: list[str], fixes: list[str]) -> Check:
    for req in requirements:
        miss = toolchain.unmet(req, tools)
        if miss:
            reasons.append(miss[0])
            fixes.append(miss[1])
    return Check(ok=not reasons, requirements=requirements, reasons=tuple(reasons), fixes=tuple(fixes))


def check_recipe(
    recipe: Recipe, tools: Mapping[str, Tool], host_os: str | None = None, host_arch: str | None = None
) -> RecipeReport:
    host_os = host_os or platforms.host_os()
    host_arch = host_arch or platforms.host_arch()
    platform = platforms.get(recipe.os)
    runner = f"its CI runner ({recipe.runner})" if recipe.runner else f"a {recipe.os} host"

    reasons: list[str] = []
    fixes: list[str] = []
    if not platform.can_build_on(host_os):
        reasons.append(f"{recipe.os} binaries cannot be built on a {host_os} host")
        fixes.append(f"build `{recipe.name}` on {runner}")
    elif recipe.os == host_os and recipe.arch != host_arch and recipe.toolchain is None:
        reasons.append(f"{recipe.arch} binaries need an {recipe.arch} host or a cross toolchain (this host is {host_arch})")
        fixes.append(f"build `{recipe.name}` on {runner}")
    build = _check(build_requirements(recipe, host_os, host_arch), tools, reasons, fixes)

    reasons, fixes = [], []
    notes: tuple[str, ...] = ()
    if recipe.smoke.skip:
        reasons.append(f"smoke test skipped by the recipe: {recipe.smoke.skip}")
        fixes.append(f"smoke-test `{recipe.name}` on {runner}")
    elif recipe.arch != host_arch and not emulated(recipe, host_os, host_arch):
        reasons.append(f"{recipe.arch} binaries do not run on this {host_arch} host")
        fixes.append(f"smoke-test `{recipe.name}` on {runner}")
    elif recipe.os != host_os and not recipe.smoke.emulator:
        reasons.append(f"{recipe.os} binaries do not run on a {host_os} host and the recipe names no smoke.emulator")
        fixes.append(f"smoke-test `{recipe.name}` on {runner}")
    elif recipe.smoke.device:
        from locara_build.smoke.smokeplan import device_plan

        _, coverage, note = device_plan(recipe)
        if coverage == "skip":
            reasons.append(note)
            fixes.append(f"smoke-test `{recipe.name}` on {runner} with {hostdetect.SMOKE_DEVICES[recipe.smoke.device]}")
        elif coverage == "cpu-fallback":
            notes = (f"CPU only: {note}",)
    if not reasons and emulated(recipe, host_os, host_arch):
        notes = (*notes, f"runs under qemu-user ({recipe.arch} on this {host_arch} host, sysroot from Debian's "
                 "arm64 packages): the completion, the UI and the args file are proven, speed is not")
    needs_runner = recipe.os != host_os or recipe.arch != host_arch
    smoke = _check(smoke_requirements(recipe, host_os, host_arch) if needs_runner else (), tools, reasons, fixes)
    smoke = replace(smoke, notes=notes) if smoke.ok else smoke
    if not build.ok and smoke.ok:
        smoke = Check(ok=False, requirements=smoke.requirements, reasons=("needs a build first (not buildable here)",))

    sign = _check(sign_requirements(recipe, host_os), tools, [], [])
    return RecipeReport(
        name=recipe.name,
        os=recipe.os,
        arch=recipe.arch,
        backend=recipe.backend,
        flavour=recipe.flavour,
        runner=recipe.runner,
        build=build,
        smoke=smoke,
        sign=sign,
    )


def doctor(recipes: Iterable[Recipe], *, tools: Mapping[str, Tool] | None = None) -> DoctorReport:
    tools = dict(tools) if tools is not None else toolchain.probe_all()
    host_os, host_arch = platforms.host_os(), platforms.host_arch()
    reports = tuple(check_recipe(r, tools, host_os, host_arch) for r in sorted(recipes, key=lambda r: r.name))
    return DoctorReport(host_os=host_os, host_arch=host_arch, tools=tools, recipes=reports)
