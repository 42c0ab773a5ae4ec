"""The end-user side: fetch a release, verify it, pick the artifact for this host, download, unpack
safely and switch atomically.

Prefix layout::

    <prefix>/current -> versions/<version>     a relative symlink, switched by renaming a temp symlink
    <prefix>/versions/<version>/                one folder per installed version (bin/, run.sh, ...)
    <prefix>/state.json                         highest version seen, current + previous version, what is installed
    <prefix>/.downloads/                        partial downloads (resumed by the next run, same URL only)
    <prefix>/.lock                              one install at a time

Order of checks: release.json and SHA256SUMS signatures (pinned keys) -> trusted comments name the
right file and version -> schema -> not expired -> the version asked for -> not a downgrade below
the highest version seen -> the artifact's sha256 agrees in release.json and SHA256SUMS -> the
download matches it (size + sha256, before anything is unpacked) -> its signed provenance names it
-> every archive member is safe -> extract into a temp dir beside ``versions/`` -> rename -> switch
``current``. Any failure leaves ``current`` and the installed versions as they were.

Crash consistency (SIGKILL between any two filesystem steps; ``_checkpoint`` marks each step, the
crash tests stop the process at every one of them):

1. the archive is unpacked into ``versions/.extract-*`` with its ``.locara-install.json`` (fsynced),
   then renamed to ``versions/<dir>``: a ``versions/<dir>`` is always complete;
2. ``state.json`` records the new version as installed and as ``highest_seen`` *before* ``current``
   moves, so a replayed older release is refused even after a crash right after the switch;
3. ``current`` is switched (a temp symlink renamed over it);
4. ``state.json`` records ``current`` and ``previous``. A run that finds ``current`` elsewhere than
   ``state.json`` says (a crash between 3 and 4) reconciles: the recorded one becomes ``previous``.

A finished ``versions/<dir>`` whose record names the same artifact is adopted by the next run (never
unpacked again as ``<version>+...``); old versions are pruned by first dropping them from the state,
then renaming them to ``versions/.trash-*`` (removed at the next start); ``--rollback`` goes to a
different, complete version, or refuses.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from locara_build.build import hostdetect
from locara_build.core import httpfetch, log
from locara_build.core.errors import BusyError, ConfigError, NetworkError, VerifyError
from locara_build.core.extract import safe_extract
from locara_build.core.filelock import file_lock
from locara_build.core.version import Version, parse_utc
from locara_build.install import update
from locara_build.pipeline.records import (
    InstalledVersion,
    InstallRecord,
    InstallState,
    ReleaseArtifact,
    ReleaseManifest,
    SeenVersion,
)
from locara_build.release.provenance import verify_envelope
from locara_build.release.release import (
    MANIFEST,
    PROVENANCE_SUFFIX,
    SIG_SUFFIX,
    SUMS,
    fsync_dir,
    manifest_version,
    parse_manifest,
    parse_sums,
    release_versions,
    verify_signed,
)
from locara_build.release.signing.keys import trusted_keys
from locara_build.release.signing.minisign import PublicKey
from locara_build.upstream.lock import atomic_write_bytes

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

STATE_FILE = InstallState.FILE
RECORD_FILE = InstallRecord.FILE
SOURCE_ENV = "LOCARA_INSTALL_FROM"
MAX_DOC = 4 << 20  # release.json, provenance: small documents
#: what each document of a release may weigh at most (a mirror sending more is refused, exit 8)
DOC_LIMITS = {"latest.json": 64 << 10, SIG_SUFFIX: 16 << 10, SUMS: 1 << 20, MANIFEST: MAX_DOC, PROVENANCE_SUFFIX: MAX_DOC}
_FIELD_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,199}")
_KEY_ID_RE = re.compile(r"[0-9A-F]{16}")


def _checkpoint(step: str) -> None:
    """A point between two filesystem steps of install / switch / record / prune / rollback. Does
    nothing; the crash tests arm it (tests/support/failpoint.py) and SIGKILL the install there."""


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
    store: bool = True  # build from the release store when the mirror has one (update.py); False: the archive


@dataclass
class VerifiedRelease:
    base: str  # where the release's files are (URL or directory)
    sums: dict[str, str]
    key: PublicKey
    version: Version
    record: ReleaseManifest  # release.json, signature-verified and read through its one reader

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
        scheme = source.split("://", 1)[0].lower()
        if scheme not in ("http", "https", "file"):
            raise ConfigError(f"--from {httpfetch.redact_url(source)}: {scheme}:// is not supported.",
                              hint="Give an http(s):// or file:// URL, a directory, or github:OWNER/REPO.")
        httpfetch.register_url_secrets(source)
        return source.rstrip("/")
    path = Path(source).expanduser()
    if not path.is_dir():
        raise ConfigError(f"--from {source}: no such directory.", hint="Give a release mirror URL or a directory.")
    return str(path.resolve())


def _join(base: str, *parts: str) -> str:
    """A file of the mirror; a query on the mirror URL (a token, a presigned signature) stays a query."""
    if "://" in base:
        split = urlsplit(base)
        path = split.path.rstrip("/") + "/" + "/".join(quote(p) for p in parts)
        return urlunsplit((split.scheme, split.netloc, path, split.query, ""))
    return str(Path(base).joinpath(*parts))


def _show(url: str) -> str:
    """A URL or path fit for messages and records (no credentials, no query values)."""
    return httpfetch.redact_url(url)


def _get(url: str, timeout: float) -> bytes:
    name = url.rsplit("/", 1)[-1]
    cap = next((v for k, v in DOC_LIMITS.items() if name == k or name.endswith(k)), MAX_DOC)
    return httpfetch.fetch_bytes(url, timeout=(httpfetch.DEFAULT_TIMEOUT[0], timeout), max_size=cap)


def _json_doc(data: bytes, where: str) -> Any:
    """Untrusted JSON: nesting bombs and invalid text are a clean refusal naming the document."""
    try:
        return json.loads(data)
    except RecursionError:
        raise VerifyError(f"{where}: JSON nested too deeply; refusing it.", hint="Report the mirror; use another --from.") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise VerifyError(f"{where}: not valid JSON ({str(exc)[:120]}).", hint="Report the mirror; use another --from.") from None


def check_version_arg(version: str) -> None:
    """``--version``: ``latest`` or one exact version (no path parts, no trailing newline)."""
    if version == "latest":
        return
    try:
        Version.parse(version)
    except ConfigError as exc:
        raise ConfigError(f"--version: {exc.message}", hint=exc.hint, details={"field": "--version"}) from None


def _candidate_bases(source: str, version: str, timeout: float) -> tuple[list[str], str | None]:
    """Where release.json may be, and the version a ``latest`` pointer named (if any)."""
    if source.startswith("github:"):
        repo = source[len("github:"):]
        if version == "latest":
            return [f"https://github.com/{repo}/releases/latest/download"], None
        return [f"https://github.com/{repo}/releases/download/{quote(version)}"], None
    if version != "latest":
        return [_join(source, version), source], None
    where = _show(_join(source, "latest.json"))
    try:
        raw = _get(_join(source, "latest.json"), timeout)
    except NetworkError:
        return [source], None  # no pointer: the release is at the top of the mirror
    pointer = _json_doc(raw, where)
    named = pointer.get("version") if isinstance(pointer, dict) else None
    if not isinstance(named, str):
        raise VerifyError(
            f"{where}: field `version` must be a version string, not {named!r:.80}.",
            hint="Report the mirror; or install with --version V.", details={"file": where, "field": "version"},
        )
    try:
        Version.parse(named)
    except ConfigError:
        raise VerifyError(f"{where}: field `version` names an invalid version {named!r:.80}.", hint="Report the mirror.",
                          details={"file": where, "field": "version"}) from None
    return [_join(source, named)], named


def _absent(exc: NetworkError) -> bool:
    """The document is not there (HTTP 404/410, no such file), as opposed to a server that is down."""
    return exc.details.get("status") in (404, 410) or exc.details.get("errno") == errno.ENOENT


def _no_release_here(source: str, cause: NetworkError) -> NetworkError:
    """``--from`` points at something with neither a ``latest.json`` pointer nor a release: name both,
    and for a local releases root (what ``weekly`` writes) the versions it does hold."""
    shown = _show(source)
    hint = ("Give --from a mirror written by `locara-build publish`, or one release folder (.../VERSION/); "
            "for a releases root written by `weekly` or `release`, add --version VERSION.")
    if not source.startswith(("http://", "https://")):
        versions = release_versions(Path(source))  # oldest first
        if versions:
            newest = versions[-1][0]
            hint = (f"{shown} is a releases root holding {len(versions)} release(s), newest {newest}: "
                    f"add --version {newest} (or publish it: `locara-build publish --to DIR`, which writes latest.json).")
    return NetworkError(
        f"{shown} holds no release: neither latest.json (the pointer of a mirror written by `locara-build "
        f"publish`) nor release.json (a single release folder) is there ({cause.message})",
        hint=hint, details={"mirror": shown},
    )


def _check_manifest(doc: ReleaseManifest, where: str) -> None:
    """Every field install relies on, of the right value (a signed release.json is still checked; the
    reader checked the types)."""

    def bad(field: str, why: str) -> VerifyError:
        return VerifyError(f"{where}: invalid release manifest: field `{field}` {why}.",
                           hint="Report the release; do not install it.", details={"file": where, "field": field})

    for key in ("created", "expires"):
        try:
            parse_utc(getattr(doc, key), key)
        except ConfigError as exc:
            raise bad(key, exc.message.split(" ", 1)[1].rstrip(".")) from None
    commit_date = doc.upstream.commit_date
    if commit_date is not None:
        try:
            parse_utc(commit_date, "upstream.commit_date")
        except ConfigError as exc:
            raise bad("upstream.commit_date", exc.message.split(" ", 1)[1].rstrip(".")) from None
    key_id = doc.signing_key
    if key_id is not None and not (isinstance(key_id, str) and _KEY_ID_RE.fullmatch(key_id)):
        raise bad("signing_key", f"must be a minisign key id (16 upper-case hex digits), not {key_id!r:.80}")
    for i, a in enumerate(doc.artifacts):
        for key in ("file", "name", "os", "arch", "backend", "flavour", "format"):
            if not _FIELD_RE.fullmatch(getattr(a, key)):
                raise bad(f"artifacts[{i}].{key}", f"is not a plain name: {getattr(a, key)!r:.80}")
        if type(a.size) is not int or not 0 < a.size <= 1 << 40:
            raise bad(f"artifacts[{i}].size", f"must be a whole number of bytes, not {a.size!r:.80}")
        prov = a.provenance
        if prov != a.file + PROVENANCE_SUFFIX:
            raise bad(f"artifacts[{i}].provenance",
                      f"must name {a.file + PROVENANCE_SUFFIX} (every artifact has signed provenance), not {prov!r:.80}")
        if not isinstance(a.requirements, dict) or not all(isinstance(v, str | int) and not isinstance(v, bool)
                                                           for v in a.requirements.values()):
            raise bad(f"artifacts[{i}].requirements", "must be an object of strings")
        libs = a.system_libraries
        if not isinstance(libs, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in libs.items()):
            raise bad(f"artifacts[{i}].system_libraries", "must be an object of strings")


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
        if version == "latest" and pointed is None and _absent(first_error):
            raise _no_release_here(source, first_error)
        raise first_error
    sig = _get(_join(base, MANIFEST + SIG_SUFFIX), timeout)
    where = _show(_join(base, MANIFEST))
    key, comment = verify_signed(manifest_bytes, sig, keys, file=MANIFEST, what=where)
    try:
        doc = parse_manifest(manifest_bytes, source=where)
    except RecursionError:
        raise VerifyError(f"{where}: JSON nested too deeply; refusing it.", hint="Report the release.") from None
    _check_manifest(doc, where)
    rel_version = manifest_version(doc)
    if comment.get("version") != doc.version:
        raise VerifyError(
            f"{where}: signed for version {comment.get('version')!r} but says {doc.version!r}.",
            hint="Fetch the release again.",
        )
    wanted = pointed if version == "latest" else version
    if wanted and doc.version != wanted:
        raise VerifyError(
            f"{where} is release {doc.version}, not the {wanted} asked for: the mirror mixes releases up.",
            hint="Report the mirror; install with another --from.",
        )
    now = now or datetime.now(UTC)
    if parse_utc(doc.expires, "expires") <= now:
        raise VerifyError(
            f"release {doc.version} from {_show(base)} expired on {doc.expires}: a mirror may be serving a stale release.",
            hint="Install from an up-to-date mirror (the project re-releases every week); a newer release is needed.",
        )
    sums_where = _show(_join(base, SUMS))
    sums_bytes = _get(_join(base, SUMS), timeout)
    sums_sig = _get(_join(base, SUMS + SIG_SUFFIX), timeout)
    verify_signed(sums_bytes, sums_sig, keys, file=SUMS, version=doc.version, what=sums_where)
    sums = parse_sums(sums_bytes.decode("utf-8", "replace"), source=sums_where)
    if sums.get(MANIFEST) != hashlib.sha256(manifest_bytes).hexdigest():
        raise VerifyError(f"{sums_where} does not list this release.json.", hint="Fetch the release again.")
    for a in doc.artifacts:
        if sums.get(a.file) != a.sha256:
            raise VerifyError(
                f"{a.file}: release.json and SHA256SUMS disagree on its sha256.", hint="Report the release; do not install it."
            )
    return VerifiedRelease(base, sums, key, rel_version, doc)


# --- prefix state ------------------------------------------------------------------------------


def read_state(prefix: Path) -> InstallState:
    """The prefix's ``state.json`` (records.InstallState; ConfigError, exit 2, when it is not one we wrote)."""
    return InstallState.read(prefix / STATE_FILE)


