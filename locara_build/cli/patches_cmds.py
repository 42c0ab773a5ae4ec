"""``patches apply | check | refresh | bisect``: the patch queue on top of the locked upstream commit."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from locara_build.cli.app import JsonOpt, app, output, state
from locara_build.core import log
from locara_build.core.errors import PatchError

if TYPE_CHECKING:  # the patch queue and bisect are imported inside the commands (start-up time)
    from locara_build.upstream.bisect import BisectReport
    from locara_build.upstream.patchqueue import CheckReport

patches_app = typer.Typer(
    help="The patch series (patches/series) on top of the locked upstream commit.",
    no_args_is_help=True,
)
app.add_typer(patches_app, name="patches")


@patches_app.command("apply")
def apply_cmd(json_: JsonOpt = False) -> None:
    """Prepare the patched source tree for the locked commit (idempotent; all-or-nothing)."""
    from locara_build.upstream.patchqueue import prepare_tree

    st = state()
    result = prepare_tree(st.project, st.work)
    if output(json_, result.to_dict()):
        return
    if result.noop:
        log.info(f"source tree {result.tree} already at {result.commit[:10]} + {len(result.patches)} patch(es): nothing to do")
        return
    log.info(f"source tree {result.tree}: upstream {result.commit[:10]} + {len(result.patches)} patch(es) -> HEAD {result.head[:10]}"
             + (f" ({result.changed_files} file(s) changed)" if result.changed_files else ""))
    for name in result.patches:
        log.info(f"  {'already upstream' if name in result.already_upstream else 'applied'} {name}")


def _print_bisect_breakage(b: dict) -> None:
    fb = b["first_bad"]
    pr = f" (PR #{fb['pr']})" if fb.get("pr") else ""
    log.info(f"    broken by upstream {fb['short']} {fb['author_date'][:10]} \"{fb['subject']}\"{pr}")
    log.info(f"    last good {b['last_good'][:10]}; {b['checks']} apply check(s) over {b['candidates']} commit(s)")
    for c in b["conflicts"]:
        if c["hunks"]:
            for h in c["hunks"]:
                log.info(f"      {h['file']}: hunk #{h['hunk']} {h['header']} {h['reason']}")
        else:
            log.info(f"      {c['file']}: {c['reason']}")
    rb = b.get("rebase")
    if rb:
        if rb["status"] == "resolved":
            where = f"written to {rb['written']}" if rb["written"] else "not written (pass --write)"
            log.info(f"    rebase: git resolved it; refreshed patch applies at {rb['onto_label']} ({where})")
            if rb["note"]:
                log.info(f"    note: {rb['note']}")
            if rb["diff"]:
                log.console.print(rb["diff"], markup=False, highlight=False)
        else:
            log.info(f"    rebase: {rb['status']}: {rb['note']}" + (f" ({', '.join(rb['conflicts'])})" if rb["conflicts"] else ""))


def _print_check(report: CheckReport) -> None:
    label = report.tag or report.ref
    log.info(f"checking {len(report.results)} patch(es) against {report.source} @ {label} ({report.commit[:10]})")
    rows = []
    for r in report.results:
        where = "; ".join(str(c) for c in r.conflicts) if r.conflicts else ", ".join(r.files)
        rows.append((r.patch.name, r.status, where))
    log.summary("patches check", ["patch", "status", "files / failing hunks"], rows)
    for r in report.results:
        if r.status == "upstream":
            log.info(f"  {r.patch.name}: already applied upstream (it changes nothing there): drop it from the series")
    for r in report.failed:
        if r.bisect:
            log.info(f"  {r.patch.name}:")
            _print_bisect_breakage(r.bisect)
    if report.bisect_note:
        log.info(report.bisect_note)


@patches_app.command("check")
def check_cmd(
    ref: Annotated[str | None, typer.Option("--ref", help="Upstream ref to try (latest|TAG|BRANCH|COMMIT). Default: the locked commit.")] = None,
    no_bisect: Annotated[bool, typer.Option("--no-bisect", help="Do not look for the upstream commit that broke a FAILED patch.")] = False,
    json_: JsonOpt = False,
) -> None:
    """Try the series against an upstream ref without touching the lock or the tree: clean / 3-way / FAILED."""
    from locara_build.upstream.bisect import find_breaking_commits
    from locara_build.upstream.patchqueue import check_series

    st = state()
    report = check_series(st.project, st.work, ref=ref, bisector=None if no_bisect else find_breaking_commits)
    if output(json_, report.to_dict()):
        if not report.ok:  # the JSON says why; exit 4 without a second JSON document
            raise SystemExit(PatchError.exit_code)
        return
    _print_check(report)
    if not report.ok:
        names = ", ".join(r.patch.name for r in report.failed)
        raise PatchError(
            f"{len(report.failed)} patch(es) FAILED against {report.tag or report.ref} ({report.commit[:12]}): {names}.",
            hint="See `locara-build patches bisect` for the breaking upstream commit and a rebased patch; docs/patches.md has the routine.",
            details={"failed": [r.patch.name for r in report.failed], "commit": report.commit},
        )


@patches_app.command("refresh")
def refresh_cmd(json_: JsonOpt = False) -> None:
    """Regenerate patches/ (and patches/series) from the patched branch in the source tree."""
    from locara_build.upstream.patchqueue import refresh

    st = state()
    result = refresh(st.project, st.work)
    if output(json_, result.to_dict()):
        return
    if not result.changed:
        log.info(f"patches/ is up to date ({len(result.series)} patch(es)); nothing written")
        return
    for name in result.written:
        log.info(f"  wrote   patches/{name}")
    for name in result.removed:
        log.info(f"  removed patches/{name}")
    if result.series_rewritten:
        log.info("  rewrote patches/series")
    log.info("next: `locara-build patches apply` (re-applies the series deterministically), then commit patches/")


def _print_bisect(report: BisectReport) -> None:
    log.info(f"bisect {report.from_commit[:10]}..{report.to_commit[:10]} ({report.to_label}): {report.candidates} first-parent commit(s)")
    for b in report.breakages:
        log.info(f"  {b.patch.name}:")
        _print_bisect_breakage(b.to_dict())
    for name in report.still_apply:
        log.info(f"  {name}: still applies at {report.to_label}")
    for name in report.broken_before:
        log.info(f"  {name}: already fails at {report.from_commit[:10]} (nothing to bisect)")
    if report.note:
        log.info(report.note)


@patches_app.command("bisect")
def bisect_cmd(
    from_ref: Annotated[str | None, typer.Option("--from", help="Good upstream ref. Default: the locked commit.")] = None,
    to_ref: Annotated[str | None, typer.Option("--to", help="Bad upstream ref. Default: latest on the lock's channel.")] = None,
    write: Annotated[bool, typer.Option("--write", help="Write refreshed patches that git could rebase into patches/.")] = False,
    json_: JsonOpt = False,
) -> None:
    """Find the first upstream commit at which each patch stops applying; offer a rebased patch."""
    from locara_build.upstream.bisect import find_breaking_commits

    st = state()
    report = find_breaking_commits(st.project, st.work, from_ref=from_ref, to_ref=to_ref, write=write)
    if not output(json_, report.to_dict()):
        _print_bisect(report)
