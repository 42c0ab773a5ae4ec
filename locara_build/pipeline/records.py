"""The records stages hand each other: one typed shape, one path rule, one reader, one writer.

A stage writes its record last (the record commits its output) and every later stage reads it back
through :func:`read`, never with its own dict walking. Readers are strict: an unknown, missing or
mistyped field is a :class:`RecordError` naming the file and the field, because a record that does
not have the shape its writer gives it was changed by hand, by an older or newer tool, or by an
attacker, and must not drive a build, a package or a release.

    BuildRecord    <work>/builds/<recipe>/<build key>/build.json     written by build, read by smoke
                                                                     and package
    SmokeRecord    <work>/builds/<recipe>/<build key>/smoke.json     written by smoke, read by smoke
                                                                     (reuse) and package (its summary)
    PackageRecord  <work>/dist/<version>/<artifact file>.json        written by package, read by
                                                                     weekly (reuse) and release (it
                                                                     carries the build's start and end
                                                                     to provenance: CI's release job
                                                                     has the packages, not the builds)
    ReleaseManifest <releases>/<version>/release.json                written by release, read by
                                                                     install, update, publish, weekly
                                                                     (downloaded: see its docstring)
    InstallState   <prefix>/state.json                               written and read by install (the
    InstallRecord  <prefix>/versions/<dir>/.locara-install.json      end user's prefix: see their comment)

``schema_of(cls)`` gives the JSON schema of a record (tests keep ``docs/schemas/*.json`` in sync).

A record class may set ``OMIT_NONE = True``: the writer then leaves out its fields that default to
None while they are None (the smoke record holds only what a run did: a skipped run has no ``server``).
The reader reads an absent one as None, so the bytes are canonical all the same.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import types
import typing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, TypeVar, Union, get_args, get_origin, get_type_hints

from locara_build import PRODUCT
from locara_build.core.errors import ConfigError, VerifyError
from locara_build.core.version import Version
from locara_build.upstream.lock import atomic_write_bytes

__all__ = [
    "BuildFile",
    "BuildRecord",
    "FileEntry",
    "InstallRecord",
    "InstallState",
    "InstalledVersion",
    "PackageRecord",
    "RecordError",
    "ReleaseArtifact",
    "ReleaseIndexRef",
    "ReleaseManifest",
    "ReleasePatch",
    "ReleaseSigningStatus",
    "ReleaseSmoke",
    "ReleaseTool",
    "ReleaseUpstream",
    "SeenVersion",
    "SigningStatus",
    "SideFile",
    "SmokeArgsFileRun",
    "SmokeChat",
    "SmokeCompletion",
    "SmokeDevice",
    "SmokeHost",
    "SmokeModel",
    "SmokeRecord",
    "SmokeServerRun",
    "SmokeUi",
    "from_dict",
    "read",
    "schema_of",
    "to_json_bytes",
    "write",
]


class RecordError(ConfigError):
    """A stage record that does not have its writer's shape (exit 2: the work dir is not as we left it)."""


# --- the records ---------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class FileEntry:
    """One file of a build output or an artifact, as shipped."""

    path: str
    sha256: str
    size: int
    mode: str | None = None


@dataclass(frozen=True, kw_only=True)
class BuildFile:
    """One file of a build output: a regular file (size, sha256, mode) or a symlink (link)."""

    path: str
    size: int | None = None
    sha256: str | None = None
    mode: str | None = None
    link: str | None = None