def _write_state(prefix: Path, state: InstallState) -> InstallState:
    _checkpoint("write state.json")
    atomic_write_bytes(prefix / STATE_FILE, state.to_json_bytes())
    _checkpoint("state.json written")
    return state


def _highest(state: InstallState) -> Version | None:
    return state.highest_seen.parsed() if state.highest_seen is not None else None


def _read_record(folder: Path) -> InstallRecord | None:
    """The ``.locara-install.json`` of a finished ``versions/<dir>`` (None: not a finished install)."""
    return InstallRecord.read(folder)


def _reconcile(prefix: Path, state: InstallState) -> InstallState:
    """Bring the state in line with ``current`` after a crash between the switch and its record (in
    memory; written with the next change). The version the state called current becomes previous."""
    cur = _current(prefix)
    recorded = state.current
    if cur is not None and recorded != cur:
        if recorded and recorded != cur and (prefix / "versions" / recorded).is_dir():
            state = replace(state, previous=recorded)
        state = replace(state, current=cur)
    if cur is not None:
        entry = state.installed.get(cur) or _read_record(prefix / "versions" / cur)
        try:
            seen = Version.parse(entry.version, entry.commit_date) if entry is not None else None
        except ConfigError:
            seen = None
        highest = _highest(state)
        if seen is not None and entry is not None and (highest is None or seen > highest):
            state = replace(state, highest_seen=SeenVersion(version=entry.version, commit_date=entry.commit_date))
    return state


