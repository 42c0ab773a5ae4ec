"""`publish --to github:OWNER/REPO` against a local stand-in of the few GitHub Releases API endpoints
it uses (GitHub itself cannot be reached from here): create-or-reuse by tag, draft until complete,
only missing assets uploaded, retries with backoff, and an upload that dies midway leaves neither
a duplicate nor a partial asset after the retry."""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from support.release_kit import NEW, OLD, make_keys, make_lock, release_for

from locara_build.errors import NetworkError, VerifyError
from locara_build.publish import GitHubClient, publish_github, upload_order
from locara_build.store import GITHUB_STORE_TAG

TOKEN = "ghs_standin_token_0123456789abcdef"


@dataclass
class GitHubState:
    releases: list[dict[str, Any]] = field(default_factory=list)
    assets: dict[int, dict[str, Any]] = field(default_factory=dict)  # id -> asset (+ "data")
    next_id: int = 1
    break_uploads: dict[str, int] = field(default_factory=dict)  # asset name -> how many uploads die midway
    transient: list[tuple[str, str]] = field(default_factory=list)  # (method, path regex) -> one 502 each
    lose_create_reply: int = 0  # create the release, then answer 502 (the reply was lost)
    log: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
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

    def _release_view(self, rel: dict[str, Any]) -> dict[str, Any]:
        base = self.server.base
        return {**{k: v for k, v in rel.items() if k != "make_latest"},
                "upload_url": f"{base}/uploads/repos/{self.server.repo}/releases/{rel['id']}/assets{{?name,label}}",
                "html_url": f"{base}/{self.server.repo}/releases/tag/{rel['tag_name']}"}

    def _asset_view(self, a: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in a.items() if k != "data"}

    def _dispatch(self, method: str) -> None:
        st = self.server.state
        url = urlparse(self.path)
        path, query = url.path, parse_qs(url.query)
        st.log.append((method, self.path))
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self._json(401, {"message": "Bad credentials"})
            return
        for i, (m, rx) in enumerate(st.transient):
            if m == method and re.fullmatch(rx, path):
                del st.transient[i]
                self._drain()
                self._json(502, {"message": "Server Error"})
                return
        repo = f"/repos/{self.server.repo}"
        with st.lock:
            if method == "GET" and path == f"{repo}/releases/latest":
                pub = [r for r in st.releases if not r["draft"] and r.get("make_latest") != "false"]
                return self._json(200, self._release_view(pub[-1])) if pub else self._json(404, {"message": "Not Found"})
            m = re.fullmatch(rf"{repo}/releases/tags/(.+)", path)
            if method == "GET" and m:
                hit = [r for r in st.releases if r["tag_name"] == m[1] and not r["draft"]]
                return self._json(200, self._release_view(hit[0])) if hit else self._json(404, {"message": "Not Found"})
            if method == "GET" and path == f"{repo}/releases":
                page, per = int(query.get("page", ["1"])[0]), int(query.get("per_page", ["30"])[0])
                items = [self._release_view(r) for r in reversed(st.releases)][(page - 1) * per: page * per]
                return self._json(200, items)
            if method == "POST" and path == f"{repo}/releases":
                body = json.loads(self._body())
                # like GitHub: several drafts may share a tag; only a published release owns it
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
                page, per = int(query.get("page", ["1"])[0]), int(query.get("per_page", ["30"])[0])
                return self._json(200, items[(page - 1) * per: page * per])
            m = re.fullmatch(rf"{repo}/releases/assets/(\d+)", path)
            if method == "DELETE" and m:
                st.assets.pop(int(m[1]), None)
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
        m = re.fullmatch(rf"/uploads{repo}/releases/(\d+)/assets", path)
        if method == "POST" and m:
            return self._upload(int(m[1]), query["name"][0])
        self._json(404, {"message": "Not Found"})

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length", "0")))

    def _drain(self) -> None:
        if self.headers.get("Content-Length"):
            self._body()

    def _upload(self, release_id: int, name: str) -> None:
        st = self.server.state
        length = int(self.headers["Content-Length"])
        with st.lock:
            if any(a["name"] == name and a["release"] == release_id for a in st.assets.values()):
                self._drain()
                return self._json(422, {"message": "Validation Failed", "errors": [{"code": "already_exists", "field": "name"}]})
            asset = {"id": st.next_id, "name": name, "release": release_id, "state": "starter", "size": 0, "data": b""}
            st.next_id += 1
            st.assets[asset["id"]] = asset
            breaking = st.break_uploads.get(name, 0) > 0
            if breaking:
                st.break_uploads[name] -= 1
        if breaking:  # GitHub keeps a broken "starter" asset when an upload dies midway
            asset["data"] = self.rfile.read(length // 2)
            asset["size"] = len(asset["data"])
            self.close_connection = True
            self.connection.shutdown(2)
            return
        data = self.rfile.read(length)
        asset.update(data=data, size=len(data), state="uploaded", digest="sha256:" + hashlib.sha256(data).hexdigest())
        self._json(201, self._asset_view(asset))

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, repo: str):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.repo = repo
        self.state = GitHubState()
        host, port = self.server_address[:2]
        self.base = f"http://{host}:{port}"


@pytest.fixture
def github_stand_in():
    srv = _Server("locara/locara-build")
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _versions(srv: _Server) -> list[dict[str, Any]]:
    """The version releases (not the content-addressed store release, tests/test_store.py checks that one)."""
    return [r for r in srv.state.releases if r["tag_name"] != GITHUB_STORE_TAG]


