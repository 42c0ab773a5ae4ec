"""Releases: ``release.json`` + ``SHA256SUMS`` + minisign signatures + SLSA provenance over packaged artifacts.

A release folder (default ``<work>/releases/<version>/``) holds exactly::

    release.json            the manifest: the contract with `install` (fields in docs/releases.md)
    release.json.minisig    minisign signature (trusted comment: version, file, date)
    SHA256SUMS              `sha256sum` format over every other shipped file (sorted)
    SHA256SUMS.minisig      minisign signature
    <artifact>              each packaged archive (.tar.gz / .zip)
    <artifact>.intoto.json  its SLSA v1 provenance, a DSSE envelope signed by the same key
    <artifact>.cdx.json     its CycloneDX SBOM (copied out of the archive, when it has one)

Nothing else ships; :func:`verify_release_dir` checks that (publish runs it before uploading).
Versions only go up: a release whose version is not above every release beside it is refused
unless forced, and re-running a release over identical artifacts is a no-op.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from locara_build import PRODUCT, __version__
from locara_build.core import log
from locara_build.core.digest import sha256_file
from locara_build.core.errors import ConfigError, LocaraError, VerifyError, disk_full, is_no_space
from locara_build.core.version import Version
from locara_build.pipeline import records
from locara_build.pipeline.records import PackageRecord, ReleaseArtifact, ReleaseManifest, SideFile
from locara_build.release import store
from locara_build.release.provenance import make_statement, sign_envelope
from locara_build.release.signing import minisign
from locara_build.release.signing.minisign import PublicKey, SecretKey
from locara_build.upstream.lock import atomic_write_bytes

if TYPE_CHECKING:  # `install` reads releases without loading recipes, CMake args or jinja2
    from locara_build.build.plan import Plan, RecipePlan

__all__ = [
    "SCHEMA",
    "MANIFEST",
    "SUMS",
    "SIG_SUFFIX",
    "PROVENANCE_SUFFIX",
    "SBOM_SUFFIX",
    "DEFAULT_EXPIRES_DAYS",
    "ReleaseResult",
    "make_release",
    "format_sums",
    "parse_sums",
    "trusted_comment",
    "parse_trusted_comment",
    "parse_manifest",
    "read_manifest",
    "manifest_version",
    "verify_release_dir",
    "verify_signed",
    "release_versions",
    "fsync_dir",
]

SCHEMA = ReleaseManifest.SCHEMA
MANIFEST = "release.json"
SUMS = "SHA256SUMS"
NOTES = "RELEASE_NOTES.md"
SIG_SUFFIX = ".minisig"
PROVENANCE_SUFFIX = ".intoto.json"
SBOM_SUFFIX = ".cdx.json"
DEFAULT_EXPIRES_DAYS = 90
SIGNED_FILES = (MANIFEST, SUMS)
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


_SUMMARY_FIELDS = ("file", "os", "arch", "backend", "flavour", "size", "sha256")  # each artifact in ``release --json``


@dataclass
class ReleaseResult:
    out: Path
    version: str
    record: ReleaseManifest  # release.json as written, read back through its one reader
    files: list[str]  # every file in the release folder, sorted
    key_id: str
    already: bool = False  # the same release existed already (nothing written)
    missing: list[str] = field(default_factory=list)  # planned recipes with no packaged artifact

    def to_dict(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "version": self.version,
            "key_id": self.key_id,
            "already_released": self.already,
            "files": self.files,
            "missing": self.missing,
            "artifacts": [{k: getattr(a, k) for k in _SUMMARY_FIELDS} for a in self.record.artifacts],
        }


# --- SHA256SUMS and trusted comments ---------------------------------------------------------------


def format_sums(digests: dict[str, str]) -> str:
    """`sha256sum` output (two spaces = text mode), sorted by file name: `sha256sum -c` reads it."""
    return "".join(f"{digests[name]}  {name}\n" for name in sorted(digests))


def parse_sums(text: str, *, source: str = SUMS) -> dict[str, str]:
    out: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        m = re.match(r"^([0-9a-f]{64}) [ *](.+)$", line)
        if not m or not _SAFE_NAME.match(m[2]) or m[2] in out:
            raise VerifyError(
                f"{source}:{number}: not a valid checksum line for a release file: {line[:120]!r}.",
                hint="The checksum file is corrupted or was edited; fetch the release again.",
            )
        out[m[2]] = m[1]
    return out


def trusted_comment(*, file: str, version: str, created: str) -> str:
    ts = int(datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp())
    return f"timestamp:{ts}\tfile:{file}\tproduct:{PRODUCT}\tversion:{version}\tcreated:{created}"


def parse_trusted_comment(text: str) -> dict[str, str]:
    out = {}
    for part in text.split("\t"):
        if ":" in part:
            k, v = part.split(":", 1)
            out[k] = v
    return out


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


# --- manifest -----------------------------------------------------------------------------------

def read_manifest(folder: Path) -> ReleaseManifest:
    """The release.json of a release folder on this machine, through the one reader (parse_manifest):
    OSError / VerifyError when it is missing or not a manifest this tool writes."""
    path = folder / MANIFEST
    with open(path, "rb") as fh:
        data = fh.read(_MAX_LOCAL_MANIFEST + 1)
    if len(data) > _MAX_LOCAL_MANIFEST:
        raise VerifyError(f"{path}: larger than {_MAX_LOCAL_MANIFEST >> 20} MiB; not a release manifest.",
                          hint="Release again.")
    return parse_manifest(data, source=str(path))


_MAX_LOCAL_MANIFEST = 16 << 20


def parse_manifest(data: bytes, *, source: str = MANIFEST) -> ReleaseManifest:
    """Parse and check a release.json (after its signature was verified): ``ReleaseManifest.from_bytes``."""
    return ReleaseManifest.from_bytes(data, source)


def manifest_version(doc: ReleaseManifest) -> Version:
    """The version of a release manifest (VerifyError when it does not parse)."""
    return doc.parsed_version()


def verify_signed(
    data: bytes, sig_text: bytes | str, keys: list[PublicKey], *, file: str, version: str | None = None, what: str | None = None
) -> tuple[PublicKey, dict[str, str]]:
    """Verify a minisign signature over ``data`` and that its trusted comment names ``file`` (and ``version``)."""
    label = what or file
    text = sig_text.decode("utf-8", "replace") if isinstance(sig_text, bytes) else sig_text
    sig = minisign.Signature.from_text(text, source=f"{label}{SIG_SUFFIX}")
    key = minisign.verify(data, sig, keys, what=label)
    comment = parse_trusted_comment(sig.trusted_comment)
    if comment.get("file") != file or (version is not None and comment.get("version") != version):
        raise VerifyError(
            f"{label}: its signature was made for {comment.get('file')!r} version {comment.get('version')!r}, "
            f"not for {file} {version or ''}: signature files were swapped.",
            hint="Fetch the release again from the project's release page.",
        )
    return key, comment


# --- making a release ------------------------------------------------------------------------------


def release_versions(root: Path, *, exclude: Path | None = None) -> list[tuple[Version, Path]]:
    """Releases found in the folders directly under ``root`` (their release.json), oldest first."""
    found = []
    if not root.is_dir():
        return found
    for child in root.iterdir():
        if child.name.startswith(".") or not child.is_dir():
            continue
        if exclude is not None and child.resolve() == exclude.resolve():
            continue
        mf = child / MANIFEST
        if not mf.is_file():
            continue
        try:
            doc = read_manifest(child)
            found.append((Version.parse(doc.version, doc.upstream.commit_date), child))
        except (LocaraError, OSError):
            log.warn(f"{mf}: unreadable release manifest, ignored for version ordering")
    return sorted(found, key=lambda vp: vp[0])


def _package_record(rp: RecipePlan, path: Path) -> PackageRecord:
    """The package stage's record of the archive at ``path`` (records.read: strict)."""
    record_path = PackageRecord.path(path.parent, path.name)
    if not record_path.is_file():
        raise ConfigError(
            f"{path} has no package record ({record_path.name} beside it): it was not made by `locara-build package`.",
            hint=f"Run `locara-build package --recipe {rp.name}`, then release again.",
        )
    record = records.read(PackageRecord, record_path)
    if record.file != path.name or record.build_key != rp.build_key:
        raise ConfigError(
            f"{record_path}: records {record.file} of build {record.build_key}, but the plan wants "
            f"{path.name} of build {rp.build_key}.",
            hint=f"Run `locara-build package --recipe {rp.name}`, then release again.",
        )
    return record