@contextlib.contextmanager
def _prefix_lock(prefix: Path) -> Iterator[None]:
    def busy(holder: str) -> BusyError:
        return BusyError(f"{prefix}: another install is running in this prefix ({holder}).",
                         hint="Wait for it to finish, then run again.")

    with file_lock(prefix / ".lock", busy=busy, record_holder=True):
        yield


def _current(prefix: Path) -> str | None:
    link = prefix / "current"
    if not link.is_symlink():
        return None
    target = os.readlink(link)
    return Path(target).name


def _cleanup_stale(prefix: Path) -> None:
    """Leftovers of an install killed midway: temp extraction dirs, pruned versions being removed,
    temp symlinks and temp state files."""
    versions = prefix / "versions"
    if versions.is_dir():
        for p in versions.iterdir():
            if p.name.startswith((".extract-", ".trash-")):
                shutil.rmtree(p, ignore_errors=True)
    for pattern in (".current.tmp-*", f".{STATE_FILE}.*.tmp"):
        for p in prefix.glob(pattern):
            with contextlib.suppress(OSError):
                p.unlink()


def _switch_current(prefix: Path, dirname: str) -> None:
    link = prefix / "current"
    if link.exists() and not link.is_symlink():
        raise ConfigError(f"{link} is not a symlink; refusing to replace it.", hint="Move it away, then run again.")
    tmp = prefix / f".current.tmp-{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    _checkpoint("create temp symlink")
    try:
        os.symlink(f"versions/{dirname}", tmp, target_is_directory=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot create the `current` symlink in {prefix}: {exc.strerror}.",
            hint="On Windows enable Developer Mode (symlinks without admin rights) or run as administrator.",
        ) from None
    _checkpoint("rename temp symlink over current")
    os.replace(tmp, link)
    _checkpoint("current switched")
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


