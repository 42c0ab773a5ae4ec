"""Command-line entry point: ``locara-build``.

Importing the command modules registers their commands on :data:`app`.
"""

from __future__ import annotations

import sys

import click

from .. import log
from ..errors import LocaraError
from ..redact import redact
from . import (  # noqa: F401  (imported for their commands)
    build_cmds,
    ci_cmds,
    models_cmds,
    package_cmds,
    patches_cmds,
    plan_cmds,
    release_cmds,
    upstream_cmds,
    weekly_cmds,
)
from .app import app, state

__all__ = ["main", "app"]


def _report(exc: LocaraError) -> None:
    if state().json:
        log.emit_json({"ok": False, "error": exc.to_dict()})
    log.console.print(f"[bold red]error:[/] {redact(exc.message)}", markup=True, highlight=False)
    if exc.hint:
        log.console.print(f"[bold]next:[/] {redact(exc.hint)}", markup=True, highlight=False)


def main(argv: list[str] | None = None) -> None:
    try:
        app(args=argv, standalone_mode=False, prog_name="locara-build")
    except LocaraError as exc:
        _report(exc)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        log.console.print("[yellow]interrupted[/]: finished stages are kept; run the same command again to resume.")
        sys.exit(130)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2)
    except KeyboardInterrupt:
        log.console.print("[yellow]interrupted[/]: finished stages are kept; run the same command again to resume.")
        sys.exit(130)
