"""``ci render [--check]``: the GitHub Actions workflows, rendered from ci/templates/ and the recipes."""

from __future__ import annotations

from typing import Annotated

import typer

from locara_build.cli.app import JsonOpt, app, output, state
from locara_build.core import log

ci_app = typer.Typer(
    name="ci",
    help="The CI pipeline (GitHub Actions), rendered from ci/templates/ and the recipes.",
    no_args_is_help=True,
)
app.add_typer(ci_app, name="ci")

CheckOpt = Annotated[
    bool,
    typer.Option(
        "--check",
        help="Write nothing; fail (exit 2) if a committed workflow differs from a fresh render.",
    ),
]


@ci_app.command("render")
def render_cmd(check: CheckOpt = False, json_: JsonOpt = False) -> None:
    """Render ci/workflows/*.yml and .github/workflows/*.yml from ci/templates/*.yml.j2 and recipes/."""
    from locara_build.pipeline import ci  # jinja2, recipes: only for this command

    st = state()
    project = st.project
    statuses, warnings = ci.check(project) if check else ci.write(project)
    stale = [s for s in statuses if not s.up_to_date]
    for message in warnings:
        log.warn(message)
    report = {
        "ok": not (check and stale),
        "mode": "check" if check else "render",
        "files": [s.to_dict() for s in statuses],
        "warnings": list(warnings),
    }
    # With the global --json the error report is the one JSON document; with the command's own
    # --json the per-file report is printed first, then the error goes to stderr (exit 2).
    if not (check and stale and st.json):
        emitted = output(json_, report)
    else:
        emitted = True
    if check:
        if stale and not emitted:
            for s in stale:
                log.info(ci.diff(project, s).rstrip("\n"))
        ci.require_fresh(statuses)
    if emitted:
        return
    rows = [
        (s.path, s.template, "written" if s.written else ("up to date" if s.up_to_date else "stale"))
        for s in statuses
    ]
    log.summary("ci render --check" if check else "ci render", ["file", "template", "state"], rows)