def _check_provenance(rel: VerifiedRelease, art: ReleaseArtifact, keys: list[PublicKey], timeout: float) -> None:
    """The artifact's signed provenance names it. Never skipped: ``_check_manifest`` made sure the
    field names ``<file>.intoto.json`` (no empty value, no path, no other file of the mirror)."""
    name = art.provenance
    if name is None or name != art.file + PROVENANCE_SUFFIX:  # (fetch_release checked it; a caller may not have)
        raise VerifyError(f"{art.file}: field `provenance` must name {art.file + PROVENANCE_SUFFIX}, not {name!r:.80}.",
                          hint="Report the release; do not install it.", details={"field": "provenance"})
    where = _show(rel.url(name))
    if name not in rel.sums:
        raise VerifyError(f"{where}: not listed in SHA256SUMS.", hint="Report the release; do not install it.")
    data = _get(rel.url(name), timeout)
    if rel.sums.get(name) != hashlib.sha256(data).hexdigest():
        raise VerifyError(f"{where}: does not match SHA256SUMS.", hint="Fetch the release again.")
    envelope = _json_doc(data, where)
    sigs = envelope.get("signatures") if isinstance(envelope, dict) else None
    for entry in sigs if isinstance(sigs, list) else ():
        keyid = entry.get("keyid") if isinstance(entry, dict) else None
        if not isinstance(keyid, str) or not re.fullmatch(r"[0-9A-Fa-f]{16}", keyid):
            raise VerifyError(f"{where}: field `signatures[].keyid` must be a key id of 16 hex digits, not {keyid!r:.80}.",
                              hint="Report the release; do not install it.", details={"field": "signatures[].keyid"})
    try:
        statement, _ = verify_envelope(data, keys, what=where)
        subjects = {(s.get("name"), s.get("digest", {}).get("sha256")) for s in statement.get("subject", [])}
    except (TypeError, AttributeError, RecursionError):
        raise VerifyError(f"{where}: malformed provenance statement.", hint="Report the release; do not install it.") from None
    if (art.file, art.sha256) not in subjects:
        raise VerifyError(f"{where}: the provenance is not about {art.file}.", hint="Report the release.")


