"""Issue 23.1/23.6: the unpacked CI artifact's run.sh, alone, with no Python on PATH, downloads the
default model from a real HTTP server on 127.0.0.1, verifies it and serves it.

The artifact is the real package of the real `linux-x86_64-cpu-ci` build (session `llama_pipeline`
fixture, see test_package_e2e.py), packaged with a manifest whose default model is the tiny random
llama served by :class:`support.httpserver.LoopbackServer`. run.sh runs with a PATH that holds
every tool of /usr/bin and /bin except Python (symlinks), and HOME in a temp dir (the default store
~/.cache/locara-build/models). Proven here:

* first run: downloads (curl; and wget when curl is absent), verifies, stores the blob where
  `locara-build models fetch` would (the CLI finds it), serves a completion; the second run
  downloads nothing;
* an interrupted download (the server cuts the connection) exits 9, keeps the partial file, and the
  next run resumes it with a Range request from where it stopped;
* a tampered file (same size, other bytes) is refused with exit 8: nothing in the store, no
  partial file, no server started;
* `--no-download` and `LOCARA_OFFLINE=1`: exit 2, the old message, no request made;
* a model bigger than the free disk space: exit 2 before any request.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import socket
import subprocess
import tarfile
from pathlib import Path

import pytest
from conftest import run_cli
from support.httpserver import LoopbackServer, free_port
from support.wintools import windows_tools, winpath
from test_package_e2e import _TMP, _ci_build, _tiny

from locara_build.package.models import Model, ModelManifest
from locara_build.package.package import package
from locara_build.smoke.smoke import server

pytestmark = pytest.mark.e2e
MODEL_ID = "tiny-llama"


def no_python_path(root: Path, *, drop: tuple[str, ...] = ()) -> str:
    """A PATH with every tool of /usr/bin and /bin (symlinks) except Python and ``drop``."""
    bindir = root / ("nopy-bin" + "".join(f"-no-{d}" for d in drop))
    if not bindir.exists():
        bindir.mkdir(parents=True)
        for src in (Path("/bin"), Path("/usr/bin")):
            for tool in src.iterdir():
                name = tool.name
                if name.startswith(("python", "pip", "pydoc", "py3")) or name in drop or (bindir / name).exists():
                    continue
                (bindir / name).symlink_to(tool)
    return str(bindir)


def tiny_manifest(url: str, *, size: int | None = None, sha256: str | None = None) -> ModelManifest:
    _, sha, real_size = _tiny()
    model = Model(
        id=MODEL_ID, file="tiny-llama.gguf", sha256=sha256 or sha, size=size or real_size, urls=(url,), license="MIT",
        name="Tiny random llama (tests)", args=("-c", "512"),
    )
    return ModelManifest(models=(model,), default=MODEL_ID)


def package_with(manifest: ModelManifest, tag: str) -> Path:
    """The CI build packaged with ``manifest``, unpacked alone in a fresh folder: its top folder."""
    b = _ci_build()
    dist = _TMP / f"dist-{tag}"
    result = package(b.plan, b.rp, out_dir=dist, models=manifest, debug=False)
    dest = _TMP / f"unpacked-{tag}"
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir()
    with tarfile.open(result.artifact) as tar:
        tar.extractall(dest, filter="data")
    return dest / b.rp.artifact.name


@functools.cache
def _http_root() -> Path:
    model, _, _ = _tiny()
    root = _TMP / "firstrun-http"
    root.mkdir(exist_ok=True)
    shutil.copyfile(model, root / "tiny-llama.gguf")
    tampered = bytearray(model.read_bytes())
    tampered[len(tampered) // 2] ^= 0xFF
    (root / "tampered.gguf").write_bytes(bytes(tampered))
    return root


def user_env(home: Path, path: str, **extra: str) -> dict[str, str]:
    """A user's environment: HOME, a PATH without Python, no LOCARA_*/LD_*, no display."""
    env = {"HOME": str(home), "PATH": path, "LANG": "C.UTF-8", "TERM": "dumb"}
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def http(request: pytest.FixtureRequest):  # noqa: ANN201
    _ci_build(request)
    with LoopbackServer(_http_root()) as srv:
        yield srv


