"""run.sh: model resolution (-m, $LOCARA_MODEL, the store's default model) and the no-model message.

The launcher's logic is tested here with a stand-in bin/llama-server that prints its argv; the
real server behind the same launcher is started in test_package_e2e.py.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from locara_build.package.launchers import args_file, render_launchers
from locara_build.package.models import Model

MODEL = Model(
    id="tiny-model",
    file="Tiny Model.gguf",
    sha256="ab" * 32,
    size=1234,
    urls=("https://example.invalid/it's/(Tiny)&Model.gguf",),
    license="MIT",
    name="Tiny (test)",
    args=("-c", "512", "--temp", "0.7 0.8"),
)


@pytest.fixture
def unpacked(tmp_path: Path) -> Path:
    top = tmp_path / "locara-server-x"
    (top / "bin").mkdir(parents=True)
    server = top / "bin" / "llama-server"
    server.write_text('#!/bin/sh\nfor a in "$@"; do printf "<%s>" "$a"; done\necho\n')
    server.chmod(0o755)
    for name, data in render_launchers("linux", ("run.sh",), artifact=top.name, model=MODEL).items():
        (top / name).write_bytes(data)
        (top / name).chmod(0o755)
    (top / "llama-server.args").write_bytes(args_file())
    return top


def _run(top: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("LOCARA_")}
    full["HOME"] = str(top.parent / "home")
    full.pop("XDG_CACHE_HOME", None)
    full.update(env or {})
    return subprocess.run([str(top / "run.sh"), *args], env=full, capture_output=True, text=True, timeout=30)


def test_args_file_defaults() -> None:
    lines = [ln for ln in args_file().decode().splitlines() if not ln.startswith("#")]
    assert lines == ["--host", "127.0.0.1", "--port", "8080", "--path", "./ui", "..."]


def test_explicit_model_is_passed_through(unpacked: Path) -> None:
    r = _run(unpacked, "-m", "/x/y.gguf", "--port", "9")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "<-m></x/y.gguf><--port><9>"


def test_locara_model_env(unpacked: Path, tmp_path: Path) -> None:
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    r = _run(unpacked, "--port", "9", env={"LOCARA_MODEL": str(model)})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"<-m><{model}><--port><9>"
    r = _run(unpacked, env={"LOCARA_MODEL": str(tmp_path / "nope.gguf")})
    assert r.returncode == 2 and "no such file" in r.stderr


@pytest.mark.parametrize("how", ["LOCARA_MODEL_STORE", "LOCARA_WORK_DIR", "XDG_CACHE_HOME", "HOME"])
def test_default_model_from_the_store(unpacked: Path, tmp_path: Path, how: str) -> None:
    root = tmp_path / "somewhere"
    store = {
        "LOCARA_MODEL_STORE": root,
        "LOCARA_WORK_DIR": root / "models",
        "XDG_CACHE_HOME": root / "locara-build" / "models",
        "HOME": tmp_path / "home" / ".cache" / "locara-build" / "models",
    }[how]
    blob = store / "sha256" / MODEL.sha256
    blob.parent.mkdir(parents=True)
    blob.write_bytes(b"G" * MODEL.size)  # blobs are verified before they appear; the launcher checks the size
    env = {"LOCARA_MODEL_STORE": str(root), "LOCARA_WORK_DIR": str(root), "XDG_CACHE_HOME": str(root)}
    env = {k: v for k, v in env.items() if k == how}
    r = _run(unpacked, "--port", "9", env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"<-m><{blob}><--alias><tiny-model><-c><512><--temp><0.7 0.8><--port><9>"


def test_no_model_says_what_to_run(unpacked: Path, tmp_path: Path) -> None:
    r = _run(unpacked, "--no-download", env={"LOCARA_MODEL_STORE": str(tmp_path / "empty")})
    assert r.returncode == 2
    assert r.stdout == ""
    err = r.stderr
    assert "no model to run" in err
    assert f"locara-build models fetch tiny-model --manifest \"{unpacked}/models/manifest.json\"" in err
    assert MODEL.urls[0] in err and MODEL.sha256 in err
    assert str(tmp_path / "empty") in err


def test_launcher_rejects_a_missing_server(unpacked: Path) -> None:
    (unpacked / "bin" / "llama-server").unlink()
    r = _run(unpacked, "-m", "x")
    assert r.returncode == 2 and "unpack the whole archive" in r.stderr


def test_run_cmd_is_crlf_and_quotes() -> None:
    out = render_launchers("windows", ("run.cmd",), artifact="a", model=MODEL)["run.cmd"].decode()
    assert "\r\n" in out and "\n" not in out.replace("\r\n", "")
    assert 'set "DEFAULT_URL=https://example.invalid/it\'s/(Tiny)&Model.gguf"' in out
    assert '--alias "%DEFAULT_ID%" "-c" "512" "--temp" "0.7 0.8" %*' in out  # every embedded value quoted


@pytest.fixture(scope="module")
def windows_unpacked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """run.cmd next to a real PE stand-in for llama-server.exe, for wine's cmd.exe."""
    import shutil

    if not (shutil.which("wine") and shutil.which("x86_64-w64-mingw32-gcc")):
        pytest.skip("wine and x86_64-w64-mingw32-gcc are needed to run run.cmd on Linux (Debian: wine64, gcc-mingw-w64)")
    top = tmp_path_factory.mktemp("win") / "locara-server-w"
    (top / "bin").mkdir(parents=True)
    stub = top.parent / "stub.c"
    stub.write_text('#include <stdio.h>\nint main(int c, char **v) { for (int i = 1; i < c; i++) printf("<%s>", v[i]); printf("\\n"); return 0; }\n')
    subprocess.run(["x86_64-w64-mingw32-gcc", "-O2", "-o", str(top / "bin" / "llama-server.exe"), str(stub)], check=True)
    (top / "run.cmd").write_bytes(render_launchers("windows", ("run.cmd",), artifact=top.name, model=MODEL)["run.cmd"])
    return top


