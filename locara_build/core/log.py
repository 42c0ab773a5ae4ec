"""Operator output on stderr (rich), machine output on stdout (JSON only).

* ``info/warn/detail`` print redacted text to stderr;
* ``step(name)`` times a stage and folds it in GitHub Actions logs;
* ``summary(title, columns, rows)`` prints the end-of-run table (and appends it to
  ``$GITHUB_STEP_SUMMARY`` when present);
* ``emit_json(obj)`` is the only writer to stdout.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from locara_build.core.redact import redact

__all__ = ["console", "set_verbosity", "verbosity", "info", "warn", "detail", "step", "summary", "emit_json"]

# Not a terminal (CI logs, pipes): wide enough that summary tables keep their file names and hashes.
console = Console(
    stderr=True,
    highlight=False,
    soft_wrap=True,
    width=None if sys.stderr.isatty() or os.environ.get("COLUMNS") else 160,
)
_verbosity = 0


def set_verbosity(level: int) -> None:
    global _verbosity
    _verbosity = level


def verbosity() -> int:
    return _verbosity


def _in_github_actions() -> bool:
    return os.environ.get("GITHUB_ACTIONS") == "true"


def info(message: str) -> None:
    console.print(redact(message), markup=False)


def warn(message: str) -> None:
    console.print("[yellow]warning:[/] " + _escape(redact(message)))


def detail(message: str) -> None:
    """Printed only with -v (commands echoed by ``run`` go here unless they are long-running)."""
    if _verbosity > 0:
        console.print("[dim]" + _escape(redact(message)) + "[/]")


def _escape(text: str) -> str:
    return text.replace("[", r"\[")


@contextlib.contextmanager
def step(name: str) -> Iterator[None]:
    start = time.monotonic()
    name = redact(name)  # step names quote URLs and paths: secrets in them are masked too
    if _in_github_actions():
        sys.stderr.write(f"::group::{name}\n")
    console.print(f"[bold cyan]==>[/] [bold]{_escape(name)}[/]")
    ok = False
    try:
        yield
        ok = True
    finally:
        took = time.monotonic() - start
        if _in_github_actions():
            sys.stderr.write("::endgroup::\n")
        mark = "[green]done[/]" if ok else "[red]failed[/]"
        console.print(f"    {mark} {_escape(name)} in {took:.1f}s")


@contextlib.contextmanager
def download_progress(label: str, total: int | None) -> Iterator[Callable[[int, int | None], None]]:
    """A download bar on stderr (bytes, speed, time left), gone once done (the caller says the
    outcome); yields the ``progress(done, total)`` callback that httpfetch and models take."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(label, total=total)

        def update(done: int, now_total: int | None) -> None:
            progress.update(task, completed=done, total=now_total or total)

        yield update


def summary(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    table = Table(title=title, show_lines=False)
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*(redact("" if c is None else str(c)) for c in row))
    console.print(table)
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if path:
        lines = [f"### {title}", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(redact("" if c is None else str(c)) for c in row) + " |" for row in rows]
        with open(path, "a", encoding="utf-8") as fh:
            fh.write("\n".join(lines) + "\n\n")


def emit_json(obj: Any) -> None:
    """Write ``obj`` as JSON to stdout: the only thing locara-build ever prints there."""
    sys.stdout.write(redact(json.dumps(obj, indent=2, sort_keys=True, default=str)) + "\n")
    sys.stdout.flush()