@dataclass(frozen=True, kw_only=True)
class BuildRecord:
    """``build.json``: what one build of one recipe compiled, with what, and when."""

    FILE: ClassVar[str] = "build.json"
    SCHEMA: ClassVar[int] = 2

    schema: int
    recipe: str
    recipe_file: str
    recipe_hash: str
    build_key: str
    os: str
    arch: str
    backend: str
    flavour: str
    version: str
    upstream: dict[str, str | int | None]
    patches: dict[str, Any]
    source_date_epoch: int
    targets: list[str]
    configure: dict[str, Any]
    toolchain: dict[str, Any]
    ccache: dict[str, Any]
    ninja: dict[str, int]
    durations: dict[str, float]
    files: list[BuildFile]
    path_leaks: list[dict[str, str]]
    log: str
    host: dict[str, str]
    started_at: str
    """When the build of this output began (UTC, ISO 8601 ``Z``): provenance's ``startedOn``."""
    finished_at: str
    """When its outputs were complete (UTC, ISO 8601 ``Z``): provenance's ``finishedOn``."""

    @classmethod
    def path(cls, output_dir: Path) -> Path:
        return output_dir / cls.FILE


@dataclass(frozen=True, kw_only=True)
class SmokeHost:
    """The host a smoke test ran on."""

    os: str
    arch: str


@dataclass(frozen=True, kw_only=True)
class SmokeDevice:
    """The device a recipe's smoke test needs (``smoke.device``) and what this host had of it."""

    needs: str
    found: str | None
    """The device found (e.g. ``NVIDIA L4, driver 580.95.05``); null: none here."""


@dataclass(frozen=True, kw_only=True)
class SmokeModel:
    """The tiny model the server was started with."""

    file: str
    size: int


@dataclass(frozen=True, kw_only=True)
class SmokeCompletion:
    """What ``/completion`` answered (timings as the server reported them, rounded)."""

    tokens: int
    prompt_tokens: int | None
    tokens_per_second: float | None
    prompt_tokens_per_second: float | None


@dataclass(frozen=True, kw_only=True)
class SmokeChat:
    """What ``/v1/chat/completions`` answered."""

    finish_reason: str
    completion_tokens: int
    prompt_tokens: int


@dataclass(frozen=True, kw_only=True)
class SmokeUi:
    """What ``GET /`` answered; ``bytes`` and ``content_type`` when the UI was checked."""

    OMIT_NONE: ClassVar[bool] = True

    checked: bool
    status: int
    bytes: int | None = None
    content_type: str | None = None


@dataclass(frozen=True, kw_only=True)
class SmokeServerRun:
    """Run 1: the server started with arguments, every endpoint checked."""

    port: int
    argv: list[str]
    healthy_after_s: float
    completion: SmokeCompletion
    chat: SmokeChat
    ui: SmokeUi
    expect: list[str]
    """The ``smoke.expect`` patterns the log matched (none checked on a CPU fallback)."""
    log: str


@dataclass(frozen=True, kw_only=True)
class SmokeArgsFileRun:
    """Run 2: a copy of ``bin/`` started with no arguments, from ``llama-server.args`` beside it."""

    port: int
    args_file: list[str]
    model_path: str | None
    """The model the server says it loaded (``/props``); null when it did not say."""
    completion: SmokeCompletion
    log: str


@dataclass(frozen=True, kw_only=True)
class SmokeRecord:
    """``smoke.json`` in a build output: what the smoke test of that build showed (the one file a
    build output gains after the build). A skipped test has a ``reason`` and none of the run fields."""

    FILE: ClassVar[str] = "smoke.json"
    SCHEMA: ClassVar[int] = 3
    OMIT_NONE: ClassVar[bool] = True

    schema: int
    recipe: str
    build_key: str
    smoke_key: str
    """The recipe's smoke settings and device situation it is valid for (``smokeplan.smoke_key``)."""
    output_dir: str
    host: SmokeHost
    status: str
    """``passed`` or ``skipped`` (a failed smoke test writes no record)."""
    reason: str | None
    """Why it was skipped, or what a ``partial`` / ``cpu-fallback`` test did not cover; null for a full test."""
    device: SmokeDevice | None = None
    """Only for a recipe whose smoke test needs a device (``smoke.device``)."""
    coverage: str | None = None
    """``full``, ``partial`` or ``cpu-fallback`` (passed runs; schema 3 added ``partial``)."""
    ran_on: str | None = None
    """The device the server computed on, from its log (e.g. ``CPU``, ``CUDA0 (NVIDIA L4)``)."""
    version: str | None = None
    model: SmokeModel | None = None
    server: SmokeServerRun | None = None
    args_file: SmokeArgsFileRun | None = None
    seconds: float | None = None
    finished_at: str | None = None
    """When the smoke test ended (UTC, ISO 8601 ``Z``)."""

    @classmethod
    def path(cls, output_dir: Path) -> Path:
        return output_dir / cls.FILE


