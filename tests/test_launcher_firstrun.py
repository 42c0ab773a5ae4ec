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
# Wine has no curl.exe, and its certutil.exe / powershell.exe are stubs that print nothing (run.cmd
# then refuses: "no tool computed a SHA-256"). So wine gets curl.exe built for real from Debian's
# curl source with mingw-w64 (cached in the test cache), and a STAND-IN sha256sum.exe (a few lines
# of C, checked against Linux's sha256sum here) in place of Git for Windows' sha256sum.exe, the
# third hash tool run.cmd tries. The server is a PE stand-in that prints its argv (the real Windows
# server needs the zig cross-build, test_windows_toolchain.py).

SHA256_C = r"""
#include <stdio.h>
#include <stdint.h>
#include <string.h>
static const uint32_t K[64] = {
0x428a2f98,0x71374491,0xb5c0fbcf,0xe9b5dba5,0x3956c25b,0x59f111f1,0x923f82a4,0xab1c5ed5,0xd807aa98,0x12835b01,
0x243185be,0x550c7dc3,0x72be5d74,0x80deb1fe,0x9bdc06a7,0xc19bf174,0xe49b69c1,0xefbe4786,0x0fc19dc6,0x240ca1cc,
0x2de92c6f,0x4a7484aa,0x5cb0a9dc,0x76f988da,0x983e5152,0xa831c66d,0xb00327c8,0xbf597fc7,0xc6e00bf3,0xd5a79147,
0x06ca6351,0x14292967,0x27b70a85,0x2e1b2138,0x4d2c6dfc,0x53380d13,0x650a7354,0x766a0abb,0x81c2c92e,0x92722c85,
0xa2bfe8a1,0xa81a664b,0xc24b8b70,0xc76c51a3,0xd192e819,0xd6990624,0xf40e3585,0x106aa070,0x19a4c116,0x1e376c08,
0x2748774c,0x34b0bcb5,0x391c0cb3,0x4ed8aa4a,0x5b9cca4f,0x682e6ff3,0x748f82ee,0x78a5636f,0x84c87814,0x8cc70208,
0x90befffa,0xa4506ceb,0xbef9a3f7,0xc67178f2};
#define R(x,n) (((x)>>(n))|((x)<<(32-(n))))
static uint32_t h[8]={0x6a09e667,0xbb67ae85,0x3c6ef372,0xa54ff53a,0x510e527f,0x9b05688c,0x1f83d9ab,0x5be0cd19};
static void block(const unsigned char *p){uint32_t w[64],a,b,c,d,e,f,g,k,t1,t2;int i;
for(i=0;i<16;i++)w[i]=(uint32_t)p[4*i]<<24|(uint32_t)p[4*i+1]<<16|(uint32_t)p[4*i+2]<<8|p[4*i+3];
for(;i<64;i++)w[i]=w[i-16]+(R(w[i-15],7)^R(w[i-15],18)^(w[i-15]>>3))+w[i-7]+(R(w[i-2],17)^R(w[i-2],19)^(w[i-2]>>10));
a=h[0];b=h[1];c=h[2];d=h[3];e=h[4];f=h[5];g=h[6];k=h[7];
for(i=0;i<64;i++){t1=k+(R(e,6)^R(e,11)^R(e,25))+((e&f)^(~e&g))+K[i]+w[i];t2=(R(a,2)^R(a,13)^R(a,22))+((a&b)^(a&c)^(b&c));
k=g;g=f;f=e;e=d+t1;d=c;c=b;b=a;a=t1+t2;}
h[0]+=a;h[1]+=b;h[2]+=c;h[3]+=d;h[4]+=e;h[5]+=f;h[6]+=g;h[7]+=k;}
int main(int argc,char**argv){int i=1;if(argc>1&&!strcmp(argv[1],"--version")){puts("sha256sum (stand-in) 1");return 0;}
if(argc>1&&!strcmp(argv[1],"-b"))i=2;if(i>=argc)return 2;FILE*fp=fopen(argv[i],"rb");if(!fp)return 1;
unsigned char buf[64];uint64_t n=0;size_t r;while((r=fread(buf,1,64,fp))==64){block(buf);n+=64;}n+=r;fclose(fp);
unsigned char last[128]={0};memcpy(last,buf,r);last[r]=0x80;int len=(r<56)?64:128;
for(int j=0;j<8;j++)last[len-1-j]=(unsigned char)((n*8)>>(8*j));block(last);if(len==128)block(last+64);
for(int j=0;j<8;j++)printf("%08x",h[j]);printf(" *%s\n",argv[i]);return 0;}
"""


