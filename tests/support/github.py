"""The one GitHub Releases stand-in of the tests (GitHub's API cannot be reached here: this is a
fake, and the tests that use it say so in their names).

A real HTTP server on 127.0.0.1 with the parts of the REST API `publish` uses: releases (create,
get by tag, latest, list with pages, publish a draft, make_latest), assets (list with pages,
upload to the uploads host, delete). Like GitHub: a wrong token is 401; several drafts may share a
tag but only one published release owns it (422); an upload that dies midway leaves a broken
"starter" asset; an asset name is unique per release (422).

Faults to inject through :class:`GitHubState`: ``break_uploads`` (asset name -> how many uploads
die midway), ``transient`` ((method, path regex) -> one 502 each), ``lose_create_reply`` (create,
then answer 502), ``pause_upload`` (read 1 MiB of that asset, then wait for ``resume_upload``).
Everything seen is recorded: ``log`` (method, path), ``headers_seen``, ``bodies``.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

TOKEN = "ghs_standin_token_0123456789abcdef"
REPO = "locara/locara-build"


@dataclass
class GitHubState:
    token: str = TOKEN
    releases: list[dict[str, Any]] = field(default_factory=list)
    assets: dict[int, dict[str, Any]] = field(default_factory=dict)  # id -> asset (+ "data")
    next_id: int = 1
    break_uploads: dict[str, int] = field(default_factory=dict)
    transient: list[tuple[str, str]] = field(default_factory=list)
    lose_create_reply: int = 0
    pause_upload: str | None = None
    upload_started: threading.Event = field(default_factory=threading.Event)
    resume_upload: threading.Event = field(default_factory=threading.Event)
    log: list[tuple[str, str]] = field(default_factory=list)
    headers_seen: list[str] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(BaseHTTPRequestHandler):
    server: GitHubServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def _json(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> bytes:
        data = self.rfile.read(int(self.headers.get("Content-Length", "0") or 0))
        self.server.state.bodies.append(data)
        return data

    def _release_view(self, rel: dict[str, Any]) -> dict[str, Any]:
        base, repo = self.server.base, self.server.repo
        return {**{k: v for k, v in rel.items() if k != "make_latest"},
                "upload_url": f"{base}/uploads/repos/{repo}/releases/{rel['id']}/assets{{?name,label}}",
                "html_url": f"{base}/{repo}/releases/tag/{rel['tag_name']}"}

    @staticmethod
    def _asset_view(a: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in a.items() if k != "data"}

    @staticmethod
    def _page(items: list[Any], query: dict[str, list[str]]) -> list[Any]:
        page, per = int(query.get("page", ["1"])[0]), int(query.get("per_page", ["30"])[0])
        return items[(page - 1) * per: page * per]

    def _dispatch(self, method: str) -> None:
        st = self.server.state
        url = urlparse(self.path)
        path, query = url.path, parse_qs(url.query)
        st.log.append((method, self.path))
        st.headers_seen.append(str(self.headers))
        if self.headers.get("Authorization") != f"Bearer {st.token}":
            if self.headers.get("Content-Length"):
                self._body()
            return self._json(401, {"message": "Bad credentials"})
        for i, (m, rx) in enumerate(st.transient):
            if m == method and re.fullmatch(rx, path):
                del st.transient[i]
                if self.headers.get("Content-Length"):
                    self._body()
                return self._json(502, {"message": "Server Error"})
        repo = f"/repos/{self.server.repo}"
        m = re.fullmatch(rf"/uploads{repo}/releases/(\d+)/assets", path)
        if method == "POST" and m:
            return self._upload(int(m[1]), query["name"][0])
        with st.lock:
            if method == "GET" and path == f"{repo}/releases/latest":
                pub = [r for r in st.releases if not r["draft"] and r.get("make_latest") != "false"]
                return self._json(200, self._release_view(pub[-1])) if pub else self._json(404, {"message": "Not Found"})
            m = re.fullmatch(rf"{repo}/releases/tags/(.+)", path)
            if method == "GET" and m:
                hit = [r for r in st.releases if r["tag_name"] == m[1] and not r["draft"]]
                return self._json(200, self._release_view(hit[0])) if hit else self._json(404, {"message": "Not Found"})
            if method == "GET" and path == f"{repo}/releases":
                return self._json(200, self._page([self._release_view(r) for r in reversed(st.releases)], query))
            if method == "POST" and path == f"{repo}/releases":
                body = json.loads(self._body())
                if any(r["tag_name"] == body["tag_name"] and not r["draft"] for r in st.releases):
                    return self._json(422, {"message": "Validation Failed", "errors": [{"code": "already_exists"}]})
                rel = {"id": st.next_id, "tag_name": body["tag_name"], "name": body.get("name"), "body": body.get("body"),
                       "draft": bool(body.get("draft")), "prerelease": False}
                st.next_id += 1
                st.releases.append(rel)
                if st.lose_create_reply:
                    st.lose_create_reply -= 1
                    return self._json(502, {"message": "Server Error"})
                return self._json(201, self._release_view(rel))
            m = re.fullmatch(rf"{repo}/releases/(\d+)", path)
            if method == "PATCH" and m:
                rel = next(r for r in st.releases if r["id"] == int(m[1]))
                body = json.loads(self._body())
                rel["draft"] = body.get("draft", rel["draft"])
                rel["make_latest"] = body.get("make_latest", "true")
                return self._json(200, self._release_view(rel))
            m = re.fullmatch(rf"{repo}/releases/(\d+)/assets", path)
            if method == "GET" and m:
                items = [self._asset_view(a) for a in st.assets.values() if a["release"] == int(m[1])]
                return self._json(200, self._page(items, query))
            m = re.fullmatch(rf"{repo}/releases/assets/(\d+)", path)
            if method == "DELETE" and m:
                st.assets.pop(int(m[1]), None)
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
        return self._json(404, {"message": "Not Found"})

    def _upload(self, release_id: int, name: str) -> None:
        st = self.server.state
        length = int(self.headers["Content-Length"])
        with st.lock:
            if any(a["name"] == name and a["release"] == release_id for a in st.assets.values()):
                self.rfile.read(length)
                return self._json(422, {"message": "Validation Failed", "errors": [{"code": "already_exists", "field": "name"}]})
            asset = {"id": st.next_id, "name": name, "release": release_id, "state": "starter", "size": 0, "data": b""}
            st.next_id += 1
            st.assets[asset["id"]] = asset
            breaking = st.break_uploads.get(name, 0) > 0
            if breaking:
                st.break_uploads[name] -= 1
        if breaking:  # the connection dies midway: GitHub keeps a broken "starter" asset
            asset["data"] = self.rfile.read(length // 2)
            asset["size"] = len(asset["data"])
            self.close_connection = True
            self.connection.shutdown(2)
            return None
        data = b""
        if st.pause_upload == name:
            st.pause_upload = None
            data = self.rfile.read(min(length // 2, 1 << 20))
            asset.update(data=data, size=len(data))
            st.upload_started.set()
            st.resume_upload.wait(60)  # the client blocks in send() meanwhile (buffers full)
        while len(data) < length:  # short when the client died
            chunk = self.rfile.read1(min(1 << 20, length - len(data)))
            if not chunk:
                break
            data += chunk
        asset.update(data=data, size=len(data))
        if len(data) < length:
            self.close_connection = True
            return None
        asset.update(state="uploaded", digest="sha256:" + hashlib.sha256(data).hexdigest())
        st.bodies.append(data)
        return self._json(201, self._asset_view(asset))

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")


class GitHubServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, repo: str = REPO, token: str = TOKEN):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.repo = repo
        self.state = GitHubState(token)
        host, port = self.server_address[:2]
        self.base = f"http://{host}:{port}"


class GitHubStandIn:
    """``with GitHubStandIn(token) as gh:`` - the server running in a thread for the block."""

    def __init__(self, token: str = TOKEN, repo: str = REPO):
        self.server = GitHubServer(repo, token)
        self.repo = repo
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def state(self) -> GitHubState:
        return self.server.state

    @property
    def base(self) -> str:
        return self.server.base

    def assets(self) -> dict[str, dict[str, Any]]:
        names = [a["name"] for a in self.state.assets.values()]
        assert len(names) == len(set(names)), f"duplicate assets: {names}"
        return {a["name"]: a for a in self.state.assets.values()}

    def __enter__(self) -> GitHubStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