@pytest.fixture(scope="module")
def artifact(http: LoopbackServer) -> Path:
    return package_with(tiny_manifest(http.url("tiny-llama.gguf")), "firstrun")


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize("tool", ["curl", "wget"])
def test_first_run_downloads_verifies_and_serves(artifact: Path, http: LoopbackServer, tmp_path: Path, tool: str) -> None:
    home = tmp_path / "home"
    home.mkdir()
    path = no_python_path(_TMP, drop=("curl",) if tool == "wget" else ())
    env = user_env(home, path)
    probe = subprocess.run(["sh", "-c", "command -v python3 python; command -v curl wget"], env=env, capture_output=True, text=True)
    assert "python" not in probe.stdout, probe.stdout
    assert (tool == "curl") == ("curl" in probe.stdout), probe.stdout
    _, sha, size = _tiny()
    port = free_port()
    log = tmp_path / "run.log"
    with server([str(artifact / "run.sh"), "--no-browser", "--port", str(port)], port=port, log_path=log, timeout=180, env=env,
                cwd=tmp_path, label=f"run.sh first run ({tool})") as srv:
        r = srv.session.post(f"{srv.url}/completion", json={"prompt": "Once upon a time", "n_predict": 8}, timeout=60)
        assert r.status_code == 200 and r.json()["content"], r.text
        props = srv.session.get(f"{srv.url}/props", timeout=10).json()
        assert props.get("model_alias") == MODEL_ID or MODEL_ID in json.dumps(props), props
        text = srv.log_text()
    assert f"downloading tiny-llama.gguf ({size} bytes) from {http.url('tiny-llama.gguf')}" in text, text
    assert "verifying sha256" in text and "stored verified" in text, text
    store = home / ".cache" / "locara-build" / "models"
    blob = store / "sha256" / sha
    assert hashlib.sha256(blob.read_bytes()).hexdigest() == sha
    assert sorted(p.name for p in (store / "sha256").iterdir() if not p.name.endswith(".lock")) == [sha, f"{sha}.json"]
    meta = json.loads((store / "sha256" / f"{sha}.json").read_text())
    assert meta == {"file": "tiny-llama.gguf", "id": MODEL_ID, "license": "MIT", "sha256": sha, "size": size,
                    "url": http.url("tiny-llama.gguf")}
    # the same store layout as `locara-build models fetch`: the CLI finds the blob
    r = run_cli("models", "path", MODEL_ID, "--manifest", str(artifact / "models" / "manifest.json"), "--store", str(store))
    assert r.returncode == 0 and r.stdout.strip() == str(blob), r.stderr

    # second run: nothing downloaded
    before = len(http.requests)
    port = free_port()
    with server([str(artifact / "run.sh"), "--no-browser", "--port", str(port)], port=port, log_path=tmp_path / "run2.log",
                timeout=120, env=env, cwd=tmp_path, label="run.sh second run") as srv:
        assert srv.session.get(f"{srv.url}/health", timeout=10).status_code == 200
        assert "downloading" not in srv.log_text()
    assert len(http.requests) == before


def test_interrupted_download_resumes(artifact: Path, http: LoopbackServer, tmp_path: Path) -> None:
    _, sha, size = _tiny()
    home = tmp_path / "home"
    env = user_env(home, no_python_path(_TMP))
    cut = size // 3
    http.faults.truncate_at["/tiny-llama.gguf"] = cut
    try:
        r = subprocess.run([str(artifact / "run.sh"), "--no-browser", "--port", str(free_port())], env=env, cwd=tmp_path,
                           capture_output=True, text=True, timeout=300)
    finally:
        http.faults.truncate_at.clear()
    assert r.returncode == 9, r.stderr
    part = home / ".cache" / "locara-build" / "models" / "sha256" / f"{sha}.part"
    assert part.stat().st_size == cut, "what arrived is kept"
    assert not (part.parent / sha).exists()
    first_request = len(http.requests)
    port = free_port()
    with server([str(artifact / "run.sh"), "--no-browser", "--port", str(port)], port=port, log_path=tmp_path / "resume.log",
                timeout=180, env=env, cwd=tmp_path, label="run.sh resume") as srv:
        r2 = srv.session.post(f"{srv.url}/completion", json={"prompt": "Hello", "n_predict": 4}, timeout=60)
        assert r2.status_code == 200
        log = srv.log_text()
    assert f"resuming tiny-llama.gguf at {cut} of {size} bytes" in log, log
    ranges = [h.get("Range") for (_, p, h) in http.requests[first_request:] if p == "/tiny-llama.gguf"]
    assert ranges and ranges[0] == f"bytes={cut}-", ranges
    assert hashlib.sha256((part.parent / sha).read_bytes()).hexdigest() == sha
    assert not part.exists()