def _pick(rel: VerifiedRelease, opts: InstallOptions) -> tuple[ReleaseArtifact, str]:
    backend = "auto" if opts.backend == "all" else opts.backend  # all: auto's artifact, every file of it (update.py)
    host = hostdetect.detect(gpus=backend == "auto")  # a named backend needs no GPU probe
    art, why = hostdetect.choose_artifact(rel.record.artifacts, host, backend=backend, flavour=opts.flavour)
    log.info(f"picked {art.file} ({why})")
    return art, why


def download(opts: InstallOptions, dest_dir: Path) -> tuple[Path, ReleaseArtifact, str]:
    """Fetch and verify the artifact for this host into ``dest_dir`` (no install)."""
    keys = trusted_keys(opts.trust, builtin=opts.builtin_keys)
    source = resolve_source(opts.source)
    check_version_arg(opts.version)
    with log.step("verify release"):
        rel = fetch_release(source, opts.version, keys, timeout=opts.timeout, now=opts.now)
        log.info(f"release {rel.record.version} signed by trusted key {rel.key.id_hex}")
    art, why = _pick(rel, opts)
    _check_provenance(rel, art, keys, opts.timeout)
    dest_dir.mkdir(parents=True, exist_ok=True)
    with log.step(f"download {art.file}"):
        _progress_download(rel.url(art.file), dest_dir / art.file, sha256=art.sha256, size=art.size, timeout=opts.timeout)
    return dest_dir / art.file, art, why


# --- install / rollback -------------------------------------------------------------------------


def _dirname_for(prefix: Path, version: str, art: ReleaseArtifact) -> str:
    """``<version>``, unless that folder holds another artifact of the same version (another backend).
    A folder that already holds this very artifact (recorded, or finished by a run that was killed
    before it could record it) is returned as is: it is adopted, never unpacked twice."""
    for name in (version, f"{version}+{art.backend}", f"{version}+{art.backend}-{art.flavour}"):
        path = prefix / "versions" / name
        if not os.path.lexists(path):
            return name
        record = _read_record(path) if path.is_dir() and not path.is_symlink() else None
        if record is not None and record.sha256 == art.sha256:
            return name
    raise ConfigError(f"{prefix}/versions holds conflicting folders for {version}.", hint="Remove the unused ones.")


