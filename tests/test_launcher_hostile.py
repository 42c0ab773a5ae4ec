"""Issue 19.2: the launchers quote everything they expand, and the manifest holds what they embed.

Two layers, both attacked here:

1. Load time: a models.toml / manifest.json whose id, file, sha256, size, license, URL or args
   carries a shell metacharacter, a quote, a newline or non-ASCII is refused with exit 2, naming
   file, line and field (``models list`` through the real CLI, and the library).
2. Quoting alone (``render_launchers(check=False)``, as if the pattern check had a hole): the
   rendered run.sh runs under POSIX sh (dash) and the rendered run.cmd under wine's cmd.exe with
   hostile values in every field (`& | < > ^ % ! " ' $ \\` ( ) ;`, spaces, unicode, newlines for sh);
   nothing they contain runs (canary commands would create a file), and the stand-in server
   (prints its argv; the real server is in test_launcher_firstrun.py) receives each value intact.
   cmd.exe cannot quote `"` or line breaks: rendering run.cmd with one is refused.
3. A hostile but valid URL (RFC 3986 allows `& ' ( ) ; $ ! , = %XX`) is downloaded byte-exact by
   run.sh from a real HTTP server on 127.0.0.1, with the canaries inside it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import run_cli
from support.httpserver import LoopbackServer

from locara_build.core.errors import ConfigError
from locara_build.package.launchers import render_launchers
from locara_build.package.models import Model, parse_manifest

CANARY = "PWNED"
# each piece, if a shell executed it, creates a file named PWNED* in the working directory
SH_HOSTILE = f"a&touch {CANARY}1;b|touch {CANARY}2 <x >y ^ % ! \" ' $(touch {CANARY}3) `touch {CANARY}4` (c) ; é 漢 \\ $HOME"
CMD_HOSTILE = f"a&echo x>{CANARY}1.txt&b|echo x>{CANARY}2.txt <x >y ^^ !PATH! ' $ ` (c) ) ; & é"


def _model(value: str, *, url: str = "https://example.invalid/m.gguf") -> Model:
    return Model(
        id="id " + value,
        file="file " + value + ".gguf",
        sha256="ab" * 32,
        size=4,
        urls=(url,),
        license="MIT " + value,
        name="label " + value + "\nrm -rf /",
        args=("--arg", value, "-c", "64"),
    )


# --- 1. load time ----------------------------------------------------------------------------

GOOD = {
    "id": "tiny",
    "file": "tiny.gguf",
    "sha256": "ab" * 32,
    "size": 4,
    "urls": ["https://example.invalid/tiny.gguf"],
    "license": "MIT",
    "args": ["-c", "512"],
}

BAD_VALUES = [
    ("file", "a&calc.gguf"),
    ("file", "a|b.gguf"),
    ("file", "a>b.gguf"),
    ("file", "a%PATH%.gguf"),
    ("file", "a!b.gguf"),
    ("file", 'a"b.gguf'),
    ("file", "a'b.gguf"),
    ("file", "a$(id).gguf"),
    ("file", "a`id`.gguf"),
    ("file", "a(b).gguf"),
    ("file", "a;b.gguf"),
    ("file", "a^b.gguf"),
    ("file", "model.gguf\n"),
    ("file", "modèle.gguf"),
    ("file", "model.gguf."),
    ("file", " model.gguf"),
    ("id", "tiny\n"),
    ("id", "tiny&calc"),
    ("sha256", "ab" * 32 + "\n"),
    ("size", True),
    ("size", 0),
    ("size", 1 << 60),
    ("urls", ['https://example.invalid/a"b.gguf']),
    ("urls", ["https://example.invalid/a b.gguf"]),
    ("urls", ["https://example.invalid/a\nb.gguf"]),
    ("urls", ["https://example.invalid/a`id`.gguf"]),
    ("urls", ["https://example.invalid/a^b|c<d>.gguf"]),
    ("urls", ["https://example.invalid/é.gguf"]),
    ("urls", ["https://example.invalid/a%zzb.gguf"]),
    ("urls", ["https://example.invalid/a\\b.gguf"]),
    ("args", ['a"b']),
    ("args", ["a\nb"]),
    ("args", ["é"]),
    ("args", [""]),
    ("license", "MIT; rm -rf /"),
    ("license", 'MIT"'),
]


@pytest.mark.parametrize(("key", "value"), BAD_VALUES, ids=[f"{k}-{i}" for i, (k, _) in enumerate(BAD_VALUES)])
def test_hostile_manifest_values_are_refused_at_load(key: str, value: object) -> None:
    entry = dict(GOOD, **{key: value})
    with pytest.raises(ConfigError) as info:
        parse_manifest({"schema": 1, "models": [entry]}, path=Path("m.json"))
    assert info.value.exit_code == 2
    assert info.value.details["key"] == key
    assert "m.json" in info.value.message and "model #1" in info.value.message
    if key == "urls" and "is not allowed" in info.value.message:
        assert "example.invalid" not in info.value.message, "URLs are never echoed (they may carry credentials)"


def test_valid_but_unusual_values_load() -> None:
    entry = dict(GOOD, file="Tiny Model-1.5+x.gguf", urls=["https://h.example/a/b&y='2'(3);$4!,=%41.gguf"], args=["--temp", "0.7 0.8", "%x!&"])
    manifest = parse_manifest({"schema": 1, "default": "tiny", "models": [entry]})
    assert manifest.default_model is not None and manifest.default_model.file == "Tiny Model-1.5+x.gguf"


def test_cli_refuses_a_hostile_models_toml_with_file_line_field(tmp_path: Path) -> None:
    toml = tmp_path / "models.toml"
    toml.write_text(
        'schema = 1\ndefault = "tiny"\n\n[[model]]\nid = "tiny"\nfile = "tiny&calc.exe.gguf"\n'
        f'sha256 = "{"ab" * 32}"\nsize = 4\nurls = ["https://example.invalid/x.gguf"]\nlicense = "MIT"\n'
    )
    r = run_cli("models", "list", "--manifest", str(toml))
    assert r.returncode == 2, r.stderr
    assert f"{toml}:6" in r.stderr and "`file`" in r.stderr and "Traceback" not in r.stderr


def test_render_refuses_unchecked_values_by_default() -> None:
    with pytest.raises(ConfigError):
        render_launchers("linux", ("run.sh",), artifact="a", model=_model("x&y"))


@pytest.mark.parametrize("bad", ['a"b', "a\nb", "a\rb", "a\x1ab", "%PATH%", "a%20b"])
def test_cmd_refuses_what_it_cannot_quote(bad: str) -> None:
    with pytest.raises(ConfigError) as info:
        render_launchers("windows", ("run.cmd",), artifact="a", model=_model(bad), check=False)
    assert "cannot be written into run.cmd" in info.value.message


# --- 2. quoting alone, under sh ----------------------------------------------------------------


def _sh_unpacked(root: Path, model: Model) -> Path:
    top = root / "locara server & co"  # the folder name itself is hostile too
    (top / "bin").mkdir(parents=True)
    server = top / "bin" / "llama-server"
    server.write_text('#!/bin/sh\nfor a in "$@"; do printf "<%s>\\n" "$a"; done\n')
    server.chmod(0o755)
    for name, data in render_launchers("linux", ("run.sh",), artifact="a", model=model, check=False).items():
        (top / name).write_bytes(data)
        (top / name).chmod(0o755)
    return top


def _no_canary(*dirs: Path) -> None:
    for d in dirs:
        hits = [p for p in d.rglob(f"{CANARY}*")]
        assert not hits, f"a hostile value was executed: {hits}"


@pytest.mark.parametrize("shell", ["dash", "bash"])
def test_run_sh_quotes_hostile_values(tmp_path: Path, shell: str) -> None:
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} not installed")
    model = _model(SH_HOSTILE)
    top = _sh_unpacked(tmp_path, model)
    store = tmp_path / "store $(touch PWNED5) & ;"
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "LOCARA_MODEL_STORE": str(store), "LOCARA_NO_BROWSER": "1"}
    # no model, no download: the message shows every value literally
    r = subprocess.run([shell, str(top / "run.sh"), "--no-download"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    assert model.id in r.stderr and model.file in r.stderr and model.urls[0] in r.stderr
    # with the model in the store: the server gets every argument intact, one per value
    blob = store / "sha256" / model.sha256
    blob.parent.mkdir(parents=True)
    blob.write_bytes(b"GGUF")
    r = subprocess.run([shell, str(top / "run.sh"), "--port", "9"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    got = r.stdout.split("\n")
    expected = ["-m", str(blob), "--alias", model.id, "--arg", SH_HOSTILE, "-c", "64", "--port", "9"]
    # printf "<%s>\n" per argument: rebuild from the <...> framing (values contain newlines? no: sh's do not here)
    assert "\n".join(got).strip() == "\n".join(f"<{a}>" for a in expected), r.stdout
    _no_canary(tmp_path)


def test_run_sh_newline_in_a_value_stays_one_argument(tmp_path: Path) -> None:
    value = "line1\ntouch PWNED6\n'; touch PWNED7; '"
    model = _model(value)
    top = _sh_unpacked(tmp_path, model)
    (top / "bin" / "llama-server").write_text('#!/bin/sh\nprintf "%s\\0" "$@"\n')
    store = tmp_path / "store"
    (store / "sha256").mkdir(parents=True)
    (store / "sha256" / model.sha256).write_bytes(b"GGUF")
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "LOCARA_MODEL_STORE": str(store)}
    r = subprocess.run(["dash", str(top / "run.sh")], cwd=tmp_path, env=env, capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    argv = r.stdout.split(b"\0")[:-1]
    assert argv[argv.index(b"--arg") + 1] == value.encode()
    assert argv[argv.index(b"--alias") + 1] == model.id.encode()
    _no_canary(tmp_path)


# --- 2. quoting alone, under wine's cmd.exe ----------------------------------------------------


@pytest.fixture(scope="module")
def stub_exe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (shutil.which("wine") and shutil.which("x86_64-w64-mingw32-gcc")):
        pytest.skip("wine and x86_64-w64-mingw32-gcc are needed (Debian: wine64, gcc-mingw-w64)")
    d = tmp_path_factory.mktemp("stub")
    src = d / "stub.c"
    # prints each argument as cmd.exe handed it over (wide, then UTF-8), one per line in <>
    src.write_text(
        "#include <windows.h>\n#include <stdio.h>\n#include <shellapi.h>\n"
        "int main(void) { int n; LPWSTR *v = CommandLineToArgvW(GetCommandLineW(), &n);\n"
        "  for (int i = 1; i < n; i++) { char buf[4096]; WideCharToMultiByte(CP_UTF8, 0, v[i], -1, buf, sizeof buf, 0, 0);"
        " printf(\"<%s>\\n\", buf); } return 0; }\n"
    )
    exe = d / "llama-server.exe"
    subprocess.run(["x86_64-w64-mingw32-gcc", "-O2", "-o", str(exe), str(src), "-lshell32"], check=True)
    return exe


def _wine(top: Path, *args: str, env: dict[str, str] | None = None, prefix: Path) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("LOCARA_")}
    full.update({"WINEPREFIX": str(prefix), "WINEDEBUG": "-all", "LOCARA_NO_BROWSER": "1", "LOCARA_NO_PAUSE": "1"})
    full.update(env or {})
    return subprocess.run(["wine", "cmd", "/c", "run.cmd", *args], cwd=top, env=full, capture_output=True, timeout=300,
                          stdin=subprocess.DEVNULL, text=True, encoding="utf-8", errors="replace")


def test_run_cmd_quotes_hostile_values_under_wine(stub_exe: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    root = tmp_path_factory.mktemp("cmd-hostile")
    model = _model(CMD_HOSTILE)
    top = root / "locara & (server)"
    (top / "bin").mkdir(parents=True)
    shutil.copyfile(stub_exe, top / "bin" / "llama-server.exe")
    (top / "run.cmd").write_bytes(render_launchers("windows", ("run.cmd",), artifact="a", model=model, check=False)["run.cmd"])
    prefix = root / "prefix"

    r = _wine(top, "--no-download", env={"LOCARA_MODEL_STORE": "Z:" + str(root / "empty").replace("/", "\\")}, prefix=prefix)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "no model to run" in r.stderr
    # the ASCII parts come out literally (cmd.exe reads the file in its code page: é is not asserted)
    assert "id " + CMD_HOSTILE.split(" é")[0] in r.stderr, r.stderr
    _no_canary(root)

    store = root / "store"
    (store / "sha256").mkdir(parents=True)
    (store / "sha256" / model.sha256).write_bytes(b"GGUF")
    r = _wine(top, "--port", "9", env={"LOCARA_MODEL_STORE": "Z:" + str(store).replace("/", "\\")}, prefix=prefix)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("<")]
    args = [ln[1:-1] for ln in lines]
    intact = CMD_HOSTILE.split(" é")[0]  # the ASCII part; é arrives in cmd.exe's code page
    assert args[args.index("--alias") + 1].startswith("id " + intact), args
    assert args[args.index("--arg") + 1].startswith(intact), args
    assert args[-2:] == ["--port", "9"] and args[args.index("-c") + 1] == "64"
    _no_canary(root)


# --- 3. a hostile but valid URL, downloaded for real -------------------------------------------


def test_run_sh_downloads_from_a_hostile_but_valid_url(tmp_path: Path) -> None:
    # a URL has no spaces: the canary is a command named PWNED on PATH that leaves a file if run
    canary_bin = tmp_path / "canary-bin"
    canary_bin.mkdir()
    (canary_bin / CANARY).write_text(f"#!/bin/sh\ntouch '{tmp_path}/{CANARY}-ran'\n")
    (canary_bin / CANARY).chmod(0o755)
    name = f"m'$({CANARY});&{CANARY}&`{CANARY}`(1)!,=.gguf"
    srv_root = tmp_path / "http"
    srv_root.mkdir()
    data = os.urandom(4096)
    (srv_root / name.replace("`", "%60")).write_bytes(data)
    with LoopbackServer(srv_root) as srv:
        url = srv.url(name.replace("`", "%60"))
        entry = dict(GOOD, sha256=hashlib.sha256(data).hexdigest(), size=len(data), urls=[url])
        model = parse_manifest({"schema": 1, "default": "tiny", "models": [entry]}).default_model
        assert model is not None
        top = _sh_unpacked(tmp_path, model)
        store = tmp_path / "store"
        env = {"PATH": f"{canary_bin}:{os.environ['PATH']}", "HOME": str(tmp_path), "LOCARA_MODEL_STORE": str(store), "LOCARA_NO_BROWSER": "1"}
        r = subprocess.run(["dash", str(top / "run.sh")], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
    blob = store / "sha256" / model.sha256
    assert blob.read_bytes() == data
    meta = json.loads((store / "sha256" / (model.sha256 + ".json")).read_text())
    assert meta["url"] == url and meta["id"] == "tiny" and meta["size"] == len(data)
    assert not (tmp_path / f"{CANARY}-ran").exists(), "a command inside the URL ran"
