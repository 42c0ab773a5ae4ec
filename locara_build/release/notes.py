"""Release notes (markdown): what changed since the previous release.

Upstream range (old -> new tag and commit, commits between and their first subjects), patch
changes (added / removed / changed, by name and sha256), and per-artifact sizes with the change
since the previous release of the same os/arch/backend/flavour, and what each artifact's smoke test
covered (the device it ran on; "CPU only" where the build host lacked the GPU the backend needs).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from locara_build.build.plan import PRODUCT, Plan
from locara_build.pipeline.records import ReleaseArtifact, ReleaseManifest

__all__ = ["release_notes", "artifact_key", "smoke_cell", "proved", "with_proof", "not_built", "PROOFS"]


def artifact_key(entry: ReleaseArtifact) -> tuple[str, str, str, str]:
    return (entry.os, entry.arch, entry.backend, entry.flavour)


def _plain(record: Any) -> dict[str, Any]:
    """A part of the typed manifest as the summary dict it was made from (no None fields)."""
    return {k: v for k, v in dataclasses.asdict(record).items() if v is not None} if record is not None else {}


def _ident(upstream: Mapping[str, Any]) -> str:
    if upstream.get("identity") == "tree":  # a source without history: say what is known, and what is not
        return str(upstream.get("described") or f"tree of tag {upstream.get('tag')} (commit not recorded)")
    tag = upstream.get("tag") or ""
    commit = str(upstream.get("commit", ""))
    return f"{tag} ({commit[:12]})" if tag else commit[:12]


def _same_upstream(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    old_id = old.get("import_commit") or old.get("commit")
    return bool(old_id) and old_id == (new.get("import_commit") or new.get("commit"))


def _size(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"


def _delta(new: int, old: int | None) -> str:
    if old is None:
        return "new"
    if old == new:
        return "same"
    pct = (new - old) / old * 100 if old else 0.0
    sign = "+" if new > old else "-"
    diff = abs(new - old)
    amount = f"{diff} B" if diff < 1024 else f"{diff / 1024:.1f} KiB"
    share = f"{pct:+.1f} %" if abs(pct) >= 0.05 else f"{sign}<0.1 %"
    return f"{sign}{amount} ({share})"


# What an artifact's smoke test proved on the build host, so nobody mistakes "compiled" for "tested":
#   full          the server answered (completion, chat, UI, args file) on the device the recipe names,
#                 or on the CPU for a CPU build (possibly under an emulator: qemu-user, wine)
#   partial       it answered on a GPU device (the server log's ``using device``), but the artifact
#                 ships other GPU plugins that were not exercised (``universal``: Vulkan ran, CUDA did not)
#   cpu-fallback  it answered, but on the CPU backends it ships: the GPU it needs was not there
#   built-only    built and packaged, never run (smoke skipped, or no smoke record)
#   not built     a release recipe this release has no artifact of (built on its CI runner only)
PROOFS = ("full", "partial", "cpu-fallback", "built-only", "not built")


def proved(smoke: Mapping[str, Any] | None) -> str:
    """``full`` | ``partial`` | ``cpu-fallback`` | ``built-only`` for a packaged artifact's smoke summary."""
    smoke = smoke or {}
    if str(smoke.get("status") or "") != "passed":
        return "built-only"
    coverage = smoke.get("coverage")
    return coverage if coverage in ("partial", "cpu-fallback") else "full"


def with_proof(smoke: Mapping[str, Any] | None) -> dict[str, Any]:
    """The smoke summary release.json carries, with ``proved`` added."""
    out = dict(smoke or {"status": "not run"})
    out["proved"] = proved(out)
    return out


def smoke_cell(entry: Mapping[str, Any]) -> str:
    """One table cell: what the artifact's smoke test covered."""
    return _smoke_text(entry.get("smoke") or {})


def _smoke_text(smoke: Mapping[str, Any]) -> str:
    status = str(smoke.get("status") or "not run")
    if status == "skipped":
        text = f"skipped: {smoke.get('reason') or 'by the recipe'}"
    elif status != "passed":
        text = status
    elif smoke.get("coverage") == "cpu-fallback":
        text = f"CPU only ({smoke.get('reason') or 'the GPU it needs was not on the build host'})"
    elif smoke.get("coverage") == "partial":
        text = f"passed on {smoke.get('ran_on') or 'CPU'}; {smoke.get('reason') or 'other plugins not exercised'}"
    else:
        text = f"passed on {smoke.get('ran_on') or 'CPU'}"
    return text.replace("|", "\\|")


