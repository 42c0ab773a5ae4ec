"""Windows cross toolchain: zig from the ziglang wheel, the CMake toolchain file and its wrappers."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from locara_build.build.toolchains import wine, zig

REPO = Path(__file__).resolve().parent.parent
TOOLCHAIN = REPO / "recipes" / "toolchains" / "zig-x86_64-windows-gnu.cmake"
WRAPPERS = REPO / "recipes" / "toolchains" / "zig"


def test_wrappers_are_executable_and_use_locara_zig() -> None:
    for name in ("cc", "c++", "ar", "ranlib", "rc"):
        path = WRAPPERS / name
        assert os.access(path, os.X_OK), path
        text = path.read_text()
        assert text.startswith("#!/bin/sh\n") and '"${LOCARA_ZIG:?' in text
    assert "-target x86_64-windows-gnu" in (WRAPPERS / "cc").read_text()
    text = TOOLCHAIN.read_text()
    for needle in ("CMAKE_SYSTEM_NAME Windows", "CMAKE_SYSTEM_PROCESSOR x86_64", "_zig_dir}/cc\"", "_zig_dir}/c++\"", "CMAKE_RC_COMPILER"):
        assert needle in text


def test_wrapper_without_locara_zig_fails_clearly() -> None:
    env = {k: v for k, v in os.environ.items() if k != "LOCARA_ZIG"}
    res = subprocess.run([str(WRAPPERS / "cc"), "--version"], capture_output=True, text=True, env=env)
    assert res.returncode != 0 and "LOCARA_ZIG" in res.stderr


@pytest.fixture(scope="module")
def found_zig() -> zig.Zig:
    z = zig.find()
    if z is None:
        pytest.skip("zig not installed (pip install ziglang)")
    return z


def test_zig_found(found_zig: zig.Zig) -> None:
    assert found_zig.version.count(".") >= 1
    env = zig.plan_env()
    assert env["LOCARA_ZIG"] == str(found_zig.path)


def test_wrapper_targets_windows(found_zig: zig.Zig) -> None:
    env = {**os.environ, "LOCARA_ZIG": str(found_zig.path), **{k: v for k, v in zig.plan_env().items() if k.startswith("ZIG_")}}
    out = subprocess.run([str(WRAPPERS / "cc"), "--version"], capture_output=True, text=True, env=env, check=True).stdout
    assert "windows-gnu" in out  # what CCACHE_COMPILERCHECK hashes


def test_wine_env() -> None:
    env = wine.smoke_env()
    assert env["WINEDEBUG"] == "-all" and env["WINEARCH"] == "win64" and "mscoree" in env["WINEDLLOVERRIDES"]
    assert Path(env["WINEPREFIX"]).name == "wineprefix"
