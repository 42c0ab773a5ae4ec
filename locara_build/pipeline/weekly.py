"""``weekly``: the maintainer's / CI's one command.

sync latest -> patches check (bisect on failure) -> apply -> for every recipe this host can build:
build -> smoke -> package -> release (signed when a key is present) -> optional publish.

* One failing recipe does not stop the others; the run ends with a summary table and a JSON
  report, and exits non-zero when any recipe failed (then no release is made: the last good
  release stays the latest).
* Nothing changed since the last successful release (upstream commit, patches, recipes, tool
  version): "up to date" in seconds.
* Interrupted and re-run: finished stages are not redone (immutable build outputs, smoke and
  package records keyed by build key).
* One run per work dir: a second one waits (``--wait``) or refuses with exit 10.
* A patch that no longer applies to the new upstream commit: exit 4, the lock is put back to the
  last good commit, and the report names the upstream commit that broke it.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.markup import escape

from locara_build import __version__
from locara_build.build.plan import Plan, RecipePlan, make_plan
from locara_build.core import log
from locara_build.core.errors import BusyError, LocaraError, PatchError, SignError
from locara_build.core.redact import redact
from locara_build.core.workdir import Project, WorkDir
from locara_build.pipeline.records import PackageRecord
from locara_build.upstream.lock import Lock, atomic_write_bytes, read_lock, write_lock

if TYPE_CHECKING:
    from locara_build.release.signing.keys import PendingSigningKey
    from locara_build.release.signing.minisign import SecretKey

# The stages (build, doctor/toolchain probing, signing, notes) are imported where they are used:
# a run with nothing to do ("up to date") needs none of them and must answer in about a second.

__all__ = ["WeeklyOptions", "WeeklyReport", "RecipeOutcome", "run_weekly", "STATE_FILE"]

STATE_FILE = "weekly.json"
REPORT_SCHEMA = 1


@dataclass(frozen=True, kw_only=True)
class WeeklyOptions:
    upstream: str | None = None
    ref: str | None = None  # default: latest
    channel: str | None = None
    verify_with: str | None = None  # git upstream whose tag's tree must equal a tree-only source's
    fallback: str | None = None  # source to use when the git upstream cannot be reached
    recipes: list[str] | None = None  # default: every release recipe
    key: Path | None = None  # minisign secret key (else $LOCARA_MINISIGN_KEY)
    out: Path | None = None  # releases root (default <work>/releases)
    publish: str | None = None  # DIR | github:OWNER/REPO
    require_signing: bool = False
    allow_partial: bool = False
    wait: bool = False
    expires_days: int = 90


@dataclass
class RecipeOutcome:
    name: str
    status: str = "pending"  # released | packaged | failed | skipped
    stage: str = ""  # the stage it failed or stopped at
    seconds: float = 0.0
    artifact: str = ""
    size: int | None = None
    sha256: str = ""
    reason: str = ""
    error: dict[str, Any] | None = None
    stages: dict[str, str] = field(default_factory=dict)  # stage -> done | reused | skipped

    def to_dict(self) -> dict[str, Any]:
        return {
            "recipe": self.name,
            "status": self.status,
            "stage": self.stage,
            "seconds": round(self.seconds, 1),
            "artifact": self.artifact,
            "size": self.size,
            "sha256": self.sha256,
            "reason": self.reason,
            "error": self.error,
            "stages": self.stages,
        }


@dataclass
class WeeklyReport:
    status: str = "running"  # up-to-date | released | packaged | failed
    version: str = ""
    exit_code: int = 0
    upstream: dict[str, Any] = field(default_factory=dict)
    patches: dict[str, Any] = field(default_factory=dict)
    recipes: list[RecipeOutcome] = field(default_factory=list)
    release_dir: str = ""
    notes: str = ""
    published: dict[str, Any] | None = None
    message: str = ""
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": REPORT_SCHEMA,
            "ok": self.exit_code == 0,
            "status": self.status,
            "exit_code": self.exit_code,
            "version": self.version,
            "message": self.message,
            "upstream": self.upstream,
            "patches": self.patches,
            "recipes": [r.to_dict() for r in self.recipes],
            "release_dir": self.release_dir,
            "notes": self.notes,
            "published": self.published,
            "seconds": round(self.seconds, 2),
            "tool_version": __version__,
        }


# --- the work-dir lock and the state file ---------------------------------------------------------


@contextlib.contextmanager
def work_lock(work: WorkDir, *, wait: bool) -> Iterator[None]:
    """One weekly run per work dir (released by the kernel if the process dies)."""
    from locara_build.core.filelock import file_lock

    def busy(holder: str) -> BusyError:
        return BusyError(
            f"another `locara-build weekly` ({holder}) is running on the work dir {work.root}.",
            hint="Wait for it to finish, or pass --wait to queue behind it (use another --work-dir to run in parallel).",
        )

    with file_lock(work.ensure(work.state) / "weekly.lock", busy=None if wait else busy, record_holder=True):
        yield


def _read_state(work: WorkDir) -> dict[str, Any]:
    path = work.state / STATE_FILE
    try:
        return json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return {}


def _write_state(work: WorkDir, state: dict[str, Any]) -> None:
    atomic_write_bytes(work.ensure(work.state) / STATE_FILE, (json.dumps(state, indent=2, sort_keys=True) + "\n").encode())


def _releases_root(work: WorkDir, opts: WeeklyOptions) -> Path:
    return opts.out if opts.out is not None else work.root / "releases"


def _up_to_date(state: dict[str, Any], plan: Plan, root: Path) -> Path | None:
    last = state.get("last_release") or {}
    if last.get("inputs_hash") != plan.inputs_hash or last.get("version") != str(plan.version):
        return None
    release_dir = root / str(plan.version)
    return release_dir if (release_dir / "release.json").is_file() else None


# --- the run ------------------------------------------------------------------------------


def run_weekly(project: Project, work: WorkDir, opts: WeeklyOptions) -> WeeklyReport:
    start = time.monotonic()
    report = WeeklyReport()
    with work_lock(work, wait=opts.wait):  # a refused run (busy) leaves the running one's report alone
        lock_before = project.lock_path.read_bytes() if project.lock_path.exists() else None
        try:
            _run(project, work, opts, report)
            if report.status == "failed":
                note = _put_lock_back(project, lock_before, report)
                if note:
                    log.warn(note.strip())
                    report.message += note
        except LocaraError as exc:
            report.status = "failed"
            report.exit_code = exc.exit_code
            report.message = exc.message
            note = _put_lock_back(project, lock_before, report)
            if note:
                exc.message += note
                report.message += note
            raise
        except KeyboardInterrupt:  # Ctrl-C / SIGTERM: say so, never "ok"
            report.status = "interrupted"
            report.exit_code = 130
            report.message = "interrupted: finished stages are kept; run the same command again to resume"
            raise
        finally:
            report.seconds = time.monotonic() - start
            _save_report(work, report)
    return report


def _save_report(work: WorkDir, report: WeeklyReport) -> None:
    reports = work.ensure(work.root / "reports")
    # error messages may quote anything (a URL with credentials): secrets never reach the file
    data = (redact(json.dumps(report.to_dict(), indent=2, sort_keys=True)) + "\n").encode()
    atomic_write_bytes(reports / "weekly-latest.json", data)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    atomic_write_bytes(reports / f"weekly-{stamp}.json", data)


def _run(project: Project, work: WorkDir, opts: WeeklyOptions, report: WeeklyReport) -> None:
    from locara_build.upstream import patchqueue, source
    from locara_build.upstream.bisect import find_breaking_commits

    # The key first: a missing or corrupted key file or a missing password must fail in seconds,
    # before anything changes, not after an hour of building. A wrong password shows once the key
    # is derived (seconds of scrypt, in the background during the sync): before any patch or build.
    pending = _signing_key(opts)
    state = _read_state(work)
    root = _releases_root(work, opts)
    old_lock_bytes = project.lock_path.read_bytes() if project.lock_path.exists() else None
    old_lock = read_lock(project.lock_path) if old_lock_bytes is not None else None

    with log.step("sync upstream"):
        synced = source.sync(project, work, upstream=opts.upstream, ref=opts.ref or "latest", channel=opts.channel,
                             verify_with=opts.verify_with, fallback=opts.fallback)
    lock = synced.new
    report.upstream = {
        "source": lock.source,
        "old": old_lock.to_dict() if old_lock else None,
        "new": lock.to_dict(),
        "distance": synced.distance.to_dict() if synced.distance else None,
    }

    plan = make_plan(project, work, opts.recipes, lock=lock)
    report.version = str(plan.version)
    done = _up_to_date(state, plan, root)
    if done is not None:
        report.status = "up-to-date"
        report.release_dir = str(done)
        report.message = (
            f"up to date: release {plan.version} already holds upstream {lock.tag or lock.short}, "
            f"these patches and recipes ({done})"
        )
        log.info(report.message)
        return

    plan = _bump_revision_if_needed(project, work, opts, state, plan, root)
    lock = plan.lock
    report.version = str(plan.version)
    report.upstream["new"] = lock.to_dict()

    key = pending.result() if pending is not None else None  # there is work to do: the key must be good

    with log.step("check patches"):
        # Checked against the new commit *from the last good lock*, so a failure is bisected
        # between the two (same source only: another source has another mirror).
        bisectable = old_lock is not None and old_lock.commit != lock.commit and old_lock.source == lock.source
        check = patchqueue.check_series(project, work, ref=lock.commit, lock=old_lock if bisectable else lock,
                                        bisector=find_breaking_commits)
        report.patches = check.to_dict()
        if not check.ok:
            _restore_lock(project, old_lock_bytes)
            broken = ", ".join(r.patch.name for r in check.failed)
            culprit = "; ".join(_culprit(r.bisect) for r in check.failed if r.bisect)
            raise PatchError(
                f"patch(es) {broken} no longer apply to upstream {lock.tag or lock.short} ({lock.commit[:12]})"
                + (f": {culprit}" if culprit else "")
                + ". The lock was left at the last good commit"
                + (f" {old_lock.commit[:12]}." if old_lock else "."),
                hint=f"Run `locara-build patches check --ref {lock.commit}` for files and hunks and "
                f"`locara-build patches bisect --to {lock.commit}` for the breaking commit and a rebase attempt; "
                "docs/patches.md has the routine.",
                details={"patches": report.patches},
            )
    with log.step("prepare source tree"):
        patchqueue.prepare_tree(project, work, lock=lock)

    from locara_build.build import toolchain
    from locara_build.pipeline import stages

    tools = toolchain.probe_all()
    outcomes = {rp.name: RecipeOutcome(rp.name) for rp in plan.recipes}
    report.recipes = list(outcomes.values())
    selection = stages.select(plan, stages.BUILD, named=None, tools=tools)  # the host's recipes, even when named
    for name, why in selection.skipped:
        oc = outcomes[name]
        oc.status, oc.stage, oc.reason = "skipped", "doctor", why
        log.warn(f"{name}: skipped: {why}")

    for rp in selection.recipes:
        _recipe_pipeline(plan, rp, work, opts, outcomes[rp.name], tools)

    failed = [o for o in report.recipes if o.status == "failed"]
    packaged = [o for o in report.recipes if o.status == "packaged"]
    if failed and not opts.allow_partial:
        report.status = "failed"
        report.exit_code = max(o.error["exit_code"] for o in failed if o.error) if failed else 1
        report.message = (
            f"{len(failed)} recipe(s) failed ({', '.join(o.name for o in failed)}); no release was made, "
            "the last good release stays the latest"
        )
        _summary(report)
        return
    if not packaged:
        report.status = "failed"
        report.exit_code = 2
        report.message = "no recipe could be built on this host; nothing to release (see `locara-build doctor`)"
        _summary(report)
        return

    release_dir = _release(plan, work, opts, report, root, packaged, key)
    if release_dir is None:
        report.status = "packaged"
        _summary(report)
        return
    report.release_dir = str(release_dir)
    for o in packaged:
        o.status = "released"
    if opts.publish:
        from locara_build.release.publish import publish

        res = publish(release_dir, opts.publish)
        report.published = res.to_dict()
    state["last_release"] = {
        "inputs_hash": plan.inputs_hash,
        "version": str(plan.version),
        "commit": plan.lock.commit,
        "release_dir": str(release_dir),
        "recipes": [o.name for o in packaged],
        "at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    _write_state(work, state)
    report.status = "released"
    report.message = f"released {plan.version} ({len(packaged)} artifact(s)) in {release_dir}"
    _summary(report)


def _culprit(bisect: dict[str, Any]) -> str:
    first = (bisect or {}).get("first_bad") or {}
    if not first:
        return ""
    pr = f" (PR #{first['pr']})" if first.get("pr") else ""
    return f"broken by upstream {str(first.get('sha', ''))[:12]} \"{first.get('subject', '')}\"{pr}"


def _put_lock_back(project: Project, before: bytes | None, report: WeeklyReport) -> str:
    """A run that released nothing leaves the lock as it found it: the lock names the last upstream
    commit that was built, tested and released, so a CI job that commits it never commits one that
    fails. Finished builds stay in their keyed dirs: the next run re-syncs and resumes them."""
    now = project.lock_path.read_bytes() if project.lock_path.exists() else None
    if now == before:
        return ""
    _restore_lock(project, before)
    new = (report.upstream or {}).get("new") or {}
    ref = new.get("tag") or new.get("commit") or "<ref>"
    return (
        f" The lock ({project.lock_path.name}) was put back as it was before this run; to work on the failure "
        f"at upstream {ref}, run `locara-build sync --ref {ref}` first."
    )


def _restore_lock(project: Project, old_bytes: bytes | None) -> None:
    if old_bytes is None:
        project.lock_path.unlink(missing_ok=True)
    else:
        atomic_write_bytes(project.lock_path, old_bytes)


def _bump_revision_if_needed(
    project: Project, work: WorkDir, opts: WeeklyOptions, state: dict[str, Any], plan: Plan, root: Path
) -> Plan:
    """A release of this version exists, made from other inputs (same upstream commit, changed
    patches / recipes / tool): the next free locara revision, written to the lock."""
    last = state.get("last_release") or {}
    if not (root / str(plan.version) / "release.json").is_file():
        return plan
    if last.get("version") != str(plan.version) or last.get("inputs_hash") == plan.inputs_hash:
        return plan  # unknown provenance (make_release compares the artifacts) or identical inputs
    lock: Lock = plan.lock
    revision = lock.revision + 1
    while (root / str(make_plan(project, work, opts.recipes, lock=lock.with_revision(revision)).version)).exists():
        revision += 1
    new_lock = lock.with_revision(revision)
    write_lock(project.lock_path, new_lock)
    log.info(f"inputs changed on the same upstream commit: locara revision r{lock.revision} -> r{revision}")
    return make_plan(project, work, opts.recipes, lock=new_lock)


def _recipe_pipeline(
    plan: Plan, rp: RecipePlan, work: WorkDir, opts: WeeklyOptions, oc: RecipeOutcome, tools: dict[str, Any]
) -> None:
    """build -> smoke -> package for one recipe through the one driver (stages.drive: order and reuse);
    a failure is recorded in ``oc`` and the other recipes go on."""
    from locara_build.pipeline.stages import Driven, StageOptions, drive

    driven = Driven()
    try:
        drive(plan, rp, work, StageOptions(tools=tools, require_signing=opts.require_signing), into=driven)
        pkg = driven.records["package"]
        oc.artifact = pkg.file if isinstance(pkg, PackageRecord) else pkg.artifact.name
        oc.size, oc.sha256 = pkg.size, pkg.sha256
        oc.status = "packaged"
    except LocaraError as exc:
        oc.status, oc.stage = "failed", driven.stage
        oc.error = {"exit_code": exc.exit_code, "message": exc.message, "hint": exc.hint}
        log.console.print(f"[bold red]{rp.name}: {driven.stage} failed[/] (exit {exc.exit_code}); continuing with the other recipes")
        log.info(exc.message)
        if exc.hint:  # the next step, as a failing single-stage command would print it
            log.console.print("[bold]next:[/] " + escape(redact(exc.hint)), highlight=False)
    finally:
        oc.stages.update(driven.stages)
        oc.seconds = driven.seconds


_NO_KEY = "no signing key (pass --key FILE or set LOCARA_MINISIGN_KEY): artifacts are packaged but not released"


def _signing_key(opts: WeeklyOptions) -> PendingSigningKey | None:
    """The release key (None: package only), or the error that stops the run before it starts. Its
    file, shape and password are checked now; the decryption runs meanwhile (PendingSigningKey)."""
    from locara_build.release.signing.keys import PendingSigningKey

    if opts.key is None and not os.environ.get("LOCARA_MINISIGN_KEY"):
        if opts.require_signing:
            raise SignError(_NO_KEY + ".", hint="Create one with `locara-build keys generate` and pass --key.")
        return None
    return PendingSigningKey(opts.key)


def _release(
    plan: Plan,
    work: WorkDir,
    opts: WeeklyOptions,
    report: WeeklyReport,
    root: Path,
    packaged: list[RecipeOutcome],
    key: SecretKey | None,
) -> Path | None:
    from locara_build.release.previous import notes_renderer
    from locara_build.release.release import make_release

    if key is None:
        log.warn(_NO_KEY)
        report.message = _NO_KEY
        return None
    dist = work.root / "dist" / str(plan.version)
    # release only what was packaged in this run (skipped / failed recipes are not in it)
    released_plan = _restrict(plan, [o.name for o in packaged])
    result = make_release(
        released_plan, dist, root / str(plan.version), key, expires_days=opts.expires_days,
        notes=notes_renderer(plan, work, root),
    )
    notes_path = result.out / "RELEASE_NOTES.md"
    report.notes = str(notes_path) if notes_path.exists() else ""
    return result.out


def _restrict(plan: Plan, names: list[str]) -> Plan:
    from dataclasses import replace

    return replace(plan, recipes=tuple(rp for rp in plan.recipes if rp.name in names))


def _summary(report: WeeklyReport) -> None:
    rows = [
        (
            o.name,
            o.status + (f" ({o.stage})" if o.status == "failed" else ""),
            f"{o.seconds:.0f}s",
            o.artifact or (o.reason[:60] if o.reason else ""),
            f"{(o.size or 0) / (1 << 20):.1f} MiB" if o.size else "",
            o.sha256[:16],
        )
        for o in report.recipes
    ]
    log.summary(f"weekly {report.version}", ["recipe", "status", "duration", "artifact", "size", "sha256"], rows)
    if report.message:
        log.info(report.message)
