"""Attacks on the download side of `install` and `models fetch` (issue 19, items 3, 4, 6, 8).

Real signed releases (tests/support/release_kit.py), real loopback HTTP servers, real local mirrors
holding what an attacker can put in a folder: symlinks to /dev/zero and /dev/urandom, FIFOs,
directories, padded files. Each attack gets its documented exit code, an error naming the file or
mirror, no traceback, and leaves the prefix / store as it was with nothing partial behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from support.faults import error_of, run_cli, snapshot
from support.httpserver import LoopbackServer
from support.release_kit import NEW, OLD, make_keys, make_lock, release_for

from locara_build.release.publish import publish_dir

ART_SUFFIX = "-linux-x86_64-cpu.tar.gz"


@pytest.fixture(scope="module")
def releases(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("dl-attacks")
    keys = make_keys(tmp / "keys")
    old = release_for(tmp / "old", make_lock(**OLD), keys, recipes=["linux-x86_64-cpu"])
    new = release_for(tmp / "new", make_lock(**NEW), keys, recipes=["linux-x86_64-cpu"], payload=96 << 10)
    return tmp, keys, old, new


def _install(source: str, prefix: Path, pub: Path, *extra: str, timeout: float = 120, env: dict | None = None):
    return run_cli("install", "--from", source, "--prefix", str(prefix), "--trust", str(pub), "--timeout", "2", *extra,
                   timeout=timeout, env=env)


def _clean(res) -> None:
    assert "Traceback" not in res.stderr, res.stderr


def _prefix_state(prefix: Path) -> dict[str, str]:
    return {k: v for k, v in snapshot(prefix).items() if not k.startswith(".lock")}


@pytest.fixture(scope="module")
def local_base(releases):
    """A local mirror folder (publish layout) with OLD and NEW; a prefix with OLD installed."""
    tmp, keys, old, new = releases
    site = tmp / "local-site"
    publish_dir(old.out, site)
    prefix = tmp / "local-prefix"
    res = _install(str(site), prefix, keys.pub)
    assert res.returncode == 0, res.stderr
    publish_dir(new.out, site)
    return site, prefix


def _local_mirror(local_base, where: Path) -> tuple[Path, Path]:
    """A private copy of the local mirror and of the prefix, for one test to attack."""
    site, prefix = where / "site", where / "prefix"
    shutil.copytree(local_base[0], site, symlinks=True)
    shutil.copytree(local_base[1], prefix, symlinks=True)
    return site, prefix


# --- 3. local mirrors and file:// are untrusted -------------------------------------------------------


def _plant(path: Path, kind: str) -> None:
    path.unlink()
    if kind == "dev-zero":
        path.symlink_to("/dev/zero")
    elif kind == "dev-urandom":
        path.symlink_to("/dev/urandom")
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
        (path / "x").write_text("x")
    elif kind == "dev-null":
        path.symlink_to("/dev/null")
    else:
        raise AssertionError(kind)


LOCAL_CASES = [
    ("artifact", "dev-zero"), ("artifact", "fifo"), ("artifact", "directory"), ("artifact", "dev-urandom"),
    ("release.json", "dev-zero"), ("release.json", "fifo"), ("release.json.minisig", "dev-urandom"),
    ("SHA256SUMS", "directory"), ("SHA256SUMS.minisig", "fifo"), ("provenance", "dev-zero"), ("latest.json", "dev-zero"),
    ("latest.json", "fifo"), ("release.json", "dev-null"),
]


CASES = [(w, k, "dir") for w, k in LOCAL_CASES] + [
    ("artifact", "dev-zero", "file-url"), ("release.json", "fifo", "file-url"), ("latest.json", "dev-urandom", "file-url"),
    ("provenance", "directory", "file-url")]


@pytest.mark.parametrize(("which", "kind", "scheme"), CASES, ids=[f"{w}-{k}-{s}" for w, k, s in CASES])
def test_local_mirror_special_files_refused(releases, local_base, tmp_path: Path, which: str, kind: str, scheme: str) -> None:
    _tmp, keys, old, new = releases
    site, prefix = _local_mirror(local_base, tmp_path)
    art = new.record.artifacts[0]
    name = {"artifact": art.file, "provenance": art.provenance}.get(which, which)
    target = site / name if which == "latest.json" else site / new.version / name
    _plant(target, kind)
    before = _prefix_state(prefix)
    source = str(site) if scheme == "dir" else f"file://{site}"
    start = time.monotonic()
    res = _install(source, prefix, keys.pub, timeout=60)
    took = time.monotonic() - start
    _clean(res)
    if kind == "dev-null":  # an empty regular-looking document: a clean verification failure
        assert res.returncode in (8, 9), res.stderr
    else:
        assert res.returncode == 8, res.stderr
        err = error_of(res.stderr)
        assert "not a regular file" in err and name in err, err
    assert took < 30, f"{which} as {kind}: {took:.1f}s"
    assert _prefix_state(prefix) == before
    assert not (prefix / ".downloads").exists() or not any((prefix / ".downloads").iterdir())


@pytest.mark.parametrize("scheme", ["dir", "file-url"])
def test_local_artifact_padded_or_grown_is_read_no_further_than_signed(releases, local_base, tmp_path: Path,
                                                                       scheme: str) -> None:
    """A local artifact bigger than release.json says: refused before it is copied (padding of 2 GiB
    would otherwise be copied into .downloads first); nothing partial left."""
    _tmp, keys, old, new = releases
    site, prefix = _local_mirror(local_base, tmp_path)
    art = new.record.artifacts[0]
    path = site / new.version / art.file
    with open(path, "r+b") as fh:  # sparse: 2 GiB apparent size, no disk used
        fh.truncate(2 << 30)
    before = _prefix_state(prefix)
    start = time.monotonic()
    res = _install(str(site) if scheme == "dir" else f"file://{site}", prefix, keys.pub, timeout=60)
    _clean(res)
    assert res.returncode == 8, res.stderr
    assert "larger than the size the manifest declares" in error_of(res.stderr)
    assert time.monotonic() - start < 30
    assert _prefix_state(prefix) == before


def test_local_documents_capped(releases, local_base, tmp_path: Path) -> None:
    """A 100 MB latest.json / signature on a local mirror: refused at its document limit, unread."""
    _tmp, keys, old, new = releases
    site, prefix = _local_mirror(local_base, tmp_path)
    before = _prefix_state(prefix)
    for name in ("latest.json", f"{new.version}/release.json.minisig"):
        keep = (site / name).read_bytes()
        with open(site / name, "r+b") as fh:
            fh.truncate(100 << 20)
        res = _install(str(site), prefix, keys.pub)
        _clean(res)
        assert res.returncode == 8 and "larger than the limit for this document" in res.stderr, res.stderr
        assert _prefix_state(prefix) == before
        (site / name).write_bytes(keep)
    assert _install(str(site), prefix, keys.pub).returncode == 0


def test_models_fetch_local_special_files_refused(tmp_path: Path) -> None:
    store = tmp_path / "store"
    data = b"gguf" * 1000
    sha = hashlib.sha256(data).hexdigest()
    for kind in ("dev-zero", "fifo", "directory"):
        src = tmp_path / f"model-{kind}.gguf"
        src.write_bytes(data)
        _plant(src, kind)
        for url in (str(src), f"file://{src}"):
            start = time.monotonic()
            res = run_cli("models", "fetch", "--url", url, "--sha256", sha, "--size", str(len(data)), "--store", str(store),
                          timeout=60)
            _clean(res)
            assert res.returncode == 8 and "not a regular file" in res.stderr, res.stderr
            assert time.monotonic() - start < 30
            assert not [p for p in store.rglob("*") if p.is_file() and not p.name.endswith(".lock")], list(store.rglob("*"))
    # without --size, a regular file that is bigger than its sha256's file: refused, nothing kept
    src = tmp_path / "big.gguf"
    src.write_bytes(data + b"x")
    res = run_cli("models", "fetch", "--url", str(src), "--sha256", sha, "--store", str(store), timeout=60)
    assert res.returncode == 8 and "sha256 mismatch" in res.stderr
    assert not [p for p in store.rglob("*") if p.is_file() and not p.name.endswith(".lock")]


# --- 8. an overall deadline ---------------------------------------------------------------------------


class _Dribble(BaseHTTPRequestHandler):
    """Serves files of ``root``; the one at ``slow`` one byte a second (headers first, or also the headers)."""

    root: Path
    slow: str = ""
    slow_headers: bool = False

    def log_message(self, *a: object) -> None:
        pass

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        target = self.root / path.lstrip("/")
        if not target.is_file():
            self.send_error(404)
            return
        data = target.read_bytes()
        if path != self.slow:
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(data)}\r\nX-Pad: {'a' * 4000}\r\n\r\n".encode()
        try:
            if not self.slow_headers:
                self.wfile.write(head)
                self.wfile.flush()
                head = b""
            for b in head + data:
                self.wfile.write(bytes([b]))
                self.wfile.flush()
                time.sleep(0.9)  # one byte a second: never a read timeout
        except OSError:
            pass
        self.close_connection = True


@contextmanager
def dribble_server(root: Path, slow: str, *, headers: bool = False) -> Iterator[str]:
    handler = type("H", (_Dribble,), {"root": root, "slow": slow, "slow_headers": headers})
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    srv.daemon_threads = True
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.mark.parametrize("headers", [False, True], ids=["body", "headers-too"])
def test_install_one_byte_a_second_server_cut_at_deadline(releases, tmp_path: Path, headers: bool) -> None:
    _tmp, keys, old, new = releases
    site = tmp_path / "site"
    publish_dir(new.out, site)
    art = new.record.artifacts[0]
    prefix = tmp_path / "prefix"
    with dribble_server(site, f"/{new.version}/{art.file}", headers=headers) as url:
        start = time.monotonic()
        res = _install(url, prefix, keys.pub, timeout=120)
        took = time.monotonic() - start
    _clean(res)
    assert res.returncode == 9, res.stderr
    err = error_of(res.stderr)
    assert "deadline" in err and url.split("//")[1] in err and art.file in err, err
    # connect 10 s + read 2 s + ~100 KiB at 32 KiB/s: about 15 s, then the socket is shut
    assert took < 45, f"a 1 byte/s server kept install alive {took:.0f}s"
    assert not (prefix / "current").exists()


def test_install_deadline_scales_with_min_rate_env(releases, tmp_path: Path) -> None:
    """LOCARA_MIN_RATE (documented) moves the deadline: a very high minimum rate cuts a slow mirror sooner."""
    _tmp, keys, old, new = releases
    site = tmp_path / "site"
    publish_dir(new.out, site)
    art = new.record.artifacts[0]
    with dribble_server(site, f"/{new.version}/{art.file}") as url:
        start = time.monotonic()
        res = _install(url, tmp_path / "prefix", keys.pub, "--timeout", "1", env={"LOCARA_MIN_RATE": str(1 << 30)})
        took = time.monotonic() - start
    assert res.returncode == 9 and "deadline" in res.stderr, res.stderr
    assert took < 25, took


def test_models_fetch_one_byte_a_second_cut_at_deadline(tmp_path: Path) -> None:
    root = tmp_path / "srv"
    root.mkdir()
    data = os.urandom(50_000)
    (root / "m.gguf").write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    store = tmp_path / "store"
    with dribble_server(root, "/m.gguf") as url:
        for size in (["--size", str(len(data))], []):  # known size, and size unknown (deadline follows Content-Length)
            start = time.monotonic()
            res = run_cli("models", "fetch", "--url", f"{url}/m.gguf", "--sha256", sha, *size, "--store", str(store),
                          "--timeout", "2", timeout=120)
            took = time.monotonic() - start
            _clean(res)
            assert res.returncode == 9 and "deadline" in res.stderr, res.stderr
            assert took < 40, took
    assert not (store / "sha256" / sha).exists()


# --- 4. resume only against the same source -----------------------------------------------------------


class _Mirror(BaseHTTPRequestHandler):
    """One file with a chosen body and ETag, optionally cut after N bytes; records Range headers."""

    body: bytes = b""
    etag: str = '"same"'
    cut: int | None = None
    seen: list

    def log_message(self, *a: object) -> None:
        pass

    def do_GET(self) -> None:
        self.seen.append(dict(self.headers))
        start = 0
        rng = self.headers.get("Range")
        if rng and self.headers.get("If-Range") == self.etag:
            start = int(rng[6:].split("-")[0])
        body = self.body[start:]
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", self.etag)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(self.body) - 1}/{len(self.body)}")
        self.end_headers()
        if self.cut is not None:
            self.wfile.write(body[: self.cut])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body)


@contextmanager
def mirror(body: bytes, *, etag: str = '"same"', cut: int | None = None) -> Iterator[tuple[str, list]]:
    seen: list = []
    handler = type("M", (_Mirror,), {"body": body, "etag": etag, "cut": cut, "seen": seen})
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}/model.gguf", seen
    finally:
        srv.shutdown()
        srv.server_close()


def _manifest(tmp: Path, data: bytes, urls: list[str]) -> Path:
    path = tmp / "manifest.json"
    path.write_text(json.dumps({"schema": 1, "default": "m", "models": [{
        "id": "m", "file": "model.gguf", "sha256": hashlib.sha256(data).hexdigest(), "size": len(data),
        "urls": urls, "license": "MIT"}]}))
    return path


def test_failed_mirror_never_poisons_the_next(tmp_path: Path) -> None:
    """Mirror A sends 300 KB of forged bytes and drops the connection; mirror B serves the real file
    under the same ETag. Before: B was asked to resume A's bytes (If-Range matched), the result
    failed the sha256 and the error blamed B. Now B starts over and the model is stored."""
    good = os.urandom(1 << 20)
    forged = os.urandom(len(good))
    store = tmp_path / "store"
    with mirror(forged, cut=300_000) as (url_a, seen_a), mirror(good) as (url_b, seen_b):
        res = run_cli("models", "fetch", "--manifest", str(_manifest(tmp_path, good, [url_a, url_b])), "--store", str(store),
                      "--timeout", "3", "--json", timeout=120)
    _clean(res)
    assert res.returncode == 0, res.stderr
    assert seen_b and "Range" not in seen_b[0], f"mirror B was asked to resume mirror A's bytes: {seen_b[0]}"
    blob = store / "sha256" / hashlib.sha256(good).hexdigest()
    assert blob.read_bytes() == good
    assert json.loads(res.stdout)["models"][0]["url"] == url_b


def test_partial_from_one_mirror_not_resumed_from_another_run(tmp_path: Path) -> None:
    """A partial left by mirror A (run 1) and a run that only lists mirror B (run 2): B starts over."""
    good = os.urandom(1 << 20)
    forged = os.urandom(len(good))
    store = tmp_path / "store"
    with mirror(forged, cut=400_000) as (url_a, _):
        res = run_cli("models", "fetch", "--manifest", str(_manifest(tmp_path, good, [url_a])), "--store", str(store),
                      "--timeout", "3", timeout=120)
    assert res.returncode == 9
    assert list((store / "sha256").glob("*.part")), "the partial download is kept for a resume"
    with mirror(good) as (url_b, seen_b):
        res = run_cli("models", "fetch", "--manifest", str(_manifest(tmp_path, good, [url_b])), "--store", str(store),
                      "--timeout", "3", timeout=120)
    assert res.returncode == 0, res.stderr
    assert "Range" not in seen_b[0]


def test_error_names_the_mirror_that_sent_bad_bytes(tmp_path: Path) -> None:
    good = os.urandom(200_000)
    forged = os.urandom(len(good))
    store = tmp_path / "store"
    with mirror(forged) as (url_a, _), mirror(good, cut=1000) as (url_b, _):
        res = run_cli("models", "fetch", "--manifest", str(_manifest(tmp_path, good, [url_a, url_b])), "--store", str(store),
                      "--timeout", "3", timeout=120)
    _clean(res)
    assert res.returncode == 8, res.stderr
    err = error_of(res.stderr)
    line_a = next(line for line in err.splitlines() if url_a in line)
    line_b = next(line for line in err.splitlines() if url_b in line)
    assert "sha256 mismatch" in line_a and "sha256" not in line_b and "failed after" in line_b, err


def test_install_partial_from_another_mirror_starts_over(releases, tmp_path: Path) -> None:
    """`install --from A` cut midway, then `--from B`: B is not asked for a range of A's file."""
    _tmp, keys, old, new = releases
    site = tmp_path / "site"
    publish_dir(new.out, site)
    art = new.record.artifacts[0]
    path = f"/{new.version}/{art.file}"
    prefix = tmp_path / "prefix"
    with LoopbackServer(site) as a:
        a.faults.truncate_at[path] = 80_000  # past the first 64 KiB block, which reaches the disk
        res = _install(a.base_url, prefix, keys.pub)
        assert res.returncode == 9
    assert (prefix / ".downloads" / (art.file + ".part")).stat().st_size > 0
    with LoopbackServer(site) as b:  # same files, same ETags, another origin
        res = _install(b.base_url, prefix, keys.pub)
        assert res.returncode == 0, res.stderr
        gets = [h for (m, p, h) in b.requests if p == path]
        assert gets and "Range" not in gets[0], gets


