"""The end-user side: fetch a release, verify it, pick the artifact for this host, download, unpack
safely and switch atomically.

Prefix layout::

    <prefix>/current -> versions/<version>     a relative symlink, switched by renaming a temp symlink
    <prefix>/versions/<version>/                one folder per installed version (bin/, run.sh, ...)
    <prefix>/state.json                         highest version seen, previous version, what is installed
    <prefix>/.downloads/                        partial downloads (resumed by the next run)
    <prefix>/.lock                              one install at a time

Order of checks: release.json and SHA256SUMS signatures (pinned keys) -> trusted comments name the
right file and version -> schema -> not expired -> the version asked for -> not a downgrade below
the highest version seen -> the artifact's sha256 agrees in release.json and SHA256SUMS -> the
download matches it (size + sha256, before anything is unpacked) -> its signed provenance names it
-> every archive member is safe -> extract into a temp dir beside ``versions/`` -> rename -> switch
``current``. Any failure leaves ``current`` and the installed versions as they were.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from . import hostdetect, httpfetch, log
from .errors import BusyError, ConfigError, NetworkError, VerifyError
from .extract import safe_extract
from .lock import atomic_write_bytes
from .provenance import verify_envelope
from .release import (
    MANIFEST,
    SIG_SUFFIX,
    SUMS,
    fsync_dir,
    manifest_version,
    parse_manifest,
    parse_sums,
    verify_signed,
)
from .signing.keys import trusted_keys
from .signing.minisign import PublicKey
from .version import Version

__all__ = [
    "InstallOptions",
    "InstallResult",
    "VerifiedRelease",
    "fetch_release",
    "install",
    "rollback",
    "download",
    "resolve_source",
    "read_state",
    "STATE_FILE",
]

STATE_FILE = "state.json"
STATE_SCHEMA = 1
SOURCE_ENV = "LOCARA_INSTALL_FROM"
MAX_DOC = 4 << 20  # release.json, SHA256SUMS, signatures, provenance: small documents


@dataclass
class InstallOptions:
    prefix: Path
    source: str | None = None
    version: str = "latest"
    backend: str = "auto"
    flavour: str = "release"
    trust: list[Path] = field(default_factory=list)
    builtin_keys: bool = True
    allow_downgrade: bool = False
    keep: int = 2
    timeout: float = httpfetch.DEFAULT_TIMEOUT[1]
    now: datetime | None = None


@dataclass
class VerifiedRelease:
    base: str  # where the release's files are (URL or directory)
    manifest: dict[str, Any]
    manifest_bytes: bytes
    sums: dict[str, str]
    key: PublicKey
    version: Version

    def url(self, name: str) -> str:
        return _join(self.base, name)


@dataclass
class InstallResult:
    prefix: Path
    version: str
    artifact: str
    backend: str
    reason: str
    path: Path
    previous: str | None
    changed: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "prefix": str(self.prefix),
            "version": self.version,
            "artifact": self.artifact,
            "backend": self.backend,
            "reason": self.reason,
            "path": str(self.path),
            "previous": self.previous,
            "changed": self.changed,
        }


# --- sources ------------------------------------------------------------------------------------


def resolve_source(source: str | None) -> str:
    """``--from`` (or ``$LOCARA_INSTALL_FROM``): an http(s) URL, a directory, or ``github:OWNER/REPO``."""
    source = source or os.environ.get(SOURCE_ENV)
    if not source:
        raise ConfigError(
            "no release source: pass --from URL|DIR|github:OWNER/REPO (or set LOCARA_INSTALL_FROM).",
            hint="For example `locara-build install --from https://example.org/locara/`.",
        )
    if source.startswith("github:"):
        repo = source[len("github:"):].strip("/")
        if repo.count("/") != 1:
            raise ConfigError(f"--from {source}: expected github:OWNER/REPO.", hint="For example github:locara/locara-build.")
        return f"github:{repo}"
    if "://" in source:
        return source.rstrip("/")
    path = Path(source).expanduser()
    if not path.is_dir():
        raise ConfigError(f"--from {source}: no such directory.", hint="Give a release mirror URL or a directory.")
    return str(path.resolve())


def _join(base: str, *parts: str) -> str:
    if "://" in base:
        return base.rstrip("/") + "/" + "/".join(quote(p) for p in parts)
    return str(Path(base).joinpath(*parts))


def _get(url: str, timeout: float) -> bytes:
    return httpfetch.fetch_bytes(url, timeout=(httpfetch.DEFAULT_TIMEOUT[0], timeout), max_size=MAX_DOC)


def _candidate_bases(source: str, version: str, timeout: float) -> tuple[list[str], str | None]:
    """Where release.json may be, and the version a ``latest`` pointer named (if any)."""
    if source.startswith("github:"):
        repo = source[len("github:"):]
        if version == "latest":
            return [f"https://github.com/{repo}/releases/latest/download"], None
        return [f"https://github.com/{repo}/releases/download/{quote(version)}"], None
    if version != "latest":
        return [_join(source, version), source], None
    try:
        pointer = json.loads(_get(_join(source, "latest.json"), timeout))
        named = pointer.get("version") if isinstance(pointer, dict) else None
    except (NetworkError, ValueError):
        named = None
    if isinstance(named, str) and named:
        try:
            Version.parse(named)
        except ConfigError:
            raise VerifyError(f"{_join(source, 'latest.json')}: names an invalid version {named!r}.", hint="Report the mirror.") from None
        return [_join(source, named)], named
    return [source], None


def fetch_release(
    source: str, version: str, keys: list[PublicKey], *, timeout: float = 30.0, now: datetime | None = None
) -> VerifiedRelease:
    """release.json + SHA256SUMS and their signatures, fully verified (not the artifacts)."""
    bases, pointed = _candidate_bases(source, version, timeout)
    manifest_bytes = None
    first_error: NetworkError | None = None
    base = bases[0]
    for base in bases:
        try:
            manifest_bytes = _get(_join(base, MANIFEST), timeout)
            break
        except NetworkError as exc:
            first_error = first_error or exc
    if manifest_bytes is None:
        assert first_error is not None
        raise first_error
    sig = _get(_join(base, MANIFEST + SIG_SUFFIX), timeout)
    key, comment = verify_signed(manifest_bytes, sig, keys, file=MANIFEST, what=_join(base, MANIFEST))
    doc = parse_manifest(manifest_bytes, source=_join(base, MANIFEST))
    if comment.get("version") != doc["version"]:
        raise VerifyError(
            f"{_join(base, MANIFEST)}: signed for version {comment.get('version')!r} but says {doc['version']!r}.",
            hint="Fetch the release again.",
        )
    wanted = pointed if version == "latest" else version
    if wanted and doc["version"] != wanted:
        raise VerifyError(
            f"{_join(base, MANIFEST)} is release {doc['version']}, not the {wanted} asked for: the mirror mixes releases up.",
            hint="Report the mirror; install with another --from.",
        )
    now = now or datetime.now(UTC)
    expires = datetime.fromisoformat(doc["expires"].replace("Z", "+00:00"))
    if expires <= now:
        raise VerifyError(
            f"release {doc['version']} from {base} expired on {doc['expires']}: a mirror may be serving a stale release.",
            hint="Install from an up-to-date mirror (the project re-releases every week); a newer release is needed.",
        )
    sums_bytes = _get(_join(base, SUMS), timeout)
    sums_sig = _get(_join(base, SUMS + SIG_SUFFIX), timeout)
    verify_signed(sums_bytes, sums_sig, keys, file=SUMS, version=doc["version"], what=_join(base, SUMS))
    sums = parse_sums(sums_bytes.decode("utf-8", "replace"), source=_join(base, SUMS))
    if sums.get(MANIFEST) != hashlib.sha256(manifest_bytes).hexdigest():
        raise VerifyError(f"{_join(base, SUMS)} does not list this release.json.", hint="Fetch the release again.")
    for a in doc["artifacts"]:
        if sums.get(a["file"]) != a["sha256"]:
            raise VerifyError(
                f"{a['file']}: release.json and SHA256SUMS disagree on its sha256.", hint="Report the release; do not install it."
            )
    return VerifiedRelease(base, doc, manifest_bytes, sums, key, manifest_version(doc))


# --- prefix state ------------------------------------------------------------------------------


def read_state(prefix: Path) -> dict[str, Any]:
    path = prefix / STATE_FILE
    if not path.exists():
        return {"schema": STATE_SCHEMA, "highest_seen": None, "previous": None, "installed": {}}
    try:
        doc = json.loads(path.read_text("utf-8"))
        if not isinstance(doc, dict) or doc.get("schema") != STATE_SCHEMA:
            raise ValueError
        doc.setdefault("installed", {})
        return doc
    except (ValueError, OSError):
        raise ConfigError(
            f"{path}: unreadable install state.",
            hint="Restore it from a backup or remove it (the downgrade protection then restarts from the next install).",
        ) from None


def _write_state(prefix: Path, state: dict[str, Any]) -> None:
    atomic_write_bytes(prefix / STATE_FILE, (json.dumps(state, indent=2, sort_keys=True) + "\n").encode())


def _highest(state: dict[str, Any]) -> Version | None:
    h = state.get("highest_seen")
    if not h:
        return None
    return Version.parse(h["version"], h.get("commit_date"))


@contextlib.contextmanager
def _prefix_lock(prefix: Path) -> Iterator[None]:
    prefix.mkdir(parents=True, exist_ok=True)
    fh = open(prefix / ".lock", "a+")  # noqa: SIM115
    try:
        try:
            import fcntl

            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # Windows: msvcrt locks a byte range
            import msvcrt

            try:
                msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
            except OSError:
                raise BlockingIOError from None
    except BlockingIOError:
        fh.close()
        raise BusyError(
            f"{prefix}: another install is running in this prefix.", hint="Wait for it to finish, then run again."
        ) from None
    try:
        yield
    finally:
        fh.close()


def _current(prefix: Path) -> str | None:
    link = prefix / "current"
    if not link.is_symlink():
        return None
    target = os.readlink(link)
    return Path(target).name


def _cleanup_stale(prefix: Path) -> None:
    """Leftovers of an install killed midway: temp extraction dirs and temp symlinks."""
    versions = prefix / "versions"
    if versions.is_dir():
        for p in versions.iterdir():
            if p.name.startswith(".extract-"):
                shutil.rmtree(p, ignore_errors=True)
    for p in prefix.glob(".current.tmp-*"):
        with contextlib.suppress(OSError):
            p.unlink()


def _switch_current(prefix: Path, dirname: str) -> None:
    link = prefix / "current"
    if link.exists() and not link.is_symlink():
        raise ConfigError(f"{link} is not a symlink; refusing to replace it.", hint="Move it away, then run again.")
    tmp = prefix / f".current.tmp-{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    try:
        os.symlink(f"versions/{dirname}", tmp, target_is_directory=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot create the `current` symlink in {prefix}: {exc.strerror}.",
            hint="On Windows enable Developer Mode (symlinks without admin rights) or run as administrator.",
        ) from None
    os.replace(tmp, link)
    fsync_dir(prefix)


# --- download ---------------------------------------------------------------------------------


def _progress_download(url: str, dest: Path, *, sha256: str, size: int, timeout: float) -> httpfetch.FetchResult:
    with log.download_progress(dest.name, size) as update:
        result = httpfetch.fetch(
            url, dest, sha256=sha256, size=size, timeout=(httpfetch.DEFAULT_TIMEOUT[0], timeout), progress=update
        )
    if result.resumed_from:
        log.info(f"resumed {dest.name} from byte {result.resumed_from}")
    return result


def _check_provenance(rel: VerifiedRelease, art: dict[str, Any], keys: list[PublicKey], timeout: float) -> None:
    name = art.get("provenance")
    if not name:
        return
    data = _get(rel.url(name), timeout)
    if rel.sums.get(name) != hashlib.sha256(data).hexdigest():
        raise VerifyError(f"{rel.url(name)}: does not match SHA256SUMS.", hint="Fetch the release again.")
    statement, _ = verify_envelope(data, keys, what=rel.url(name))
    subjects = {(s.get("name"), s.get("digest", {}).get("sha256")) for s in statement.get("subject", [])}
    if (art["file"], art["sha256"]) not in subjects:
        raise VerifyError(f"{rel.url(name)}: the provenance is not about {art['file']}.", hint="Report the release.")


def _pick(rel: VerifiedRelease, opts: InstallOptions) -> tuple[dict[str, Any], str]:
    host = hostdetect.detect(gpus=opts.backend == "auto")  # a named backend needs no GPU probe
    art, why = hostdetect.choose_artifact(rel.manifest["artifacts"], host, backend=opts.backend, flavour=opts.flavour)
    log.info(f"picked {art['file']} ({why})")
    return art, why


def download(opts: InstallOptions, dest_dir: Path) -> tuple[Path, dict[str, Any], str]:
    """Fetch and verify the artifact for this host into ``dest_dir`` (no install)."""
    keys = trusted_keys(opts.trust, builtin=opts.builtin_keys)
    source = resolve_source(opts.source)
    with log.step("verify release"):
        rel = fetch_release(source, opts.version, keys, timeout=opts.timeout, now=opts.now)
        log.info(f"release {rel.manifest['version']} signed by trusted key {rel.key.id_hex}")
    art, why = _pick(rel, opts)
    _check_provenance(rel, art, keys, opts.timeout)
    dest_dir.mkdir(parents=True, exist_ok=True)
    with log.step(f"download {art['file']}"):
        _progress_download(rel.url(art["file"]), dest_dir / art["file"], sha256=art["sha256"], size=art["size"], timeout=opts.timeout)
    return dest_dir / art["file"], art, why


# --- install / rollback -------------------------------------------------------------------------


def _dirname_for(prefix: Path, state: dict[str, Any], version: str, art: dict[str, Any]) -> str:
    """``<version>``, unless that folder holds another artifact of the same version (another backend)."""
    installed = state.get("installed", {})
    for name in (version, f"{version}+{art['backend']}", f"{version}+{art['backend']}-{art['flavour']}"):
        entry = installed.get(name)
        path = prefix / "versions" / name
        if not path.exists() or (entry and entry.get("sha256") == art["sha256"]):
            return name
    raise ConfigError(f"{prefix}/versions holds conflicting folders for {version}.", hint="Remove the unused ones.")


def install(opts: InstallOptions) -> InstallResult:
    keys = trusted_keys(opts.trust, builtin=opts.builtin_keys)
    source = resolve_source(opts.source)
    prefix = opts.prefix.expanduser().resolve()
    with _prefix_lock(prefix):
        _cleanup_stale(prefix)
        state = read_state(prefix)
        with log.step("verify release"):
            rel = fetch_release(source, opts.version, keys, timeout=opts.timeout, now=opts.now)
            version = rel.manifest["version"]
            log.info(f"release {version} signed by trusted key {rel.key.id_hex}, expires {rel.manifest['expires']}")
            highest = _highest(state)
            if highest is not None and rel.version < highest:
                if not opts.allow_downgrade:
                    raise VerifyError(
                        f"release {version} is older than {highest}, the newest version this prefix has seen: refusing a downgrade.",
                        hint="A mirror may be replaying an old release. If you really want the older version, pass "
                        "--allow-downgrade (or use --rollback to go back to the previously installed one).",
                    )
                log.warn(f"installing {version}, older than {highest} (--allow-downgrade)")
        art, why = _pick(rel, opts)
        _check_provenance(rel, art, keys, opts.timeout)
        previous = _current(prefix)
        dirname = _dirname_for(prefix, state, version, art)
        target = prefix / "versions" / dirname
        if target.exists() and state["installed"].get(dirname, {}).get("sha256") == art["sha256"]:
            changed = previous != dirname
            if changed:
                _switch_current(prefix, dirname)
                log.info(f"{version} was already installed; `current` now points to it")
            else:
                log.info(f"{version} ({art['backend']}) is already installed and current")
            _record(prefix, state, rel, art, dirname, previous if changed else state.get("previous"))
            return InstallResult(prefix, version, art["file"], art["backend"], why, target, previous, changed)
        downloads = prefix / ".downloads"
        with log.step(f"download {art['file']}"):
            try:
                _progress_download(
                    rel.url(art["file"]), downloads / art["file"], sha256=art["sha256"], size=art["size"], timeout=opts.timeout
                )
            except BaseException:
                with contextlib.suppress(OSError):
                    downloads.rmdir()  # only when empty: a partial download stays for the next run
                raise
        archive = downloads / art["file"]
        with log.step(f"unpack into {target}"):
            try:
                top = safe_extract(archive, prefix / "versions", top=art["name"])
            except BaseException:
                archive.unlink(missing_ok=True)
                with contextlib.suppress(OSError):
                    downloads.rmdir()
                raise
            tmp_root = top.parent
            try:
                _write_install_record(top, rel, art)
                os.rename(top, target)
                fsync_dir(target.parent)
            finally:
                shutil.rmtree(tmp_root, ignore_errors=True)
        _switch_current(prefix, dirname)
        _record(prefix, state, rel, art, dirname, previous)
        archive.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            downloads.rmdir()
        _prune(prefix, state, opts.keep)
    log.summary(
        "installed",
        ["version", "backend", "path", "previous"],
        [(version, art["backend"], str(prefix / "current"), previous or "-")],
    )
    return InstallResult(prefix, version, art["file"], art["backend"], why, target, previous, True)


def _write_install_record(top: Path, rel: VerifiedRelease, art: dict[str, Any]) -> None:
    record = {
        "version": rel.manifest["version"],
        "artifact": art["file"],
        "sha256": art["sha256"],
        "backend": art["backend"],
        "source": rel.base,
        "key": rel.key.id_hex,
        "installed": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    (top / ".locara-install.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")


def _record(
    prefix: Path, state: dict[str, Any], rel: VerifiedRelease, art: dict[str, Any], dirname: str, previous: str | None
) -> None:
    highest = _highest(state)
    if highest is None or rel.version > highest:
        state["highest_seen"] = {
            "version": rel.manifest["version"],
            "commit_date": rel.manifest["upstream"].get("commit_date"),
        }
    if previous and previous != dirname:
        state["previous"] = previous
    state["installed"][dirname] = {
        "version": rel.manifest["version"],
        "artifact": art["file"],
        "sha256": art["sha256"],
        "backend": art["backend"],
        "installed": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    _write_state(prefix, state)


def _prune(prefix: Path, state: dict[str, Any], keep: int) -> None:
    """Keep ``current``, ``previous`` and the newest installs up to ``keep`` folders."""
    keep = max(keep, 2)
    current = _current(prefix)
    protected = {current, state.get("previous")}
    entries = sorted(state["installed"].items(), key=lambda kv: kv[1].get("installed", ""), reverse=True)
    kept = [name for name, _ in entries if name in protected]
    removed = []
    for name, _ in entries:
        if name in protected:
            continue
        if len(kept) < keep:
            kept.append(name)
            continue
        shutil.rmtree(prefix / "versions" / name, ignore_errors=True)
        removed.append(name)
    for name in removed:
        state["installed"].pop(name, None)
    if removed:
        _write_state(prefix, state)
        log.info(f"removed old versions: {', '.join(removed)}")


def rollback(prefix: Path) -> InstallResult:
    prefix = prefix.expanduser().resolve()
    with _prefix_lock(prefix):
        state = read_state(prefix)
        previous = state.get("previous")
        current = _current(prefix)
        if not previous or not (prefix / "versions" / previous).is_dir():
            raise ConfigError(
                f"{prefix}: no previous version to roll back to.",
                hint="Install a specific version with `locara-build install --version V` instead.",
            )
        _switch_current(prefix, previous)
        state["previous"] = current
        _write_state(prefix, state)
        entry = state["installed"].get(previous, {})
        log.info(f"rolled back: current -> {previous} (was {current})")
        return InstallResult(
            prefix, entry.get("version", previous), entry.get("artifact", ""), entry.get("backend", ""), "--rollback",
            prefix / "versions" / previous, current, True,
        )

