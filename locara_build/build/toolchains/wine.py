"""wine: runs the cross-built ``llama-server.exe`` for the Windows smoke test on Linux.

Debian's ``wine64`` is enough for x86_64 PE files (the "wine32 is missing" note it prints is
harmless). The smoke test uses a private prefix in the work dir, never ``~/.wine``, with Mono and
Gecko disabled so a fresh prefix never waits for an installer dialog.
"""

from __future__ import annotations

from pathlib import Path

from locara_build.build.toolchains._common import toolchains_dir
from locara_build.core import run as _run

__all__ = ["find", "prefix_dir", "smoke_env"]


def find() -> tuple[Path, str] | None:
    for name in ("wine", "wine64"):
        exe = _run.which(name)
        if exe:
            res = _run.run([exe, "--version"], check=False, echo=False, timeout=60, env={"WINEDEBUG": "-all"})
            return Path(exe), (res.stdout.strip().splitlines() or [""])[0]
    return None


def prefix_dir() -> Path:
    return toolchains_dir() / "wineprefix"


def smoke_env() -> dict[str, str]:
    return {
        "WINEPREFIX": str(prefix_dir()),
        "WINEDEBUG": "-all",
        "WINEDLLOVERRIDES": "mscoree,mshtml=",  # no Mono/Gecko install prompts in a fresh prefix
        "WINEARCH": "win64",
    }
