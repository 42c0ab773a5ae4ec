"""A Vulkan .exe under wine needs an X display to reach the host's Vulkan driver (wine's vulkan-1
forwards through winex11). The smoke test puts ``xvfb-run -a`` before ``wine`` when the host has no
display, reports cpu-fallback when it has neither, and leaves every other recipe's command alone.
The real run (the cross-built .exe on lavapipe, `using device Vulkan0`) is the slow test
tests/test_platform_all.py::test_windows_vulkan_cross_build_imports_only_system_dlls_and_runs_under_wine;
here: the decisions (which command runs, which coverage is claimed, the smoke key)."""

from __future__ import annotations

from pathlib import Path

import pytest

from locara_build.build import hostdetect
from locara_build.build.recipe import load_recipes
from locara_build.build.toolchains import wine
from locara_build.core import run as _run
from locara_build.core.workdir import Project
from locara_build.smoke import smokeplan
from locara_build.smoke.smoke import SmokeOptions

REPO = Path(__file__).resolve().parents[1]
LAVAPIPE = "llvmpipe (LLVM 15.0.6, 256 bits) (CPU)"


def _recipe(name: str):  # type: ignore[no-untyped-def]
    return load_recipes(Project(REPO), [name])[name]


def _no_display(monkeypatch: pytest.MonkeyPatch, *, xvfb: bool) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    real = _run.which
    monkeypatch.setattr(_run, "which", lambda name: ("/usr/bin/xvfb-run" if xvfb else None) if name == "xvfb-run" else real(name))


def test_display_prefix_follows_the_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISPLAY", ":0")
    assert wine.display_prefix() == []
    _no_display(monkeypatch, xvfb=True)
    assert wine.display_prefix() == [*wine.SETTLE, *wine.XVFB_RUN]
    _no_display(monkeypatch, xvfb=False)
    assert wine.display_prefix() is None


def test_only_a_vulkan_exe_runs_under_xvfb_run(monkeypatch: pytest.MonkeyPatch) -> None:
    _no_display(monkeypatch, xvfb=True)
    vk = SmokeOptions.from_recipe(_recipe("windows-x86_64-vulkan"))
    assert vk.emulator == (*wine.SETTLE, *wine.XVFB_RUN, "wine")
    # its own prefix: the desktop process of a display-less run never serves it
    assert vk.env["WINEPREFIX"] == str(wine.prefix_dir(xvfb=True)) != str(wine.prefix_dir())
    assert SmokeOptions.from_recipe(_recipe("windows-x86_64-cpu")).env["WINEPREFIX"] == str(wine.prefix_dir())
    assert vk.env["GGML_VK_VISIBLE_DEVICES"] == "0" and vk.args == ("-ngl", "99", "-lv", "4")
    assert SmokeOptions.from_recipe(_recipe("windows-x86_64-cpu")).emulator == ("wine",)
    assert SmokeOptions.from_recipe(_recipe("linux-x86_64-vulkan")).emulator == ()
    monkeypatch.setenv("DISPLAY", ":7")  # a display of its own: wine uses it, nothing is wrapped
    assert SmokeOptions.from_recipe(_recipe("windows-x86_64-vulkan")).emulator == ("wine",)
    assert SmokeOptions.from_recipe(_recipe("windows-x86_64-vulkan")).env["WINEPREFIX"] == str(wine.prefix_dir())


def test_device_plan_full_with_a_display_cpu_fallback_without(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hostdetect, "find_device", lambda kind, arch=None: LAVAPIPE if kind == "vulkan" else None)
    recipe = _recipe("windows-x86_64-vulkan")
    _no_display(monkeypatch, xvfb=True)
    assert smokeplan.device_plan(recipe) == (LAVAPIPE, "full", "")
    _no_display(monkeypatch, xvfb=False)
    found, coverage, note = smokeplan.device_plan(recipe)
    assert (found, coverage) == (None, "cpu-fallback")
    assert "xvfb" in note and LAVAPIPE in note
    # a different device situation is a different smoke key: installing xvfb re-runs the smoke test
    assert smokeplan.smoke_key(recipe, found) != smokeplan.smoke_key(recipe, LAVAPIPE)
    # the host without the device at all: nothing about displays
    monkeypatch.setattr(hostdetect, "find_device", lambda kind, arch=None: None)
    assert "xvfb" not in smokeplan.device_plan(recipe)[2]



