"""The completion UI's files as shipped: self-contained, CSP-clean, valid JavaScript (no build needed).

The browser test (test_ui_browser.py) drives the same files served by a packaged server."""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

UI = Path(__file__).resolve().parent.parent / "locara_build" / "resources" / "ui"


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.script_text: list[str] = []
        self.style_blocks = 0
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"
        if tag == "style":
            self.style_blocks += 1

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.script_text.append(data)


@pytest.fixture(scope="module")
def page() -> _Collect:
    p = _Collect()
    p.feed((UI / "index.html").read_text(encoding="utf-8"))
    return p


def test_files() -> None:
    assert sorted(p.name for p in UI.iterdir()) == ["app.js", "favicon.svg", "index.html", "style.css"]


def test_no_inline_code_and_a_strict_csp(page: _Collect) -> None:
    assert page.script_text == [], "no inline script"
    assert page.style_blocks == 0, "no <style> block"
    for tag, attrs in page.tags:
        assert "style" not in attrs, f"<{tag} style=...>: inline styles break style-src 'self'"
        assert not [a for a in attrs if a.startswith("on")], f"<{tag}> has an inline event handler"
    csp = next(a["content"] for t, a in page.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy")
    assert csp and "default-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
    scripts = [a.get("src") for t, a in page.tags if t == "script"]
    assert scripts == ["app.js"]
    links = {a.get("rel"): a.get("href") for t, a in page.tags if t == "link"}
    assert links == {"stylesheet": "style.css", "icon": "favicon.svg"}


def test_nothing_from_elsewhere() -> None:
    for f in UI.iterdir():
        text = f.read_text(encoding="utf-8")
        text = text.replace('xmlns="http://www.w3.org/2000/svg"', "")  # the SVG namespace, not a request
        urls = re.findall(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.I)
        assert urls == [], f"{f.name} refers to {urls}"
        assert "@import" not in text and "@font-face" not in text and "fonts.googleapis" not in text
        assert "eval(" not in text and "new Function" not in text and "innerHTML" not in text


def test_relative_api_urls_only() -> None:
    js = (UI / "app.js").read_text(encoding="utf-8")
    assert re.findall(r'api\("([^"]+)"\)', js) == ["health", "props", "completion"]
    assert "fetch(\"/" not in js and "fetch('/" not in js


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed: cannot syntax-check app.js")
def test_app_js_parses() -> None:
    r = subprocess.run(["node", "--check", str(UI / "app.js")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
