"""wine: runs the cross-built ``llama-server.exe`` for the Windows smoke test on Linux.

Debian's ``wine64`` is enough for x86_64 PE files (the "wine32 is missing" note it prints is
harmless). The smoke test uses a private prefix in the work dir, never ``~/.wine``, with Mono and
Gecko disabled so a fresh prefix never waits for an installer dialog.

Vulkan under wine: wine's ``vulkan-1.dll`` forwards to the host's Vulkan loader (lavapipe here)
only through a graphics driver (winex11); with no X display it says "Failed to load Wine graphics
driver supporting Vulkan" and ggml-vulkan finds no device. A smoke test that wants the Vulkan device
therefore runs under ``xvfb-run -a`` (a private virtual X server, gone with the process group) when
the host has no display of its own.

A prefix's desktop process (explorer.exe, started by the first wine process and kept by wineserver
for a few seconds after the last one) keeps the display it started with. A Vulkan .exe started right
after a display-less run in the same prefix (``weekly``: ``windows-x86_64-cpu``, then
``windows-x86_64-vulkan``) therefore found no graphics driver and ran on the CPU. So runs under
xvfb use a prefix of their own (``wineprefix-xvfb``), and each waits until that prefix is idle
(``wineserver -w``, :mod:`~locara_build.build.toolchains.winesettle`) before its X server starts.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from locara_build.build.toolchains._common import toolchains_dir
from locara_build.core import run as _run

__all__ = ["display_prefix", "find", "prefix_dir", "smoke_env"]


def find() -> tuple[Path, str] | None:
    for name in ("wine", "wine64"):
        exe = _run.which(name)
        if exe:
            res = _run.run([exe, "--version"], check=False, echo=False, timeout=60, env={"WINEDEBUG": "-all"})
            return Path(exe), (res.stdout.strip().splitlines() or [""])[0]
    return None


def prefix_dir(*, xvfb: bool = False) -> Path:
    """The private prefix: one for display-less runs, one for runs under xvfb (see the module doc)."""
    return toolchains_dir() / ("wineprefix-xvfb" if xvfb else "wineprefix")


def smoke_env(*, xvfb: bool = False) -> dict[str, str]:
    return {
        "WINEPREFIX": str(prefix_dir(xvfb=xvfb)),
        "WINEDEBUG": "-all",
        "WINEDLLOVERRIDES": "mscoree,mshtml=",  # no Mono/Gecko install prompts in a fresh prefix
        "WINEARCH": "win64",
    }


#: Xvfb on a free display number, no TCP listener; a small screen is enough for winex11's Vulkan.
XVFB_RUN = ("xvfb-run", "-a", "-s", "-screen 0 64x64x24 -nolisten tcp")


#: Waits until the prefix's wineserver has exited, then execs the rest of the command line.
SETTLE = (sys.executable, "-m", "locara_build.build.toolchains.winesettle")


def uses_xvfb() -> bool:
    """Whether a Vulkan .exe runs under ``xvfb-run`` here: no display of this session's, xvfb-run installed."""
    return not os.environ.get("DISPLAY") and _run.which("xvfb-run") is not None


def display_prefix() -> list[str] | None:
    """What to put before ``wine`` so that wine's Vulkan reaches the host's driver: nothing when
    this session has an X display, ``<settle> xvfb-run -a ...`` when xvfb-run is installed, else
    None (wine can run the .exe, but not on the Vulkan device)."""
    if os.environ.get("DISPLAY"):
        return []
    return [*SETTLE, *XVFB_RUN] if uses_xvfb() else None