def _side_file(folder: Path, side: SideFile, *, what: str) -> bytes:
    """A file the package stage wrote beside an archive, checked against its record."""
    path = folder / side.file
    try:
        data = path.read_bytes() if path.is_file() and not path.is_symlink() else None
    except OSError:
        data = None
    if data is None or len(data) != side.size or hashlib.sha256(data).hexdigest() != side.sha256:
        raise VerifyError(
            f"{path}: the {what} beside the archive is missing or not what its package record lists "
            f"({side.size} bytes, sha256 {side.sha256[:16]}...).",
            hint="Re-run `locara-build package` for this recipe, then release again.",
        )
    return data


def _build_times(record: PackageRecord, record_path: Path) -> tuple[datetime, datetime]:
    """When the build behind an archive began and ended (carried by its package record from the
    build record): provenance's startedOn / finishedOn."""
    try:
        started, finished = _parse_iso(record.build_started_at), _parse_iso(record.build_finished_at)
        in_order = started <= finished
    except ValueError:
        in_order = False
    if not in_order:
        raise records.RecordError(
            f"{record_path}: build_started_at / build_finished_at are not two ISO 8601 times in order "
            f"({record.build_started_at!r}, {record.build_finished_at!r}).",
            hint="Package this recipe again (`locara-build package`), then release.",
        )
    return started, finished


