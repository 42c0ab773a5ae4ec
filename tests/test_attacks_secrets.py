"""Credentials in URLs never persist or print (maintainer side).

* A real authenticated upstream: a bare git repository served over HTTP on 127.0.0.1 behind Basic
  auth (git's dumb HTTP protocol). `sync --upstream http://locara:PASSWORD@.../up.git` fetches with
  the password, and then no file under the project or the work dir holds it: not the lock, not the
  mirror's git config (git gets it from `url.<full>.insteadOf` in its environment), not the logs;
  nor does stdout/stderr (`-v`, `--json`). A later `sync` without it says it needs credentials
  (exit 3) rather than having kept them.
* Query tokens (`?token=`, `X-Amz-Signature=`, `sig=`, `access_token=`) and `https://TOKEN@host` in an
  unreachable upstream: masked in every message, stripped from what would be recorded.
* `models.toml` URLs that carry credentials are refused (exit 2): the manifest ships in every package.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from support.faults import REPO, closed_port, make_upstream, run_cli
from support.upstream import git

from locara_build.core.errors import ConfigError
from locara_build.core.redact import redact, redact_urls, register_url, strip_url_credentials
from locara_build.package.models import load_models_toml
from locara_build.upstream.source import parse_source

PASSWORD = "SENTINEL-gitpw-4c1d"
TOKEN = "SENTINELquerytoken77e1"
SIGNATURE = "SENTINELamzsig0b9f"


class _AuthHandler(BaseHTTPRequestHandler):
    root: Path

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        want = "Basic " + base64.b64encode(f"locara:{PASSWORD}".encode()).decode()
        if self.headers.get("Authorization") != want:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="upstream"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        path = (self.root / self.path.split("?", 1)[0].lstrip("/")).resolve()
        if not path.is_relative_to(self.root) or not path.is_file():
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def auth_upstream(tmp_path: Path) -> Iterator[str]:
    """``http://127.0.0.1:PORT/up.git``, readable only with locara:PASSWORD."""
    up = make_upstream(tmp_path / "src")
    root = (tmp_path / "served").resolve()
    root.mkdir()
    git("clone", "-q", "--bare", str(up.path), str(root / "up.git"))
    git("update-server-info", cwd=root / "up.git")
    handler = type("H", (_AuthHandler,), {"root": root})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}/up.git"
    finally:
        server.shutdown()
        server.server_close()


def _project(root: Path) -> Path:
    project = root / "project"
    (project / "recipes").mkdir(parents=True)
    for name in ("defaults.toml", "linux-x86_64-cpu.toml"):
        (project / "recipes" / name).write_bytes((REPO / "recipes" / name).read_bytes())
    return project


def _files_holding(roots: list[Path], needles: list[str]) -> list[str]:
    hits = []
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.is_file() and not path.is_symlink():
                data = path.read_bytes()
                hits += [f"{path}: {n}" for n in needles if n.encode() in data]
    return hits


def test_sync_with_a_password_fetches_and_records_nothing_of_it(auth_upstream: str, tmp_path: Path) -> None:
    project, work = _project(tmp_path), tmp_path / "work"
    base = ["--project", str(project), "--work-dir", str(work)]
    res = run_cli(*base, "-v", "--json", "sync", "--upstream", f"http://locara:{PASSWORD}@{auth_upstream}", timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout)
    assert PASSWORD not in res.stdout + res.stderr
    lock = (project / "recipes" / "upstream.lock").read_text()
    assert f'source = "http://{auth_upstream}"' in lock and f"http://{auth_upstream}" in json.dumps(out)
    (mirror,) = (work / "mirrors").glob("*.git")
    assert git("config", "--get", "remote.origin.url", cwd=mirror).strip() == f"http://{auth_upstream}"
    assert _files_holding([project, work], [PASSWORD]) == []
    # the next sync has no credentials: git is asked for a user name it cannot get -> exit 3, saying so
    res = run_cli(*base, "sync", timeout=120)
    assert res.returncode == 3, res.stderr[-3000:]
    assert "needs credentials" in res.stderr and "credential helper" in res.stderr
    # with them again: fine, and still nothing persisted
    res = run_cli(*base, "sync", "--upstream", f"http://locara:{PASSWORD}@{auth_upstream}", timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    assert _files_holding([project, work], [PASSWORD]) == []


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:{port}/llama.cpp.git?token={TOKEN}",
    "http://127.0.0.1:{port}/llama.cpp.git?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature={SIGNATURE}&X-Amz-Expires=60",
    "https://{TOKEN}@127.0.0.1:{port}/llama.cpp.git",
    "http://u:{TOKEN}@127.0.0.1:{port}/llama.cpp.git?access_token={SIGNATURE}",
])
def test_unreachable_upstream_with_tokens_never_prints_them(url: str, tmp_path: Path) -> None:
    url = url.format(port=closed_port(), TOKEN=TOKEN, SIGNATURE=SIGNATURE)
    project, work = _project(tmp_path), tmp_path / "work"
    for args in (["-v", "sync", "--upstream", url], ["--json", "sync", "--upstream", url]):
        res = run_cli("--project", str(project), "--work-dir", str(work), *args, timeout=120)
        assert res.returncode == 3, res.stderr[-3000:]
        text = res.stdout + res.stderr
        assert TOKEN not in text and SIGNATURE not in text, text[-3000:]
        assert "Traceback" not in text
    assert _files_holding([project, work], [TOKEN, SIGNATURE]) == []