def install(opts: InstallOptions) -> InstallResult:
    keys = trusted_keys(opts.trust, builtin=opts.builtin_keys)
    source = resolve_source(opts.source)
    check_version_arg(opts.version)
    prefix = opts.prefix.expanduser().resolve()
    with _prefix_lock(prefix):
        _cleanup_stale(prefix)
        state = _reconcile(prefix, read_state(prefix))
        with log.step("verify release"):
            rel = fetch_release(source, opts.version, keys, timeout=opts.timeout, now=opts.now)
            version = rel.record.version
            log.info(f"release {version} signed by trusted key {rel.key.id_hex}, expires {rel.record.expires}")
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
        dirname = _dirname_for(prefix, version, art)
        target = prefix / "versions" / dirname
        if target.is_dir():  # finished earlier (recorded, or adopted after a crash)
            adopted = dirname not in state.installed
            changed = previous != dirname
            if adopted:
                log.info(f"{version}: adopting versions/{dirname}, unpacked by an earlier run that was interrupted")
            if adopted or changed:
                state = _record_installed(prefix, state, rel, art, dirname)
            if changed:
                _switch_current(prefix, dirname)
                log.info(f"{version} was already installed; `current` now points to it")
                state = _record_current(prefix, state, dirname, previous)
            else:
                if state != read_state(prefix):  # reconciled after a crash between a switch and its record
                    state = _record_current(prefix, state, dirname, None)
                log.info(f"{version} ({art.backend}) is already installed and current")
            _prune(prefix, state, opts.keep)  # (finishes a prune an earlier run was killed in)
            return InstallResult(prefix, version, art.file, art.backend, why, target, previous, changed)
        downloads = prefix / ".downloads"
        staged = None  # the new version built from the installed one + the release store, when the mirror has it
        if opts.store:
            with log.step(f"update from the store ({art.file})"):
                staged = update.build_from_store(rel, art, prefix, state, backend=opts.backend, timeout=opts.timeout)
        with log.step(f"download {art.file}" if staged is None else "verified against the signed file index"):
            try:
                if staged is None:
                    _progress_download(
                        rel.url(art.file), downloads / art.file, sha256=art.sha256, size=art.size, timeout=opts.timeout
                    )
            except BaseException:
                with contextlib.suppress(OSError):
                    downloads.rmdir()  # only when empty: a partial download stays for the next run
                raise
        archive = downloads / art.file
        with log.step(f"unpack into {target}"):
            _checkpoint("extract")
            try:
                top = staged or safe_extract(archive, prefix / "versions", top=art.name, windows=art.os == "windows")
            except BaseException:
                archive.unlink(missing_ok=True)
                with contextlib.suppress(OSError):
                    downloads.rmdir()
                raise
            tmp_root = top.parent
            try:
                _checkpoint("write install record")
                try:
                    _write_install_record(top, rel, art)
                except VerifyError:
                    archive.unlink(missing_ok=True)
                    with contextlib.suppress(OSError):
                        downloads.rmdir()
                    raise
                _checkpoint("rename into versions/")
                os.rename(top, target)
                _checkpoint("renamed into versions/")
                fsync_dir(target.parent)
            finally:
                shutil.rmtree(tmp_root, ignore_errors=True)
        state = _record_installed(prefix, state, rel, art, dirname)  # highest_seen before `current` moves
        _switch_current(prefix, dirname)
        state = _record_current(prefix, state, dirname, previous)
        _checkpoint("remove the downloaded archive")
        archive.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            downloads.rmdir()
        _prune(prefix, state, opts.keep)
    log.summary(
        "installed",
        ["version", "backend", "path", "previous"],
        [(version, art.backend, str(prefix / "current"), previous or "-")],
    )
    return InstallResult(prefix, version, art.file, art.backend, why, target, previous, True)


def _write_install_record(top: Path, rel: VerifiedRelease, art: ReleaseArtifact) -> None:
    record_path = top / RECORD_FILE
    if os.path.lexists(record_path):
        raise VerifyError(
            f"{art.file}: the archive carries its own {RECORD_FILE} (the install record's name); refusing it.",
            hint="Report the release; do not install it.", details={"member": f"{art.name}/{RECORD_FILE}"},
        )
    record = InstallRecord(**asdict(_installed_entry(rel, art)), source=_show(rel.base), key=rel.key.id_hex)
    atomic_write_bytes(record_path, record.to_json_bytes())


