"""What the toolchain probes find and what a host adds to a build: plain data, a leaf module that
platforms, backends and toolchains import without importing the probes or the registries."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from packaging.specifiers import SpecifierSet

__all__ = ["HostSetup", "Requirement", "Tool"]


@dataclass(frozen=True)
class Tool:
    name: str
    found: bool
    version: str | None = None
    path: str | None = None
    detail: str = ""  # "gcc 12.2.0", "CUDA 13.0", "pinned wheel", or why it was not found
    fix: str = ""  # how to get it
    extra: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "found": self.found,
            "version": self.version,
            "path": self.path,
            "detail": self.detail,
            "fix": self.fix,
            **({"extra": dict(sorted(self.extra.items()))} if self.extra else {}),
        }


@dataclass(frozen=True)
class Requirement:
    name: str
    spec: SpecifierSet | None
    text: str


@dataclass(frozen=True)
class HostSetup:
    """Host-specific additions to a build: never in the plan (they hold this host's paths)."""

    env: dict[str, str] = field(default_factory=dict)
    defines: dict[str, str] = field(default_factory=dict)  # extra CMake cache entries
    runtime_dirs: tuple[str, ...] = ()  # where ship.runtime globs are looked up
    notes: tuple[str, ...] = ()

    def merged(self, other: HostSetup) -> HostSetup:
        return HostSetup(
            env={**self.env, **other.env},
            defines={**self.defines, **other.defines},
            runtime_dirs=(*self.runtime_dirs, *other.runtime_dirs),
            notes=(*self.notes, *other.notes),
        )