# --- 6. credentials in URLs --------------------------------------------------------------------------

SECRETS = ("hunter2pass", "tok3n-abcdef", "sig-0123456789")


def test_install_credentials_in_from_never_persist_or_print(releases, tmp_path: Path) -> None:
    _tmp, keys, old, new = releases
    site = tmp_path / "site"
    publish_dir(new.out, site)
    prefix = tmp_path / "prefix"
    with LoopbackServer(site) as srv:
        host = srv.base_url.split("//")[1]
        source = f"http://alice:{SECRETS[0]}@{host}/?token={SECRETS[1]}&X-Amz-Signature={SECRETS[2]}"
        res = _install(source, prefix, keys.pub, "--json")
        assert res.returncode == 0, res.stderr
        assert any(h.get("Authorization", "").startswith("Basic ") for (_m, _p, h) in srv.requests), "credentials were used"
        assert any("token=" in p for (_m, p, _h) in srv.requests), "the query was kept on requests"
        bad = _install(source.replace("/?", "/nope/?"), tmp_path / "p2", keys.pub, "--version", "2026.10.01-g0c1e570-r9")
        assert bad.returncode == 9
    files = [p for p in prefix.rglob("*") if p.is_file()]
    for secret in SECRETS:
        for out in (res.stdout, res.stderr, bad.stdout, bad.stderr):
            assert secret not in out, out
        for f in files:
            assert secret.encode() not in f.read_bytes(), f
    record = json.loads((prefix / "current" / ".locara-install.json").read_text())
    assert record["source"].startswith("http://***@127.0.0.1") and "token=***" in record["source"], record