def _wine(top: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("LOCARA_")}
    full.update({"WINEPREFIX": str(top.parent / "prefix"), "WINEDEBUG": "-all", "LOCARA_NO_BROWSER": "1"})
    full.update(env or {})
    return subprocess.run(["wine", "cmd", "/c", "run.cmd", *args], cwd=top, env=full, capture_output=True, text=True, timeout=300)


def test_run_cmd_under_wine(windows_unpacked: Path) -> None:
    top = windows_unpacked
    r = _wine(top, "-m", "C:\\x y.gguf", "--port", "9")
    assert r.stdout.strip().splitlines()[-1] == "<-m><C:\\x y.gguf><--port><9>", r.stdout + r.stderr

    r = _wine(top, "--no-download", "--port", "9", env={"LOCARA_MODEL_STORE": "Z:\\nonexistent"})
    assert r.returncode == 2
    assert "no model to run" in r.stderr and "locara-build models fetch \"tiny-model\" --manifest" in r.stderr

    store = top.parent / "store" / "sha256"
    store.mkdir(parents=True)
    (store / MODEL.sha256).write_bytes(b"G" * MODEL.size)
    r = _wine(top, "--port", "9", env={"LOCARA_MODEL_STORE": "Z:" + str(store.parent).replace("/", "\\")})
    line = r.stdout.strip().splitlines()[-1]
    assert line.startswith("<-m><Z:") and line.endswith(f"{MODEL.sha256}><--alias><tiny-model><-c><512><--temp><0.7 0.8><--port><9>"), line


def test_run_sh_through_a_symlink(unpacked: Path, tmp_path: Path) -> None:
    link_dir = tmp_path / "home-bin"
    link_dir.mkdir()
    (link_dir / "locara-server").symlink_to(unpacked / "run.sh")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCARA_")}
    r = subprocess.run([str(link_dir / "locara-server"), "-m", "/x.gguf"], env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "<-m></x.gguf>"


@pytest.mark.parametrize(("os_name", "launchers", "double_click"), [
    ("linux", ("run.sh",), "./run.sh"), ("macos", ("run.sh",), "Double-click run.command"), ("windows", ("run.cmd",), "Double-click run.cmd"),
])
def test_readme_and_macos_launcher_per_platform(os_name: str, launchers: tuple[str, ...], double_click: str, tmp_path: Path) -> None:
    out = render_launchers(os_name, launchers, artifact="locara-server-x", model=MODEL, chat=True)
    readme = out["README.txt"].decode()
    assert double_click in readme
    assert "--no-download" in readme and "--https" in readme and "--api-key" in readme and "LOCARA_MODEL_STORE" in readme
    assert "http://127.0.0.1:8080/chat.html" in readme and str(MODEL.size) in readme
    assert ("\r\n" in readme) == (os_name == "windows")
    assert ("run.command" in out) == (os_name == "macos")
    if os_name == "macos":  # run.command runs run.sh beside it, from wherever Finder starts it
        top = tmp_path / "x y"
        top.mkdir()
        (top / "run.command").write_bytes(out["run.command"])
        (top / "run.sh").write_text('#!/bin/sh\necho "ran with $*"\n')
        for f in ("run.command", "run.sh"):
            (top / f).chmod(0o755)
        r = subprocess.run([str(top / "run.command"), "--port", "9"], cwd="/", capture_output=True, text=True, timeout=30)
        assert r.returncode == 0 and r.stdout.strip() == "ran with --port 9"