# --- winesettle: a run under xvfb waits for the prefix's previous wineserver (real wineserver) ----

needs_wineserver = pytest.mark.skipif(_run.which("wineserver") is None or _run.which("wine") is None,
                                      reason="needs wine and wineserver (Debian: wine)")


def _servers_of(prefix: Path) -> list[int]:
    """wineserver processes whose environment names ``prefix``."""
    out = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if Path(proc / "exe").resolve().name not in ("wineserver", "wineserver64"):
                continue
            env = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"WINEPREFIX={prefix}".encode() in env:
            out.append(int(proc.name))
    return out


@needs_wineserver
def test_settle_waits_until_the_prefix_wineserver_has_exited(tmp_path: Path) -> None:
    """The weekly bug: windows-x86_64-cpu's run left the prefix's wineserver (and desktop process,
    bound to no display) alive for a few seconds, and the Vulkan .exe started next under xvfb found
    no graphics driver. ``winesettle`` must not start the next command while that server lives."""
    import os
    import subprocess
    import sys
    import time

    from locara_build.build.toolchains import winesettle

    prefix = tmp_path / "prefix"
    prefix.mkdir()
    env = {**os.environ, **wine.smoke_env(), "WINEPREFIX": str(prefix)}
    # a real wine program that has just ended: its wineserver (and desktop) linger for a few seconds
    # (no pipes: wineserver would inherit them and the run would wait for it)
    subprocess.run(["wine", "cmd", "/c", "exit"], env=env, check=True, timeout=300,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert _servers_of(prefix), "no wineserver left after the wine program: nothing to wait for"
    marker = tmp_path / "started"
    start = time.monotonic()
    subprocess.run([sys.executable, "-m", "locara_build.build.toolchains.winesettle", "touch", str(marker)],
                   env=env, check=True, timeout=60)
    waited = time.monotonic() - start
    assert marker.exists()  # the command ran (exec'd) after the wait
    assert not _servers_of(prefix)  # ... and only once the prefix was idle
    assert waited >= 0.5, waited

    # a prefix that stays busy: the wait is bounded and says why it went on
    subprocess.run(["wineserver", "-p"], env=env, check=True, timeout=30)  # persists until killed
    try:
        os.environ["WINEPREFIX"] = str(prefix)
        start = time.monotonic()
        note = winesettle.settle(wait_s=1.5)
        assert note == "the wine prefix was still busy after 1.5s; starting anyway"
        assert time.monotonic() - start < 15
    finally:
        subprocess.run(["wineserver", "-k"], env=env, check=False, timeout=30)
        os.environ.pop("WINEPREFIX", None)
    assert winesettle.settle(wait_s=30) is None  # idle again: nothing to say

def test_a_host_set_up_by_setup_sh_smokes_windows_vulkan_on_the_device() -> None:
    """No stand-ins: this host's wine, Vulkan driver and display. A fresh machine set up by
    scripts/setup.sh (as `make weekly` and CI do) must smoke-test the Windows Vulkan build on the
    Vulkan device, not claim cpu-fallback; a setup without xvfb did exactly that (a skip here is a
    failure in CI, where setup.sh ran)."""
    if _run.which("wine") is None and _run.which("wine64") is None:
        pytest.skip("wine is not installed here (scripts/setup.sh installs wine64)")
    recipe = _recipe("windows-x86_64-vulkan")
    found = hostdetect.find_device("vulkan", arch=recipe.arch)
    if found is None:
        pytest.skip("no Vulkan device here (scripts/setup.sh installs mesa-vulkan-drivers: lavapipe)")
    if wine.display_prefix() is None:
        pytest.skip("no X display and no xvfb-run here (scripts/setup.sh installs xvfb)")
    assert smokeplan.device_plan(recipe) == (found, "full", "")
