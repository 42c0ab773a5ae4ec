"""``patches bisect``: the upstream commit that broke each patch, and a rebased patch when git can resolve it.

For each patch that applies at ``from`` (default: the locked commit) and not at ``to`` (default:
the newest tag of the lock's channel), binary-search the first-parent history ``from..to``. One
*check* applies the series up to that patch at one commit, in a scratch index (no working tree,
no build; the same ``clean`` / ``3-way`` rule as ``patches check`` and ``git am -3``). With ``to``
known bad and ``from`` good, n candidate commits take at most ceil(log2(n)) checks, plus the one at
``to``.

Then a rebase attempt: the patch, committed on the last good commit, is cherry-picked onto the
first bad commit with git's 3-way merge (``git merge-tree``, base = the last good commit, renames
followed), and from there onto ``to``. When git resolves it, the refreshed patch is offered (a
diff of the patch file) and written into ``patches/`` with ``write=True``.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from locara_build.core import log
from locara_build.core.errors import PatchError, SourceError
from locara_build.core.workdir import Project, WorkDir
from locara_build.upstream.gitutil import CommitInfo, Scratch, commit_info, git, is_ancestor
from locara_build.upstream.lock import Lock, atomic_write_bytes, read_lock
from locara_build.upstream.patchqueue import (
    FileConflict,
    _merge_tree,
    apply_patch,
    apply_series,
    diagnose,
    format_commit,
    patch_meta,
)
from locara_build.upstream.series import PatchFile, read_series

__all__ = ["Rebase", "Breakage", "BisectReport", "find_breaking_commits"]

#: on_check(patch name, commit sha, applies?) -- called once per apply check (tests count them).
CheckHook = Callable[[str, str, bool], None]


@dataclass
class Rebase:
    status: str  # resolved | conflict | unavailable
    onto: str = ""  # the commit the refreshed patch applies to
    onto_label: str = ""
    conflicts: list[str] = field(default_factory=list)
    patch_text: str = ""
    diff: str = ""
    written: Path | None = None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "onto": self.onto,
            "onto_label": self.onto_label,
            "conflicts": self.conflicts,
            "diff": self.diff,
            "patch": self.patch_text,
            "written": str(self.written) if self.written else None,
            "note": self.note,
        }


@dataclass
class Breakage:
    patch: PatchFile
    first_bad: CommitInfo
    last_good: str
    conflicts: list[FileConflict]
    checks: int
    candidates: int
    rebase: Rebase | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "patch": self.patch.name,
            "first_bad": self.first_bad.to_dict(),
            "last_good": self.last_good,
            "conflicts": [c.to_dict() for c in self.conflicts],
            "checks": self.checks,
            "candidates": self.candidates,
            "rebase": self.rebase.to_dict() if self.rebase else None,
        }


@dataclass
class BisectReport:
    source: str
    from_commit: str
    to_commit: str
    to_label: str
    candidates: int
    breakages: list[Breakage] = field(default_factory=list)
    still_apply: list[str] = field(default_factory=list)
    broken_before: list[str] = field(default_factory=list)  # already failing at ``from``
    checks: int = 0
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": True,
            "source": self.source,
            "from": self.from_commit,
            "to": self.to_commit,
            "to_label": self.to_label,
            "candidates": self.candidates,
            "breakages": [b.to_dict() for b in self.breakages],
            "still_apply": self.still_apply,
            "broken_before": self.broken_before,
            "checks": self.checks,
            "note": self.note,
        }


class _Checker:
    """Evaluates "does patch k (after the series before it) apply at commit c?" in a scratch index."""

    def __init__(self, scratch: Scratch, series: list[PatchFile], on_check: CheckHook | None):
        self.scratch = scratch
        self.series = series
        self.on_check = on_check
        self.count = 0
        self._prefix: dict[tuple[str, int], str] = {}

    def prefix_tree(self, commit: str, k: int) -> str:
        key = (commit, k)
        if key not in self._prefix:
            tree, _ = apply_series(self.scratch, self.scratch.tree_of(commit), self.series[:k])
            self._prefix[key] = tree
        return self._prefix[key]

    def applies(self, commit: str, k: int) -> bool:
        self.count += 1
        ok = apply_patch(self.scratch, self.prefix_tree(commit, k), self.series[k].path).ok
        if self.on_check:
            self.on_check(self.series[k].name, commit, ok)
        log.detail(f"check {self.count}: {self.series[k].name} at {commit[:12]}: {'applies' if ok else 'FAILS'}")
        return ok


def _rebase(
    checker: _Checker,
    project: Project,
    k: int,
    good: str,
    bad: str,
    to: str,
    to_label: str,
    write: bool,
) -> Rebase:
    scratch = checker.scratch
    patch = checker.series[k]
    meta = patch_meta(scratch, patch.path)
    at_good = apply_patch(scratch, checker.prefix_tree(good, k), patch.path)
    if not at_good.ok or at_good.tree is None:
        return Rebase("unavailable", note=f"the patch does not apply at the last good commit {good[:12]} either")
    c_good = scratch.commit_tree(checker.prefix_tree(good, k), [good])
    c_patch = scratch.commit_tree(at_good.tree, [c_good], meta.message, meta.ident)
    c_bad = scratch.commit_tree(checker.prefix_tree(bad, k), [bad])
    merged, files, _ = _merge_tree(scratch, c_bad, c_patch)
    if merged is None:
        return Rebase("conflict", conflicts=files, note=(
            f"git cannot resolve it: rebase it by hand (`locara-build sync --ref {to_label}`, then "
            "`locara-build patches apply` prints the commands; docs/patches.md)"))
    final = scratch.commit_tree(merged, [c_bad], meta.message, meta.ident)
    onto, onto_label, note = bad, bad[:12], ""
    if to != bad:
        c_to = scratch.commit_tree(checker.prefix_tree(to, k), [to])
        merged_to, files_to, _ = _merge_tree(scratch, c_to, final)
        if merged_to is not None:
            final = scratch.commit_tree(merged_to, [c_to], meta.message, meta.ident)
            onto, onto_label = to, to_label
        else:
            note = (f"the refreshed patch applies at {bad[:12]} but breaks again before {to_label} "
                    f"({', '.join(files_to)}): run `locara-build patches bisect --from {bad[:12]}` next")
    _, data = format_commit(scratch, final, k + 1)
    old = patch.path.read_text(encoding="utf-8", errors="surrogateescape")
    new = data.decode("utf-8", errors="surrogateescape")
    diff = "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True), new.splitlines(keepends=True),
            fromfile=f"a/patches/{patch.name}", tofile=f"b/patches/{patch.name}",
        )
    )
    written = None
    if write and new != old:
        atomic_write_bytes(patch.path, data)
        written = patch.path
    return Rebase("resolved", onto, onto_label, [], new, diff, written, note)


def find_breaking_commits(
    project: Project,
    work: WorkDir,
    *,
    from_ref: str | None = None,
    to_ref: str | None = None,
    only: Sequence[str] | None = None,
    known_bad: Sequence[str] = (),
    write: bool = False,
    rebase: bool = True,
    lock: Lock | None = None,
    on_check: CheckHook | None = None,
) -> BisectReport:
    """For each patch applying at ``from`` but not at ``to``: the first upstream commit it fails at.

    ``from_ref`` defaults to the locked commit, ``to_ref`` to the newest tag on the lock's channel.
    ``only`` limits the patches examined; ``known_bad`` skips the check at ``to`` for patches the
    caller already saw fail there (``patches check``). ``write`` writes resolved rebases into
    ``patches/``. Never touches the lock or the source tree.
    """
    from locara_build.upstream.source import ensure_commit, parse_source, resolve_ref

    lock = lock or read_lock(project.lock_path)
    source = parse_source(lock.source)
    mirror = ensure_commit(work, lock)
    to_res = resolve_ref(work, source, to_ref or "latest", lock.channel, any_commit=True)  # fetches once
    to_commit, to_label = to_res.commit, to_res.tag or (to_ref or "latest")
    if from_ref is None:
        from_commit = lock.commit
    else:
        from_commit = resolve_ref(work, source, from_ref, lock.channel, fetch=False, any_commit=True).commit
    mirror = to_res.mirror.path
    series = read_series(project)
    report = BisectReport(lock.source, from_commit, to_commit, to_label, 0)
    if from_commit == to_commit:
        report.note = f"nothing to bisect: from and to are the same commit ({to_commit[:12]})"
        return report
    if not is_ancestor(mirror, from_commit, to_commit):
        raise SourceError(
            f"cannot bisect: {from_commit[:12]} is not an ancestor of {to_commit[:12]} in {lock.source} "
            "(a shallow pypi: history holds no commits between them, or they are on different branches).",
            hint="Bisect against a git upstream (`--from`/`--to` on a full mirror), e.g. after "
                 "`locara-build sync --upstream https://github.com/ggml-org/llama.cpp`.",
        )
    commits = git("rev-list", "--first-parent", "--reverse", f"{from_commit}..{to_commit}", git_dir=mirror).stdout.split()
    report.candidates = len(commits)
    wanted = set(only) if only is not None else None
    with Scratch(mirror, error=PatchError) as scratch:
        checker = _Checker(scratch, series, on_check)
        for k, patch in enumerate(series):
            if wanted is not None and patch.name not in wanted:
                continue
            before = checker.count
            if patch.name not in known_bad and checker.applies(to_commit, k):
                report.still_apply.append(patch.name)
                continue
            lo, hi = -1, len(commits) - 1  # commits[lo] applies (lo = -1: from), commits[hi] does not
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if checker.applies(commits[mid], k):
                    lo = mid
                else:
                    hi = mid
            bad = commits[hi]
            good = git("rev-parse", f"{bad}^1", git_dir=mirror).stdout.strip() if hi == 0 else commits[hi - 1]
            if hi == 0 and not checker.applies(good, k):
                report.broken_before.append(patch.name)
                continue
            conflicts = diagnose(scratch, checker.prefix_tree(bad, k), patch.path,
                                 apply_patch(scratch, checker.prefix_tree(bad, k), patch.path).conflict_files)
            br = Breakage(patch, commit_info(mirror, bad), good, conflicts, checker.count - before, len(commits))
            if rebase:
                br.rebase = _rebase(checker, project, k, good, bad, to_commit, to_label, write)
            report.breakages.append(br)
        report.checks = checker.count
    if not report.breakages:
        report.note = f"no patch breaks between {from_commit[:12]} and {to_label} ({len(commits)} commits)"
    return report
