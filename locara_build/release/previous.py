"""What RELEASE_NOTES.md compares a new release against: the previous release beside it and the
upstream distance from that release's commit. One place for ``weekly`` and the ``release`` stage, so
a release re-issued with ``release --force`` keeps the notes ``weekly`` wrote.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from locara_build.core.errors import LocaraError
from locara_build.pipeline.records import ReleaseArtifact, ReleaseManifest
from locara_build.release.notes import release_notes
from locara_build.release.release import read_manifest, release_versions

if TYPE_CHECKING:
    from locara_build.build.plan import Plan
    from locara_build.core.workdir import WorkDir

__all__ = ["notes_renderer", "previous_release"]


def notes_renderer(plan: Plan, work: WorkDir, root: Path) -> Callable[[Sequence[ReleaseArtifact]], str]:
    """What ``make_release`` calls to write RELEASE_NOTES.md, for ``weekly`` and the ``release``
    stage alike (a re-issued release keeps its notes): the newest release below ``plan.version``
    in ``root`` is the "previous" one (sizes, the upstream range); the upstream distance from its
    commit is counted in the work dir's upstream mirror when it can be (else the notes say why)."""
    previous = previous_release(plan, root)
    distance = _distance(work, previous, plan)
    return lambda artifacts: release_notes(plan, artifacts, previous, distance)


def _distance(work: WorkDir, previous: ReleaseManifest | None, plan: Plan) -> dict[str, Any] | None:
    if previous is None:
        return None
    old_up = previous.to_dict()["upstream"]  # upstream_distance reads the plain object
    old_commit = previous.upstream.import_commit or previous.upstream.commit
    if not old_commit or old_commit == plan.lock.commit:
        return None
    from locara_build.upstream.source import ensure_commit, upstream_distance

    try:
        mirror = ensure_commit(work, plan.lock)
        return upstream_distance(mirror, old_up, plan.lock).to_dict()
    except LocaraError as exc:
        return {"count": None, "note": exc.message, "subjects": []}


def previous_release(plan: Plan, root: Path) -> ReleaseManifest | None:
    """The manifest of the newest release in ``root`` below ``plan.version``; None when there is none
    or it does not read (the notes then call this the first release)."""
    older = [(v, p) for v, p in release_versions(root) if v < plan.version]
    if not older:
        return None
    try:
        return read_manifest(older[-1][1])
    except (OSError, LocaraError):
        return None