@dataclass(frozen=True, kw_only=True)
class SigningStatus:
    """What signing did to the binaries of one artifact (``signing.sign_staged``)."""

    kind: str
    """``none``, ``authenticode`` or ``macos`` (the recipe's ``signing``)."""
    status: str
    """``signed``, ``skipped`` (no credentials, not required) or ``none`` (nothing to sign)."""
    files: list[str]
    reason: str | None = None


@dataclass(frozen=True, kw_only=True)
class SideFile:
    """A file the package stage writes beside the archive (debug symbols, the SBOM)."""

    file: str
    sha256: str
    size: int


@dataclass(frozen=True, kw_only=True)
class PackageRecord:
    """``<artifact file>.json`` beside the archive: what was packaged, for reuse and for release."""

    SCHEMA: ClassVar[int] = 2

    schema: int
    file: str
    name: str
    format: str
    sha256: str
    size: int
    unpacked_size: int
    version: str
    recipe: str
    recipe_hash: str
    os: str
    arch: str
    backend: str
    flavour: str
    build_key: str
    build_started_at: str
    """When the build this archive was made from began (its BuildRecord): provenance's startedOn."""
    build_finished_at: str
    """When that build's outputs were complete: provenance's finishedOn."""
    upstream: dict[str, str | int | None]
    source_date_epoch: int
    requirements: dict[str, Any]
    """Computed at package time (glibc / libstdc++ minimum, system libraries) plus the recipe's."""
    files: list[FileEntry]
    debug: SideFile | None
    sbom: SideFile | None
    """The archive's CycloneDX SBOM, also written beside it (release ships it without opening the archive)."""
    signing: SigningStatus
    smoke: dict[str, str]
    zlib: str
    packaged_by: dict[str, str]

    @classmethod
    def path(cls, dist_dir: Path, artifact_file: str) -> Path:
        return dist_dir / f"{artifact_file}.json"


# --- the release manifest (release.json) -------------------------------------------------------------
#
# Unlike the stage records above, release.json is read by installers already in users' hands, long
# after it was written, from a download. Its classes set ``IGNORE_UNKNOWN``: the reader
# (``ReleaseManifest.from_bytes``) skips fields it does not know instead of refusing them, so an older
# locara-build still installs a newer release of the same schema that gained a field (the manifest is
# signature-verified before it is read, so an unknown field is the release's, not an attacker's; it
# drives nothing here because nothing here reads it). A change an older reader must not miss bumps
# ``ReleaseManifest.SCHEMA``, which the reader refuses with the upgrade hint. The writer is strict all
# the same: ``make_release`` goes through ``from_dict``, which refuses a field the classes do not declare,
# so what we write is exactly what we read. Fields that schema-1 readers never required are optional,
# so every schema-1 release already published reads as before.


@dataclass(frozen=True, kw_only=True)
class ReleaseUpstream:
    """``upstream``: the llama.cpp source built (``UpstreamLock.upstream_record``). ``commit`` is "" when
    only the tree is known; a tree-only source adds the tree fields instead."""

    IGNORE_UNKNOWN: ClassVar[bool] = True
    OMIT_NONE: ClassVar[bool] = True

    commit: str
    source: str | None = None
    tag: str | None = None
    commit_date: str | None = None
    """ISO 8601 UTC; with ``tag`` it makes the release version."""
    release_tag: str | None = None
    identity: str | None = None
    tree: str | None = None
    origin: str | None = None
    archive_sha256: str | None = None
    import_commit: str | None = None
    verified_with: str | None = None
    date_note: str | None = None
    described: str | None = None


