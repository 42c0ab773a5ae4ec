"""Issue 23.4: `run.sh --https` on the unpacked CI artifact (real llama-server, OpenSSL build).

* the first run makes a local CA and a server certificate, once, beside the model store
  (`~/.cache/locara-build/certs`), keys 0600, and prints the CA's SHA-256 fingerprint (checked
  against `openssl x509 -fingerprint`) and how to trust it; the second run reuses them;
* real curl with `--cacert ca.crt` (no -k) gets a completion over TLS from https://127.0.0.1,
  and curl without the CA is refused (the chain is really verified);
* an appliance's own `certs/server.crt` + `certs/server.key` beside run.sh win;
* a real browser (Chromium) loads the completion UI over https and completes a text.
"""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from support.httpserver import free_port
from test_launcher_firstrun import MODEL_ID, http, no_python_path, package_with, tiny_manifest, user_env  # noqa: F401
from test_package_e2e import _TMP, _tiny

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def tls_artifact(http) -> Path:  # noqa: ANN001, F811
    return package_with(tiny_manifest(http.url("tiny-llama.gguf")), "https")


def _home_with_model(tmp: Path) -> Path:
    model, sha, _ = _tiny()
    home = tmp / "home"
    blobs = home / ".cache" / "locara-build" / "models" / "sha256"
    blobs.mkdir(parents=True)
    shutil.copyfile(model, blobs / sha)
    return home


def _curl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["curl", "-sS", "--noproxy", "*", "--max-time", "60", *args], capture_output=True, text=True, timeout=90)


