"""Run the real ``locara-build`` CLI with one *fault point* armed (tests only).

``LOCARA_TEST_FAILPOINT=package.module:Attr.path[@N]`` wraps that function: its N-th call (default
1) prints ``FAILPOINT <spec>`` on stderr, then waits until ``$LOCARA_TEST_FAILPOINT_RELEASE``
exists (at most 300 s) before doing its real work. The test sends its signal while the process
waits there, i.e. inside the stage it targets. Nothing else differs from ``python -m locara_build``.
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
import time


def _arm(spec: str) -> None:
    target, _, nth_text = spec.partition("@")
    nth = int(nth_text or 1)
    module_name, _, attr_path = target.partition(":")
    owner = importlib.import_module(module_name)
    *parents, name = attr_path.split(".")
    for part in parents:
        owner = getattr(owner, part)
    original = getattr(owner, name)
    calls = 0
    release = os.environ.get("LOCARA_TEST_FAILPOINT_RELEASE", "")

    @functools.wraps(original)
    def paused(*args: object, **kwargs: object) -> object:
        nonlocal calls
        calls += 1
        if calls == nth:
            sys.stderr.write(f"FAILPOINT {spec}\n")
            sys.stderr.flush()
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and not (release and os.path.exists(release)):
                time.sleep(0.05)
        return original(*args, **kwargs)

    setattr(owner, name, paused)


def main() -> None:
    spec = os.environ.get("LOCARA_TEST_FAILPOINT")
    if spec:
        _arm(spec)
    from locara_build.cli import main as cli_main

    sys.argv = ["locara-build", *sys.argv[1:]]
    cli_main()


if __name__ == "__main__":
    main()
