"""Issue 23.3: both UIs, offline. Upstream's chat UI (tools/ui, Svelte) built at package time with
npm from its pinned package-lock.json (locara_build/package/chatui.py), shipped beside our completion UI
when the recipe says `ship.ui = ["completion", "chat"]`.

* the recipe switch is checked (unknown UI, empty list: exit 2 naming the key);
* the links both ways are put in;
* end to end (slow: a cold `npm ci` + `npm run build` of upstream's UI takes minutes; cached per
  content of tools/ui afterwards): the CI build packaged with both UIs, run.sh serves it, a real
  browser (Chromium) completes a text at `/`, follows the Chat link to `/chat.html`, sends a
  message and sees the model's reply, and follows the link back; no request leaves 127.0.0.1.
"""

from __future__ import annotations

import dataclasses
import shutil
import tarfile
from pathlib import Path

import pytest

from locara_build.build.recipe import load_recipes
from locara_build.core.errors import ConfigError
from locara_build.core.workdir import Project
from locara_build.package.chatui import CHAT_PAGE, link_completion_to_chat

RECIPE = "linux-x86_64-cpu-ci"


def _with_ui(project: Path, ui: str) -> Path:
    path = project / "recipes" / f"{RECIPE}.toml"
    path.write_text(path.read_text() + f"\n[ship]\nui = {ui}\n")
    return path


def test_recipe_switch_is_checked(project: Path) -> None:
    _with_ui(project, '["completion", "chat"]')
    recipe = load_recipes(Project(project), [RECIPE])[RECIPE]
    assert recipe.ship.ui == ("completion", "chat")
    assert recipe.ship.to_dict()["ui"] == ["completion", "chat"]


@pytest.mark.parametrize(("ui", "words"), [('["completion", "chta"]', "Did you mean `chat`"), ("[]", "empty")])
def test_recipe_switch_refuses_nonsense(project: Path, ui: str, words: str) -> None:
    _with_ui(project, ui)
    with pytest.raises(ConfigError) as info:
        load_recipes(Project(project), [RECIPE])
    assert info.value.exit_code == 2 and words in info.value.message and "linux-x86_64-cpu-ci.toml:" in info.value.message
    assert "ship.ui" in info.value.message + (info.value.hint or "")


def test_default_recipes_keep_their_hash(project: Path) -> None:
    recipe = load_recipes(Project(project), [RECIPE])[RECIPE]
    assert recipe.ship.ui == ("completion",) and "ui" not in recipe.ship.to_dict()


def test_completion_page_links_to_chat() -> None:
    from importlib import resources

    html = resources.files("locara_build").joinpath("resources", "ui", "index.html").read_bytes()
    out = link_completion_to_chat(html)
    assert out.count(b'href="./chat.html"') == 1 and b'id="chat-link"' in out


# --- end to end -------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.browser
def test_both_uis_in_a_real_browser(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    chromium = "/usr/bin/chromium"
    if not Path(chromium).exists() or shutil.which("npm") is None:
        pytest.skip("Debian's chromium and npm are needed")
    from playwright.sync_api import sync_playwright
    from support.httpserver import free_port
    from test_launcher_firstrun import no_python_path, user_env
    from test_package_e2e import _TMP, _ci_build, _tiny
    from test_ui_browser import CHROMIUM_ARGS

    from locara_build.package.models import Model, ModelManifest
    from locara_build.package.package import package
    from locara_build.smoke.smoke import server

    b = _ci_build(request)
    project = tmp_path / "project"
    shutil.copytree(b.project, project, symlinks=True)
    _with_ui(project, '["completion", "chat"]')
    switched = load_recipes(Project(project), [RECIPE])[RECIPE]
    assert switched.ship.ui == ("completion", "chat")
    # the finished CI build, packaged with the switched recipe's ship spec (the recipe hash, and
    # with it the build key, changes with any recipe edit: no second build for a UI switch)
    plan = b.plan
    rp = dataclasses.replace(b.rp, recipe=dataclasses.replace(b.rp.recipe, ship=switched.ship))
    model_path, sha, size = _tiny()
    manifest = ModelManifest(models=(Model(id="tiny-llama", file="tiny-llama.gguf", sha256=sha, size=size,
                                           urls=("https://example.invalid/tiny-llama.gguf",), license="MIT"),), default="tiny-llama")
    result = package(plan, rp, out_dir=tmp_path / "dist", models=manifest, debug=False)
    dest = tmp_path / "unpacked"
    dest.mkdir()
    with tarfile.open(result.artifact) as tar:
        tar.extractall(dest, filter="data")
    top = dest / rp.artifact.name
    ui = top / "ui"
    assert (ui / "index.html").is_file() and (ui / CHAT_PAGE).is_file() and (ui / "_app").is_dir()
    assert not (ui / "sw.js").exists(), "upstream's service worker is left out"
    assert b'href="./chat.html"' in (ui / "index.html").read_bytes()
    assert b'id="locara-completion-link"' in (ui / CHAT_PAGE).read_bytes()
    assert "chat.html" in (top / "README.txt").read_text()

    home = tmp_path / "home"
    blobs = home / ".cache" / "locara-build" / "models" / "sha256"
    blobs.mkdir(parents=True)
    shutil.copyfile(model_path, blobs / sha)
    port = free_port()
    env = user_env(home, no_python_path(_TMP))
    with server([str(top / "run.sh"), "--no-browser", "--port", str(port)], port=port, log_path=tmp_path / "srv.log",
                timeout=120, env=env, cwd=tmp_path, label="run.sh (both UIs)") as srv, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            outside: list[str] = []
            page.on("request", lambda r: outside.append(r.url) if not r.url.startswith((srv.url, "data:", "blob:")) else None)
            # completion at /
            page.goto(srv.url + "/", wait_until="load")
            assert page.title() == "Completion · locara-server"
            page.fill("#n_predict", "8")
            page.fill("#text", "The lighthouse keeper")
            page.click("#complete")
            page.wait_for_function("() => document.getElementById('status').textContent.startsWith('Done')", timeout=60_000)
            assert len(page.input_value("#text")) > len("The lighthouse keeper")
            # the link to chat
            page.click("#chat-link")
            page.wait_for_url("**/chat.html**", timeout=30_000)
            box = page.locator("textarea").first
            box.wait_for(state="visible", timeout=60_000)
            with page.expect_response(lambda r: "/v1/chat/completions" in r.url, timeout=60_000) as resp:
                box.fill("Say hello.")
                box.press("Enter")
            assert resp.value.status == 200
            assert resp.value.url.startswith(srv.url + "/v1/chat/completions"), resp.value.url
            # the user's message and an assistant reply are shown
            page.wait_for_function("() => document.body.innerText.includes('Say hello.')", timeout=30_000)
            page.wait_for_function(
                "() => document.body.innerText.replace(/\\s+/g, ' ').split('Say hello.').pop().trim().length > 20",
                timeout=60_000,
            )
            page.screenshot(path=str(tmp_path / "chat.png"))
            # and back
            page.click("#locara-completion-link")
            page.wait_for_function("() => document.title === 'Completion · locara-server'", timeout=30_000)
            assert not outside, f"requests left the server: {outside[:5]}"
        finally:
            browser.close()
