"""Delta-aware install from the release store (locara_build/install/update.py): two real releases made by
`release` into one releases root (blobs + deltas), published to a mirror folder, served by a real
HTTP server on 127.0.0.1, installed through the CLI; tampering, fallbacks and SIGKILL."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.httpserver import LoopbackServer
from support.release_kit import make_keys, snapshot
from support.store_kit import make_week

from locara_build.build import hostdetect
from locara_build.core.extract import safe_extract
from locara_build.install.update import select_files
from locara_build.pipeline.records import ReleaseArtifact
from locara_build.release.publish import publish_dir
from locara_build.release.store import Index


@pytest.fixture
def two_weeks(tmp_path: Path):
    keys = make_keys(tmp_path / "keys")
    releases = tmp_path / "releases"
    w1 = make_week(tmp_path, releases, keys, 1)
    w2 = make_week(tmp_path, releases, keys, 2)
    site = tmp_path / "site"
    publish_dir(w1.out, site)
    publish_dir(w2.out, site)
    with LoopbackServer(site) as srv:
        yield keys, w1, w2, site, srv


def _install(cli, srv: LoopbackServer, prefix: Path, pub: Path, *args: str):
    return cli("--json", "install", "--from", srv.base_url, "--prefix", str(prefix), "--trust", str(pub),
               "--timeout", "5", *args, timeout=120)


def _gets(srv: LoopbackServer) -> list[str]:
    return [p for (m, p, _h) in srv.requests if m == "GET"]


def _expected_tree(release_out: Path, art: ReleaseArtifact, tmp: Path, skipped: set[str]) -> dict[str, str]:
    top = safe_extract(release_out / art.file, tmp, top=art.name)
    snap = snapshot(top)
    return {k: v for k, v in snap.items() if k not in skipped}


def _index(rel) -> Index:
    art = rel.record.artifacts[0]
    return Index.parse((rel.out / art.index.file).read_bytes(), source="index")


def test_update_fetches_only_changed_files_as_deltas(two_weeks, tmp_path: Path, cli) -> None:
    keys, w1, w2, site, srv = two_weeks
    art1, art2 = w1.record.artifacts[0], w2.record.artifacts[0]
    idx2 = _index(w2)
    changed = {"bin/llama-server", "bin/llama-server.bin", "bin/libggml-base.so", "BUILDINFO.json"}
    assert {f.path for f in idx2.files if f.deltas} >= {"bin/llama-server.bin", "bin/libggml-base.so"}
    flags = hostdetect.detect(gpus=False).cpu_flags
    _, skipped = select_files(idx2, flags, every=False)
    skipped_paths = {f.path for f in skipped}

    prefix = tmp_path / "prefix"
    res = _install(cli, srv, prefix, keys.pub, "--version", w1.version)
    assert res.returncode == 0, res.stderr
    first_gets = _gets(srv)
    srv.requests.clear()

    res = _install(cli, srv, prefix, keys.pub)
    assert res.returncode == 0, res.stderr
    assert os.readlink(prefix / "current") == f"versions/{w2.version}"
    gets = _gets(srv)
    assert f"/{w2.version}/{art2.file}" not in gets, "the update must not download the archive"
    fetched = [p for p in gets if p.startswith(("/blobs/", "/deltas/"))]
    by_path = {f.path: f for f in idx2.files}
    # only the changed files travel, the big ones as deltas
    delta_targets = {p.split("/")[-1].split(".")[0] for p in fetched if p.startswith("/deltas/")}
    assert delta_targets >= {by_path["bin/llama-server.bin"].sha256, by_path["bin/libggml-base.so"].sha256}
    assert delta_targets <= {by_path[c].sha256 for c in changed}
    sent = sum((site / p.lstrip("/")).stat().st_size for p in fetched)
    assert sent < 0.02 * art2.size, f"update fetched {sent} bytes of a {art2.size}-byte archive"
    unchanged = [f for f in idx2.files if f.path not in changed and f.path not in skipped_paths]
    assert not any(f"/blobs/sha256/{f.sha256}" in gets for f in unchanged)
    # the result is byte-identical to the archive (less the CPU variants this CPU cannot run)
    got = snapshot(prefix / "current")
    got = {k: v for k, v in got.items() if not k.startswith(".locara-")}
    assert got == _expected_tree(w2.out, art2, tmp_path / "x2", skipped_paths)
    # reused files are hard links to the previous version's
    old = prefix / "versions" / w1.version / "ui" / "index.html"
    assert old.stat().st_ino == (prefix / "current" / "ui" / "index.html").stat().st_ino
    assert "reuse" in res.stderr and "verified against the signed index" in res.stderr
    # a first install of week 1 took the whole archive or the blobs, never both
    assert (f"/{w1.version}/{art1.file}" in first_gets) != any(p.startswith("/blobs/") for p in first_gets)


def test_store_on_mirror_is_deduplicated(two_weeks) -> None:
    keys, w1, w2, site, srv = two_weeks
    idx1, idx2 = _index(w1), _index(w2)
    blobs = sorted(p.name for p in (site / "blobs" / "sha256").iterdir())
    distinct = {f.sha256 for f in idx1.files} | {f.sha256 for f in idx2.files}
    assert sorted(distinct) == blobs, "every distinct file stored exactly once across both releases"
    for f in idx2.files:  # each blob decompresses to its file
        import zstandard

        data = zstandard.ZstdDecompressor().decompress((site / f.blob).read_bytes())
        assert hashlib.sha256(data).hexdigest() == f.sha256 == f.blob.rsplit("/", 1)[1]
    # publishing again copies nothing
    res = publish_dir(w2.out, site)
    assert res.store["uploaded"] == [] and len(res.store["skipped"]) > 0


@pytest.mark.parametrize("method", ["bsdiff4", "bsdiff4-xz"])
def test_bsdiff_deltas_apply(tmp_path: Path, cli, monkeypatch: pytest.MonkeyPatch, method: str) -> None:
    """Deltas forced to a bsdiff encoding at release time are applied by the installer like zstd ones."""
    monkeypatch.setenv("LOCARA_DELTA_METHOD", method)
    keys = make_keys(tmp_path / "keys")
    releases = tmp_path / "releases"
    w1, w2 = (make_week(tmp_path, releases, keys, n) for n in (1, 2))
    assert {d.method for f in _index(w2).files for d in f.deltas} == {method}
    site = tmp_path / "site"
    publish_dir(w1.out, site)
    publish_dir(w2.out, site)
    with LoopbackServer(site) as srv:
        prefix = tmp_path / "prefix"
        assert _install(cli, srv, prefix, keys.pub, "--version", w1.version).returncode == 0
        srv.requests.clear()
        res = _install(cli, srv, prefix, keys.pub)
        assert res.returncode == 0, res.stderr
        assert any(p.endswith(f".{method}") for p in _gets(srv))
    lib = next(f for f in _index(w2).files if f.path == "bin/llama-server.bin")
    assert hashlib.sha256((prefix / "current" / lib.path).read_bytes()).hexdigest() == lib.sha256


@pytest.mark.parametrize("what", ["blob", "delta", "index"])
def test_tampered_store_object_refused_nothing_switched(two_weeks, tmp_path: Path, cli, what: str) -> None:
    keys, w1, w2, site, srv = two_weeks
    prefix = tmp_path / "prefix"
    assert _install(cli, srv, prefix, keys.pub, "--version", w1.version).returncode == 0
    idx2 = _index(w2)
    art2 = w2.record.artifacts[0]
    if what == "index":
        victim = site / w2.version / art2.index.file
    elif what == "delta":
        victim = site / next(f for f in idx2.files if f.path == "bin/llama-server.bin").deltas[0].path
    else:
        victim = site / next(f for f in idx2.files if f.path == "BUILDINFO.json").blob
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one byte flipped
    victim.write_bytes(bytes(data))
    before = snapshot(prefix)
    res = _install(cli, srv, prefix, keys.pub)
    assert res.returncode == 8, res.stderr
    assert "sha256" in res.stderr
    assert os.readlink(prefix / "current") == f"versions/{w1.version}"
    after = snapshot(prefix)
    assert {k: v for k, v in after.items() if not k.startswith(".downloads")} == {
        k: v for k, v in before.items() if not k.startswith(".downloads")}


def test_missing_delta_base_falls_back_to_blob(two_weeks, tmp_path: Path, cli) -> None:
    keys, w1, w2, site, srv = two_weeks
    prefix = tmp_path / "prefix"
    assert _install(cli, srv, prefix, keys.pub, "--version", w1.version).returncode == 0
    # the user's copy of the delta base changed (or was lost): its hash no longer matches
    lib = prefix / "versions" / w1.version / "bin" / "libggml-base.so"
    lib.chmod(0o644)
    lib.write_bytes(b"edited by hand")
    srv.requests.clear()
    res = _install(cli, srv, prefix, keys.pub)
    assert res.returncode == 0, res.stderr
    target = next(f for f in _index(w2).files if f.path == "bin/libggml-base.so")
    gets = _gets(srv)
    assert f"/{target.blob}" in gets and f"/{target.deltas[0].path}" not in gets
    assert hashlib.sha256((prefix / "current" / "bin" / "libggml-base.so").read_bytes()).hexdigest() == target.sha256


def test_mirror_without_store_falls_back_to_archive(two_weeks, tmp_path: Path, cli) -> None:
    keys, w1, w2, site, srv = two_weeks
    prefix = tmp_path / "prefix"
    assert _install(cli, srv, prefix, keys.pub, "--version", w1.version).returncode == 0
    art2 = w2.record.artifacts[0]
    (site / w2.version / art2.index.file).unlink()  # an older mirror: no index, no store
    srv.requests.clear()
    res = _install(cli, srv, prefix, keys.pub)
    assert res.returncode == 0, res.stderr
    assert f"/{w2.version}/{art2.file}" in _gets(srv)
    assert "installing from the archive" in res.stderr
    assert os.readlink(prefix / "current") == f"versions/{w2.version}"


def test_store_object_missing_falls_back_to_archive_and_no_store_flag(two_weeks, tmp_path: Path, cli) -> None:
    keys, w1, w2, site, srv = two_weeks
    prefix = tmp_path / "prefix"
    assert _install(cli, srv, prefix, keys.pub, "--version", w1.version).returncode == 0
    art2 = w2.record.artifacts[0]
    srv.faults.status[f"/{next(f for f in _index(w2).files if f.path == 'BUILDINFO.json').blob}"] = 404
    srv.requests.clear()
    res = _install(cli, srv, prefix, keys.pub)
    assert res.returncode == 0, res.stderr
    assert "store on this mirror is incomplete" in res.stderr and f"/{w2.version}/{art2.file}" in _gets(srv)
    # --no-store: the archive, whatever the mirror has
    prefix2 = tmp_path / "prefix2"
    srv.requests.clear()
    res = _install(cli, srv, prefix2, keys.pub, "--no-store", "--backend", "all")
    assert res.returncode == 0, res.stderr
    assert not any(p.startswith(("/blobs/", "/deltas/")) for p in _gets(srv))


def test_backend_all_gets_every_cpu_variant(two_weeks, tmp_path: Path, cli) -> None:
    keys, w1, w2, site, srv = two_weeks
    prefix = tmp_path / "prefix"
    assert _install(cli, srv, prefix, keys.pub, "--version", w1.version).returncode == 0
    assert _install(cli, srv, prefix, keys.pub, "--backend", "all").returncode == 0
    assert (prefix / "current" / "bin" / "libggml-cpu-sapphirerapids.so").is_file()
    assert (prefix / "current" / "bin" / "libggml-cpu-x64.so").is_file()


def test_select_files_leaves_out_variants_this_cpu_cannot_run(two_weeks) -> None:
    idx = _index(two_weeks[2])
    haswell = frozenset({"sse4_2", "avx", "f16c", "fma", "avx2", "bmi2"})
    wanted, skipped = select_files(idx, haswell, every=False)
    assert [f.path for f in skipped] == ["bin/libggml-cpu-sapphirerapids.so"]
    assert "bin/libggml-cpu-x64.so" in {f.path for f in wanted}
    assert select_files(idx, haswell, every=True)[1] == []
    assert select_files(idx, None, every=False)[1] == []  # flags unknown: everything


def test_sigkill_mid_update_leaves_current_intact(two_weeks, tmp_path: Path, cli) -> None:
    keys, w1, w2, site, srv = two_weeks
    prefix = tmp_path / "prefix"
    assert _install(cli, srv, prefix, keys.pub, "--version", w1.version).returncode == 0
    delta = next(f for f in _index(w2).files if f.path == "bin/llama-server.bin").deltas[0]
    srv.faults.stall_after[f"/{delta.path}"] = 16
    srv.faults.stall_seconds = 60
    proc = subprocess.Popen(
        [sys.executable, "-m", "locara_build", "install", "--from", srv.base_url, "--prefix", str(prefix),
         "--trust", str(keys.pub), "--timeout", "30"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not any(p == f"/{delta.path}" for (_m, p, _h) in srv.requests):
        assert proc.poll() is None and time.monotonic() < deadline, "the update never reached the delta"
        time.sleep(0.01)
    time.sleep(0.2)  # the new tree is half built in versions/.extract-*
    assert any(p.name.startswith(".extract-") for p in (prefix / "versions").iterdir())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert os.readlink(prefix / "current") == f"versions/{w1.version}"
    assert not (prefix / "versions" / w2.version).exists()
    out = subprocess.run([str(prefix / "current" / "run.sh")], capture_output=True, text=True, timeout=30).stdout
    assert "week1" in out
    del srv.faults.stall_after[f"/{delta.path}"]
    res = _install(cli, srv, prefix, keys.pub)
    assert res.returncode == 0, res.stderr
    assert os.readlink(prefix / "current") == f"versions/{w2.version}"
    assert not [p for p in (prefix / "versions").iterdir() if p.name.startswith(".")]


# --- real llama.cpp releases -----------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(2 * 3600)  # two real llama.cpp builds (cold: ~15 min each on 2 cores)
def test_update_between_two_real_weekly_releases(tmp_path: Path, cli) -> None:
    """`weekly` for llama-cpp-python 0.3.35 then 0.3.36 (linux-x86_64-cpu, the release recipe with every
    CPU variant, the artifact issue 21's 40 % goal is about; real builds into one
    releases root), published, then `install` 0.3.35 and update to 0.3.36 over loopback HTTP: only
    what changed travels, and the updated llama-server runs. ``LOCARA_TEST_REAL_RELEASES=DIR`` (a
    releases root holding both, signed by DIR/../keys/test.pub) reuses releases made earlier."""
    from support.llama import sdist_tarball
    from support.pipeline import copy_project, shared_ccache_dir

    given = os.environ.get("LOCARA_TEST_REAL_RELEASES")
    if given:
        releases = Path(given)
        pub = releases.parent / "keys" / "test.pub"
    else:
        keys = make_keys(tmp_path / "keys")
        pub = keys.pub
        project, work = copy_project(tmp_path / "project"), tmp_path / "work"
        releases = work / "releases"
        for v in ("0.3.35", "0.3.36"):
            env = {"CCACHE_DIR": str(shared_ccache_dir()), "LOCARA_PYPI_SDISTS": str(sdist_tarball(v).parent)}
            res = cli("--project", str(project), "--work-dir", str(work), "weekly", "--upstream",
                      f"pypi:llama-cpp-python=={v}", "-r", "linux-x86_64-cpu", "--key", str(keys.key_file),
                      env=env, timeout=7200)
            assert res.returncode == 0, res.stderr[-4000:]
    versions = sorted((p for p in releases.iterdir() if (p / "release.json").is_file()),
                      key=lambda p: json.loads((p / "release.json").read_text())["upstream"]["commit_date"])
    old, new = versions[-2], versions[-1]
    site = tmp_path / "site"
    for v in (old, new):
        publish_dir(v, site)
    doc = json.loads((new / "release.json").read_text())
    art = doc["artifacts"][0]
    with LoopbackServer(site) as srv:
        prefix = tmp_path / "prefix"
        args = ("--flavour", art["flavour"], "--backend", art["backend"])  # the CI recipe, or the release recipe given
        assert _install(cli, srv, prefix, pub, "--version", old.name, *args).returncode == 0
        srv.requests.clear()
        res = _install(cli, srv, prefix, pub, *args)
        assert res.returncode == 0, res.stderr
        fetched = [p for p in _gets(srv) if p.startswith(("/blobs/", "/deltas/"))]
        sent = sum((site / p.lstrip("/")).stat().st_size for p in fetched)
        assert f"/{new.name}/{art['file']}" not in _gets(srv)
        assert sent <= 0.4 * art["size"], f"update fetched {sent} of a {art['size']}-byte archive"
        print(f"update {old.name} -> {new.name}: {sent} of a {art['size']}-byte archive ({sent / art['size']:.1%})")
    out = subprocess.run([str(prefix / "current" / "bin" / "llama-server"), "--version"], capture_output=True, text=True,
                         timeout=60, env={**os.environ, "LD_LIBRARY_PATH": str(prefix / "current" / "bin")})
    assert doc["upstream"]["commit"][:7] in out.stdout + out.stderr or "version" in (out.stdout + out.stderr)
