"""Model manifests (strict) and `models fetch` into the content-addressed store, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from conftest import REPO, run_cli
from support.httpserver import LoopbackServer

from locara_build.core.errors import ConfigError, VerifyError
from locara_build.package.models import (
    blob_path,
    fetch_model,
    load_manifest,
    load_models_toml,
    parse_manifest,
    store_has,
    verify_store,
)

BLOB = os.urandom(3 << 20)  # 3 MiB of "model"
SHA = hashlib.sha256(BLOB).hexdigest()


def _manifest(tmp: Path, url: str, sha: str = SHA, size: int = len(BLOB), name: str = "m.json") -> Path:
    doc = {
        "schema": 1,
        "default": "tiny",
        "models": [
            {"id": "tiny", "file": "tiny.gguf", "sha256": sha, "size": size, "urls": [url], "license": "MIT", "args": ["-c", "512"]}
        ],
    }
    path = tmp / name
    path.write_text(json.dumps(doc))
    return path


# --- the repo's models.toml -----------------------------------------------------------------


def test_repo_models_toml_is_valid_and_real() -> None:
    mf = load_models_toml(REPO / "recipes" / "models.toml")
    assert mf.default == "qwen2.5-0.5b-instruct-q4_k_m"
    ids = {m.id for m in mf.models}
    assert {"qwen2.5-0.5b-instruct-q4_k_m", "tinyllama-1.1b-chat-v1.0-q4_k_m", "smollm2-360m-instruct-q8_0"} <= ids
    for m in mf.models:
        assert m.urls and all(u.startswith("https://huggingface.co/") for u in m.urls)
        assert m.size > 100 << 20 and m.license
    # the manifest JSON round-trips through the same strict loader
    again = parse_manifest(json.loads(mf.to_json()))
    assert again.models == mf.models and again.default == mf.default


# --- strictness ----------------------------------------------------------------------------

GOOD = """\
default = "a"

