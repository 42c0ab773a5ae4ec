"""The smoke stage against stand-in servers (a small Python program installed as bin/llama-server):
the happy path (every endpoint + the llama-server.args run + smoke.json), a server that never gets
healthy (exit 6 after the timeout, log tail, server stopped), one that dies, a port already taken,
unmet smoke.expect, skipped recipes. The real llama-server is smoke-tested in test_e2e_llama.py."""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path

import pytest
from support.pipeline import TINY_RECIPE, StandIn, stand_in_project

STAND_IN = r'''#!@PYTHON@
"""Stand-in llama-server for locara-build's smoke tests. MODE: ok | never-healthy | exit | wrong-tokens"""
import json, os, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

MODE = "@MODE@"
exe = Path(sys.argv[0]).resolve()
args = sys.argv[1:]
if not args:
    for d in (exe.parent, exe.parent.parent):
        f = d / "llama-server.args"
        if f.is_file():
            lines = [l for l in f.read_text().splitlines() if l.strip() and l.strip() != "..."]
            args = [str((f.parent / l).resolve()) if l.startswith("./") else l for l in lines]
            break
opts = dict(zip(args[::2], args[1::2]))
port = int(opts.get("--port", 8080))
model = opts.get("-m")
ui = opts.get("--path")
print(f"stand-in: loading model {model}", flush=True)
if MODE == "exit":
    print("stand-in: error: failed to load model", flush=True)
    sys.exit(3)


class H(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def _json(self, obj, status=200):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/health":
            if MODE == "never-healthy":
                return self._json({"error": {"code": 503, "message": "Loading model"}}, 503)
            return self._json({"status": "ok"})
        if self.path == "/props":
            return self._json({"model_path": model})
        if self.path == "/" and ui:
            body = (Path(ui) / "index.html").read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            return self.wfile.write(body)
        self._json({"error": "not found"}, 404)

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path == "/completion":
            n = body["n_predict"] - (1 if MODE == "wrong-tokens" else 0)
            return self._json({"content": " tok" * n, "tokens_predicted": n,
                               "timings": {"prompt_n": 4, "predicted_per_second": 123.4, "prompt_per_second": 456.7}})
        if self.path == "/v1/chat/completions":
            n = body["max_tokens"]
            return self._json({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "tiny",
                               "choices": [{"index": 0, "finish_reason": "length",
                                            "message": {"role": "assistant", "content": "hi " * n}}],
                               "usage": {"prompt_tokens": 9, "completion_tokens": n, "total_tokens": 9 + n}})
        self._json({"error": "not found"}, 404)


srv = HTTPServer(("127.0.0.1", port), H)
print(f"stand-in: main: server is listening on http://127.0.0.1:{port}", flush=True)
srv.serve_forever()
'''


def install_stand_in(tiny: StandIn, mode: str = "ok") -> Path:
    """A finished "build" of the tiny recipe whose bin/llama-server is the stand-in."""
    out = Path(tiny.plan()["output_dir"])
    (out / "bin").mkdir(parents=True)
    exe = out / "bin" / "llama-server"
    exe.write_text(STAND_IN.replace("@PYTHON@", sys.executable).replace("@MODE@", mode))
    exe.chmod(0o755)
    (out / "build.json").write_text(json.dumps({"recipe": "tiny", "version": "test"}))
    return out


@pytest.fixture
def tiny(tmp_path: Path) -> StandIn:
    return stand_in_project(tmp_path)


@pytest.fixture
def model(tmp_path: Path) -> Path:
    path = tmp_path / "stand-in.gguf"
    path.write_bytes(b"GGUF not really")
    return path


@pytest.fixture
def ui(tmp_path: Path) -> Path:
    d = tmp_path / "ui"
    d.mkdir()
    (d / "index.html").write_text("<!doctype html><html><body>locara test page</body></html>\n")
    return d


def _no_process_runs(path: Path) -> bool:
    needle = str(path).encode()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if needle in (proc / "cmdline").read_bytes():
                    return False
            except OSError:
                pass
    return True


def test_smoke_passes_and_records_results(tiny: StandIn, model: Path, ui: Path) -> None:
    out = install_stand_in(tiny)
    res = tiny.cli("smoke", "-r", "tiny", "--model", str(model), "--ui", str(ui), "--json")
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)["smoke"][0]
    assert summary["status"] == "passed" and summary["tokens_per_second"] == 123.4
    record = json.loads((out / "smoke.json").read_text())
    assert record["status"] == "passed" and record["build_key"] == out.name
    server = record["server"]
    assert server["completion"]["tokens"] == 16
    assert server["chat"]["completion_tokens"] == 16 and server["chat"]["finish_reason"] == "length"
    assert server["ui"]["checked"] is True and server["ui"]["status"] == 200
    assert "--path" in server["argv"] and str(ui) in server["argv"]
    # the second run started with no arguments: model and port came from llama-server.args
    second = record["args_file"]
    assert second["completion"]["tokens"] == 16
    assert second["args_file"][:2] == ["-m", f"./models/{model.name}"] and second["args_file"][-1] == "..."
    assert Path(second["model_path"]).name == model.name
    assert Path(second["log"]).read_text().count("listening on") == 1
    # the immutable output got smoke.json and nothing else; no scratch copies left
    assert sorted(p.name for p in out.iterdir()) == ["bin", "build.json", "smoke.json"]
    assert sorted(p.name for p in (out / "bin").iterdir()) == ["llama-server"]
    assert list((tiny.work / "tmp").iterdir()) == []
    assert _no_process_runs(out / "bin" / "llama-server")