def test_recorded_form_and_masks() -> None:
    cases = {
        f"https://user:{PASSWORD}@h.example/x.git": ("https://h.example/x.git", "https://user:***@h.example/x.git"),
        f"https://{TOKEN}@github.com/o/r": ("https://github.com/o/r", "https://***@github.com/o/r"),
        f"https://h/x?a=1&token={TOKEN}&b=2": ("https://h/x?a=1&b=2", "https://h/x?a=1&token=***&b=2"),
        f"https://b.s3.amazonaws.com/k.tar.gz?X-Amz-Credential=AKIA%2F1&X-Amz-Signature={SIGNATURE}":
            ("https://b.s3.amazonaws.com/k.tar.gz", "https://b.s3.amazonaws.com/k.tar.gz?X-Amz-Credential=***&X-Amz-Signature=***"),
        f"https://acct.blob.core.windows.net/c/f?sv=2024&sig={SIGNATURE}": ("https://acct.blob.core.windows.net/c/f?sv=2024",
                                                                         "https://acct.blob.core.windows.net/c/f?sv=2024&sig=***"),
        "ssh://git@github.com/o/r.git": ("ssh://git@github.com/o/r.git", "ssh://git@github.com/o/r.git"),
        "https://github.com/ggml-org/llama.cpp": ("https://github.com/ggml-org/llama.cpp", "https://github.com/ggml-org/llama.cpp"),
    }
    for url, (recorded, shown) in cases.items():
        assert strip_url_credentials(url) == recorded, url
        assert redact_urls(f"cannot fetch {url} (refused)") == f"cannot fetch {shown} (refused)", url
    # registered: the percent-decoded form is masked too (git and servers print either)
    register_url("https://u:p%40ss-SENTINEL-9@h/x")
    assert "SENTINEL-9" not in redact("password was p@ss-SENTINEL-9 / p%40ss-SENTINEL-9")
    assert parse_source(f"https://h/x.git?token={TOKEN}").spec == "https://h/x.git"
    assert parse_source(f"https://u:{PASSWORD}@h/x.git").spec == "https://h/x.git"
    src = parse_source(f"archive:https://b.s3.amazonaws.com/llama.cpp-b1.tar.gz?X-Amz-Signature={SIGNATURE}")
    assert SIGNATURE not in src.spec and SIGNATURE in src.url  # downloaded with it, recorded without it


@pytest.mark.parametrize("url", [
    f"https://user:{PASSWORD}@mirror.example/m.gguf",
    f"https://huggingface.co/o/r/resolve/main/m.gguf?token={TOKEN}",
    f"https://bucket.s3.amazonaws.com/m.gguf?X-Amz-Signature={SIGNATURE}",
])
def test_models_toml_url_with_credentials_is_refused(url: str, tmp_path: Path) -> None:
    text = (REPO / "recipes" / "models.toml").read_text()
    first = text.index('urls = ["') + len('urls = ["')
    path = tmp_path / "models.toml"
    path.write_text(text[:first] + url + '", "' + text[first:])
    with pytest.raises(ConfigError) as info:
        load_models_toml(path)
    assert info.value.exit_code == 2 and "carries credentials" in info.value.message
    assert PASSWORD not in info.value.message and TOKEN not in info.value.message and SIGNATURE not in info.value.message


@pytest.mark.parametrize("source", [f"https://ci:{PASSWORD}@git.example/llama.cpp", f"https://git.example/llama.cpp?private_token={TOKEN}"])
def test_a_lock_holding_credentials_is_refused_not_copied_into_records(source: str, tmp_path: Path) -> None:
    project = _project(tmp_path)
    lock = (REPO / "recipes" / "upstream.lock").read_text()
    start = lock.index('source = "') + len('source = "')
    lock = lock[:start] + source + lock[lock.index('"', start):]
    (project / "recipes" / "upstream.lock").write_text(lock)
    res = run_cli("--project", str(project), "--work-dir", str(tmp_path / "work"), "plan", "--json", timeout=120)
    assert res.returncode == 2, res.stderr[-2000:]
    assert "`source` holds credentials" in res.stderr and "rotate the token" in res.stderr
    assert PASSWORD not in res.stdout + res.stderr and TOKEN not in res.stdout + res.stderr
    assert (project / "recipes" / "upstream.lock").read_text() == lock


@pytest.mark.parametrize("target", ["github:owner/..", "github:../x", "github:o/r?token=" + TOKEN, "github:o/r\nnext: run rm -rf",
                                    "github:o /r", "github:https://u:" + PASSWORD + "@evil.example/o/r"])
def test_publish_target_is_a_github_name_or_refused(target: str, tmp_path: Path) -> None:
    """`github:` takes GitHub's own OWNER/REPO names: no path parts reach the API (with the token in its header),
    and a hostile target is quoted, masked and kept on one line in the error."""
    res = run_cli("publish", "--to", target, str(tmp_path), env={"LOCARA_GITHUB_TOKEN": "ghs_SENTINELpublish5d2"}, timeout=60)
    assert res.returncode == 2, res.stderr[-2000:]
    assert "expected github:OWNER/REPO" in res.stderr and "Traceback" not in res.stderr
    assert "\nnext: run rm" not in res.stderr
    for secret in (TOKEN, PASSWORD, "ghs_SENTINELpublish5d2"):
        assert secret not in res.stdout + res.stderr
