"""A real HTTP server on 127.0.0.1 for tests: serves a directory with Range / If-Range / ETag support,
and can inject faults (truncate, stall, tamper, fail) per path."""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass
class Faults:
    truncate_at: dict[str, int] = field(default_factory=dict)  # path -> send only N bytes then close
    stall_after: dict[str, int] = field(default_factory=dict)  # path -> send N bytes then sleep
    status: dict[str, int] = field(default_factory=dict)  # path -> answer this status
    no_ranges: set[str] = field(default_factory=set)  # ignore Range for these paths
    stall_seconds: float = 30.0


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # quiet
        self.server.requests.append((self.command, self.path, dict(self.headers)))

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def do_GET(self) -> None:
        self._serve(head=False)

    def _serve(self, head: bool) -> None:
        path = self.path.split("?", 1)[0]
        faults = self.server.faults
        if path in faults.status:
            self.send_error(faults.status[path])
            return
        target = (self.server.root / path.lstrip("/")).resolve()
        if not str(target).startswith(str(self.server.root.resolve())) or not target.is_file():
            self.send_error(404)
            return
        data = target.read_bytes()
        etag = '"' + hashlib.sha256(data).hexdigest()[:16] + '"'
        start, status = 0, 200
        rng = self.headers.get("Range")
        if rng and path not in faults.no_ranges and rng.startswith("bytes="):
            if_range = self.headers.get("If-Range")
            if if_range is None or if_range == etag:
                first = int(rng[6:].split("-", 1)[0] or 0)
                if first >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.end_headers()
                    return
                start, status = first, 206
        body = data[start:]
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", etag)
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        if head:
            return
        if path in faults.truncate_at:
            cut = max(0, faults.truncate_at[path] - start)
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.close_connection = True
            return
        if path in faults.stall_after:
            cut = max(0, faults.stall_after[path] - start)
            self.wfile.write(body[:cut])
            self.wfile.flush()
            time.sleep(faults.stall_seconds)
            return
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, root: Path):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.root = root
        self.faults = Faults()
        self.requests: list[tuple[str, str, dict[str, str]]] = []


class LoopbackServer:
    """``with LoopbackServer(dir) as srv: srv.url('file.bin')``"""

    def __init__(self, root: Path):
        self.root = Path(root)
        self._server = _Server(self.root)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def faults(self) -> Faults:
        return self._server.faults

    @property
    def requests(self) -> list[tuple[str, str, dict[str, str]]]:
        return self._server.requests

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, rel: str) -> str:
        return f"{self.base_url}/{rel.lstrip('/')}"

    def __enter__(self) -> LoopbackServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


__all__ = ["LoopbackServer", "Faults", "free_port"]
