"""The stage records (locara_build.pipeline.records): one strict reader, one canonical writer, a JSON schema
that is kept in docs/schemas/ and agrees with the reader."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from support.records_kit import write_build_record

from locara_build.pipeline import records
from locara_build.pipeline.records import BuildRecord, PackageRecord, RecordError

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", sorted(records.SCHEMA_FILES))
def test_committed_schemas_are_current(name: str) -> None:
    committed = json.loads((REPO / "docs" / "schemas" / name).read_text())
    assert committed == records.schema_of(records.SCHEMA_FILES[name]), (
        f"docs/schemas/{name} is stale: run `python -m locara_build.pipeline.records docs/schemas` (make docs)"
    )


@pytest.fixture
def build_out(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    (out / "bin").mkdir(parents=True)
    (out / "bin" / "llama-server").write_bytes(b"\x7fELF stand-in")
    (out / "bin" / "libggml.so").symlink_to("llama-server")
    return out


def test_round_trip_is_byte_stable_and_valid_against_the_schema(build_out: Path) -> None:
    rec = write_build_record(build_out, recipe="tiny")
    path = BuildRecord.path(build_out)
    data = path.read_bytes()
    assert records.read(BuildRecord, path) == rec
    assert records.to_json_bytes(records.read(BuildRecord, path)) == data  # canonical: reading and writing again changes nothing
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    jsonschema.validate(json.loads(data), records.schema_of(BuildRecord))


def _mutated(path: Path, change) -> None:
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


CASES = [
    (lambda d: d.pop("started_at"), "missing field `started_at`"),
    (lambda d: d.update(surprise=True), "unknown field `surprise`"),
    (lambda d: d.update(source_date_epoch=True), "field `source_date_epoch` is a boolean, expected an integer"),
    (lambda d: d.update(source_date_epoch="1759312800"), "field `source_date_epoch` is a string, expected an integer"),
    (lambda d: d.update(targets="llama-server"), "field `targets` is a string, expected a list"),
    (lambda d: d["targets"].append(7), "field `targets[1]` is an integer, expected a string"),
    (lambda d: d["files"][0].update(sha256=5), "field `files[0].sha256` is an integer, expected a string or null"),
    (lambda d: d["files"][0].update(owner="root"), "unknown field `files[0].owner`"),
    (lambda d: d["host"].update(os=None), "field `host.os` is null, expected a string"),
    (lambda d: d["durations"].update(total="fast"), "field `durations.total` is a string, expected a number"),
    (lambda d: d.update(schema=1), "record schema 1, this locara-build reads schema 2"),
]


@pytest.mark.parametrize("change,message", CASES, ids=[m for _, m in CASES])
def test_reader_refuses_what_the_writer_never_writes(build_out: Path, change, message: str) -> None:
    write_build_record(build_out, recipe="tiny")
    path = BuildRecord.path(build_out)
    _mutated(path, change)
    with pytest.raises(RecordError) as err:
        records.read(BuildRecord, path)
    assert message in err.value.message and str(path) in err.value.message
    assert err.value.exit_code == 2 and "run the stage that writes it again" in (err.value.hint or "")
    # the schema agrees with the reader: what it refuses does not validate (a schema-version change aside)
    if "record schema" not in message:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(json.loads(path.read_text()), records.schema_of(BuildRecord))


@pytest.mark.parametrize("content,message", [
    (b"", "not valid JSON"),
    (b"{", "not valid JSON"),
    (b"\xff\xfe{}", "not valid JSON"),
    (b"[" * 200_000 + b"]" * 200_000, "not valid JSON"),
    (b"[]", "the record is a list, expected an object"),
    (b'{"schema": 2}', "missing field"),
])
def test_reader_refuses_garbage_cleanly(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "build.json"
    path.write_bytes(content)
    with pytest.raises(RecordError) as err:
        records.read(BuildRecord, path)
    assert message in err.value.message


def test_reader_caps_the_size_and_names_a_missing_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(records, "_MAX_RECORD", 1024)
    big = tmp_path / "big.json"
    big.write_bytes(b" " * 2048)
    with pytest.raises(RecordError, match="larger than"):
        records.read(PackageRecord, big)
    with pytest.raises(RecordError, match="cannot read this record"):
        records.read(PackageRecord, tmp_path / "absent.json")


def test_writer_refuses_a_record_of_the_wrong_shape(tmp_path: Path) -> None:
    good = records.read(BuildRecord, BuildRecord.path(_out_with_record(tmp_path)))
    bad = records.BuildRecord(**{**good.__dict__, "source_date_epoch": "soon"})  # type: ignore[arg-type]
    target = tmp_path / "again.json"
    with pytest.raises(RecordError, match="field `source_date_epoch` is a string, expected an integer"):
        records.write(bad, target)  # the canonical writer never writes what the reader refuses
    assert not target.exists()


def _out_with_record(tmp_path: Path) -> Path:
    out = tmp_path / "o"
    (out / "bin").mkdir(parents=True)
    (out / "bin" / "x").write_bytes(b"x")
    write_build_record(out, recipe="tiny")
    return out