def release_notes(
    plan: Plan,
    artifacts: Sequence[ReleaseArtifact],
    previous: ReleaseManifest | None,
    distance: Mapping[str, Any] | None,
) -> str:
    """``artifacts``: the entries release.json will carry;
    ``previous``: the previous release.json (None for the first release); ``distance``: the
    upstream distance from the previous release's commit (``source.Distance.to_dict()``)."""
    lock = plan.lock
    new_upstream = lock.upstream_record()
    lines = [f"# {PRODUCT} {plan.version}", ""]

    lines += ["## Upstream llama.cpp", ""]
    if previous is None:
        lines.append(f"- First release: {_ident(new_upstream)} from {lock.commit_date} (`{lock.source}`).")
    else:
        old = _plain(previous.upstream)
        if _same_upstream(old, new_upstream):
            lines.append(f"- Unchanged: {_ident(new_upstream)} from {lock.commit_date}; this release changes locara-build inputs only.")
        else:
            lines.append(f"- {_ident(old)} ({old.get('commit_date', '?')}) -> {_ident(new_upstream)} ({lock.commit_date}).")
            if distance:
                if distance.get("count") is not None:
                    lines.append(f"- {distance['count']} upstream commit(s) in between.")
                elif distance.get("note"):
                    lines.append(f"- Commits in between: not counted ({distance['note']}).")
                if distance.get("tags") and distance.get("count") is None:  # without history, what is known
                    lines.append(f"- Tag distance: {distance['tags']}.")
                subjects = distance.get("subjects") or []
                if subjects:
                    lines += ["", "Notable upstream changes:", ""]
                    lines += [f"- {s}" for s in subjects]
    lines.append("")

    lines += ["## Patches", ""]
    new_patches = {p.name: p.sha256 for p in plan.patches}
    old_patches = {p.name: p.sha256 for p in previous.patches} if previous is not None else {}
    for p in plan.patches:
        if previous is None or p.name not in old_patches:
            state = "added" if previous is not None else "applied"
        elif old_patches[p.name] != p.sha256:
            state = "changed"
        else:
            state = "unchanged"
        lines.append(f"- `{p.name}` ({state}): {p.subject}")
    for name in sorted(set(old_patches) - set(new_patches)):
        lines.append(f"- `{name}` (dropped)")
    if not plan.patches and not old_patches:
        lines.append("- none")
    lines.append("")

    lines += ["## Artifacts", "", "| artifact | size | change | sha256 | proved | smoke test |", "|---|---|---|---|---|---|"]
    old_sizes = {artifact_key(a): a.size for a in previous.artifacts} if previous is not None else {}
    for entry in sorted(artifacts, key=lambda a: a.file):
        smoke = _plain(entry.smoke)
        lines.append(
            f"| `{entry.file}` | {_size(entry.size)} | {_delta(entry.size, old_sizes.get(artifact_key(entry)))} "
            f"| `{entry.sha256[:16]}…` | {proved(smoke)} | {_smoke_text(smoke)} |"
        )
    lines += [
        "",
        "Verify before use: `minisign -Vm SHA256SUMS -p locara-release.pub && sha256sum -c SHA256SUMS` "
        "(or `locara-build install`, which does it for you).",
        "",
    ]
    missing = not_built(plan, artifacts)
    if missing:
        lines += ["## Not built", "", "Release recipes this release has no artifact of (proved: not built):", "",
                  "| recipe | target | where it is built |", "|---|---|---|"]
        lines += [f"| {r['recipe']} | {r['os']}-{r['arch']}-{r['backend']} | {r['where']} |" for r in missing]
        lines.append("")
    return "\n".join(lines)


def not_built(plan: Plan, artifacts: Sequence[ReleaseArtifact]) -> list[dict[str, str]]:
    """Release recipes of the project that have no artifact in ``artifacts`` (e.g. the macOS and
    Windows-MSVC recipes on a Linux host), with the CI runner that builds them."""
    from locara_build.build.recipe import load_recipes
    from locara_build.core.workdir import Project

    try:
        recipes = load_recipes(Project(plan.project_root))
    except Exception:  # noqa: BLE001 - the notes never fail a release over this list
        return []
    have = {a.recipe for a in artifacts}
    return [
        {"recipe": r.name, "os": r.os, "arch": r.arch, "backend": r.backend,
         "where": f"its CI runner ({r.runner})" if r.runner else "another host"}
        for r in sorted(recipes.values(), key=lambda r: r.name)
        if r.is_release and r.name not in have
    ]