def _artifact_entry(rp: RecipePlan, path: Path) -> dict[str, Any]:
    r = rp.recipe
    digest = sha256_file(path)
    record = _package_record(rp, path)
    if record.sha256 != digest:
        raise VerifyError(
            f"{path}: sha256 {digest} differs from its package record ({record.sha256}): the archive changed after packaging.",
            hint="Re-run `locara-build package` for this recipe, then release again.",
        )
    # `signing` stays the kind (a string, as installers already in users' hands read it); what
    # signing really did goes beside it
    signing_status: dict[str, Any] = {"status": record.signing.status}
    if record.signing.reason:
        signing_status["reason"] = record.signing.reason
    return {
        "file": rp.artifact.file,
        "name": rp.artifact.name,
        "format": rp.artifact.format,
        "os": r.os,
        "arch": r.arch,
        "backend": r.backend,
        "flavour": r.flavour,
        "size": path.stat().st_size,
        "sha256": digest,
        "recipe": r.name,
        "recipe_hash": r.recipe_hash,
        # what the user's system must provide: flat strings (installers read them), and apart from them
        # the system libraries the binaries load (library -> what provides it)
        "requirements": {k: v for k, v in sorted(record.requirements.items()) if k != "system_libraries"},
        "system_libraries": dict(sorted((record.requirements.get("system_libraries") or {}).items())),
        "signing": record.signing.kind,
        "signing_status": signing_status,
        "smoke": _with_proof(record.smoke),  # + proved: full | cpu-fallback | built-only (notes.py)
    }


def _with_proof(smoke: dict[str, Any] | None) -> dict[str, Any]:
    from locara_build.release.notes import (  # imported here: install reads release.py and needs none of the notes
        with_proof,
    )

    return with_proof(smoke)


def _same_release(existing: Path, artifacts: list[dict[str, Any]]) -> bool:
    try:
        doc = read_manifest(existing)
    except (OSError, LocaraError):
        return False
    old = {(a.file, a.sha256) for a in doc.artifacts}
    return old == {(a["file"], a["sha256"]) for a in artifacts} and all(
        (existing / n).is_file() for n in (MANIFEST, SUMS, MANIFEST + SIG_SUFFIX, SUMS + SIG_SUFFIX)
    )


