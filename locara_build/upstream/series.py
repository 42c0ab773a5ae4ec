"""The patch series as data: ``patches/series`` lists ``git format-patch`` files in order.

This module only reads and hashes the series (the plan needs its identity); applying, checking,
refreshing and bisecting live in :mod:`locara_build.upstream.patchqueue`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from locara_build.core.errors import PatchError
from locara_build.core.workdir import Project

__all__ = ["PatchFile", "read_series", "series_hash"]

_MAX_PATCH = 16 << 20
_SUBJECT_RE = re.compile(r"^Subject: (?:\[PATCH[^\]]*\] )?(?P<s>.*)$", re.M)


@dataclass(frozen=True)
class PatchFile:
    name: str  # file name inside patches/
    path: Path
    sha256: str
    subject: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "sha256": self.sha256, "subject": self.subject}


def read_series(project: Project) -> list[PatchFile]:
    """Patches in ``patches/series`` order. Blank lines and ``#`` comments are ignored."""
    series = project.patches_dir / "series"
    if not series.exists():
        return []
    out: list[PatchFile] = []
    seen: set[str] = set()
    for number, raw in enumerate(series.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line in seen:
            raise PatchError(f"{series}:{number}: `{line}` is listed twice.", hint="List each patch once.")
        seen.add(line)
        path = project.patches_dir / line
        if "/" in line or "\\" in line or line in (".", "..") or not path.is_file():
            raise PatchError(
                f"{series}:{number}: patch `{line}` is listed but {path} does not exist.",
                hint="Restore the file, or remove the line (then `locara-build patches refresh`).",
            )
        if path.is_symlink() and not path.resolve().is_relative_to(project.patches_dir.resolve()):
            raise PatchError(
                f"{series}:{number}: patch `{line}` is a symlink leading out of {project.patches_dir} "
                f"(to {path.resolve()}): a patch is a file of the project.",
                hint="Put the patch file itself into patches/.",
            )
        if path.stat().st_size > _MAX_PATCH:
            raise PatchError(f"{path}: larger than {_MAX_PATCH >> 20} MiB; not a patch of this series.",
                             hint="Check the file; a patch this large does not belong in a minimal series.")
        data = path.read_bytes()
        text = data.decode("utf-8", "replace")
        m = _SUBJECT_RE.search(text)
        if not m or "\ndiff --git " not in text:
            raise PatchError(
                f"{path}: not a `git format-patch` file (no Subject: header or no diff).",
                hint="Regenerate it with `locara-build patches refresh` from the patched branch.",
            )
        out.append(PatchFile(line, path, hashlib.sha256(data).hexdigest(), m["s"].strip()))
    return out


def series_hash(patches: list[PatchFile]) -> str:
    """Identity of the whole series: order and bytes of every patch."""
    h = hashlib.sha256()
    for p in patches:
        h.update(f"{p.name}\0{p.sha256}\n".encode())
    return h.hexdigest()