def _windows_tools(cache: Path) -> Path:
    """curl.exe (real, Debian's curl source cross-built with mingw-w64) + the stand-in sha256sum.exe."""
    out = cache / "wintools"
    if (out / "curl.exe").exists() and (out / "sha256sum.exe").exists():
        return out
    for tool in ("x86_64-w64-mingw32-gcc", "apt-get", "make", "wine"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is needed to build curl.exe for wine")
    work = cache / "wintools-build"
    shutil.rmtree(work, ignore_errors=True)
    (work / "apt" / "lists" / "partial").mkdir(parents=True)
    (work / "apt" / "cache" / "archives" / "partial").mkdir(parents=True)
    (work / "apt" / "sources.list").write_text("deb-src http://deb.debian.org/debian bookworm main\n")
    (work / "apt" / "apt.conf").write_text(
        f'Dir::Etc::SourceList "{work}/apt/sources.list";\nDir::Etc::SourceParts "/nonexistent";\n'
        f'Dir::State::Lists "{work}/apt/lists";\nDir::Cache "{work}/apt/cache";\n'
    )
    env = dict(os.environ, APT_CONFIG=str(work / "apt" / "apt.conf"))
    subprocess.run(["apt-get", "update", "-q"], env=env, check=True, capture_output=True, timeout=600)
    src = work / "src"
    src.mkdir()
    subprocess.run(["apt-get", "source", "--download-only", "-q", "curl"], env=env, cwd=src, check=True, capture_output=True, timeout=600)
    orig = next(src.glob("curl_*.orig.tar.*"))
    subprocess.run(["tar", "xf", orig.name], cwd=src, check=True)
    tree = next(p for p in src.iterdir() if p.is_dir())
    configure = [
        "./configure", "--host=x86_64-w64-mingw32", "--with-schannel", "--disable-shared", "--enable-static",
        "--without-libpsl", "--without-zlib", "--without-brotli", "--without-zstd", "--without-nghttp2", "--without-libidn2",
        "--disable-ldap", "--disable-ldaps", "--disable-rtsp", "--disable-dict", "--disable-telnet", "--disable-tftp",
        "--disable-pop3", "--disable-imap", "--disable-smb", "--disable-smtp", "--disable-gopher", "--disable-mqtt",
        "--disable-manual", "--disable-docs", "LDFLAGS=-static",
    ]
    subprocess.run(configure, cwd=tree, check=True, capture_output=True, timeout=900)
    subprocess.run(["make", "-j2", "-C", "lib"], cwd=tree, check=True, capture_output=True, timeout=1800)
    subprocess.run(["make", "-j2", "-C", "src"], cwd=tree, check=True, capture_output=True, timeout=1800)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(tree / "src" / "curl.exe", out / "curl.exe")
    pthread = next(Path("/usr").rglob("x86_64-w64-mingw32/lib/libwinpthread-1.dll"), None)
    if pthread is not None:
        shutil.copyfile(pthread, out / "libwinpthread-1.dll")
    (work / "sha256.c").write_text(SHA256_C)
    subprocess.run(["x86_64-w64-mingw32-gcc", "-O2", "-o", str(out / "sha256sum.exe"), str(work / "sha256.c")], check=True)
    shutil.rmtree(work, ignore_errors=True)
    return out


def _winpath(p: Path) -> str:
    return "Z:" + str(p).replace("/", "\\")


@pytest.mark.slow  # builds curl.exe once (minutes), then ~1 minute of wine
def test_run_cmd_first_run_under_wine_with_a_standin_sha256sum(tmp_path: Path) -> None:
    from support.llama import test_cache

    from locara_build.package.launchers import render_launchers

    tools = _windows_tools(test_cache())
    prefix = tmp_path / "prefix"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("LOCARA_", "WINE"))}
    base.update({"WINEPREFIX": str(prefix), "WINEDEBUG": "-all", "WINEPATH": _winpath(tools), "LOCARA_NO_PAUSE": "1"})

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
        r = wine("cmd", "/c", "run.cmd", "--no-browser", cwd=good, LOCARA_MODEL_STORE=_winpath(store))
        srv.faults.truncate_at.clear()
        assert r.returncode == 9, r.stdout + r.stderr
        sha = hashlib.sha256(data).hexdigest()
        assert (store / "sha256" / f"{sha}.part").stat().st_size == 100_000
        # resumed, verified, stored, run
        n = len(srv.requests)
        r = wine("cmd", "/c", "run.cmd", "--no-browser", "--port", "9", cwd=good, LOCARA_MODEL_STORE=_winpath(store))
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
        r = wine("cmd", "/c", "run.cmd", "--no-browser", cwd=tampered, LOCARA_MODEL_STORE=_winpath(store2))
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
