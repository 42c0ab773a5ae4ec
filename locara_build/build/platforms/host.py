"""The host this runs on: its OS and CPU architecture in the names recipes use. A leaf module:
platforms, backends and toolchains ask it without importing the registries."""

from __future__ import annotations

import platform as _platform
import sys

__all__ = ["ARCHES", "host_arch", "host_exe_suffix", "host_os"]

ARCHES = ("x86_64", "arm64")


def host_os() -> str:
    if sys.platform.startswith("linux"):
        return "linux"
    if sys.platform == "darwin":
        return "macos"
    if sys.platform in ("win32", "cygwin"):
        return "windows"
    return sys.platform


def host_arch() -> str:
    machine = _platform.machine().lower()
    return {"amd64": "x86_64", "x64": "x86_64", "aarch64": "arm64"}.get(machine, machine)


def host_exe_suffix() -> str:
    return ".exe" if host_os() == "windows" else ""
