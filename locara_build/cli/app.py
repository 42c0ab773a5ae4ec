"""The typer application, its global options and the state every command shares.

Commands live in sibling modules (one per pipeline area) and register on :data:`app`.
Nothing below the CLI layer exits the process; :func:`locara_build.cli.main` maps
:class:`~locara_build.core.errors.LocaraError` to its exit code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from locara_build.core import log
from locara_build.core.errors import LocaraError
from locara_build.core.workdir import Project, WorkDir, find_project, resolve_work_dir

__all__ = ["app", "State", "state", "JsonOpt", "RecipeOpt", "output"]

app = typer.Typer(
    name="locara-build",
    help="Ship the newest llama.cpp llama-server every week, on every platform.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


@dataclass
class State:
    project_flag: Path | None = None
    work_flag: Path | None = None
    json: bool = False
    verbose: int = 0
    _project: Project | None = None
    _work: WorkDir | None = None

    @property
    def project(self) -> Project:
        if self._project is None:
            self._project = find_project(self.project_flag)
        return self._project

    @property
    def work(self) -> WorkDir:
        if self._work is None:
            self._work = resolve_work_dir(self.work_flag)
        return self._work


_STATE = State()


def state() -> State:
    return _STATE


JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout (logs stay on stderr).")]
RecipeOpt = Annotated[
    list[str] | None,
    typer.Option("--recipe", "-r", help="Recipe name (repeatable). Default: every release recipe."),
]


def output(json_flag: bool, data: object) -> bool:
    """Emit ``data`` as JSON when asked (command flag or global --json); True if emitted."""
    if json_flag or _STATE.json:
        log.emit_json(data)
        return True
    return False


@app.callback()
def _global(
    project: Annotated[
        Path | None,
        typer.Option("--project", envvar="LOCARA_PROJECT", help="Project root (holds recipes/, patches/). Default: found upward from the cwd."),
    ] = None,
    work_dir: Annotated[
        Path | None,
        typer.Option("--work-dir", envvar="LOCARA_WORK_DIR", help="Work/cache directory. Default: the per-user cache dir."),
    ] = None,
    json_: Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")] = False,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="More detail (echo every command).")] = 0,
) -> None:
    _STATE.project_flag = project
    _STATE.work_flag = work_dir
    _STATE.json = json_
    _STATE.verbose = verbose
    _STATE._project = None
    _STATE._work = None
    log.set_verbosity(verbose)


def fail_if(condition: bool, error: LocaraError) -> None:
    if condition:
        raise error
