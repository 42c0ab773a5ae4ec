"""A real browser drives the packaged completion UI served by the packaged server.

Headless Chromium (Debian's /usr/bin/chromium, driven by the playwright package; never
`playwright install`) loads `/` from a llama-server started with the unpacked CI artifact's
`run.sh`, types a prompt, clicks Complete and sees the continuation stream in; Stop and Undo
work; the page makes no request to any other origin and trips no CSP rule or console error.
`LOCARA_UI_SCREENSHOT=docs/ui-screenshot.png` refreshes the screenshot in the docs.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import run_cli
from support.httpserver import free_port
from test_package_e2e import _TMP, _ci_build, _fetched_store, _packaged, clean_env, run_sh

from locara_build.smoke.smoke import Server, server

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PROMPT = "The lighthouse keeper climbed the narrow stairs one last time. At the top, the great lamp"

WATCH = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', (e) => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));
"""

# Complete, then Stop, both clicked from inside the page: the watcher is running before Complete is
# clicked, and Stop is clicked in the same tick that sees the text grow, while it is enabled. A tiny
# model streams 1500 tokens in well under a second; on a busy machine a click from outside (one
# Playwright round trip per click) came after the end of the completion, with nothing left to stop.
COMPLETE_THEN_STOP_WHILE_STREAMING = """(min) => new Promise((resolve) => {
  const text = document.getElementById('text'), stop = document.getElementById('stop');
  const status = document.getElementById('status'), deadline = Date.now() + 60000;
  const timer = setInterval(() => {
    if (text.value.length > min && !stop.disabled) { stop.click(); clearInterval(timer); resolve(true); }
    else if (status.textContent.startsWith('Done') || Date.now() > deadline) { clearInterval(timer); resolve(false); }
  }, 1);
  document.getElementById('complete').click();  // runs up to its first await: status "Reading the prompt…"
})"""


@pytest.fixture(scope="module")
def running(request: pytest.FixtureRequest) -> Iterator[Server]:
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        pytest.skip("Debian's chromium is not installed here (/usr/bin/chromium)")
    _ci_build(request)
    packaged = _packaged()
    store, manifest = _fetched_store()
    r = run_cli("models", "path", "tiny-llama", "--manifest", str(manifest), "--store", str(store))
    assert r.returncode == 0, r.stderr
    port = free_port()
    argv = run_sh(packaged.unpacked, "-m", r.stdout.strip(), "--alias", "tiny-random-llama", "--port", str(port))
    with server(argv, port=port, log_path=_TMP / "logs" / "ui-server.log", timeout=120, env=clean_env(), cwd=_TMP,
                label="run.sh (browser test)") as srv:
        yield srv


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


def test_complete_stop_undo_in_a_real_browser(running: Server, browser, tmp_path: Path) -> None:  # noqa: ANN001
    context = browser.new_context(viewport={"width": 1280, "height": 800}, color_scheme="light", device_scale_factor=1)
    page = context.new_page()
    problems: list[str] = []
    requests_seen: list[str] = []
    page.on("console", lambda m: problems.append(f"console.{m.type}: {m.text}") if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))
    page.on("request", lambda r: requests_seen.append(r.url))
    page.add_init_script(WATCH)

    page.goto(running.url + "/", wait_until="load")
    assert page.title() == "Completion · locara-server"
    # the header learns the model from /props and the context size
    page.wait_for_function("() => document.getElementById('server-text').textContent.includes('ctx')", timeout=30_000)
    assert page.get_attribute("#server-dot", "class") == "dot ok"

    # 1. Complete: the continuation streams into the text
    page.fill("#n_predict", "40")
    page.fill("#text", PROMPT)
    page.click("#complete")
    page.wait_for_function("() => document.getElementById('status').textContent.startsWith('Done')", timeout=60_000)
    text = page.input_value("#text")
    assert text.startswith(PROMPT) and len(text) > len(PROMPT), "generated text was appended to the prompt"
    generated = page.text_content("#backdrop mark")
    assert generated and text.endswith(generated), "the new text is highlighted"
    tokens = page.text_content("#stat-tokens") or ""
    speed = page.text_content("#stat-speed") or ""
    assert re.fullmatch(r"40 tokens", tokens), tokens
    assert re.fullmatch(r"\d+(\.\d)? tok/s", speed) and float(speed.split()[0]) > 0, speed
    assert "limit of 40 tokens" in (page.text_content("#status") or "")
    assert page.is_enabled("#undo") and page.is_disabled("#stop") and page.is_enabled("#complete")
    shot = tmp_path / "ui.png"
    page.screenshot(path=str(shot), full_page=False)
    target = os.environ.get("LOCARA_UI_SCREENSHOT")
    if target:
        shutil.copyfile(shot, target)
    assert shot.stat().st_size > 10_000

    # 2. Undo restores the prompt
    page.click("#undo")
    assert page.input_value("#text") == PROMPT
    assert page.locator("#backdrop mark").count() == 0

    # 3. Stop: a long completion is aborted once it has started
    page.fill("#n_predict", "1500")
    clicked = page.evaluate(COMPLETE_THEN_STOP_WHILE_STREAMING, len(PROMPT) + 5)
    assert clicked, "the completion ended before any text streamed in with Stop enabled"
    page.wait_for_function("() => document.getElementById('status').textContent.startsWith('Stopped')", timeout=30_000)
    stopped = page.input_value("#text")
    assert stopped.startswith(PROMPT) and len(stopped) > len(PROMPT)
    assert page.is_enabled("#complete") and not page.get_attribute("#text", "readonly")

    # 4. settings persist across a reload
    page.reload(wait_until="load")
    assert page.input_value("#n_predict") == "1500"
    assert page.input_value("#text") == stopped

    # nothing from anywhere else, no CSP violation, no error in the console
    assert page.evaluate("() => window.__csp") == []
    foreign = [u for u in requests_seen if not u.startswith(running.url)]
    assert foreign == [], foreign
    assert problems == [], problems
    context.close()


def test_the_page_degrades_clearly_when_the_server_is_gone(running: Server, browser) -> None:  # noqa: ANN001
    """Served by the package, then the API goes away: the header says so and Complete reports it."""
    context = browser.new_context()
    page = context.new_page()
    page.goto(running.url + "/", wait_until="load")
    page.wait_for_function("() => document.getElementById('server-dot').className === 'dot ok'", timeout=30_000)
    page.route("**/completion", lambda route: route.abort())
    page.fill("#text", "Hello")
    page.click("#complete")
    page.wait_for_function("() => document.getElementById('status').classList.contains('error')", timeout=30_000)
    assert "not reachable" in (page.text_content("#status") or "")
    assert page.input_value("#text") == "Hello"
    assert page.is_enabled("#complete")
    context.close()