@dataclass(frozen=True, kw_only=True)
class ReleasePatch:
    """One patch of the series, in order."""

    IGNORE_UNKNOWN: ClassVar[bool] = True

    name: str
    sha256: str


@dataclass(frozen=True, kw_only=True)
class ReleaseTool:
    """The locara-build that made the release."""

    IGNORE_UNKNOWN: ClassVar[bool] = True

    name: str
    version: str


@dataclass(frozen=True, kw_only=True)
class ReleaseIndexRef:
    """``artifacts[].index``: the artifact's file index in the release store (``store.write_index``)."""

    IGNORE_UNKNOWN: ClassVar[bool] = True

    file: str
    sha256: str
    size: int


@dataclass(frozen=True, kw_only=True)
class ReleaseSigningStatus:
    """``artifacts[].signing_status``: what signing really did (``signing`` stays the kind)."""

    IGNORE_UNKNOWN: ClassVar[bool] = True
    OMIT_NONE: ClassVar[bool] = True

    status: str
    reason: str | None = None


@dataclass(frozen=True, kw_only=True)
class ReleaseSmoke:
    """``artifacts[].smoke``: the smoke summary (``smoke.smoke_summary`` + ``proved``, notes.py)."""

    IGNORE_UNKNOWN: ClassVar[bool] = True
    OMIT_NONE: ClassVar[bool] = True

    status: str
    """``passed``, ``skipped`` or ``not run``."""
    proved: str | None = None
    """``full`` | ``partial`` | ``cpu-fallback`` | ``built-only``."""
    coverage: str | None = None
    ran_on: str | None = None
    reason: str | None = None


@dataclass(frozen=True, kw_only=True)
class ReleaseArtifact:
    """One entry of ``artifacts``: a packaged archive of the release (fields in docs/releases.md)."""

    IGNORE_UNKNOWN: ClassVar[bool] = True
    OMIT_NONE: ClassVar[bool] = True

    file: str
    name: str
    format: str
    os: str
    arch: str
    backend: str
    flavour: str
    size: int
    sha256: str
    recipe: str
    recipe_hash: str
    requirements: dict[str, str | int]
    """What the user's system must provide (glibc / libstdc++ minimum, the recipe's)."""
    system_libraries: dict[str, str] = field(default_factory=dict)
    """Library -> what on the user's system provides it."""
    signing: str
    """The kind: ``none``, ``authenticode``, ``macos``."""
    signing_status: ReleaseSigningStatus | None = None
    provenance: str | None = None
    """``<file>.intoto.json`` (install refuses an artifact without it)."""
    sbom: str | None = None
    index: ReleaseIndexRef | None = None
    smoke: ReleaseSmoke | None = None


