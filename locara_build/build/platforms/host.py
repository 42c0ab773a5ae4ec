"""The host this runs on: its OS and CPU architecture in the names recipes use. A leaf module:
platforms, backends and toolchains ask it without importing the registries. The OS comes from
:mod:`locara_build.core.hostos` (the one reader of ``sys.platform``)."""

from __future__ import annotations

import platform as _platform

from locara_build.core.hostos import host_os

__all__ = ["ARCHES", "host_arch", "host_exe_suffix", "host_os"]

ARCHES = ("x86_64", "arm64")


def host_arch() -> str:
    machine = _platform.machine().lower()
    return {"amd64": "x86_64", "x64": "x86_64", "aarch64": "arm64"}.get(machine, machine)


def host_exe_suffix() -> str:
    return ".exe" if host_os() == "windows" else ""
