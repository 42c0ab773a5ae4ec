"""The upstream lock, ``recipes/upstream.lock`` (TOML): which llama.cpp commit a release builds.

Written only by ``sync`` (and ``weekly``'s revision bump), atomically (temp file + rename), and
only after the new source is fully present; a failed sync leaves the previous lock byte-for-byte.
"""

from __future__ import annotations

import os
import re
import tempfile
import tomllib
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import tomli_w

from .errors import LockError

# The upstream a lock follows when none was ever named (`sync` without --upstream and no lock yet).
# Defined here, not in source.py, so the CLI can show it in --help without importing the sync machinery.
DEFAULT_UPSTREAM = "https://github.com/ggml-org/llama.cpp"

__all__ = ["DEFAULT_UPSTREAM", "Lock", "read_lock", "write_lock", "atomic_write_bytes"]

SHA_RE = re.compile(r"^[0-9a-f]{40}$")

HEADER = (
    "# Upstream lock: written by `locara-build sync`, read by every other stage.\n"
    "# Commit it. Do not edit by hand: run `locara-build sync --ref ...` instead.\n"
)


@dataclass(frozen=True, kw_only=True)
class Lock:
    source: str  # git URL, local path, or pypi:NAME==VERSION
    ref: str  # what was asked for: latest | TAG | BRANCH | COMMIT
    channel: str  # build | stable
    commit: str  # full sha
    tag: str  # resolved tag ("" when the commit has none)
    commit_date: str  # ISO 8601, UTC, of the upstream commit
    synced_at: str  # ISO 8601, UTC
    revision: int = 1  # locara revision on top of this upstream commit (bumped when our inputs change)

    @property
    def short(self) -> str:
        return self.commit[:7]

    @property
    def commit_datetime(self) -> datetime:
        return datetime.fromisoformat(self.commit_date.replace("Z", "+00:00")).astimezone(UTC)

    @property
    def source_date_epoch(self) -> int:
        return int(self.commit_datetime.timestamp())

    def with_revision(self, revision: int) -> Lock:
        return replace(self, revision=revision)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_FIELDS = {
    "source": str,
    "ref": str,
    "channel": str,
    "commit": str,
    "tag": str,
    "commit_date": str,
    "synced_at": str,
    "revision": int,
}


def read_lock(path: Path) -> Lock:
    hint_restore = (
        f"Restore it (`git checkout -- {path.name}` in {path.parent}) or re-create it with "
        "`locara-build sync --upstream ... --ref ...`."
    )
    if not path.exists():
        raise LockError(
            f"{path}: no upstream lock yet.",
            hint="Run `locara-build sync` (e.g. `locara-build sync --upstream pypi:llama-cpp-python==0.3.36`).",
        )
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise LockError(f"{path}: the lock file is corrupted (not valid TOML: {exc}).", hint=hint_restore) from None
    missing = [k for k in _FIELDS if k not in data and k != "revision"]
    if missing:
        raise LockError(f"{path}: the lock file lacks {', '.join(missing)}.", hint=hint_restore)
    for key, typ in _FIELDS.items():
        if key in data and not isinstance(data[key], typ):
            raise LockError(f"{path}: `{key}` must be {typ.__name__}, found {data[key]!r}.", hint=hint_restore)
    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        raise LockError(f"{path}: unknown keys in the lock file: {', '.join(unknown)}.", hint=hint_restore)
    if not SHA_RE.match(data["commit"]):
        raise LockError(f"{path}: `commit` is not a full 40-hex sha: {data['commit']!r}.", hint=hint_restore)
    try:
        datetime.fromisoformat(data["commit_date"].replace("Z", "+00:00"))
    except ValueError:
        raise LockError(f"{path}: `commit_date` is not an ISO date: {data['commit_date']!r}.", hint=hint_restore) from None
    return Lock(**{k: data[k] for k in _FIELDS if k in data})


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same directory, fsync and rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_lock(path: Path, lock: Lock) -> None:
    body = tomli_w.dumps(lock.to_dict())
    atomic_write_bytes(path, (HEADER + body).encode("utf-8"))