def _assets(srv: _Server) -> dict[str, dict[str, Any]]:
    ids = {r["id"] for r in _versions(srv)}
    mine = [a for a in srv.state.assets.values() if a["release"] in ids]
    names = [a["name"] for a in mine]
    assert len(names) == len(set(names)), f"duplicate assets: {names}"
    return {a["name"]: a for a in mine}


def _assert_complete(srv: _Server, release_dir: Path) -> None:
    assets = _assets(srv)
    assert sorted(assets) == sorted(upload_order(release_dir))
    for name, a in assets.items():
        assert a["state"] == "uploaded", f"{name} left in state {a['state']}"
        assert a["data"] == (release_dir / name).read_bytes()


def test_github_stand_in_publish_create_reuse_and_token_never_logged(github_stand_in: _Server, tmp_path: Path, cli) -> None:
    srv = github_stand_in
    keys = make_keys(tmp_path / "keys")
    rel = release_for(tmp_path / "r", make_lock(**NEW), keys, recipes=["linux-x86_64-cpu", "windows-x86_64-cpu"])
    env = {"GITHUB_TOKEN": TOKEN, "LOCARA_GITHUB_API_URL": srv.base}
    res = cli("-v", "--json", "publish", "--to", "github:locara/locara-build", str(rel.out), env=env)
    assert res.returncode == 0, res.stderr
    assert TOKEN not in res.stdout + res.stderr
    out = json.loads(res.stdout)
    assert out["latest"] is True and sorted(out["uploaded"]) == sorted(upload_order(rel.out))
    _assert_complete(srv, rel.out)
    (release,) = _versions(srv)
    assert release["tag_name"] == rel.version and release["draft"] is False
    # release.json is uploaded last: while the draft was incomplete, nobody could fetch a manifest
    uploads = [p for m, p in srv.state.log if m == "POST" and p.startswith("/uploads/")]
    assert uploads[-1].endswith("name=release.json")

    # again: the release is reused, nothing re-uploaded
    res = cli("--json", "publish", "--to", "github:locara/locara-build", str(rel.out), env=env)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["uploaded"] == [] and len(_versions(srv)) == 1
    _assert_complete(srv, rel.out)

    # no token: a configuration error that names the variables
    res = cli("publish", "--to", "github:locara/locara-build", str(rel.out),
              env={"GITHUB_TOKEN": "", "LOCARA_GITHUB_TOKEN": "", "LOCARA_GITHUB_API_URL": srv.base})
    assert res.returncode == 2 and "GITHUB_TOKEN" in res.stderr
    # a wrong token: GitHub's 401 with the next step, and the token is not printed
    res = cli("publish", "--to", "github:locara/locara-build", str(rel.out),
              env={"GITHUB_TOKEN": "ghs_wrong_token_value_xyz", "LOCARA_GITHUB_API_URL": srv.base})
    assert res.returncode == 9 and "HTTP 401" in res.stderr and "ghs_wrong_token_value_xyz" not in res.stderr

    # an older version is refused; forced, it is published without becoming latest
    old = release_for(tmp_path / "o", make_lock(**OLD), keys, recipes=["linux-x86_64-cpu"])
    client = GitHubClient("locara/locara-build", TOKEN, api_url=srv.base, backoff=0.01)
    with pytest.raises(VerifyError, match="older than"):
        publish_github(old.out, "locara/locara-build", client=client)
    res = publish_github(old.out, "locara/locara-build", client=client, force=True)
    assert res.latest is False
    assert _versions(srv)[-1]["make_latest"] == "false"


def test_github_stand_in_upload_fails_midway_then_retried_no_duplicate_or_partial(
    github_stand_in: _Server, tmp_path: Path, cli
) -> None:
    srv = github_stand_in
    keys = make_keys(tmp_path / "keys")
    rel = release_for(tmp_path / "r", make_lock(**NEW), keys, recipes=["linux-x86_64-cpu"], payload=2 << 20)
    artifact = rel.manifest["artifacts"][0]["file"]
    client = GitHubClient("locara/locara-build", TOKEN, api_url=srv.base, attempts=3, backoff=0.01)

    # 1. within one run: the release is created but the reply is lost, the artifact upload dies
    #    halfway once, the asset list call fails once (502)
    srv.state.lose_create_reply = 1
    srv.state.break_uploads[artifact] = 1
    srv.state.transient.append(("GET", r".*/releases/\d+/assets"))
    result = publish_github(rel.out, "locara/locara-build", client=client)
    assert len(_versions(srv)) == 1, "no second draft for the same tag"
    assert artifact in result.uploaded
    _assert_complete(srv, rel.out)
    assert any(m == "DELETE" for m, _ in srv.state.log), "the broken starter asset was deleted before the retry"

    # 2. across runs: every attempt dies midway, the run fails (exit 9 from the CLI), the next run completes
    srv.state.releases.clear()
    srv.state.assets.clear()
    srv.state.break_uploads[artifact] = 3
    with pytest.raises(NetworkError, match="failed 3 times"):
        publish_github(rel.out, "locara/locara-build", client=client)
    assert _versions(srv)[0]["draft"] is True, "an incomplete release stays a draft"
    partial = [a for a in srv.state.assets.values() if a["state"] != "uploaded"]
    assert partial, "the stand-in left a broken asset, as GitHub does"
    env = {"GITHUB_TOKEN": TOKEN, "LOCARA_GITHUB_API_URL": srv.base}
    res = cli("--json", "publish", "--to", "github:locara/locara-build", str(rel.out), env=env)
    assert res.returncode == 0, res.stderr
    _assert_complete(srv, rel.out)
    assert len(_versions(srv)) == 1 and _versions(srv)[0]["draft"] is False
    assert artifact in json.loads(res.stdout)["uploaded"]
