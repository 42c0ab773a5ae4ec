"""The stage records (locara_build.pipeline.records): one strict reader, one canonical writer, a JSON schema
that is kept in docs/schemas/ and agrees with the reader."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from support.records_kit import write_build_record

from locara_build.pipeline import records
from locara_build.pipeline.records import BuildRecord, PackageRecord, RecordError, SmokeRecord

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


# --- the smoke record --------------------------------------------------------------------------------


def _smoke_fields(**changes) -> dict:
    """What ``smoke`` writes for a passed run (as plain data, the shape of smoke.json)."""
    completion = {"tokens": 16, "prompt_tokens": 5, "tokens_per_second": 123.4, "prompt_tokens_per_second": None}
    doc = {
        "schema": SmokeRecord.SCHEMA, "recipe": "tiny", "build_key": "stand-in", "smoke_key": "0" * 16,
        "output_dir": "/work/builds/tiny/stand-in", "host": {"os": "linux", "arch": "x86_64"},
        "device": {"needs": "nvidia-gpu", "found": None}, "status": "passed", "coverage": "cpu-fallback",
        "ran_on": "CPU", "reason": "no GPU here", "version": "test", "model": {"file": "tiny.gguf", "size": 1234},
        "server": {
            "port": 40001, "argv": ["bin/llama-server", "-m", "tiny.gguf"], "healthy_after_s": 0.5,
            "completion": completion,
            "chat": {"finish_reason": "length", "completion_tokens": 16, "prompt_tokens": 9},
            "ui": {"checked": True, "status": 200, "bytes": 57, "content_type": "text/html"},
            "expect": [], "log": "/work/logs/smoke-tiny.log",
        },
        "args_file": {"port": 40002, "args_file": ["-m", "./models/tiny.gguf", "..."], "model_path": None,
                      "completion": completion, "log": "/work/logs/smoke-tiny-args.log"},
        "seconds": 2.5, "finished_at": "2026-10-01T10:07:00Z",
    }
    doc.update(changes)
    return doc


def _write_smoke(out: Path, **changes) -> SmokeRecord:
    record = records.from_dict(SmokeRecord, _smoke_fields(**changes))
    records.write(record, SmokeRecord.path(out))
    return record


def test_smoke_record_round_trip_is_byte_stable_and_valid_against_the_schema(tmp_path: Path) -> None:
    rec = _write_smoke(tmp_path)
    path = SmokeRecord.path(tmp_path)
    assert path.name == "smoke.json"
    data = path.read_bytes()
    back = records.read(SmokeRecord, path)
    assert back == rec and back.server is not None and back.server.completion.tokens_per_second == 123.4
    assert records.to_json_bytes(back) == data
    assert json.loads(data) == _smoke_fields()  # the file has smoke's shape
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    jsonschema.validate(json.loads(data), records.schema_of(SmokeRecord))


def test_a_skipped_smoke_record_holds_only_what_happened(tmp_path: Path) -> None:
    rec = _write_smoke(tmp_path, status="skipped", reason="needs a GPU", device=None, coverage=None, ran_on=None,
                       version=None, model=None, server=None, args_file=None, seconds=None, finished_at=None)
    doc = json.loads(SmokeRecord.path(tmp_path).read_text())
    assert set(doc) == {"schema", "recipe", "build_key", "smoke_key", "output_dir", "host", "status", "reason"}
    assert records.read(SmokeRecord, SmokeRecord.path(tmp_path)) == rec
    jsonschema.validate(doc, records.schema_of(SmokeRecord))
    # an unchecked UI: no size, no content type
    _write_smoke(tmp_path, server={**_smoke_fields()["server"], "ui": {"checked": False, "status": 404}})
    assert json.loads(SmokeRecord.path(tmp_path).read_text())["server"]["ui"] == {"checked": False, "status": 404}


SMOKE_CASES = [
    (lambda d: d.update(surprise=True), "unknown field `surprise`"),
    (lambda d: d["server"]["completion"].update(tokens_per_sec=1.0), "unknown field `server.completion.tokens_per_sec`"),
    (lambda d: d.pop("smoke_key"), "missing field `smoke_key`"),
    (lambda d: d["server"].pop("chat"), "missing field `server.chat`"),
    (lambda d: d.update(status=1), "field `status` is an integer, expected a string"),
    (lambda d: d["server"]["completion"].update(tokens="16"), "field `server.completion.tokens` is a string, expected an integer"),
    (lambda d: d["server"]["ui"].update(checked="yes"), "field `server.ui.checked` is a string, expected true or false"),
    (lambda d: d["host"].update(arch=None), "field `host.arch` is null, expected a string"),
    (lambda d: d.update(seconds="fast"), "field `seconds` is a string, expected a number or null"),
    (lambda d: d.update(schema=2), "record schema 2, this locara-build reads schema 3"),
]


@pytest.mark.parametrize("change,message", SMOKE_CASES, ids=[m for _, m in SMOKE_CASES])
def test_smoke_reader_refuses_what_the_writer_never_writes(tmp_path: Path, change, message: str) -> None:
    _write_smoke(tmp_path)
    path = SmokeRecord.path(tmp_path)
    _mutated(path, change)
    with pytest.raises(RecordError) as err:
        records.read(SmokeRecord, path)
    assert message in err.value.message and str(path) in err.value.message
    assert err.value.exit_code == 2
    if "record schema" not in message:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(json.loads(path.read_text()), records.schema_of(SmokeRecord))


def test_a_stale_or_garbled_smoke_record_is_no_valid_smoke_result(tmp_path: Path) -> None:
    """valid_smoke_record: this build, these smoke settings, a record that reads; anything else is None
    (the smoke stage runs again), never an error."""
    from support.pipeline import stand_in_project

    from locara_build.build.plan import make_plan
    from locara_build.core.workdir import Project, WorkDir
    from locara_build.smoke.smokeplan import device_plan, read_smoke_record, smoke_key, valid_smoke_record

    s = stand_in_project(tmp_path)
    rp = make_plan(Project(s.project), WorkDir(s.work), ["tiny"]).recipes[0]
    out = rp.output_dir
    out.mkdir(parents=True)
    assert valid_smoke_record(rp) is None  # none yet
    key = smoke_key(rp.recipe, device_plan(rp.recipe)[0])
    good = _write_smoke(out, build_key=rp.build_key, smoke_key=key)
    assert valid_smoke_record(rp) == good
    path = SmokeRecord.path(out)

    _write_smoke(out, build_key="another-build", smoke_key=key)
    assert valid_smoke_record(rp) is None  # of another build
    _write_smoke(out, build_key=rp.build_key, smoke_key="f" * 16)
    assert valid_smoke_record(rp) is None  # other smoke settings or device situation

    def old_shape(d: dict) -> None:  # an older tool's record: a field this one does not know
        d["server"]["completion"]["tps"] = d["server"]["completion"].pop("tokens_per_second")

    for change in (old_shape, lambda d: d.update(schema=1), lambda d: d["server"].update(port="40001")):
        _write_smoke(out, build_key=rp.build_key, smoke_key=key)
        _mutated(path, change)
        assert read_smoke_record(out) is None and valid_smoke_record(rp) is None
    for garbage in (b"", b"{", b"[]", b"\xff\xfe", b"null"):
        path.write_bytes(garbage)
        assert valid_smoke_record(rp) is None
    path.unlink()
    path.mkdir()  # not even a file
    assert valid_smoke_record(rp) is None


# --- release.json (ReleaseManifest): read from downloads, after its signature verified ----------------


@pytest.fixture
def made_release(tmp_path: Path):
    from support.release_kit import NEW, make_keys, make_lock, release_for

    keys = make_keys(tmp_path / "keys")
    return release_for(tmp_path, make_lock(**NEW), keys, recipes=["linux-x86_64-cpu"])


def test_release_manifest_round_trip_of_a_real_release(made_release) -> None:
    from locara_build.release.release import MANIFEST, read_manifest

    data = (made_release.out / MANIFEST).read_bytes()
    manifest = records.ReleaseManifest.from_bytes(data, "release.json")
    assert manifest.to_json_bytes() == data  # make_release writes exactly the canonical bytes of the record
    assert read_manifest(made_release.out) == manifest
    assert made_release.record == manifest and manifest.to_dict() == json.loads(data)
    art = manifest.artifacts[0]
    assert isinstance(art, records.ReleaseArtifact) and art.provenance == art.file + ".intoto.json"
    assert art.index is not None and art.smoke is not None and art.signing_status is not None
    assert manifest.parsed_version() is not None and manifest.artifact(art.file) == art
    jsonschema.validate(json.loads(data), records.schema_of(records.ReleaseManifest))


def _release_refusal(data: bytes) -> str:
    from locara_build.core.errors import VerifyError

    with pytest.raises(VerifyError) as err:
        records.ReleaseManifest.from_bytes(data, "https://mirror.invalid/v/release.json")
    assert err.value.exit_code == 8
    assert "https://mirror.invalid/v/release.json" in err.value.message
    return err.value.message + "\n" + (err.value.hint or "")


def test_release_manifest_of_an_unknown_schema_is_refused_with_the_upgrade_hint(made_release) -> None:
    doc = json.loads((made_release.out / "release.json").read_text())
    doc["schema"] = 2
    text = _release_refusal(json.dumps(doc).encode())
    assert "release manifest schema 2; this locara-build reads schema 1" in text
    assert "Upgrade locara-build" in text


RELEASE_CASES = [
    (lambda d: d["artifacts"][0].update(size="578"), "field `artifacts[0].size` is a string, expected an integer"),
    (lambda d: d["artifacts"][0].update(size=True), "field `artifacts[0].size` is a boolean, expected an integer"),
    (lambda d: d["artifacts"][0].update(sha256=7), "field `artifacts[0].sha256` is an integer, expected a string"),
    (lambda d: d["artifacts"][0].update(sha256="A" * 64), "field `artifacts[0].sha256`"),
    (lambda d: d["artifacts"][0].update(size=-1), "field `artifacts[0].size`"),
    (lambda d: d["artifacts"][0].pop("recipe_hash"), "missing field `artifacts[0].recipe_hash`"),
    (lambda d: d["artifacts"][0]["index"].update(size="9"), "field `artifacts[0].index.size` is a string, expected an integer"),
    (lambda d: d["artifacts"][0]["smoke"].update(status=None), "field `artifacts[0].smoke.status` is null, expected a string"),
    (lambda d: d["artifacts"][0].update(requirements={"glibc": {"min": "2.34"}}), "field `artifacts[0].requirements.glibc`"),
    (lambda d: d["artifacts"][0].update(file="../evil.tar.gz"), "field `artifacts[0].file`"),
    (lambda d: d["artifacts"].append(dict(d["artifacts"][0])), "field `artifacts[1].file`"),
    (lambda d: d.update(artifacts=[]), "no artifacts"),
    (lambda d: d.update(expires="next tuesday"), "field `expires` is not an ISO 8601 date"),
    (lambda d: d["upstream"].update(commit=None), "field `upstream.commit` is null, expected a string"),
    (lambda d: d.update(product="other"), "product is 'other'"),
    (lambda d: d.update(version="not-a-version"), "version"),
]


@pytest.mark.parametrize("change,message", RELEASE_CASES, ids=[m for _, m in RELEASE_CASES])
def test_release_manifest_reader_refuses_a_wrong_field_naming_it(made_release, change, message: str) -> None:
    doc = json.loads((made_release.out / "release.json").read_text())
    change(doc)
    assert message in _release_refusal(json.dumps(doc).encode())


def test_release_manifest_ignores_unknown_fields_but_the_writer_refuses_them(made_release) -> None:
    """Forward compatibility: a newer release of the same schema may add fields; an older reader skips
    them (the manifest is signed). The writer never writes a field the classes do not declare."""
    data = (made_release.out / "release.json").read_bytes()
    doc = json.loads(data)
    doc["mirrors"] = ["https://example.invalid"]
    doc["artifacts"][0]["delta_hint"] = {"from": "x"}
    doc["artifacts"][0]["smoke"]["tokens_per_second"] = 12.5
    assert records.ReleaseManifest.from_bytes(json.dumps(doc).encode()) == records.ReleaseManifest.from_bytes(data)
    with pytest.raises(RecordError, match="unknown field `mirrors`"):
        records.from_dict(records.ReleaseManifest, doc, where="release.json")


# --- the install state (state.json, .locara-install.json in an end user's prefix) -------------------------

# What the first installer (commit bc90996) wrote: no `current`, no `commit_date` in the entries.
OLD_STATE = b"""{
  "highest_seen": {
    "commit_date": "2026-09-24T08:00:00Z",
    "version": "2026.09.24-b6600-r1"
  },
  "installed": {
    "2026.09.17-b6500-r1": {
      "artifact": "locara-server-2026.09.17-b6500-r1-linux-x86_64-cpu.tar.gz",
      "backend": "cpu",
      "installed": "2026-09-18T10:00:00Z",
      "sha256": "1111111111111111111111111111111111111111111111111111111111111111",
      "version": "2026.09.17-b6500-r1"
    },
    "2026.09.24-b6600-r1": {
      "artifact": "locara-server-2026.09.24-b6600-r1-linux-x86_64-cpu.tar.gz",
      "backend": "cpu",
      "installed": "2026-09-25T10:00:00Z",
      "sha256": "2222222222222222222222222222222222222222222222222222222222222222",
      "version": "2026.09.24-b6600-r1"
    }
  },
  "previous": "2026.09.17-b6500-r1",
  "schema": 1
}
"""


def test_install_state_of_the_first_installer_still_reads(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(OLD_STATE)
    state = records.InstallState.read(path)
    assert state.current is None and state.previous == "2026.09.17-b6500-r1"
    assert state.highest_seen is not None and str(state.highest_seen.parsed()) == "2026.09.24-b6600-r1"
    assert state.installed["2026.09.24-b6600-r1"].commit_date is None
    assert state.installed["2026.09.17-b6500-r1"].installed == "2026-09-18T10:00:00Z"
    jsonschema.validate(json.loads(OLD_STATE), records.schema_of(records.InstallState))


def test_install_state_round_trip_is_byte_stable_and_what_the_installer_always_wrote(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(OLD_STATE)
    doc = json.loads(OLD_STATE)
    doc["current"] = "2026.09.24-b6600-r1"
    for entry in doc["installed"].values():
        entry["commit_date"] = None
    legacy = (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()  # the installer's own json.dumps
    path.write_bytes(legacy)
    state = records.InstallState.read(path)
    assert state.to_json_bytes() == legacy
    fresh = records.InstallState.empty().to_json_bytes()
    assert json.loads(fresh) == {"schema": 1, "highest_seen": None, "previous": None, "current": None, "installed": {}}
    assert records.InstallState.read(tmp_path / "none.json") == records.InstallState.empty()
    jsonschema.validate(json.loads(legacy), records.schema_of(records.InstallState))


STATE_CASES = [
    (b"[" * 200_000, "not JSON"),
    (b'{"schema": 2}', "schema 2, not 1"),
    (b'{"schema": 1, "installed": []}', "field `installed` is a list, expected an object"),
    (b'{"schema": 1, "previous": 5}', "field `previous` is an integer"),
    (b'{"schema": 1, "highest_seen": {"version": "x\\n"}}', "version"),
    (b'{"schema": 1, "installed": {"a": {"version": "2026.09.24-b6600-r1"}}}', "missing field `installed.a.artifact`"),
    (b'{"schema": 1, "extra": true}', "unknown field `extra`"),
]


@pytest.mark.parametrize("content,why", STATE_CASES, ids=[w for _, w in STATE_CASES])
def test_install_state_reader_refuses_naming_the_file_and_the_next_step(tmp_path: Path, content: bytes, why: str) -> None:
    from locara_build.core.errors import ConfigError

    path = tmp_path / "state.json"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as info:
        records.InstallState.read(path)
    assert info.value.message.startswith(f"{path}: unreadable install state (") and why in info.value.message
    assert "remove it" in (info.value.hint or "") and info.value.exit_code == 2


def test_install_record_reads_old_and_newer_records_and_nothing_else(tmp_path: Path) -> None:
    old = {"version": "2026.09.24-b6600-r1", "artifact": "a.tar.gz", "sha256": "2" * 64, "backend": "cpu",
           "source": "https://example.org/locara", "key": "0123456789ABCDEF", "installed": "2026-09-25T10:00:00Z"}
    (tmp_path / ".locara-install.json").write_text(json.dumps(old, indent=2, sort_keys=True) + "\n")
    record = records.InstallRecord.read(tmp_path)
    assert record is not None and record.commit_date is None and record.sha256 == "2" * 64
    new = records.InstallRecord(**{**old, "commit_date": "2026-09-24T08:00:00Z"})
    assert new.to_json_bytes() == (json.dumps({**old, "commit_date": "2026-09-24T08:00:00Z"}, indent=2, sort_keys=True) + "\n").encode()
    jsonschema.validate(json.loads(new.to_json_bytes()), records.schema_of(records.InstallRecord))
    (tmp_path / ".locara-install.json").write_text(json.dumps({**old, "signed_by": "a newer locara-build"}))
    assert records.InstallRecord.read(tmp_path) == record  # a newer tool's field is skipped
    for bad in ("{", "[]", json.dumps({**old, "sha256": 5}), json.dumps({k: v for k, v in old.items() if k != "sha256"})):
        (tmp_path / ".locara-install.json").write_text(bad)
        assert records.InstallRecord.read(tmp_path) is None
    assert records.InstallRecord.read(tmp_path / "missing") is None
