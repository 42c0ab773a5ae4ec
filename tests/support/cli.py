"""The one way tests run the real console entry point: a child `python -m locara_build`, so exit
codes, stdout (`--json`) and stderr are what users see. Every helper that runs the CLI
(conftest.run_cli, upstream.cli, pipeline.cli, faults.run_cli) goes through :func:`run_cli`."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a CLI child: the caller's, ``extra`` on top, this checkout's package first on
    PYTHONPATH (whatever another editable install points at), wide tables in captured output."""
    env = dict(os.environ)
    env.update(extra or {})
    paths = (str(TESTS.parent), str(TESTS), env.get("PYTHONPATH", ""))
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    env.setdefault("COLUMNS", "200")
    return env


def run_cli(*args: str, project: Path | None = None, work: Path | None = None, cwd: Path | None = None,
            env: dict[str, str] | None = None, timeout: float = 600, input: str | None = None,
            preexec: Callable[[], None] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``locara-build [--project P] [--work-dir W] ARGS`` and return what it did."""
    base = [*(["--project", str(project)] if project is not None else []),
            *(["--work-dir", str(work)] if work is not None else [])]
    return subprocess.run(
        [sys.executable, "-m", "locara_build", *base, *args],
        cwd=cwd, env=cli_env(env), capture_output=True, text=True, timeout=timeout, input=input, preexec_fn=preexec,
    )