@dataclass(frozen=True, kw_only=True)
class ReleaseManifest:
    """``release.json``: the signed contract between ``release`` and ``install`` (docs/releases.md).

    Read with :meth:`from_bytes` (VerifyError, exit 8, naming the source and the field), written with
    :meth:`to_json_bytes`. Unknown fields are ignored, not refused (forward compatibility: see the
    comment above ``ReleaseUpstream``); a schema other than ``SCHEMA`` is refused with the upgrade hint.
    """

    SCHEMA: ClassVar[int] = 1
    FILE: ClassVar[str] = "release.json"
    IGNORE_UNKNOWN: ClassVar[bool] = True
    OMIT_NONE: ClassVar[bool] = True

    schema: int
    product: str
    version: str
    created: str
    """ISO 8601 UTC."""
    expires: str
    """ISO 8601 UTC; install refuses the release after it."""
    upstream: ReleaseUpstream
    patches: list[ReleasePatch] = field(default_factory=list)
    patch_set_hash: str | None = None
    tool: ReleaseTool | None = None
    signing_key: str | None = None
    """The minisign key id that signed it."""
    artifacts: list[ReleaseArtifact]

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "release.json") -> ReleaseManifest:
        """Parse and check a release.json (downloaded: after its signature was verified). VerifyError
        (exit 8) naming ``source`` and the field; RecursionError passes (the caller names it)."""

        def bad(why: str) -> VerifyError:
            return VerifyError(f"{source}: invalid release manifest: {why}.",
                               hint="Fetch the release again; report it if it persists.")

        try:
            doc = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            raise bad("not JSON") from None
        if not isinstance(doc, dict):
            raise bad("not a JSON object")
        if doc.get("schema") != cls.SCHEMA:
            raise VerifyError(
                f"{source}: release manifest schema {doc.get('schema')!r}; this locara-build reads schema {cls.SCHEMA}.",
                hint="Upgrade locara-build (`pip install -U locara-build`).",
            )
        if doc.get("product") != PRODUCT:
            raise bad(f"product is {doc.get('product')!r}, not {PRODUCT}")
        try:
            manifest: ReleaseManifest = _decode(cls, doc, "", lenient=True)
        except _Mismatch as exc:
            raise bad(str(exc)) from None
        for key in ("created", "expires"):
            try:
                _iso_time(getattr(manifest, key))
            except ValueError:
                raise bad(f"field `{key}` is not an ISO 8601 date") from None
        if not manifest.artifacts:
            raise bad("no artifacts")
        seen: set[str] = set()
        for i, a in enumerate(manifest.artifacts):
            if not _SAFE_NAME.fullmatch(a.file) or not _SAFE_NAME.fullmatch(a.name) or a.file in seen:
                raise bad(f"field `artifacts[{i}].file`: artifact file name {a.file!r} is unsafe or repeated")
            if not re.fullmatch(r"[0-9a-f]{64}", a.sha256):
                raise bad(f"field `artifacts[{i}].sha256` of artifact {a.file} is not a sha256")
            if a.size < 0:
                raise bad(f"field `artifacts[{i}].size` of artifact {a.file} is negative")
            seen.add(a.file)
        try:
            Version.parse(manifest.version, manifest.upstream.commit_date)
        except ConfigError as exc:
            raise bad(f"field `version`: {exc.message.rstrip('.')}") from None
        return manifest

    def parsed_version(self) -> Version:
        """The release's version (VerifyError when it does not parse)."""
        try:
            return Version.parse(self.version, self.upstream.commit_date)
        except ConfigError as exc:
            raise VerifyError(f"release.json: {exc.message}", hint="Fetch the release again.") from None

    def artifact(self, file: str) -> ReleaseArtifact | None:
        return next((a for a in self.artifacts if a.file == file), None)

    def to_dict(self) -> dict[str, Any]:
        """The plain JSON object the writer writes (for tests and tools; the package reads attributes)."""
        out: dict[str, Any] = _plain(self)
        return out

    def to_json_bytes(self) -> bytes:
        """The canonical bytes of release.json (what is signed)."""
        return to_json_bytes(self)


_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")

# --- the install state (an end user's prefix: locara_build.install.install) ---------------------------
#
# Not a stage's record but the installer's own files in the user's prefix, kept here so that one
# reader, one writer and one schema rule covers every JSON document locara-build writes. The bytes are
# what the installer always wrote (sorted keys, two-space indent, every field, null included), so a
# prefix installed by an earlier locara-build reads as before: fields that earlier versions did not
# write (``current``, ``commit_date``) are optional.


@dataclass(frozen=True, kw_only=True)
class SeenVersion:
    """``highest_seen``: the newest version this prefix has installed (no release below it installs)."""

    version: str
    commit_date: str | None = None

    def parsed(self) -> Version:
        return Version.parse(self.version, self.commit_date)


@dataclass(frozen=True, kw_only=True)
class InstalledVersion:
    """``installed[<dir>]``: a finished ``versions/<dir>`` the state records."""

    version: str
    commit_date: str | None = None
    """Null: the release had none, or the entry was written before commit dates were recorded."""
    artifact: str
    sha256: str
    backend: str
    installed: str
    """When it was installed (UTC, ISO 8601 ``Z``): the newest are kept by prune."""


