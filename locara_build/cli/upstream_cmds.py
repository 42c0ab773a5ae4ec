"""``sync``: fetch upstream llama.cpp into its cached mirror, resolve the ref, write the lock."""

from __future__ import annotations

from typing import Annotated

import typer

from locara_build import log
from locara_build.lock import DEFAULT_UPSTREAM

from .app import JsonOpt, app, output, state


def _describe(commit: str, tag: str, date: str) -> str:
    return f"{commit[:10]}" + (f" ({tag}, {date[:10]})" if tag else f" ({date[:10]})")


@app.command("sync")
def sync_cmd(
    upstream: Annotated[
        str | None,
        typer.Option(
            "--upstream",
            help=f"Git URL, local repository path, or pypi:llama-cpp-python==X. Default: the lock's source, else {DEFAULT_UPSTREAM}.",
        ),
    ] = None,
    ref: Annotated[
        str,
        typer.Option("--ref", help="latest (newest tag of the channel) | TAG | BRANCH | COMMIT."),
    ] = "latest",
    channel: Annotated[
        str | None,
        typer.Option("--channel", help="build: newest bNNNN tag; stable: newest vX.Y.Z. Default: the lock's, else build."),
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """Fetch upstream into the cached mirror, resolve the ref and write recipes/upstream.lock."""
    from locara_build.source import sync

    st = state()
    result = sync(st.project, st.work, upstream=upstream, ref=ref, channel=channel)
    if output(json_, result.to_dict()):
        return
    new, old = result.new, result.old
    now = _describe(new.commit, new.tag, new.commit_date)
    if old is None:
        log.info(f"upstream  {new.source}: locked {now}")
    elif old.commit == new.commit:
        log.info(f"upstream  {new.source}: unchanged at {now}" + ("" if result.written else " (lock not rewritten)"))
    else:
        log.info(f"upstream  {new.source}: {_describe(old.commit, old.tag, old.commit_date)} -> {now}")
    d = result.distance
    if d is not None and d.relation != "same":
        if d.count is not None:
            what = "new upstream commits" if d.relation == "ahead" else "commits"
            log.info(f"          {d.count} {what} between them" + (f"; {d.note}" if d.note else ""))
            for line in d.subjects:
                log.info(f"            {line}")
            if d.count > len(d.subjects):
                log.info(f"            ... and {d.count - len(d.subjects)} more")
        else:
            log.info(f"          {d.note}.")
    log.info(f"lock      {result.lock_path} (revision {new.revision})" + (" written" if result.written else ""))
    log.info(f"mirror    {result.mirror.path}" + (" (created)" if result.mirror.created else ""))
