"""Upstream llama.cpp's chat UI (the Svelte app in ``tools/ui``), built at package time.

A recipe ships it with ``ship.ui = ["completion", "chat"]`` (or ``["chat"]``). It is built from the
locked source tree's ``tools/ui`` with ``npm ci`` (its pinned ``package-lock.json``: exact versions
and integrity hashes, from the npm registry) and ``npm run build``, once per content of that folder:
the result is cached under ``<work>/cache/chat-ui/<sha256 of tools/ui>/`` and npm's own download
cache under ``<work>/cache/npm``, so a second package of the same upstream commit runs no npm at all.
Nothing is fetched at run time: the build is static files only (``svelte.config.js``:
adapter-static, relative paths, hash router), and a build that references a CDN is refused.

Where it goes: ``ui/chat.html`` (upstream's ``index.html``) plus its ``_app/`` assets beside our
completion UI's files. Served by ``llama-server --path ui`` at ``/chat.html``: upstream's UI calls
the API relative to its page (``./v1/chat/completions``, ``./props``), so it must sit at the root,
not in a ``/chat/`` folder (that would ask ``/chat/v1/...``). Upstream's service worker
(``sw.js``, PWA) is left out, so it can never take over ``/``. Each UI links to the other.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from pathlib import Path

from locara_build.core import log
from locara_build.core import run as _run
from locara_build.core.errors import BuildError

__all__ = ["CHAT_PAGE", "chat_ui_files", "link_completion_to_chat", "ui_source_hash"]

CHAT_PAGE = "chat.html"
UI_DIR = Path("tools") / "ui"
_SKIP_DIRS = {"node_modules", "dist", "build", ".svelte-kit", "test-results"}
_SERVICE_WORKER = re.compile(r"^(sw|registerSW|workbox-[\w-]+)\.js(\.map)?$")
_CDN = re.compile(rb"""(?:src|href)\s*=\s*["']https?://""", re.I)
# our completion UI's own files win over anything upstream's build also has at the top
OURS = frozenset({"index.html", "app.js", "style.css", "favicon.svg"})


def ui_source_hash(ui_dir: Path) -> str:
    """sha256 over the UI sources (paths + bytes), without build outputs and node_modules."""
    h = hashlib.sha256()
    for path in sorted(ui_dir.rglob("*")):
        rel = path.relative_to(ui_dir)
        if rel.parts and rel.parts[0] in _SKIP_DIRS or not path.is_file():
            continue
        h.update(rel.as_posix().encode() + b"\0")
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def _build(ui_dir: Path, dest: Path, npm_cache: Path) -> None:
    if shutil.which("npm") is None:
        raise BuildError(
            "the recipe ships the chat UI (ship.ui has \"chat\"), but npm is not installed.",
            hint="Install Node.js + npm (scripts/setup.sh does), or drop \"chat\" from ship.ui.",
        )
    work = dest.with_name(dest.name + ".build")
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(ui_dir, work, ignore=shutil.ignore_patterns(*_SKIP_DIRS))
    out = work / "dist"
    env = {
        "npm_config_cache": str(npm_cache),
        "npm_config_audit": "false",
        "npm_config_fund": "false",
        "npm_config_update_notifier": "false",
        "LLAMA_UI_OUT_DIR": str(out),
        "CI": "1",
    }
    with log.step("chat UI: npm ci (pinned package-lock.json)"):
        _run.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=work, env=env, error=BuildError, what="npm ci",
                 hint="The npm registry must be reachable (or its packages in the npm cache) to build the chat UI.",
                 timeout=1800)
    with log.step("chat UI: npm run build"):
        _run.run(["npm", "run", "build"], cwd=work, env=env, error=BuildError, what="npm run build (tools/ui)",
                 hint="Upstream's UI did not build; ship.ui = [\"completion\"] packages without it.", timeout=1800)
    if not (out / "index.html").is_file():
        raise BuildError(f"npm run build in {ui_dir} wrote no index.html to {out}.", hint="Check the build log above.")
    for path in out.rglob("*"):
        if path.is_file() and path.suffix in (".html", ".js", ".css") and _CDN.search(path.read_bytes()):
            raise BuildError(
                f"the built chat UI loads {path.relative_to(out)} content from another origin (a CDN): it would not work offline.",
                hint="Patch upstream's UI to bundle it, or ship only the completion UI.",
            )
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.move(str(out), str(tmp))
    os.replace(tmp, dest)
    shutil.rmtree(work, ignore_errors=True)


def chat_ui_files(source_dir: Path, cache_dir: Path) -> dict[str, bytes]:
    """``{path under ui/: bytes}`` of upstream's chat UI built from ``source_dir``'s tools/ui."""
    ui_dir = source_dir / UI_DIR
    if not (ui_dir / "package-lock.json").is_file():
        raise BuildError(
            f"{ui_dir}: no package-lock.json: this upstream tree has no chat UI to build (or an unpinned one).",
            hint="Ship only the completion UI (ship.ui = [\"completion\"]) for this upstream.",
        )
    key = ui_source_hash(ui_dir)
    built = cache_dir / "chat-ui" / key
    if not (built / "index.html").is_file():
        built.parent.mkdir(parents=True, exist_ok=True)
        _build(ui_dir, built, cache_dir / "npm")
    else:
        log.detail(f"chat UI: cached build {built}")
    files: dict[str, bytes] = {}
    for path in sorted(built.rglob("*")):
        if not path.is_file():
            continue
        rel = path.relative_to(built).as_posix()
        if _SERVICE_WORKER.match(path.name) and "/" not in rel:
            continue
        if rel == "index.html":
            files[CHAT_PAGE] = _link_chat_to_completion(path.read_bytes())
        elif rel in OURS:
            continue
        else:
            files[rel] = path.read_bytes()
    return files


def _link_chat_to_completion(html: bytes) -> bytes:
    """A small 'Completion' link in upstream's page, back to ours at ``./``."""
    link = (b'<a id="locara-completion-link" href="./" title="locara-server completion UI" '
            b'style="position:fixed;right:12px;bottom:12px;z-index:9999;font:13px system-ui,sans-serif;'
            b'padding:4px 10px;border-radius:6px;background:#1f6feb;color:#fff;text-decoration:none">Completion</a>')
    if b"</body>" not in html:
        return html + link
    return html.replace(b"</body>", link + b"</body>", 1)


def link_completion_to_chat(index_html: bytes) -> bytes:
    """Our completion page with a 'Chat' link to upstream's UI in its header."""
    marker = b'<div class="server" id="server"'
    link = b'<a class="chat-link" id="chat-link" href="./chat.html" title="llama.cpp\'s chat UI">Chat</a>\n    '
    if marker not in index_html:
        raise BuildError("the completion UI's index.html has no header to put the chat link in.", hint="Report a bug.")
    return index_html.replace(marker, link + marker, 1)