@dataclass(frozen=True, kw_only=True)
class InstallState:
    """``<prefix>/state.json``: the downgrade floor, ``current`` and ``previous``, what is installed.

    Read with :meth:`read` (ConfigError, exit 2, naming the file and what to do), written with
    :meth:`to_json_bytes` (the installer writes it atomically between its crash checkpoints)."""

    FILE: ClassVar[str] = "state.json"
    SCHEMA: ClassVar[int] = 1

    schema: int
    highest_seen: SeenVersion | None = None
    previous: str | None = None
    current: str | None = None
    installed: dict[str, InstalledVersion] = field(default_factory=dict)

    @classmethod
    def empty(cls) -> InstallState:
        return cls(schema=cls.SCHEMA)

    @classmethod
    def read(cls, path: Path) -> InstallState:
        """The state at ``path``; an empty one when there is none."""
        if not path.exists():
            return cls.empty()
        try:
            doc = json.loads(path.read_text("utf-8"))
            if not isinstance(doc, dict) or doc.get("schema") != cls.SCHEMA:
                raise _Mismatch(f"schema {doc.get('schema') if isinstance(doc, dict) else None!r}, not {cls.SCHEMA}")
            state: InstallState = _decode(cls, doc, "")
            if state.highest_seen is not None:
                state.highest_seen.parsed()
        except (OSError, ValueError, RecursionError, _Mismatch, ConfigError) as exc:
            why = (exc.message if isinstance(exc, ConfigError) else str(exc) if isinstance(exc, _Mismatch)
                   else f"cannot read it: {exc.strerror or exc}" if isinstance(exc, OSError) else "not JSON")
            raise ConfigError(
                f"{path}: unreadable install state ({why.rstrip('.')}).",
                hint="Restore it from a backup or remove it (the downgrade protection then restarts from the next install).",
            ) from None
        return state

    def to_json_bytes(self) -> bytes:
        return to_json_bytes(self)


@dataclass(frozen=True, kw_only=True)
class InstallRecord:
    """``versions/<dir>/.locara-install.json``: what a finished version folder holds (written inside
    the folder before it is renamed into place, so its presence means the folder is complete).

    It travels with the folder and is read by whichever locara-build runs later, older or newer, so it
    ignores fields it does not know (``IGNORE_UNKNOWN``), like release.json; :meth:`read` returns None
    for anything that is not a record (the folder is then not a finished install)."""

    FILE: ClassVar[str] = ".locara-install.json"
    IGNORE_UNKNOWN: ClassVar[bool] = True
    MAX_SIZE: ClassVar[int] = 64 << 10

    version: str
    commit_date: str | None = None
    artifact: str
    sha256: str
    backend: str
    source: str
    """Where it was installed from (no credentials, no query values)."""
    key: str
    """The minisign key id that signed the release."""
    installed: str

    @classmethod
    def read(cls, folder: Path) -> InstallRecord | None:
        path = folder / cls.FILE
        try:
            if not path.is_file() or path.is_symlink() or path.stat().st_size > cls.MAX_SIZE:
                return None
            record: InstallRecord = _decode(cls, json.loads(path.read_text("utf-8")), "", lenient=True)
        except (OSError, ValueError, RecursionError, _Mismatch):
            return None
        return record

    def to_json_bytes(self) -> bytes:
        return to_json_bytes(self)



def _iso_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


R = TypeVar("R")

_MAX_RECORD = 64 << 20


# --- one reader, one writer ------------------------------------------------------------------------


def read(cls: type[R], path: Path) -> R:
    """Read the record of type ``cls`` at ``path``; RecordError (exit 2) when it is unreadable or
    does not have exactly the shape ``cls`` declares."""
    hint = f"Delete {path} and run the stage that writes it again (`locara-build weekly` does)."
    try:
        with open(path, "rb") as fh:
            data = fh.read(_MAX_RECORD + 1)
    except OSError as exc:
        raise RecordError(f"{path}: cannot read this record ({exc.strerror or exc}).", hint=hint) from None
    if len(data) > _MAX_RECORD:
        raise RecordError(f"{path}: larger than {_MAX_RECORD >> 20} MiB; not a record we wrote.", hint=hint)
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise RecordError(f"{path}: not valid JSON ({str(exc).splitlines()[0]}).", hint=hint) from None
    schema = getattr(cls, "SCHEMA", None)
    if isinstance(doc, dict) and schema is not None and doc.get("schema") != schema:
        raise RecordError(
            f"{path}: record schema {doc.get('schema')!r}, this locara-build reads schema {schema}.",
            hint=hint,
        )
    try:
        record: R = _decode(cls, doc, "")
    except _Mismatch as exc:
        raise RecordError(f"{path}: {exc}.", hint=hint) from None
    return record


