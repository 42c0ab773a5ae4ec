"""The one stand-in llama-server of the tests (a real HTTP server on 127.0.0.1 that answers what the
smoke test and the launchers ask: /health, /props, /, /completion, /v1/chat/completions).

It reads its arguments like llama-server does (none given: the ``llama-server.args`` file beside
it or one folder up). Two ways to run it:

* :func:`script` - a Python file with a ``#!`` line, written as ``bin/llama-server`` of a stand-in
  build output (tests/test_smoke.py); its mode is fixed when written.
* :data:`SERVER_PY` - run as ``python -c SERVER_PY EXE ARGS...`` by the fault suite's compiled
  stand-in (tests/support/faults.py), which also defines ``SECRET_ENV``; its mode comes from
  ``$STANDIN_MODE``.

Modes: ok | never-healthy (503 forever) | exit (fails to load) | wrong-tokens (one token short) |
gpu (logs that it used CUDA0).
"""

from __future__ import annotations

import sys

SERVER_PY = r'''
import json, os, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

MODE = globals().get("FIXED_MODE") or os.environ.get("STANDIN_MODE", "ok")
if globals().get("FIXED_MODE"):  # a script: it is the executable
    exe, args = Path(sys.argv[0]).resolve(), sys.argv[1:]
else:  # python -c SERVER_PY EXE ARGS...
    exe, args = Path(sys.argv[1]), sys.argv[2:]
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
for name in globals().get("SECRET_ENV", ()):  # what a careless (or hostile) server could leak into its log
    print(f"stand-in: env {name}={os.environ.get(name, '')}", flush=True)
if MODE == "gpu":
    print("llama_prepare_model_devices: using device CUDA0 (NVIDIA L4) (0000:00:03.0) - 22563 MiB free", flush=True)
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


def script(mode: str = "ok") -> str:
    """The stand-in as an executable Python file (``#!`` this interpreter), in ``mode``."""
    return f"#!{sys.executable}\n\"\"\"Stand-in llama-server (tests/support/fakeserver.py), mode {mode}.\"\"\"\nFIXED_MODE = {mode!r}\n" + SERVER_PY