def _installed_entry(rel: VerifiedRelease, art: ReleaseArtifact) -> InstalledVersion:
    """What the state and the folder's own record say about an installed version (installed now)."""
    return InstalledVersion(
        version=rel.record.version,
        commit_date=rel.record.upstream.commit_date,
        artifact=art.file,
        sha256=art.sha256,
        backend=art.backend,
        installed=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )


def _record_installed(prefix: Path, state: InstallState, rel: VerifiedRelease, art: ReleaseArtifact, dirname: str) -> InstallState:
    """Before the switch: the version is installed, and the highest seen (so no replay goes below it)."""
    highest = _highest(state)
    if highest is None or rel.version > highest:
        state = replace(state, highest_seen=SeenVersion(version=rel.record.version, commit_date=rel.record.upstream.commit_date))
    return _write_state(prefix, replace(state, installed={**state.installed, dirname: _installed_entry(rel, art)}))


def _record_current(prefix: Path, state: InstallState, dirname: str, previous: str | None) -> InstallState:
    """After the switch: what `current` is, and what it was."""
    if previous and previous != dirname:
        state = replace(state, previous=previous)
    return _write_state(prefix, replace(state, current=dirname))


def _prune(prefix: Path, state: InstallState, keep: int) -> None:
    """Keep ``current``, ``previous`` and the newest installs up to ``keep`` folders. A pruned version
    leaves the state first, then is renamed to ``versions/.trash-*`` and removed: a crash midway never
    leaves a recorded, half-deleted version."""
    keep = max(keep, 2)
    current = _current(prefix)
    protected = {current, state.previous}
    entries = sorted(state.installed.items(), key=lambda kv: kv[1].installed, reverse=True)
    kept = [name for name, _ in entries if name in protected]
    removed = []
    for name, _ in entries:
        if name in protected:
            continue
        if len(kept) < keep:
            kept.append(name)
            continue
        removed.append(name)
    if removed:
        state = _write_state(prefix, replace(state, installed={k: v for k, v in state.installed.items() if k not in removed}))
    # finished folders no record names (a prune or an install killed midway): not versions any more
    versions = prefix / "versions"
    removed += [p.name for p in sorted(versions.iterdir()) if not p.name.startswith(".") and p.name not in state.installed
                and p.name not in protected and p.name not in removed and p.is_dir() and not p.is_symlink()] \
        if versions.is_dir() else []
    if not removed:
        return
    for name in removed:
        folder = prefix / "versions" / name
        trash = prefix / "versions" / f".trash-{name}-{os.getpid()}"
        _checkpoint("move a pruned version to the trash")
        with contextlib.suppress(FileNotFoundError):
            os.rename(folder, trash)
        _checkpoint("remove a pruned version")
        shutil.rmtree(trash, ignore_errors=True)
    log.info(f"removed old versions: {', '.join(removed)}")


def _rollback_target(prefix: Path, state: InstallState, current: str | None) -> str | None:
    """``previous`` if it is a different, complete version; else the newest other complete one."""
    others = sorted(state.installed.items(), key=lambda kv: kv[1].installed, reverse=True)
    for name in [state.previous, *(n for n, _ in others)]:
        if not name or name == current or "/" in name or name.startswith("."):
            continue
        folder = prefix / "versions" / name
        if folder.is_dir() and not folder.is_symlink() and _read_record(folder) is not None:
            return name
    return None


def rollback(prefix: Path) -> InstallResult:
    prefix = prefix.expanduser().resolve()
    with _prefix_lock(prefix):
        _cleanup_stale(prefix)
        state = _reconcile(prefix, read_state(prefix))
        current = _current(prefix)
        previous = _rollback_target(prefix, state, current)
        if previous is None:
            raise ConfigError(
                f"{prefix}: no previous version to roll back to"
                + (f" (only {current} is installed)." if current else "."),
                hint="Install a specific version with `locara-build install --version V` instead.",
            )
        _switch_current(prefix, previous)
        state = _record_current(prefix, state, previous, current)
        entry = state.installed.get(previous)
        log.info(f"rolled back: current -> {previous} (was {current})")
        return InstallResult(
            prefix, entry.version if entry else previous, entry.artifact if entry else "", entry.backend if entry else "", "--rollback",
            prefix / "versions" / previous, current, True,
        )
