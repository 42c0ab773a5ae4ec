"""The patched source tree's identity stamp, shared by ``patches apply`` (writes) and ``build`` (checks).

The tree lives at a stable path (``<work>/src/llama.cpp``) so compile lines never change across
upstream bumps; the stamp beside it (``<work>/src/llama.cpp.json``) says which upstream commit and
patch series it holds. It is written last, after every patch applied, so a stamp that matches the
plan means the tree is complete.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from locara_build.core.errors import SourceError
from locara_build.upstream.lock import atomic_write_bytes

__all__ = ["Stamp", "stamp_path", "read_stamp", "write_stamp", "clear_stamp", "require_tree"]


@dataclass(frozen=True)
class Stamp:
    commit: str  # upstream commit (full sha)
    patch_set_hash: str  # locara_build.upstream.series.series_hash of the applied series
    head: str  # sha of the patched HEAD in the tree (upstream + one commit per patch)


def stamp_path(tree: Path) -> Path:
    return tree.with_name(tree.name + ".json")


def read_stamp(tree: Path) -> Stamp | None:
    path = stamp_path(tree)
    if not path.exists() or not (tree / ".git").exists():
        return None
    try:
        return Stamp(**json.loads(path.read_text()))
    except (ValueError, TypeError):
        return None


def write_stamp(tree: Path, stamp: Stamp) -> None:
    atomic_write_bytes(stamp_path(tree), (json.dumps(asdict(stamp), indent=2, sort_keys=True) + "\n").encode())


def clear_stamp(tree: Path) -> None:
    stamp_path(tree).unlink(missing_ok=True)


def require_tree(tree: Path, commit: str, patch_set_hash: str) -> Stamp:
    """The stamp of ``tree`` if it holds exactly ``commit`` + the series ``patch_set_hash``."""
    stamp = read_stamp(tree)
    if stamp is None:
        raise SourceError(
            f"no prepared source tree at {tree}.",
            hint="Run `locara-build patches apply` (after `locara-build sync`) to prepare it.",
        )
    if stamp.commit != commit or stamp.patch_set_hash != patch_set_hash:
        raise SourceError(
            f"the source tree at {tree} holds upstream {stamp.commit[:12]} with patch set "
            f"{stamp.patch_set_hash[:12]}, but the plan wants {commit[:12]} with {patch_set_hash[:12]}.",
            hint="Run `locara-build patches apply` to bring it to the locked commit and current patches.",
        )
    return stamp