[[model]]
id = "a"
file = "a.gguf"
sha256 = "{sha}"
size = 10
urls = ["https://example.invalid/a.gguf"]
license = "MIT"
"""


@pytest.mark.parametrize(
    ("change", "needles"),
    [
        (("license = ", "licence = "), ["m.toml:9", "unknown key `licence`", "Did you mean `license`"]),
        (("sha256 = \"", "sha256 = \"XYZ"), ["m.toml:6", "64 lower-case hex"]),
        (("size = 10", "size = \"10\""), ["m.toml:7", "`size` must be an integer"]),
        (("default = \"a\"", "default = \"b\""), ["`default` names unknown model `b`"]),
        (("urls = [\"https://example.invalid/a.gguf\"]", "urls = [\"ftp://x/a.gguf\"]"), ["not an http(s)://"]),
        (("file = \"a.gguf\"\n", ""), ["m.toml:3", "missing required key `file`"]),
        (("default = \"a\"", "default = \"a\"\nmodles = 1"), ["m.toml:2", "unknown key `modles`", "Did you mean `models`"]),
    ],
)
def test_strict_loader_names_file_line_and_fix(tmp_path: Path, change: tuple[str, str], needles: list[str]) -> None:
    text = GOOD.format(sha="a" * 64).replace(*change, 1)
    path = tmp_path / "m.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_models_toml(path)
    message = err.value.message + " " + (err.value.hint or "")
    for needle in needles:
        assert needle in message, (needle, message)


def test_duplicate_ids_are_refused(tmp_path: Path) -> None:
    block = GOOD.format(sha="a" * 64).split("\n", 2)[2]
    path = tmp_path / "m.toml"
    path.write_text(GOOD.format(sha="a" * 64) + "\n" + block)
    with pytest.raises(ConfigError, match="used twice"):
        load_models_toml(path)


# --- fetching ------------------------------------------------------------------------------


def test_fetch_verifies_and_stores_by_hash(tmp_path: Path) -> None:
    (tmp_path / "srv").mkdir()
    (tmp_path / "srv" / "tiny.gguf").write_bytes(BLOB)
    store = tmp_path / "store"
    with LoopbackServer(tmp_path / "srv") as srv:
        mf = load_manifest(_manifest(tmp_path, srv.url("tiny.gguf")))
        first = fetch_model(mf.get("tiny"), store)
        again = fetch_model(mf.get("tiny"), store)
    assert first.downloaded and not again.downloaded
    assert first.path == blob_path(store, SHA) == store / "sha256" / SHA
    assert first.path.read_bytes() == BLOB
    meta = json.loads((store / "sha256" / f"{SHA}.json").read_text())
    assert meta["id"] == "tiny" and meta["file"] == "tiny.gguf"
    assert [p.name for p in (store / "sha256").iterdir() if p.suffix == ".part"] == []
    good, bad = verify_store(store)
    assert [b.sha256 for b in good] == [SHA] and bad == []


def test_tampered_download_is_refused_and_not_stored(tmp_path: Path) -> None:
    (tmp_path / "srv").mkdir()
    evil = bytearray(BLOB)
    evil[12345] ^= 0xFF
    (tmp_path / "srv" / "tiny.gguf").write_bytes(bytes(evil))  # same size, different bytes
    store = tmp_path / "store"
    with LoopbackServer(tmp_path / "srv") as srv:
        model = load_manifest(_manifest(tmp_path, srv.url("tiny.gguf"))).get("tiny")
        with pytest.raises(VerifyError, match="sha256") as err:
            fetch_model(model, store)
    assert err.value.exit_code == 8
    assert store_has(store, model) is None
    leftovers = [p.name for p in (store / "sha256").iterdir() if not p.name.endswith(".lock")]
    assert leftovers == [], f"nothing of the bad file may stay: {leftovers}"


def test_second_url_is_used_when_the_first_mirror_is_bad(tmp_path: Path) -> None:
    (tmp_path / "srv").mkdir()
    (tmp_path / "srv" / "bad.gguf").write_bytes(b"x" * len(BLOB))
    (tmp_path / "srv" / "good.gguf").write_bytes(BLOB)
    store = tmp_path / "store"
    with LoopbackServer(tmp_path / "srv") as srv:
        model = load_manifest(_manifest(tmp_path, srv.url("bad.gguf"))).get("tiny")
        model = type(model)(**{**model.__dict__, "urls": (srv.url("missing.gguf"), srv.url("bad.gguf"), srv.url("good.gguf"))})
        outcome = fetch_model(model, store)
    assert outcome.url and outcome.url.endswith("good.gguf")
    assert outcome.path.read_bytes() == BLOB


def test_interrupted_download_resumes(tmp_path: Path) -> None:
    (tmp_path / "srv").mkdir()
    (tmp_path / "srv" / "tiny.gguf").write_bytes(BLOB)
    store = tmp_path / "store"
    with LoopbackServer(tmp_path / "srv") as srv:
        model = load_manifest(_manifest(tmp_path, srv.url("tiny.gguf"))).get("tiny")
        srv.faults.truncate_at["/tiny.gguf"] = 1 << 20
        with pytest.raises(Exception):  # noqa: B017 - the connection is cut: NetworkError (or a size VerifyError)
            fetch_model(model, store)
        part = store / "sha256" / f"{SHA}.part"
        assert part.exists() and 0 < part.stat().st_size < len(BLOB)
        srv.faults.truncate_at.clear()
        outcome = fetch_model(model, store)
        ranges = [h.get("Range") for (_, _, h) in srv.requests if h.get("Range")]
    assert outcome.resumed_from == part_size_hint(ranges)
    assert outcome.path.read_bytes() == BLOB


def part_size_hint(ranges: list[str | None]) -> int:
    assert ranges, "the second request must ask for a range"
    return int(str(ranges[-1]).removeprefix("bytes=").rstrip("-"))


# --- the CLI -------------------------------------------------------------------------------


def test_cli_fetch_list_path_and_tamper(tmp_path: Path) -> None:
    (tmp_path / "srv").mkdir()
    (tmp_path / "srv" / "tiny.gguf").write_bytes(BLOB)
    (tmp_path / "srv" / "evil.gguf").write_bytes(BLOB[:-1] + b"!")
    store = tmp_path / "store"
    env = {"LOCARA_WORK_DIR": str(tmp_path / "work")}
    with LoopbackServer(tmp_path / "srv") as srv:
        good = _manifest(tmp_path, srv.url("tiny.gguf"))
        evil = _manifest(tmp_path, srv.url("evil.gguf"), name="evil.json")
        r = run_cli("--json", "models", "fetch", "--manifest", str(good), "--store", str(store), env=env)
        assert r.returncode == 0, r.stderr
        out = json.loads(r.stdout)
        assert out["models"][0]["path"] == str(store / "sha256" / SHA)
        assert out["models"][0]["downloaded"] is True

        r = run_cli("models", "path", "--manifest", str(good), "--store", str(store), env=env)
        assert r.returncode == 0 and r.stdout.strip() == str(store / "sha256" / SHA)

        r = run_cli("--json", "models", "list", "--manifest", str(good), "--store", str(store), env=env)
        listed = json.loads(r.stdout)["models"]
        assert listed == [
            {
                "id": "tiny", "name": "tiny", "file": "tiny.gguf", "size": len(BLOB), "license": "MIT", "default": True,
                "present": True, "path": str(store / "sha256" / SHA),
            }
        ]

        other = tmp_path / "store2"
        r = run_cli("models", "fetch", "--manifest", str(evil), "--store", str(other), env=env)
        assert r.returncode == 8, r.stderr
        assert "sha256 mismatch" in r.stderr and "nothing was stored" in r.stderr
        assert not (other / "sha256" / SHA).exists()

        # ad-hoc URL + $LOCARA_MODEL_STORE
        env3 = {**env, "LOCARA_MODEL_STORE": str(tmp_path / "store3")}
        r = run_cli("models", "fetch", "--url", srv.url("tiny.gguf"), "--sha256", SHA, "--size", str(len(BLOB)), env=env3)
        assert r.returncode == 0, r.stderr
        assert (tmp_path / "store3" / "sha256" / SHA).read_bytes() == BLOB

        r = run_cli("models", "fetch", "--url", srv.url("tiny.gguf"), env=env3)
        assert r.returncode == 2 and "--sha256" in r.stderr

        r = run_cli("models", "path", "--manifest", str(good), "--store", str(tmp_path / "empty"), env=env)
        assert r.returncode == 8 and "models fetch" in r.stderr
