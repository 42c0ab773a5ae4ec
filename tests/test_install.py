"""`locara-build install` against a real HTTP server on 127.0.0.1 (Range / If-Range / ETag, faults).

Every refusal is exit 8 with the prefix byte-for-byte unchanged; network trouble is exit 9 and a
later run resumes; a SIGKILLed install leaves the previous version working.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support.httpserver import LoopbackServer
from support.release_kit import (
    NEW,
    OLD,
    _layout,
    make_keys,
    make_lock,
    plan_for,
    release_for,
    snapshot,
    write_package_record,
    write_tar,
)

from locara_build.release.publish import publish_dir
from locara_build.release.release import make_release

CPU = ["linux-x86_64-cpu", "linux-x86_64-vulkan", "linux-x86_64-cuda", "windows-x86_64-cpu"]


def _install(cli, url: str, prefix: Path, pub: Path, *args: str, timeout: float = 120):
    return cli("install", "--from", url, "--prefix", str(prefix), "--trust", str(pub), "--timeout", "3", *args,
               timeout=timeout)


def _run_current(prefix: Path) -> str:
    return subprocess.run([str(prefix / "current" / "run.sh"), "--version"], capture_output=True, text=True,
                          check=True, timeout=30).stdout


@pytest.fixture
def mirror(tmp_path: Path):
    keys = make_keys(tmp_path / "keys")
    site = tmp_path / "site"
    with LoopbackServer(site) as srv:
        yield keys, site, srv


def test_install_upgrade_rollback_downgrade(mirror, tmp_path: Path, cli) -> None:
    keys, site, srv = mirror
    old = release_for(tmp_path / "old", make_lock(**OLD), keys, recipes=CPU)
    publish_dir(old.out, site)
    prefix = tmp_path / "prefix"
    res = _install(cli, srv.base_url, prefix, keys.pub, "--json")
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    assert info["version"] == old.version and info["backend"] == "cpu"
    # this host has only lavapipe (a CPU Vulkan device) and no NVIDIA driver: the reason says so
    assert "CPU" in info["reason"] and "nvidia" in info["reason"].lower()
    assert os.readlink(prefix / "current") == f"versions/{old.version}"
    assert f"llama-server {old.version} cpu" in _run_current(prefix)
    assert not (prefix / ".downloads").exists()

    new = release_for(tmp_path / "new", make_lock(**NEW), keys, recipes=CPU)
    publish_dir(new.out, site)
    res = _install(cli, srv.base_url, prefix, keys.pub)
    assert res.returncode == 0, res.stderr
    assert f"llama-server {new.version} cpu" in _run_current(prefix)
    assert (prefix / "versions" / old.version / "run.sh").is_file(), "the previous version is kept"
    state = json.loads((prefix / "state.json").read_text())
    assert state["highest_seen"]["version"] == new.version and state["previous"] == old.version

    # again: nothing to do
    res = _install(cli, srv.base_url, prefix, keys.pub, "--json")
    assert res.returncode == 0 and json.loads(res.stdout)["changed"] is False

    res = cli("install", "--prefix", str(prefix), "--rollback")
    assert res.returncode == 0, res.stderr
    assert f"llama-server {old.version}" in _run_current(prefix)
    res = cli("install", "--prefix", str(prefix), "--rollback")
    assert res.returncode == 0 and f"llama-server {new.version}" in _run_current(prefix)

    # a mirror replaying the old (validly signed) release: refused, then allowed on request
    before = snapshot(prefix)
    res = _install(cli, srv.base_url, prefix, keys.pub, "--version", old.version)
    assert res.returncode == 8 and "downgrade" in res.stderr
    assert snapshot(prefix) == before
    res = _install(cli, srv.base_url, prefix, keys.pub, "--version", old.version, "--allow-downgrade")
    assert res.returncode == 0, res.stderr
    assert f"llama-server {old.version}" in _run_current(prefix)
    assert json.loads((prefix / "state.json").read_text())["highest_seen"]["version"] == new.version

    # explicit backends, and fetch-and-verify only
    res = _install(cli, srv.base_url, prefix, keys.pub, "--backend", "vulkan", "--json")
    assert res.returncode == 0 and json.loads(res.stdout)["backend"] == "vulkan", res.stderr
    assert f"llama-server {new.version} vulkan" in _run_current(prefix)
    dest = tmp_path / "dl"
    res = cli("--json", "download", "--from", srv.base_url, "--dest", str(dest), "--trust", str(keys.pub), "--backend", "cuda")
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)
    assert Path(got["path"]).name.endswith("linux-x86_64-cuda.tar.gz") and Path(got["path"]).is_file()
    res = _install(cli, srv.base_url, prefix, keys.pub, "--backend", "metal")
    assert res.returncode == 2 and "no metal artifact" in res.stderr


def _prefix_with(cli, srv: LoopbackServer, site: Path, keys, tmp_path: Path) -> Path:
    good = release_for(tmp_path / "good", make_lock(**OLD), keys, recipes=["linux-x86_64-cpu"])
    publish_dir(good.out, site)
    prefix = tmp_path / "prefix"
    res = _install(cli, srv.base_url, prefix, keys.pub)
    assert res.returncode == 0, res.stderr
    return prefix


def test_tampered_artifact_manifest_wrong_key_expired(mirror, tmp_path: Path, cli) -> None:
    keys, site, srv = mirror
    prefix = _prefix_with(cli, srv, site, keys, tmp_path)
    before = snapshot(prefix)
    new = release_for(tmp_path / "new", make_lock(**NEW), keys, recipes=["linux-x86_64-cpu"])
    publish_dir(new.out, site)
    served = site / new.version

    # tampered artifact: one flipped byte on the mirror
    art = next(served.glob("*.tar.gz"))
    original = art.read_bytes()
    art.write_bytes(original[:-20] + bytes([original[-20] ^ 1]) + original[-19:])
    res = _install(cli, srv.base_url, prefix, keys.pub, "--no-store")  # the archive path (the store's: test_update.py)
    assert res.returncode == 8 and "sha256 mismatch" in res.stderr
    assert snapshot(prefix) == before
    art.write_bytes(original)

    # tampered manifest: the artifact's hash replaced by the attacker's
    manifest = served / "release.json"
    good_manifest = manifest.read_bytes()
    manifest.write_bytes(good_manifest.replace(b'"flavour": "release"', b'"flavour": "release" '))
    res = _install(cli, srv.base_url, prefix, keys.pub)
    assert res.returncode == 8 and "altered after it was signed" in res.stderr
    assert snapshot(prefix) == before
    manifest.write_bytes(good_manifest)

    # swapped signatures (SHA256SUMS.minisig over release.json): the trusted comment gives it away
    sig = served / "release.json.minisig"
    good_sig = sig.read_bytes()
    shutil.copy(served / "SHA256SUMS.minisig", sig)
    res = _install(cli, srv.base_url, prefix, keys.pub)
    assert res.returncode == 8
    assert snapshot(prefix) == before
    sig.write_bytes(good_sig)

    # wrong key: the same release re-signed by someone else's key
    evil_keys = make_keys(tmp_path / "evil")
    evil = release_for(tmp_path / "evil-rel", make_lock(**NEW, revision=3), evil_keys, recipes=["linux-x86_64-cpu"])
    publish_dir(evil.out, site)
    res = _install(cli, srv.base_url, prefix, keys.pub, "--no-builtin-keys")
    assert res.returncode == 8 and "not a trusted key" in res.stderr
    assert snapshot(prefix) == before
    shutil.rmtree(site / evil.version)
    (site / "latest.json").unlink()
    publish_dir(new.out, site)

    # expired: made 100 days ago, valid for 30
    stale = release_for(tmp_path / "stale", make_lock(**NEW, revision=5), keys, recipes=["linux-x86_64-cpu"],
                        now=datetime.now(UTC) - timedelta(days=100), expires_days=30)
    publish_dir(stale.out, site)
    res = _install(cli, srv.base_url, prefix, keys.pub)
    assert res.returncode == 8 and "expired" in res.stderr
    assert snapshot(prefix) == before

    # and the untampered release installs fine
    res = _install(cli, srv.base_url, prefix, keys.pub, "--version", new.version)
    assert res.returncode == 0, res.stderr


def test_truncated_download_resumes_with_range(mirror, tmp_path: Path, cli) -> None:
    keys, site, srv = mirror
    rel = release_for(tmp_path / "r", make_lock(**NEW), keys, recipes=["linux-x86_64-cpu"], payload=3 << 20)
    publish_dir(rel.out, site)
    art = rel.record.artifacts[0]
    path = f"/{rel.version}/{art.file}"
    cut = art.size // 2
    srv.faults.truncate_at[path] = cut
    prefix = tmp_path / "prefix"
    res = _install(cli, srv.base_url, prefix, keys.pub)
    part = prefix / ".downloads" / (art.file + ".part")
    have = part.stat().st_size  # what reached the disk (httpfetch writes in 1 MiB chunks)
    assert 0 < have <= cut
    assert res.returncode == 9 and f"after {have} bytes" in res.stderr and "resumes" in res.stderr
    assert not (prefix / "current").exists()
    del srv.faults.truncate_at[path]
    srv.requests.clear()
    res = _install(cli, srv.base_url, prefix, keys.pub)
    assert res.returncode == 0, res.stderr
    assert f"resumed {art.file} from byte {have}" in res.stderr
    gets = [h for (m, p, h) in srv.requests if m == "GET" and p == path]
    assert len(gets) == 1
    assert gets[0].get("Range") == f"bytes={have}-" and gets[0].get("If-Range", "").startswith('"')
    assert f"llama-server {rel.version} cpu" in _run_current(prefix)


def test_stalled_server_times_out(mirror, tmp_path: Path, cli) -> None:
    keys, site, srv = mirror
    rel = release_for(tmp_path / "r", make_lock(**NEW), keys, recipes=["linux-x86_64-cpu"], payload=1 << 20)
    publish_dir(rel.out, site)
    art = rel.record.artifacts[0]
    srv.faults.stall_after[f"/{rel.version}/{art.file}"] = 4096
    srv.faults.stall_seconds = 60
    start = time.monotonic()
    res = _install(cli, srv.base_url, tmp_path / "prefix", keys.pub, timeout=60)
    took = time.monotonic() - start
    # (requests reports a read timeout in the middle of a body as a connection error)
    assert res.returncode == 9 and ("timed out" in res.stderr or "connection failed" in res.stderr), res.stderr
    assert took < 30, f"a stalled server must not hang the install ({took:.1f}s)"


# --- hostile archives in a validly signed release ----------------------------------------------------


def _hostile(name: str, case: str) -> list[tarfile.TarInfo]:
    T = tarfile

    def ti(n: str, kind: bytes = T.REGTYPE, mode: int = 0o644, link: str = "", size: int = 0) -> T.TarInfo:
        info = T.TarInfo(n)
        info.type, info.mode, info.linkname, info.size = kind, mode, link, size
        return info

    return {
        "dotdot": [ti(f"{name}/../../escaped")],
        "absolute": [ti("/tmp/locara-escaped")],
        "symlink_out": [ti(f"{name}/bin/etc", T.SYMTYPE, link="/etc")],
        "hardlink": [ti(f"{name}/bin/shadow", T.LNKTYPE, link="/etc/shadow")],
        "device": [ti(f"{name}/bin/mem", T.CHRTYPE)],
        "setuid": [ti(f"{name}/bin/root-shell", mode=0o4755)],
        "oversized": [ti(f"{name}/bin/huge", size=5 << 30)],  # a header claiming 5 GiB
    }[case]


def _write_hostile(path: Path, name: str, case: str) -> None:
    if case == "too_many":
        extra = [tarfile.TarInfo(f"{name}/many/{i}") for i in range(20_001)]
    else:
        extra = _hostile(name, case)
    write_tar(path, _layout(name, "hostile", "", 0), extra)


HOSTILE = ["dotdot", "absolute", "symlink_out", "hardlink", "device", "setuid", "oversized", "too_many"]


@pytest.fixture(scope="module")
def hostile_env(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("hostile")
    keys = make_keys(tmp / "keys")
    releases = tmp / "releases"
    versions = {}
    good = release_for(tmp / "good", make_lock(**OLD), keys, recipes=["linux-x86_64-cpu"], releases=releases)
    for i, case in enumerate(HOSTILE, start=1):
        lock = make_lock(**NEW, revision=i)
        work = tmp / case / "work"
        plan = plan_for(work, lock, ["linux-x86_64-cpu"])
        rp = plan.recipes[0]
        dist = work / "dist" / str(plan.version)
        dist.mkdir(parents=True)
        _write_hostile(dist / rp.artifact.file, rp.artifact.name, case)
        write_package_record(plan, rp, dist / rp.artifact.file)  # packaged (by an attacker's tool)
        make_release(plan, dist, releases / str(plan.version), keys.secret)
        versions[case] = str(plan.version)
    with LoopbackServer(releases) as srv:
        yield keys, srv, good.version, versions


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_archive_refused_prefix_unchanged(hostile_env, case: str, tmp_path: Path, cli) -> None:
    keys, srv, good_version, versions = hostile_env
    prefix = tmp_path / "prefix"
    res = _install(cli, srv.base_url, prefix, keys.pub, "--version", good_version)
    assert res.returncode == 0, res.stderr
    before = snapshot(prefix)
    res = _install(cli, srv.base_url, prefix, keys.pub, "--version", versions[case])
    assert res.returncode == 8, res.stderr
    assert "unsafe archive" in res.stderr
    assert snapshot(prefix) == before
    assert not Path("/tmp/locara-escaped").exists() and not (tmp_path / "escaped").exists()
    assert f"llama-server {good_version}" in _run_current(prefix)


# --- killed midway ------------------------------------------------------------------------------------


def _spawn_install(url: str, prefix: Path, pub: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "locara_build", "install", "--from", url, "--prefix", str(prefix), "--trust", str(pub),
         "--timeout", "30"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def _wait_for(pred, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        if proc.poll() is not None:
            raise AssertionError(f"install exited ({proc.returncode}) before it could be killed")
        time.sleep(0.002)
    raise AssertionError("install never reached the point to kill it")


def test_install_killed_during_download_or_extraction_keeps_previous(mirror, tmp_path: Path, cli) -> None:
    keys, site, srv = mirror
    prefix = _prefix_with(cli, srv, site, keys, tmp_path)
    old_version = json.loads((prefix / "state.json").read_text())["highest_seen"]["version"]
    new = release_for(tmp_path / "new", make_lock(**NEW), keys, recipes=["linux-x86_64-cpu"], payload=48 << 20)
    publish_dir(new.out, site)
    art = new.record.artifacts[0]
    path = f"/{new.version}/{art.file}"

    # 1. during the download (the server stalls after 1 MiB)
    srv.faults.stall_after[path] = 1 << 20
    srv.faults.stall_seconds = 60
    proc = _spawn_install(srv.base_url, prefix, keys.pub)
    part = prefix / ".downloads" / (art.file + ".part")
    _wait_for(lambda: part.exists() and part.stat().st_size >= 1 << 20, proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert f"llama-server {old_version}" in _run_current(prefix)
    assert os.readlink(prefix / "current") == f"versions/{old_version}"
    del srv.faults.stall_after[path]

    # 2. during extraction (into a temp dir beside versions/)
    proc = _spawn_install(srv.base_url, prefix, keys.pub)
    _wait_for(lambda: any(p.name.startswith(".extract-") for p in (prefix / "versions").iterdir()), proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert f"llama-server {old_version}" in _run_current(prefix)
    assert os.readlink(prefix / "current") == f"versions/{old_version}"
    assert not (prefix / "versions" / new.version).exists()

    # the next run cleans up and finishes
    res = _install(cli, srv.base_url, prefix, keys.pub)
    assert res.returncode == 0, res.stderr
    assert f"llama-server {new.version}" in _run_current(prefix)
    assert not [p for p in (prefix / "versions").iterdir() if p.name.startswith(".")]


def test_one_install_at_a_time_and_sources(tmp_path: Path, cli) -> None:
    import fcntl

    from locara_build.install.install import _candidate_bases, resolve_source

    prefix = tmp_path / "prefix"
    prefix.mkdir()
    keys = make_keys(tmp_path / "keys")
    with open(prefix / ".lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        res = _install(cli, str(tmp_path), prefix, keys.pub)
    assert res.returncode == 10 and "another install is running" in res.stderr
    assert resolve_source("github:locara/locara-build/") == "github:locara/locara-build"
    assert _candidate_bases("github:o/r", "latest", 1) == (["https://github.com/o/r/releases/latest/download"], None)
    assert _candidate_bases("github:o/r", "2026.10.01-g0c1e570-r1", 1)[0] == [
        "https://github.com/o/r/releases/download/2026.10.01-g0c1e570-r1"]
    res = cli("install", "--prefix", str(prefix), "--from", str(tmp_path / "missing"))
    assert res.returncode == 2 and "no such directory" in res.stderr
    res = cli("install", "--prefix", str(prefix), env={"LOCARA_INSTALL_FROM": ""})
    assert res.returncode == 2 and "--from" in res.stderr


def test_from_a_place_with_no_release_names_what_is_missing_and_the_way_out(mirror, tmp_path: Path, cli) -> None:
    """`--from` at a releases root that `weekly` wrote (version folders, no latest.json): a clear exit 9
    naming both documents it looked for, the newest version the root holds, and `--version`, which works.
    A server that is down keeps its own error: "holds no release" is only said when the files are absent."""
    keys, site, srv = mirror
    root = tmp_path / "releases"
    old = release_for(tmp_path / "old", make_lock(**OLD), keys, recipes=CPU, releases=root)
    new = release_for(tmp_path / "new", make_lock(**NEW), keys, recipes=CPU, releases=root)
    prefix = tmp_path / "prefix"
    res = _install(cli, str(root), prefix, keys.pub)
    assert res.returncode == 9, res.stderr
    text = " ".join(res.stderr.split())
    assert "holds no release" in text and "latest.json" in text and "release.json" in text
    assert f"newest {new.version}: add --version {new.version}" in text and str(old.version) not in text
    assert not prefix.exists() or not (prefix / "current").exists()
    res = _install(cli, str(root), prefix, keys.pub, "--version", str(new.version), "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["version"] == str(new.version)

    site.mkdir(exist_ok=True)
    (site / "unrelated.txt").write_text("no release here\n")  # over HTTP: both documents answer 404
    res = _install(cli, srv.base_url, tmp_path / "p2", keys.pub)
    text = " ".join(res.stderr.split())
    assert res.returncode == 9 and "holds no release" in text and "HTTP 404" in text and "--version VERSION" in text

    import socket

    with socket.socket() as s:  # a port nobody listens on: the connection error, not "no release"
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/"
    res = _install(cli, dead, tmp_path / "p3", keys.pub)
    assert res.returncode == 9 and "holds no release" not in res.stderr, res.stderr