def to_json_bytes(record: Any) -> bytes:
    """The canonical bytes of a record: sorted keys, two-space indent, a final newline."""
    return (json.dumps(_plain(record), indent=2, sort_keys=True) + "\n").encode()


def _plain(value: Any) -> Any:
    """``dataclasses.asdict``, less the None fields that default to None of an ``OMIT_NONE`` class."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        omit = getattr(value, "OMIT_NONE", False)
        return {
            f.name: _plain(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if not (omit and f.default is None and getattr(value, f.name) is None)
        }
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def write(record: Any, path: Path, mode: int = 0o644) -> Path:
    """Write ``record`` to ``path`` atomically (a reader sees the old record or the new one)."""
    data = to_json_bytes(record)
    from_dict(type(record), json.loads(data), where=str(path))  # the writer never writes what the reader refuses
    atomic_write_bytes(path, data)
    os.chmod(path, mode)
    return path


def from_dict(cls: type[R], doc: Any, *, where: str = "record") -> R:
    """Build a record from a plain dict (what a stage just computed), with the reader's checks."""
    try:
        record: R = _decode(cls, doc, "")
    except _Mismatch as exc:
        raise RecordError(f"{where}: {exc}.", hint="This is a bug in locara-build: please report it.") from None
    return record


# --- strict decoding from the type hints ------------------------------------------------------------


class _Mismatch(Exception):
    pass


def _name(where: str) -> str:
    return f"field `{where}`" if where else "the record"


