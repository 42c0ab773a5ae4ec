"""Issue 23: the REAL packaged Windows artifact's own run.cmd, under wine, with the real llama-server.exe.

The ``windows-x86_64-cpu`` build of the slow suite (zig cross-build, test_backends_slow.py; reused
from the persistent slow work dir) is packaged by ``locara-build package --models`` with a manifest
whose default model is the smoke's tiny GGUF, served by :class:`support.httpserver.LoopbackServer`.
The .zip is unpacked alone into a folder whose name holds a space and ``&``, and ``wine cmd /c
run.cmd --no-browser --port N`` runs with nothing of the build machine: a private wine prefix, the
model store in a temp dir (``LOCARA_MODEL_STORE`` as a ``Z:\\`` path) and, on ``WINEPATH``, only
curl.exe and the stand-in sha256sum.exe of :mod:`support.wintools`. Proven: run.cmd downloads the
model, verifies it, stores it under its SHA-256 and starts the packaged llama-server.exe on it;
``/health`` answers, ``/completion`` generates real tokens, ``/`` serves the packaged UI; afterwards
nothing of that wine prefix is left running. Marked ``slow`` (the cross-build; then ~1-2 minutes).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import zipfile
from pathlib import Path

import pytest
from support.httpserver import LoopbackServer, free_port
from support.llama import test_cache
from support.wintools import windows_tools, winpath
from test_backends_slow import _package, _pipeline

from locara_build.core.digest import sha256_file
from locara_build.package.models import Model, ModelManifest
from locara_build.smoke.smoke import check_ui, server
from locara_build.smoke.tinymodel import VOCAB_RELPATH, tiny_model

pytestmark = [pytest.mark.slow, pytest.mark.timeout(4 * 3600)]

RECIPE = "windows-x86_64-cpu"
HEALTHY_WITHIN_S = 180
N_PREDICT = 8


def _wine_processes(prefix: Path) -> list[int]:
    """Our processes whose environment names ``prefix`` as WINEPREFIX (wine, wineserver, the .exe's)."""
    needle = f"WINEPREFIX={prefix}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            env = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in env.split(b"\0"):
            found.append(int(entry.name))
    return found


def _stop_wine(env: dict[str, str], prefix: Path) -> list[int]:
    """``wineserver -k`` for this prefix, then wait (up to 30 s) until none of its processes is left."""
    subprocess.run(["wineserver", "-k"], env=env, capture_output=True, timeout=60, check=False)
    deadline = time.monotonic() + 30
    while (left := _wine_processes(prefix)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return left


def test_packaged_run_cmd_downloads_and_serves_with_the_real_exe_under_wine(tmp_path: Path) -> None:
    from locara_build.build.toolchains import wine

    found = wine.find()
    if found is None:
        pytest.skip("needs wine")
    p = _pipeline(RECIPE)
    tools = windows_tools(test_cache())
    model = tiny_model(Path(p.plan["source_dir"]) / VOCAB_RELPATH, p.work / "smoke" / "models")  # the smoke's own
    sha, size = sha256_file(model), model.stat().st_size

    prefix = tmp_path / "wineprefix"
    store = tmp_path / "store"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOCARA_", "WINE"))}
    env.update(wine.smoke_env(), WINEPREFIX=str(prefix), WINEPATH=winpath(tools), LOCARA_NO_PAUSE="1",
               LOCARA_MODEL_STORE=winpath(store))
    # a fresh prefix first (wineboot: not part of the time to healthy)
    subprocess.run([str(found[0]), "cmd", "/c", "exit"], env=env, capture_output=True, timeout=600, check=True,
                   stdin=subprocess.DEVNULL)

    (tmp_path / "http").mkdir()
    shutil.copyfile(model, tmp_path / "http" / "tiny-llama.gguf")
    try:
        with LoopbackServer(tmp_path / "http") as http:
            url = http.url("tiny-llama.gguf")
            manifest = ModelManifest(models=(Model(id="tiny-llama", file="tiny-llama.gguf", sha256=sha, size=size, urls=(url,),
                                                   license="MIT", name="Tiny random llama (tests)", args=("-c", "512")),),
                                     default="tiny-llama")
            (tmp_path / "models.json").write_text(manifest.to_json())
            archive = _package(p, "--models", str(tmp_path / "models.json"), "--out", str(tmp_path / "dist"))
            assert archive is not None and archive.name.endswith(".zip"), archive
            unpacked = tmp_path / "Locara Server & co"
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(unpacked)
            [top] = unpacked.iterdir()
            assert (top / "run.cmd").is_file() and (top / "bin" / "llama-server.exe").is_file()

            port = free_port()
            argv = [str(found[0]), "cmd", "/c", "run.cmd", "--no-browser", "--port", str(port)]
            with server(argv, port=port, log_path=tmp_path / "run-cmd.log", timeout=HEALTHY_WITHIN_S, env=env, cwd=top,
                        label="run.cmd under wine") as srv:
                resp = srv.session.post(f"{srv.url}/completion", timeout=120, json={
                    "prompt": "Once upon a time", "n_predict": N_PREDICT, "ignore_eos": True, "seed": 42, "cache_prompt": False})
                assert resp.status_code == 200, resp.text[:500]
                data = resp.json()
                assert data["tokens_predicted"] == N_PREDICT and data["content"].strip(), data
                ui = check_ui(srv, top / "ui", "run.cmd under wine")  # GET / is the packaged UI, byte for byte
                log = srv.log_text()
            assert [(m, path) for (m, path, _) in http.requests] == [("GET", "/tiny-llama.gguf")], http.requests
    finally:
        left = _stop_wine(env, prefix)
    assert left == [], f"wine processes of {prefix} still running: {left}"
    blobs = store / "sha256"
    assert "stored the verified" in log and f"loading model '{winpath(blobs / sha)}'" in log, log[-3000:]
    assert sha256_file(blobs / sha) == sha, "the model landed in the store under its SHA-256, verified"
    assert json.loads((blobs / f"{sha}.json").read_text())["url"] == url
    assert not list(blobs.glob("*.part")), "no partial download left"
    print("windows run.cmd:", json.dumps({"healthy_after_s": round(srv.healthy_after, 1), "tokens": data["tokens_predicted"],
                                          "content": data["content"][:60], "ui_bytes": ui["bytes"]}))