def test_never_healthy_exits_6_after_timeout_with_log_tail(tiny: StandIn, model: Path) -> None:
    out = install_stand_in(tiny, "never-healthy")
    start = time.monotonic()
    res = tiny.cli("smoke", "-r", "tiny", "--model", str(model), "--timeout", "3")
    took = time.monotonic() - start
    assert res.returncode == 6, res.stderr
    assert "did not become healthy within 3s" in res.stderr
    assert "HTTP 503" in res.stderr  # what /health last said
    assert "stand-in: loading model" in res.stderr  # the log tail
    assert "Server log: " in res.stderr and str(tiny.work / "logs") in res.stderr
    assert took < 60
    assert not (out / "smoke.json").exists()
    assert _no_process_runs(out / "bin" / "llama-server")  # always stopped


def test_server_that_dies_exits_6(tiny: StandIn, model: Path) -> None:
    out = install_stand_in(tiny, "exit")
    res = tiny.cli("smoke", "-r", "tiny", "--model", str(model))
    assert res.returncode == 6, res.stderr
    assert "exited with status 3 before becoming healthy" in res.stderr
    assert "failed to load model" in res.stderr
    assert not (out / "smoke.json").exists()


def test_port_already_taken_is_a_clear_error(tiny: StandIn, model: Path) -> None:
    install_stand_in(tiny)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        res = tiny.cli("smoke", "-r", "tiny", "--model", str(model), "--port", str(port))
    assert res.returncode == 6, res.stderr
    assert f"port {port} on 127.0.0.1 is already in use" in res.stderr
    assert "--port" in res.stderr  # the hint


def test_wrong_token_count_fails(tiny: StandIn, model: Path) -> None:
    install_stand_in(tiny, "wrong-tokens")
    res = tiny.cli("smoke", "-r", "tiny", "--model", str(model))
    assert res.returncode == 6, res.stderr
    assert "asked for 16 tokens and got 15" in res.stderr


def test_expect_patterns_must_match_the_log(tmp_path: Path, model: Path) -> None:
    recipe = TINY_RECIPE.replace("[smoke]\n", '[smoke]\nexpect = ["loading model", "using device Vulkan0"]\n')
    tiny = stand_in_project(tmp_path, recipe_text=recipe)
    install_stand_in(tiny)
    res = tiny.cli("smoke", "-r", "tiny", "--model", str(model))
    assert res.returncode == 6, res.stderr
    assert "does not match smoke.expect ['using device Vulkan0']" in res.stderr


def test_skipped_recipe_records_why(tmp_path: Path, model: Path) -> None:
    tiny = stand_in_project(tmp_path, recipe_text=TINY_RECIPE.replace("[smoke]\n", '[smoke]\nskip = "needs a GPU"\n'))
    out = install_stand_in(tiny)
    res = tiny.cli("smoke", "-r", "tiny", "--model", str(model), "--json")
    assert res.returncode == 0, res.stderr
    record = json.loads((out / "smoke.json").read_text())
    assert record["status"] == "skipped" and record["reason"] == "needs a GPU"


def test_smoke_needs_a_build(tiny: StandIn, model: Path) -> None:
    res = tiny.cli("smoke", "-r", "tiny", "--model", str(model))
    assert res.returncode == 6, res.stderr
    assert "locara-build build -r tiny" in res.stderr


def test_smoke_server_api_on_an_unpacked_bin_dir(tmp_path: Path, tiny: StandIn, model: Path, ui: Path) -> None:
    """What packaging reuses: smoke_server()/smoke_args_file() on any bin/ dir."""
    from locara_build.smoke import SmokeOptions, smoke_args_file, smoke_server

    out = install_stand_in(tiny)
    opts = SmokeOptions(n_predict=4, timeout=30, ui_dir=ui)
    first = smoke_server(out / "bin", model, options=opts, log_path=tmp_path / "s1.log")
    assert first["completion"]["tokens"] == 4 and first["ui"]["checked"]
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    second = smoke_args_file(out / "bin", model, options=opts, log_path=tmp_path / "s2.log", scratch=scratch)
    assert second["completion"]["tokens"] == 4
    assert list(scratch.iterdir()) == []
    assert os.path.getsize(tmp_path / "s2.log") > 0