def fsync_dir(path: Path) -> None:
    """Make a rename inside ``path`` durable (best effort: not every OS / file system allows it)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _copy(src: Path, dst: Path) -> None:
    shutil.copyfile(src, dst)
    with open(dst, "rb+") as fh:
        os.fsync(fh.fileno())


def make_release(
    plan: Plan,
    dist_dir: Path,
    out: Path,
    key: SecretKey,
    *,
    expires_days: int = DEFAULT_EXPIRES_DAYS,
    force: bool = False,
    require_all: bool = False,
    now: datetime | None = None,
    notes: Callable[[list[ReleaseArtifact]], str] | None = None,
) -> ReleaseResult:
    """Build the signed release folder ``out`` from the artifacts of ``plan`` packaged in ``dist_dir``.
    ``notes`` renders RELEASE_NOTES.md from the artifact entries release.json will carry.

    Refuses (VerifyError, exit 8) a version not above the releases beside ``out`` unless ``force``;
    a release of the same version over identical artifacts is reported as already done.
    """
    version = str(plan.version)
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    if expires_days < 1 and not force:
        raise ConfigError(f"--expires-days {expires_days}: a release must be valid for at least a day.", hint="Use 1 or more.")
    present: list[tuple[RecipePlan, Path]] = []
    missing: list[str] = []
    for rp in plan.recipes:
        path = dist_dir / rp.artifact.file
        (present.append((rp, path)) if path.is_file() else missing.append(rp.name))
    if not present:
        raise ConfigError(
            f"nothing to release: no packaged artifact for version {version} in {dist_dir} "
            f"(looked for {', '.join(rp.artifact.file for rp in plan.recipes) or 'nothing: no recipe planned'}).",
            hint="Run `locara-build package` first (with the same --recipe selection).",
        )
    if missing:
        if require_all:
            raise ConfigError(
                f"recipes {', '.join(missing)} have no packaged artifact in {dist_dir}.",
                hint="Package them first, or release without --require-all.",
            )
        log.warn(f"not in this release (not packaged here): {', '.join(missing)}")

    with log.step(f"release {version}"):
        artifacts = [_artifact_entry(rp, path) for rp, path in present]
        artifacts.sort(key=lambda a: a["file"])
        if out.exists() and (out / MANIFEST).exists() and not force:
            if _same_release(out, artifacts):
                log.info(f"{out}: release {version} already made from these exact artifacts; nothing to do")
                doc = read_manifest(out)
                return ReleaseResult(out, version, doc, sorted(p.name for p in out.iterdir()), key.id_hex, True, missing)
            raise VerifyError(
                f"{out} already holds release {version} made from different artifacts.",
                hint="A published version never changes: bump the locara revision (`weekly` does this) and release "
                "again, or pass --force to replace an unpublished release.",
            )
        newer = [(v, p) for v, p in release_versions(out.parent, exclude=out) if v >= plan.version]
        if newer and not force:
            v, p = newer[-1]
            raise VerifyError(
                f"release {version} is not newer than release {v} already in {p}: versions must go up.",
                hint="Sync a newer upstream or bump the revision; pass --force only to re-issue an old version on purpose.",
            )
        manifest = _manifest(plan, artifacts, now, expires_days, key)
        try:
            staged = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=_ensure(out.parent)))
            try:
                _write_release(plan, present, manifest, staged, key, now, _notes(notes, artifacts))
                _replace_dir(staged, out)
            except BaseException:
                shutil.rmtree(staged, ignore_errors=True)
                raise
        except OSError as exc:
            if is_no_space(exc):
                raise disk_full(exc, out.parent, f"release {version}",
                                kept=f"The releases beside it in {out.parent} are untouched.") from None
            raise
    files = sorted(p.name for p in out.iterdir())
    log.summary(
        f"release {version} (key {key.id_hex})",
        ["artifact", "size", "sha256"],
        [(a["file"], a["size"], a["sha256"][:16] + "...") for a in artifacts],
    )
    return ReleaseResult(out, version, read_manifest(out), files, key.id_hex, False, missing)


def _notes(notes: Callable[[list[ReleaseArtifact]], str] | None, artifacts: list[dict[str, Any]]) -> str | None:
    """RELEASE_NOTES.md from the artifact entries as release.json will read them (typed)."""
    return notes([records.from_dict(ReleaseArtifact, a, where=MANIFEST) for a in artifacts]) if notes else None


def _ensure(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _manifest(plan: Plan, artifacts: list[dict[str, Any]], now: datetime, expires_days: int, key: SecretKey) -> dict[str, Any]:
    lock = plan.lock
    for a in artifacts:
        a["provenance"] = a["file"] + PROVENANCE_SUFFIX
    return {
        "schema": SCHEMA,
        "product": PRODUCT,
        "version": str(plan.version),
        "created": _iso(now),
        "expires": _iso(now + timedelta(days=expires_days)),
        "upstream": lock.upstream_record(),  # commit "" + tree/origin/described when the source recorded no commit
        "patches": [{"name": p.name, "sha256": p.sha256} for p in plan.patches],
        "patch_set_hash": plan.patch_set_hash,
        "tool": {"name": "locara-build", "version": __version__},
        "signing_key": key.id_hex,
        "artifacts": artifacts,
    }


def _write_release(
    plan: Plan,
    present: list[tuple[RecipePlan, Path]],
    manifest: dict[str, Any],
    staged: Path,
    key: SecretKey,
    now: datetime,
    notes: str | None = None,
) -> None:
    by_file = {a["file"]: a for a in manifest["artifacts"]}
    digests: dict[str, str] = {}
    older = _older_releases(staged.parent, plan.version)  # delta bases for the store
    for rp, src in present:
        entry = by_file[rp.artifact.file]
        dst = staged / rp.artifact.file
        _copy(src, dst)
        if sha256_file(dst) != entry["sha256"]:
            raise VerifyError(f"{src} changed while it was being released.", hint="Run `locara-build release` again.")
        digests[dst.name] = entry["sha256"]
        # provenance (DSSE envelope)
        record = _package_record(rp, src)
        started, finished = _build_times(record, PackageRecord.path(src.parent, src.name))
        statement = make_statement(
            artifact=entry,
            upstream={**plan.lock.to_dict()},
            patches=manifest["patches"],
            recipe_file=f"recipes/{rp.recipe.path.name}",
            version=manifest["version"],
            build_key=rp.build_key,
            configure_args=list(rp.configure_args),
            started=started,
            finished=finished,
        )
        envelope = (json.dumps(sign_envelope(statement, key), indent=2, sort_keys=True) + "\n").encode()
        prov = staged / entry["provenance"]
        atomic_write_bytes(prov, envelope)
        digests[prov.name] = hashlib.sha256(envelope).hexdigest()
        # the SBOM the package stage wrote beside the archive (its record names it and its hash)
        if record.sbom is not None:
            sbom = _side_file(src.parent, record.sbom, what="SBOM")
            entry["sbom"] = entry["file"] + SBOM_SUFFIX
            atomic_write_bytes(staged / entry["sbom"], sbom)
            digests[entry["sbom"]] = hashlib.sha256(sbom).hexdigest()
        digests.update(store.write_index(dst, entry, staged, manifest, older))  # file index + blobs beside the release (store.py)
    if notes is not None:  # release notes ship like every other file: listed in SHA256SUMS
        data = notes.encode("utf-8")
        atomic_write_bytes(staged / NOTES, data)
        digests[NOTES] = hashlib.sha256(data).hexdigest()
    created = manifest["created"]
    version = manifest["version"]
    # through the typed record: strict (the writer never writes a field the reader does not declare)
    body = records.from_dict(ReleaseManifest, manifest, where=MANIFEST).to_json_bytes()
    atomic_write_bytes(staged / MANIFEST, body)
    digests[MANIFEST] = hashlib.sha256(body).hexdigest()
    sums = format_sums(digests).encode()
    atomic_write_bytes(staged / SUMS, sums)
    for name, data in ((MANIFEST, body), (SUMS, sums)):
        sig = minisign.sign(key, data, trusted_comment=trusted_comment(file=name, version=version, created=created))
        atomic_write_bytes(staged / (name + SIG_SUFFIX), sig.to_text().encode())
    for path in staged.iterdir():
        os.chmod(path, 0o644)  # public files (mkstemp made them 0600)
    os.chmod(staged, 0o755)


def _older_releases(root: Path, version: Version) -> list[tuple[Path, ReleaseManifest]]:
    """The releases in ``root`` older than ``version``, newest first, with their release.json."""
    out = []
    for v, folder in reversed(release_versions(root)):
        if v < version:
            try:
                out.append((folder, read_manifest(folder)))
            except (OSError, LocaraError):
                continue
    return out


def _replace_dir(staged: Path, out: Path) -> None:
    """Move the finished folder into place; an old one (``--force``) is swapped out, then removed."""
    trash = None
    if out.exists():
        trash = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.rename(out, trash)
    os.rename(staged, out)
    if trash is not None:
        shutil.rmtree(trash, ignore_errors=True)


# --- checking a release folder (publish, tests, CI) --------------------------------------------------


def verify_release_dir(release_dir: Path, keys: list[PublicKey] | None = None) -> ReleaseManifest:
    """Check a release folder: checksums match, nothing unlisted, every listed file present, the
    manifest agrees with SHA256SUMS; with ``keys``, both signatures verify. Returns the manifest."""
    for name in (MANIFEST, SUMS, MANIFEST + SIG_SUFFIX, SUMS + SIG_SUFFIX):
        if not (release_dir / name).is_file():
            raise VerifyError(f"{release_dir}: incomplete release, {name} is missing.", hint="Run `locara-build release` again.")
    sums_bytes = (release_dir / SUMS).read_bytes()
    manifest_bytes = (release_dir / MANIFEST).read_bytes()
    doc = parse_manifest(manifest_bytes, source=str(release_dir / MANIFEST))
    if keys is not None:
        verify_signed(manifest_bytes, (release_dir / (MANIFEST + SIG_SUFFIX)).read_bytes(), keys, file=MANIFEST, version=doc.version)
        verify_signed(sums_bytes, (release_dir / (SUMS + SIG_SUFFIX)).read_bytes(), keys, file=SUMS, version=doc.version)
    else:  # at least well-formed and from the key the manifest names
        for name in SIGNED_FILES:
            sig = minisign.Signature.from_text((release_dir / (name + SIG_SUFFIX)).read_text("utf-8"), source=name + SIG_SUFFIX)
            if sig.key_id_hex != doc.signing_key:
                raise VerifyError(
                    f"{release_dir / (name + SIG_SUFFIX)}: signed by key {sig.key_id_hex}, but release.json names {doc.signing_key}.",
                    hint="Run `locara-build release` again with one key.",
                )
    sums = parse_sums(sums_bytes.decode("utf-8", "replace"), source=str(release_dir / SUMS))
    allowed = set(sums) | {SUMS, MANIFEST + SIG_SUFFIX, SUMS + SIG_SUFFIX}
    present = {p.name for p in release_dir.iterdir()}
    extra = sorted(present - allowed)
    if extra:
        raise VerifyError(
            f"{release_dir}: files not listed in SHA256SUMS would ship: {', '.join(extra)}.",
            hint="Remove them; only `locara-build release` writes a release folder.",
        )
    for name, digest in sorted(sums.items()):
        path = release_dir / name
        if not path.is_file():
            raise VerifyError(f"{release_dir}: {name} is listed in SHA256SUMS but missing.", hint="Run `locara-build release` again.")
        if sha256_file(path) != digest:
            raise VerifyError(f"{path}: sha256 does not match SHA256SUMS.", hint="The file changed after release; release again.")
    if sums.get(MANIFEST) != hashlib.sha256(manifest_bytes).hexdigest():
        raise VerifyError(f"{release_dir}: release.json is not the one SHA256SUMS lists.", hint="Release again.")
    for a in doc.artifacts:
        if sums.get(a.file) != a.sha256:
            raise VerifyError(
                f"{release_dir}: {a.file} has a different sha256 in release.json and SHA256SUMS.", hint="Release again."
            )
    return doc