def test_https_local_ca_curl_gets_a_completion(tls_artifact: Path, tmp_path: Path) -> None:
    if shutil.which("openssl") is None or shutil.which("curl") is None:
        pytest.skip("openssl and curl are needed")
    home = _home_with_model(tmp_path)
    env = user_env(home, no_python_path(_TMP))
    port = free_port()
    certs = home / ".cache" / "locara-build" / "certs"
    argv = [str(tls_artifact / "run.sh"), "--https", "--no-browser", "--port", str(port)]
    # smoke.server polls http://.../health; over TLS that never answers, so poll with curl ourselves
    proc = subprocess.Popen(argv, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline_ok = False
        for _ in range(240):
            if (certs / "ca.crt").exists():
                r = _curl("--cacert", str(certs / "ca.crt"), f"https://127.0.0.1:{port}/health")
                if r.returncode == 0 and "ok" in r.stdout:
                    deadline_ok = True
                    break
            if proc.poll() is not None:
                break
            subprocess.run(["sleep", "0.5"])
        assert deadline_ok, (proc.stdout.read() if proc.poll() is not None else "server not healthy over https")
        r = _curl("--cacert", str(certs / "ca.crt"), "-H", "Content-Type: application/json",
                  "-d", '{"prompt": "Once upon a time", "n_predict": 8}', f"https://127.0.0.1:{port}/completion")
        assert r.returncode == 0 and '"content"' in r.stdout, r.stderr
        r = _curl(f"https://127.0.0.1:{port}/health")  # no CA: the system store does not know ours
        assert r.returncode != 0 and "certificate" in r.stderr.lower(), r.stderr
        r = _curl("--cacert", str(certs / "ca.crt"), f"https://localhost:{port}/health")
        assert r.returncode == 0, "localhost is in the certificate too"
    finally:
        proc.terminate()
        out = proc.communicate(timeout=30)[0]
    assert stat.S_IMODE((certs / "ca.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((certs / "server.key").stat().st_mode) == 0o600
    fp = subprocess.run(["openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in", str(certs / "ca.crt")],
                        capture_output=True, text=True, check=True).stdout.strip().split("=", 1)[1]
    assert f"CA fingerprint (SHA-256): {fp}" in out, out
    assert "making a local certificate authority" in out and "trust it once" in out
    text = subprocess.run(["openssl", "x509", "-noout", "-text", "-in", str(certs / "server.crt")], capture_output=True, text=True).stdout
    assert "DNS:localhost" in text and "IP Address:127.0.0.1" in text
    subprocess.run(["openssl", "verify", "-CAfile", str(certs / "ca.crt"), str(certs / "server.crt")], check=True, capture_output=True)

    # the second run reuses them
    before = (certs / "ca.crt").read_bytes()
    r = subprocess.run([str(tls_artifact / "run.sh"), "--https", "--no-browser", "--port", "1", "--version"], env=env,
                       cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert "making a local certificate authority" not in r.stderr and fp in r.stderr, r.stderr
    assert (certs / "ca.crt").read_bytes() == before


def test_appliance_certificate_in_certs_wins(tls_artifact: Path, tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed")
    top = tmp_path / "appliance"
    shutil.copytree(tls_artifact, top, symlinks=True)
    (top / "certs").mkdir()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=appliance.local",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(top / "certs" / "server.key"),
                    "-out", str(top / "certs" / "server.crt")], check=True, capture_output=True)
    home = _home_with_model(tmp_path)
    env = user_env(home, no_python_path(_TMP))
    port = free_port()
    proc = subprocess.Popen([str(top / "run.sh"), "--https", "--no-browser", "--port", str(port)], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        ok = False
        for _ in range(240):
            r = _curl("--cacert", str(top / "certs" / "server.crt"), f"https://127.0.0.1:{port}/health")
            if r.returncode == 0:
                ok = True
                break
            if proc.poll() is not None:
                break
            subprocess.run(["sleep", "0.5"])
        assert ok
    finally:
        proc.terminate()
        out = proc.communicate(timeout=30)[0]
    assert "HTTPS with the certificate in" in out
    assert not (home / ".cache" / "locara-build" / "certs").exists(), "no local CA was made"


def test_browser_loads_the_ui_over_https(tls_artifact: Path, tmp_path: Path) -> None:
    chromium = "/usr/bin/chromium"
    if not Path(chromium).exists() or shutil.which("openssl") is None:
        pytest.skip("Debian's chromium and openssl are needed")
    from playwright.sync_api import sync_playwright
    from test_ui_browser import CHROMIUM_ARGS

    home = _home_with_model(tmp_path)
    env = user_env(home, no_python_path(_TMP))
    port = free_port()
    certs = home / ".cache" / "locara-build" / "certs"
    proc = subprocess.Popen([str(tls_artifact / "run.sh"), "--https", "--no-browser", "--port", str(port)], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for _ in range(240):
            if (certs / "ca.crt").exists() and _curl("--cacert", str(certs / "ca.crt"), f"https://127.0.0.1:{port}/health").returncode == 0:
                break
            assert proc.poll() is None
            subprocess.run(["sleep", "0.5"])
        # Chromium trusts our CA through an SPKI pin of it (--ignore-certificate-errors-spki-list
        # takes the base64 SHA-256 of a certificate's public key): nothing else is waved through.
        spki = subprocess.run(
            f"openssl x509 -in '{certs / 'server.crt'}' -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64",
            shell=True, capture_output=True, text=True, check=True).stdout.strip()
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, headless=True,
                                         args=[*CHROMIUM_ARGS, f"--ignore-certificate-errors-spki-list={spki}"])
            try:
                page = browser.new_page()
                page.goto(f"https://127.0.0.1:{port}/", wait_until="load")
                assert page.title() == "Completion · locara-server"
                assert page.evaluate("location.protocol") == "https:"
                page.fill("#n_predict", "8")
                page.fill("#text", "The lighthouse keeper")
                page.click("#complete")
                page.wait_for_function("() => document.getElementById('status').textContent.startsWith('Done')", timeout=60_000)
                assert len(page.input_value("#text")) > len("The lighthouse keeper")
            finally:
                browser.close()
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