def _decode(tp: Any, value: Any, where: str, *, lenient: bool = False) -> Any:
    """``lenient``: a class with ``IGNORE_UNKNOWN`` skips the fields it does not declare (release.json)."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        errors: list[_Mismatch] = []
        for arm in get_args(tp):
            try:
                return _decode(arm, value, where, lenient=lenient)
            except _Mismatch as exc:
                errors.append(exc)
        objects = [e for a, e in zip(get_args(tp), errors, strict=True) if dataclasses.is_dataclass(a) or get_origin(a) is dict]
        if isinstance(value, dict) and len(objects) == 1:
            raise objects[0]  # an object for the one arm that takes objects: what is wrong inside it
        raise _Mismatch(f"{_name(where)} is {_kind(value)}, expected {_type_name(tp)}")
    if tp is type(None):
        if value is not None:
            raise _Mismatch(f"{_name(where)} is {_kind(value)}, expected null")
        return None
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise _Mismatch(f"{_name(where)} is {_kind(value)}, expected an object")
        hints = get_type_hints(tp)
        fields = {f.name: f for f in dataclasses.fields(tp)}
        unknown = sorted(set(value) - set(fields))
        if unknown and not (lenient and getattr(tp, "IGNORE_UNKNOWN", False)):
            raise _Mismatch(f"unknown field `{_join(where, unknown[0])}`")
        kwargs = {}
        for name, f in fields.items():
            if name not in value:
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                    raise _Mismatch(f"missing field `{_join(where, name)}`")
                continue
            kwargs[name] = _decode(hints[name], value[name], _join(where, name), lenient=lenient)
        return typing.cast(Any, tp)(**kwargs)
    if origin is list:
        (item,) = get_args(tp)
        if not isinstance(value, list):
            raise _Mismatch(f"{_name(where)} is {_kind(value)}, expected a list")
        return [_decode(item, v, f"{where}[{i}]", lenient=lenient) for i, v in enumerate(value)]
    if origin is dict:
        key_tp, val_tp = get_args(tp)
        if not isinstance(value, dict):
            raise _Mismatch(f"{_name(where)} is {_kind(value)}, expected an object")
        return {k: _decode(val_tp, v, _join(where, k), lenient=lenient) for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise _Mismatch(f"{_name(where)} is {_kind(value)}, expected true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Mismatch(f"{_name(where)} is {_kind(value)}, expected an integer")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _Mismatch(f"{_name(where)} is {_kind(value)}, expected a number")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise _Mismatch(f"{_name(where)} is {_kind(value)}, expected a string")
        return value
    raise TypeError(f"records: no decoder for {tp!r}")  # a record declared a type this module does not know


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return {int: "an integer", float: "a number", str: "a string", list: "a list", dict: "an object"}.get(
        type(value), type(value).__name__
    )


def _type_name(tp: Any) -> str:
    if get_origin(tp) in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp))
    simple: dict[Any, str] = {type(None): "null", str: "a string", int: "an integer", float: "a number", bool: "a boolean"}
    if tp in simple:
        return simple[tp]
    return str(getattr(get_origin(tp), "__name__", None) or getattr(tp, "__name__", None) or tp)


# --- JSON schema -----------------------------------------------------------------------------------


def schema_of(cls: type) -> dict[str, Any]:
    """The JSON schema (draft 2020-12) of a record type, derived from the same hints the reader uses."""
    defs: dict[str, Any] = {}
    root = _schema(cls, defs)
    out = {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": cls.__name__, **root}
    if defs:
        out["$defs"] = dict(sorted(defs.items()))
    return out


def _schema(tp: Any, defs: dict[str, Any], top: bool = True) -> dict[str, Any]:
    origin = get_origin(tp)
    if tp is Any:
        return {}
    if origin in (Union, types.UnionType):
        return {"anyOf": [_schema(a, defs, False) for a in get_args(tp)]}
    if tp is type(None):
        return {"type": "null"}
    if dataclasses.is_dataclass(tp):
        assert isinstance(tp, type)
        hints = get_type_hints(tp)
        fields = dataclasses.fields(tp)
        body: dict[str, Any] = {
            "type": "object",
            "additionalProperties": bool(getattr(tp, "IGNORE_UNKNOWN", False)),
            "required": [f.name for f in fields if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING],
            "properties": {f.name: _schema(hints[f.name], defs, False) for f in fields},
        }
        schema = getattr(tp, "SCHEMA", None)
        if schema is not None:
            body["properties"]["schema"] = {"const": schema}
        if top:
            return body
        defs[tp.__name__] = body
        return {"$ref": f"#/$defs/{tp.__name__}"}
    if origin is list:
        return {"type": "array", "items": _schema(get_args(tp)[0], defs, False)}
    if origin is dict:
        return {"type": "object", "additionalProperties": _schema(get_args(tp)[1], defs, False)}
    simple = {bool: "boolean", int: "integer", float: "number", str: "string"}
    if tp in simple:
        return {"type": simple[tp]}
    raise TypeError(f"records: no schema for {tp!r}")


SCHEMA_FILES = {
    "build-record.schema.json": BuildRecord,
    "install-record.schema.json": InstallRecord,
    "install-state.schema.json": InstallState,
    "package-record.schema.json": PackageRecord,
    "release-manifest.schema.json": ReleaseManifest,
    "smoke-record.schema.json": SmokeRecord,
}


def write_schemas(folder: Path) -> list[Path]:
    """Write the JSON schema of every record into ``folder`` (``make docs``; a test keeps them current)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name, cls in SCHEMA_FILES.items():
        path = folder / name
        path.write_text(json.dumps(schema_of(cls), indent=2, sort_keys=True) + "\n", encoding="utf-8")
        out.append(path)
    return out


if __name__ == "__main__":  # python -m locara_build.pipeline.records docs/schemas
    import sys

    for written in write_schemas(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/schemas")):
        print(written)
