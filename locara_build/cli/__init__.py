"""Command-line entry point: ``locara-build``.

Importing the command modules registers their commands on :data:`app`.
"""

from __future__ import annotations

import os
import signal
import sys
import traceback

import typer
from rich.markup import escape

from locara_build.cli import (  # noqa: F401  (imported for their commands)
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
from locara_build.cli.app import app, state
from locara_build.core import log
from locara_build.core.errors import LocaraError, disk_full, is_no_space
from locara_build.core.redact import redact, register_env_secrets

__all__ = ["main", "app"]


def _report(exc: LocaraError) -> None:
    if state().json:
        log.emit_json({"ok": False, "error": exc.to_dict()})
    log.console.print(f"[bold red]error:[/] {escape(redact(exc.message))}", markup=True, highlight=False)
    if exc.hint:
        log.console.print(f"[bold]next:[/] {escape(redact(exc.hint))}", markup=True, highlight=False)


def _sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # unwinds like Ctrl-C: servers stopped, partial outputs left unpublished


def main(argv: list[str] | None = None) -> None:
    signal.signal(signal.SIGTERM, _sigterm)
    register_env_secrets()  # masked wherever they might be echoed, from the first line on
    try:
        # standalone_mode=False: click *returns* the code of `raise typer.Exit(n)` instead of exiting
        rv = app(args=argv, standalone_mode=False, prog_name="locara-build")
        if rv == 130:  # typer turns Ctrl-C (and our SIGTERM) into a bare exit code 130
            _interrupted()
        if isinstance(rv, int) and rv != 0:
            sys.exit(rv)
    except LocaraError as exc:
        _report(exc)
        sys.exit(exc.exit_code)
    except typer.Abort:
        _interrupted()
    except typer.Exit as exc:
        if exc.exit_code == 130:
            _interrupted()
        sys.exit(exc.exit_code)
    except typer.TyperException as exc:  # usage errors: unknown option, bad value, missing argument
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            log.console.print(f"[bold red]error:[/] {escape(redact(str(exc)))}")
        sys.exit(2)
    except KeyboardInterrupt:
        _interrupted()
    except OSError as exc:
        if not is_no_space(exc):
            _report_unexpected(exc)
            sys.exit(1)
        # a full disk is the host's problem, not a bug: a clear message, never a traceback
        err = disk_full(exc, os.path.dirname(exc.filename) if exc.filename else os.getcwd(), "locara-build")
        _report(err)
        sys.exit(err.exit_code)
    except Exception as exc:  # a bug: report it without ever printing a secret
        _report_unexpected(exc)
        sys.exit(1)


def _interrupted() -> None:
    log.console.print("[yellow]interrupted[/]: finished stages are kept; run the same command again to resume.")
    sys.exit(130)


def _report_unexpected(exc: BaseException) -> None:
    """Unexpected failures print a redacted one-liner (and, with -v, a redacted traceback)."""
    detail = redact(f"{type(exc).__name__}: {exc}")
    if log.verbosity() > 0:
        trace = "".join(traceback.format_exception(exc))
        log.console.print(redact(trace), markup=False, highlight=False)
    if state().json:
        log.emit_json({"ok": False, "error": {"kind": "unexpected", "exit_code": 1, "message": detail}})
    log.console.print(f"[bold red]unexpected error:[/] {escape(detail)}", markup=True, highlight=False)
    log.console.print(
        "[bold]next:[/] this is a bug in locara-build; run again with -v for the (redacted) traceback and report it.",
        markup=True,
        highlight=False,
    )
