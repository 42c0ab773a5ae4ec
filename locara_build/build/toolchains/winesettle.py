"""``python -m locara_build.build.toolchains.winesettle CMD...``: wait until the wine prefix named
by ``$WINEPREFIX`` is idle (its wineserver has exited: ``wineserver -w``), then exec ``CMD``.

Put before ``xvfb-run ... wine llama-server.exe`` (``wine.display_prefix``): a new X server and a
wine process must not meet the previous run's desktop process, which holds the previous display
(module doc of :mod:`locara_build.build.toolchains.wine`). Waiting is bounded: after
:data:`WAIT_S` seconds (somebody else's program still runs in the prefix) it goes on and says so on
stderr, which lands in the server log the smoke test names.
"""

from __future__ import annotations

import os
import sys

from locara_build.core import run as _run
from locara_build.core.errors import LocaraError

#: How long to wait for the prefix to become idle (wineserver lingers ~3 s after its last process).
WAIT_S = 60.0


def settle(wait_s: float = WAIT_S) -> str | None:
    """Wait for ``$WINEPREFIX``'s wineserver to exit; a sentence when it did not (None: idle)."""
    server = _run.which("wineserver")
    if server is None:
        return "wineserver not found: not waiting for the prefix to become idle"
    try:
        _run.run([server, "-w"], check=False, echo=False, timeout=wait_s)
    except LocaraError:
        return f"the wine prefix was still busy after {wait_s:g}s; starting anyway"
    return None


def main(argv: list[str]) -> None:
    if not argv:
        sys.exit("usage: python -m locara_build.build.toolchains.winesettle CMD [ARG...]")
    note = settle()
    if note:
        print(f"winesettle: {note}", file=sys.stderr, flush=True)
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    main(sys.argv[1:])