def test_models_fetch_credentials_in_url_never_persist_or_print(tmp_path: Path) -> None:
    data = os.urandom(10_000)
    sha = hashlib.sha256(data).hexdigest()
    store = tmp_path / "store"
    root = tmp_path / "srv"
    root.mkdir()
    (root / "m.gguf").write_bytes(data)
    with LoopbackServer(root) as srv:
        host = srv.base_url.split("//")[1]
        url = f"http://bob:{SECRETS[0]}@{host}/m.gguf?token={SECRETS[1]}"
        res = run_cli("models", "fetch", "--url", url, "--sha256", sha, "--store", str(store), "--json", timeout=60)
        assert res.returncode == 0, res.stderr
        bad = run_cli("models", "fetch", "--url", url.replace("m.gguf", "gone.gguf"), "--sha256", "0" * 64,
                      "--store", str(store), "--json", timeout=60)
        assert bad.returncode == 9
        forged = run_cli("models", "fetch", "--url", url, "--sha256", "1" * 64, "--store", str(store), timeout=60)
        assert forged.returncode == 8
    for secret in SECRETS[:2]:
        for out in (res.stdout, res.stderr, bad.stdout, bad.stderr, forged.stdout, forged.stderr):
            assert secret not in out, out
        for f in store.rglob("*"):
            if f.is_file():
                assert secret.encode() not in f.read_bytes(), f
    meta = json.loads((store / "sha256" / f"{sha}.json").read_text())
    assert meta["url"] == f"http://***@{host}/m.gguf?token=***"


