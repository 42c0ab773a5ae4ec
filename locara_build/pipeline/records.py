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

``schema_of(cls)`` gives the JSON schema of a record (tests keep ``docs/schemas/*.json`` in sync).

A record class may set ``OMIT_NONE = True``: the writer then leaves out its fields that default to
None while they are None (the smoke record holds only what a run did: a skipped run has no ``server``).
The reader reads an absent one as None, so the bytes are canonical all the same.
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar, Union, get_args, get_origin, get_type_hints

from locara_build.core.errors import ConfigError
from locara_build.upstream.lock import atomic_write_bytes

__all__ = [
    "BuildFile",
    "BuildRecord",
    "FileEntry",
    "PackageRecord",
    "RecordError",
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
    SCHEMA: ClassVar[int] = 2
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
    """Why it was skipped, or what a ``cpu-fallback`` did not cover; null for a full test."""
    device: SmokeDevice | None = None
    """Only for a recipe whose smoke test needs a device (``smoke.device``)."""
    coverage: str | None = None
    """``full`` or ``cpu-fallback`` (passed runs)."""
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


def _decode(tp: Any, value: Any, where: str) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        errors: list[_Mismatch] = []
        for arm in get_args(tp):
            try:
                return _decode(arm, value, where)
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
        if unknown:
            raise _Mismatch(f"unknown field `{_join(where, unknown[0])}`")
        kwargs = {}
        for name, f in fields.items():
            if name not in value:
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                    raise _Mismatch(f"missing field `{_join(where, name)}`")
                continue
            kwargs[name] = _decode(hints[name], value[name], _join(where, name))
        return typing.cast(Any, tp)(**kwargs)
    if origin is list:
        (item,) = get_args(tp)
        if not isinstance(value, list):
            raise _Mismatch(f"{_name(where)} is {_kind(value)}, expected a list")
        return [_decode(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        key_tp, val_tp = get_args(tp)
        if not isinstance(value, dict):
            raise _Mismatch(f"{_name(where)} is {_kind(value)}, expected an object")
        return {k: _decode(val_tp, v, _join(where, k)) for k, v in value.items()}
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
            "additionalProperties": False,
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
    "package-record.schema.json": PackageRecord,
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
