"""Fault suite: downloads cut short, tampered with, or stalled — for `install` and `models fetch`.

Real HTTP on 127.0.0.1 (tests/support/httpserver.py injects the faults). Each time: the documented
exit (9 for the network, 8 for a file that is not what was signed), a `next:` line, no hang past
--timeout, nothing unverified under a final name, and the previous good state intact: the installed
`current` version and its files, the models already in the store. A truncated download then resumes.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import pytest
from support.faults import error_of, hint_of, run_cli, snapshot
from support.httpserver import LoopbackServer
from support.release_kit import NEW, OLD, make_keys, make_lock, release_for

from locara_build.release.publish import publish_dir

# --- install ---------------------------------------------------------------------------------------


def _prefix_state(prefix: Path) -> dict[str, str]:
    return {k: v for k, v in snapshot(prefix).items() if not k.startswith((".downloads", ".lock"))}


@pytest.fixture
def mirror(tmp_path: Path):
    keys = make_keys(tmp_path / "keys")
    site = tmp_path / "site"
    old = release_for(tmp_path / "old", make_lock(**OLD), keys, recipes=["linux-x86_64-cpu"])
    publish_dir(old.out, site)
    with LoopbackServer(site) as srv:
        prefix = tmp_path / "prefix"
        res = _install(srv, prefix, keys.pub)
        assert res.returncode == 0, res.stderr
        assert os.readlink(prefix / "current") == f"versions/{old.version}"
        new = release_for(tmp_path / "new", make_lock(**NEW), keys, recipes=["linux-x86_64-cpu"], payload=2 << 20)
        publish_dir(new.out, site)
        art = new.record.artifacts[0]
        yield srv, site, keys, prefix, old, new, f"/{new.version}/{art.file}"


def _install(srv: LoopbackServer, prefix: Path, pub: Path, timeout: str = "3"):
    return run_cli("install", "--from", srv.base_url, "--prefix", str(prefix), "--trust", str(pub), "--timeout", timeout,
                   timeout=120)


def test_install_truncated_download_exit_9_keeps_current_then_resumes(mirror) -> None:
    srv, site, keys, prefix, old, new, path = mirror
    before = _prefix_state(prefix)
    srv.faults.truncate_at[path] = 700_000
    res = _install(srv, prefix, keys.pub)
    assert res.returncode == 9, res.stderr
    assert "failed after" in error_of(res.stderr) and "resumes" in hint_of(res.stderr)
    assert _prefix_state(prefix) == before and os.readlink(prefix / "current") == f"versions/{old.version}"
    parts = list((prefix / ".downloads").glob("*.part"))
    assert len(parts) == 1 and 0 < parts[0].stat().st_size <= 700_000  # kept for the resume, never under its final name
    assert not [p for p in (prefix / ".downloads").iterdir() if p.name.endswith(".tar.gz")]
    del srv.faults.truncate_at[path]
    res = _install(srv, prefix, keys.pub)
    assert res.returncode == 0, res.stderr
    assert "resumed" in res.stderr
    assert os.readlink(prefix / "current") == f"versions/{new.version}"


def test_install_tampered_artifact_exit_8_keeps_current(mirror) -> None:
    srv, site, keys, prefix, old, new, path = mirror
    before = _prefix_state(prefix)
    target = site / path.lstrip("/")
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one byte changed
    target.write_bytes(bytes(data))
    res = _install(srv, prefix, keys.pub)
    assert res.returncode == 8, res.stderr
    assert "sha256 mismatch" in error_of(res.stderr) and "tampered" in hint_of(res.stderr)
    assert _prefix_state(prefix) == before
    assert not list((prefix / ".downloads").glob("*")) if (prefix / ".downloads").exists() else True


def test_install_stalled_server_times_out_exit_9(mirror) -> None:
    srv, site, keys, prefix, old, new, path = mirror
    before = _prefix_state(prefix)
    srv.faults.stall_after[path] = 64 << 10
    srv.faults.stall_seconds = 60
    start = time.monotonic()
    res = _install(srv, prefix, keys.pub, timeout="2")
    took = time.monotonic() - start
    assert res.returncode == 9, res.stderr
    assert took < 30, f"a stalled server must not hang install ({took:.0f}s)"
    assert "timed out" in error_of(res.stderr) or "connection" in error_of(res.stderr)
    assert "run the same command again" in hint_of(res.stderr).lower() or "resumes" in hint_of(res.stderr)
    assert _prefix_state(prefix) == before


# --- models fetch ----------------------------------------------------------------------------------

BLOB = os.urandom(3 << 20)
SHA = hashlib.sha256(BLOB).hexdigest()
OTHER = os.urandom(100_000)
OTHER_SHA = hashlib.sha256(OTHER).hexdigest()


@pytest.fixture
def models(tmp_path: Path):
    srv_dir = tmp_path / "srv"
    srv_dir.mkdir()
    (srv_dir / "tiny.gguf").write_bytes(BLOB)
    (srv_dir / "other.gguf").write_bytes(OTHER)
    store = tmp_path / "store"
    with LoopbackServer(srv_dir) as srv:
        doc = {"schema": 1, "default": "tiny", "models": [
            {"id": "tiny", "file": "tiny.gguf", "sha256": SHA, "size": len(BLOB), "urls": [srv.url("tiny.gguf")], "license": "MIT"},
            {"id": "other", "file": "other.gguf", "sha256": OTHER_SHA, "size": len(OTHER), "urls": [srv.url("other.gguf")],
             "license": "MIT"},
        ]}
        manifest = tmp_path / "manifest.json"
        manifest.write_text(json.dumps(doc))
        res = _fetch(manifest, store, "other")
        assert res.returncode == 0, res.stderr
        yield srv, srv_dir, manifest, store


def _fetch(manifest: Path, store: Path, model: str = "tiny", timeout: str = "3"):
    return run_cli("models", "fetch", model, "--manifest", str(manifest), "--store", str(store), "--timeout", timeout,
                   env={"LOCARA_WORK_DIR": str(store.parent / "work")}, timeout=120)


def _store_state(store: Path) -> dict[str, str]:
    return {k: v for k, v in snapshot(store).items() if not k.endswith((".lock", ".part", ".validator"))}


def test_models_fetch_truncated_exit_9_then_resumes(models) -> None:
    srv, srv_dir, manifest, store = models
    before = _store_state(store)
    srv.faults.truncate_at["/tiny.gguf"] = 1 << 20
    res = _fetch(manifest, store)
    assert res.returncode == 9, res.stderr
    assert "download failed from every URL" in error_of(res.stderr) and "resumes" in hint_of(res.stderr)
    assert _store_state(store) == before and not (store / "sha256" / SHA).exists()
    srv.faults.truncate_at.clear()
    res = _fetch(manifest, store)
    assert res.returncode == 0, res.stderr
    assert "resumed at" in res.stderr
    assert (store / "sha256" / SHA).read_bytes() == BLOB
    assert (store / "sha256" / OTHER_SHA).read_bytes() == OTHER


def test_models_fetch_tampered_exit_8_nothing_stored(models) -> None:
    srv, srv_dir, manifest, store = models
    before = _store_state(store)
    (srv_dir / "tiny.gguf").write_bytes(BLOB[:-1] + bytes([BLOB[-1] ^ 1]))
    res = _fetch(manifest, store)
    assert res.returncode == 8, res.stderr
    assert "sha256" in error_of(res.stderr) and "nothing was stored" in error_of(res.stderr)
    assert "tampered" in hint_of(res.stderr)
    assert _store_state(store) == before
    assert not [p for p in (store / "sha256").iterdir() if p.name.startswith(SHA) and not p.name.endswith(".lock")]


def test_models_fetch_stalled_server_times_out_exit_9(models) -> None:
    srv, srv_dir, manifest, store = models
    before = _store_state(store)
    srv.faults.stall_after["/tiny.gguf"] = 64 << 10
    srv.faults.stall_seconds = 60
    start = time.monotonic()
    res = _fetch(manifest, store, timeout="2")
    took = time.monotonic() - start
    assert res.returncode == 9, res.stderr
    assert took < 30, f"a stalled server must not hang models fetch ({took:.0f}s)"
    assert "timed out" in error_of(res.stderr) or "connection failed" in error_of(res.stderr)
    assert _store_state(store) == before and not (store / "sha256" / SHA).exists()