def test_tampered_model_is_refused_and_never_used(http: LoopbackServer, tmp_path: Path) -> None:
    _, sha, size = _tiny()
    top = package_with(tiny_manifest(http.url("tampered.gguf")), "tampered")
    home = tmp_path / "home"
    env = user_env(home, no_python_path(_TMP))
    port = free_port()
    r = subprocess.run([str(top / "run.sh"), "--no-browser", "--port", str(port)], env=env, cwd=tmp_path,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 8, r.stderr
    assert "REFUSED" in r.stderr and sha in r.stderr and "never used" in r.stderr
    blobs = home / ".cache" / "locara-build" / "models" / "sha256"
    assert sorted(p.name for p in blobs.iterdir() if not p.name.endswith(".lock")) == [], "nothing kept"
    assert not _listening(port), "no server was started"


@pytest.mark.parametrize("how", ["--no-download", "LOCARA_OFFLINE=1"])
def test_offline_keeps_the_old_behaviour(artifact: Path, http: LoopbackServer, tmp_path: Path, how: str) -> None:
    extra = {"LOCARA_OFFLINE": "1"} if how.startswith("LOCARA") else {}
    args = [how] if how.startswith("--") else []
    env = user_env(tmp_path / "home", no_python_path(_TMP), **extra)
    before = len(http.requests)
    r = subprocess.run([str(artifact / "run.sh"), *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    assert "no model to run" in r.stderr and f"locara-build models fetch {MODEL_ID}" in r.stderr
    assert len(http.requests) == before, "no request was made"


def test_not_enough_disk_space_is_said_before_downloading(http: LoopbackServer, tmp_path: Path) -> None:
    huge = 1 << 49  # 512 TiB
    top = package_with(tiny_manifest(http.url("tiny-llama.gguf"), size=huge), "huge")
    env = user_env(tmp_path / "home", no_python_path(_TMP))
    before = len(http.requests)
    r = subprocess.run([str(top / "run.sh"), "--no-browser"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    assert "not enough disk space" in r.stderr and "LOCARA_MODEL_STORE" in r.stderr
    assert len(http.requests) == before
    assert os.listdir(tmp_path / "home" / ".cache" / "locara-build" / "models" / "sha256") in ([], [f"{_tiny()[1]}.lock"])


# --- run.cmd under wine: the same first run ------------------------------------------------------
#
# The Windows tools (curl.exe, the stand-in sha256sum.exe) come from support.wintools. The server is
# a PE stand-in that prints its argv (the real server, packaged: test_windows_artifact_wine.py).


@pytest.mark.slow  # builds curl.exe once (minutes), then ~1 minute of wine
def test_run_cmd_first_run_under_wine_with_a_standin_sha256sum(tmp_path: Path) -> None:
    from support.llama import test_cache

    from locara_build.package.launchers import render_launchers

    tools = windows_tools(test_cache())
    prefix = tmp_path / "prefix"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("LOCARA_", "WINE"))}
    base.update({"WINEPREFIX": str(prefix), "WINEDEBUG": "-all", "WINEPATH": winpath(tools), "LOCARA_NO_PAUSE": "1"})

    def wine(*argv: str, cwd: Path, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["wine", *argv], cwd=cwd, env=dict(base, **extra), capture_output=True, text=True, timeout=300,
                              stdin=subprocess.DEVNULL, encoding="utf-8", errors="replace")

    # the stand-in hashes as Linux's sha256sum does
    data = os.urandom(300_000)
    (tmp_path / "data.bin").write_bytes(data)
    r = wine("sha256sum.exe", "-b", "data.bin", cwd=tmp_path)
    assert r.stdout.split()[0] == hashlib.sha256(data).hexdigest(), r.stdout + r.stderr

    srv_root = tmp_path / "http"
    srv_root.mkdir()
    (srv_root / "m(1)&x.gguf").write_bytes(data)
    bad = bytearray(data)
    bad[1000] ^= 1
    (srv_root / "bad.gguf").write_bytes(bytes(bad))
    stub = tmp_path / "stub.c"
    stub.write_text('#include <stdio.h>\nint main(int c, char **v) { for (int i = 1; i < c; i++) printf("<%s>", v[i]); printf("\\n"); return 0; }\n')
    with LoopbackServer(srv_root) as srv:

        def unpacked(name: str, url: str) -> Path:
            top = tmp_path / name
            (top / "bin").mkdir(parents=True)
            subprocess.run(["x86_64-w64-mingw32-gcc", "-O2", "-o", str(top / "bin" / "llama-server.exe"), str(stub)], check=True)
            model = Model(id="tiny", file="tiny.gguf", sha256=hashlib.sha256(data).hexdigest(), size=len(data), urls=(url,),
                          license="MIT", args=("-c", "512"))
            (top / "run.cmd").write_bytes(render_launchers("windows", ("run.cmd",), artifact=name, model=model)["run.cmd"])
            return top

        store = tmp_path / "store"
        # interrupted: exit 9, the partial file kept
        good = unpacked("good & co", srv.url("m(1)&x.gguf"))
        srv.faults.truncate_at["/m(1)&x.gguf"] = 100_000
        r = wine("cmd", "/c", "run.cmd", "--no-browser", cwd=good, LOCARA_MODEL_STORE=winpath(store))
        srv.faults.truncate_at.clear()
        assert r.returncode == 9, r.stdout + r.stderr
        sha = hashlib.sha256(data).hexdigest()
        assert (store / "sha256" / f"{sha}.part").stat().st_size == 100_000
        # resumed, verified, stored, run
        n = len(srv.requests)
        r = wine("cmd", "/c", "run.cmd", "--no-browser", "--port", "9", cwd=good, LOCARA_MODEL_STORE=winpath(store))
        assert r.returncode == 0, r.stdout + r.stderr
        assert "resuming" in r.stderr and "stored the verified" in r.stderr, r.stderr
        assert [h.get("Range") for (_, p, h) in srv.requests[n:]] == ["bytes=100000-"], r.stderr
        assert (store / "sha256" / sha).read_bytes() == data
        assert json.loads((store / "sha256" / f"{sha}.json").read_text())["url"] == srv.url("m(1)&x.gguf")
        line = r.stdout.strip().splitlines()[-1]
        assert line.startswith("<-m><Z:") and line.endswith(f"{sha}><--alias><tiny><-c><512><--port><9>"), line
        # tampered: exit 8, nothing kept, the server never ran
        store2 = tmp_path / "store2"
        tampered = unpacked("tampered", srv.url("bad.gguf"))
        r = wine("cmd", "/c", "run.cmd", "--no-browser", cwd=tampered, LOCARA_MODEL_STORE=winpath(store2))
        assert r.returncode == 8, r.stdout + r.stderr
        assert "REFUSED" in r.stderr and "<-m>" not in r.stdout
        assert [p.name for p in (store2 / "sha256").iterdir()] == []


# --- the browser, once the server is healthy -------------------------------------------------------


@pytest.mark.parametrize("case", ["display", "no-browser", "no-display"])
def test_browser_opens_once_healthy_with_a_standin_xdg_open(artifact: Path, tmp_path: Path, case: str) -> None:
    """xdg-open is a stand-in that records the URL and whether /health answered at that moment."""
    model, sha, _ = _tiny()
    home = tmp_path / "home"
    blobs = home / ".cache" / "locara-build" / "models" / "sha256"
    blobs.mkdir(parents=True)
    shutil.copyfile(model, blobs / sha)
    bindir = tmp_path / "opener"
    bindir.mkdir()
    record = tmp_path / "opened.txt"
    (bindir / "xdg-open").write_text(
        f'#!/bin/sh\nif curl -fsS -o /dev/null "${{1}}health"; then h=healthy; else h=down; fi\nprintf "%s %s\\n" "$1" "$h" >> "{record}"\n'
    )
    (bindir / "xdg-open").chmod(0o755)
    extra = {"DISPLAY": ":99"} if case != "no-display" else {}
    env = user_env(home, f"{bindir}:{no_python_path(_TMP)}", **extra)
    port = free_port()
    args = ["--no-browser"] if case == "no-browser" else []
    with server([str(artifact / "run.sh"), *args, "--port", str(port)], port=port, log_path=tmp_path / "b.log", timeout=120,
                env=env, cwd=tmp_path, label="run.sh (browser)") as srv:
        for _ in range(50):
            if record.exists() or case != "display":
                break
            subprocess.run(["sleep", "0.2"])
        subprocess.run(["sleep", "1"])
        log = srv.log_text()
    if case == "display":
        assert record.read_text() == f"http://127.0.0.1:{port}/ healthy\n", "opened once, after /health answered"
        assert f"ready: http://127.0.0.1:{port}/" in log
    else:
        assert not record.exists(), "no browser without a display or with --no-browser"
        assert f"the UI will be at http://127.0.0.1:{port}/" in log