def test_unsized_endless_download_stops_at_the_disk_reserve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No declared size (models fetch --url without --size) and no Content-Length: a fast server that
    never stops must not fill the disk; the download stops at the reserve, exit 2, partial kept."""
    import http.server
    import shutil
    import threading

    from locara_build.core import httpfetch
    from locara_build.core.errors import DiskFullError

    class Endless(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # no Content-Length: the body ends when the connection does

        def log_message(self, *a: object) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            block = b"\0" * (1 << 20)
            try:
                while True:
                    self.wfile.write(block)
            except OSError:
                pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Endless)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        # the reserve is "more than is free now": the first check (after 16 MiB) must stop it
        monkeypatch.setattr(httpfetch, "UNSIZED_RESERVE", shutil.disk_usage(tmp_path).free + (1 << 30))
        dest = tmp_path / "m.gguf"
        with pytest.raises(DiskFullError) as err:
            httpfetch.fetch(f"http://127.0.0.1:{srv.server_address[1]}/m.gguf", dest, sha256="0" * 64)
        assert "has no declared size" in err.value.message and err.value.exit_code == 2
        assert "--size" in (err.value.hint or "")
        assert not dest.exists()
        part = dest.with_name(dest.name + ".part")
        assert (16 << 20) <= part.stat().st_size <= (32 << 20)  # stopped at the first check, kept for a resume
    finally:
        srv.shutdown()
        srv.server_close()
