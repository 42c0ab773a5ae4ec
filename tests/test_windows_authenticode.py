"""Authenticode on our real cross-built ``llama-server.exe``: the release engineer's signer
(:mod:`locara_build.release.signing.authenticode`, osslsigncode) signs it with a throwaway CA and an RFC 3161
timestamp from a throwaway TSA on 127.0.0.1, and verifies both.

The .exe comes from the slow Windows build (tests/test_windows_build.py) or ``$LOCARA_TEST_WINDOWS_EXE``;
without one, a tiny PE cross-built with zig stands in (seconds), so this runs wherever zig and
osslsigncode exist.
"""

from __future__ import annotations

import http.server
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from locara_build.core.errors import SignError

pytestmark = pytest.mark.skipif(
    shutil.which("osslsigncode") is None or shutil.which("openssl") is None, reason="needs osslsigncode and openssl"
)


def _ossl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _ca(d: Path) -> None:
    """CA -> code-signing cert (p12) and TSA cert, all throwaway."""
    _ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "3",
          "-subj", "/CN=locara throwaway test CA", "-addext", "basicConstraints=critical,CA:TRUE",
          "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    for name, eku in (("cs", "codeSigning"), ("tsa", "critical,timeStamping")):
        (d / f"{name}.ext").write_text(
            f"basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage={eku}\n"
            "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
        )
        _ossl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
              "-subj", f"/CN=locara throwaway {name}", cwd=d)
        _ossl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
              "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext", cwd=d)
    _ossl("pkcs12", "-export", "-inkey", "cs.key", "-in", "cs.crt", "-certfile", "ca.crt", "-out", "cs.p12",
          "-passout", "pass:throwaway", "-name", "locara test", cwd=d)
    (d / "tsa.cnf").write_text(
        "[ tsa ]\ndefault_tsa = tsa1\n[ tsa1 ]\n"
        f"serial = {d / 'tsaserial'}\nsigner_cert = {d / 'tsa.crt'}\nsigner_key = {d / 'tsa.key'}\n"
        f"certs = {d / 'ca.crt'}\nsigner_digest = sha256\ndefault_policy = 1.3.6.1.4.1.99999.1\n"
        "digests = sha256, sha384, sha512\naccuracy = secs:1\nordering = no\ntsa_name = no\n"
        "ess_cert_id_chain = no\ness_cert_id_alg = sha256\n"
    )
    (d / "tsaserial").write_text("01\n")


@pytest.fixture
def tsa(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    d = tmp_path / "pki"
    d.mkdir()
    _ca(d)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server API
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            query, reply = d / "q.tsq", d / "r.tsr"
            query.write_bytes(body)
            subprocess.run(["openssl", "ts", "-reply", "-config", str(d / "tsa.cnf"), "-queryfile", str(query),
                            "-out", str(reply)], check=True, capture_output=True)
            data = reply.read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "application/timestamp-reply")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield d, f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def _exe(tmp_path: Path) -> Path:
    given = os.environ.get("LOCARA_TEST_WINDOWS_EXE")
    if given and Path(given).is_file():
        return Path(given)
    from test_backends_slow import built_windows_exe

    found = built_windows_exe()
    if found is not None:
        return found
    from locara_build.build.toolchains import zig

    z = zig.find()
    if z is None:
        pytest.skip("no llama-server.exe built and no zig to make a stand-in PE")
    src = tmp_path / "hello.c"
    src.write_text('#include <stdio.h>\nint main(void){puts("hello");return 0;}\n')
    out = tmp_path / "hello.exe"
    env = {**os.environ, **zig.plan_env()}
    subprocess.run([str(z.path), "cc", "-target", "x86_64-windows-gnu", "-o", str(out), str(src)], check=True, env=env)
    return out


def test_real_exe_signs_and_verifies(tmp_path: Path, tsa: tuple[Path, str]) -> None:
    from locara_build.release.signing.authenticode import (
        AuthenticodeConfig,
        sign_windows_binaries,
        verify_file,
    )

    pki, url = tsa
    staged = tmp_path / "staged" / "bin"
    staged.mkdir(parents=True)
    exe = staged / "llama-server.exe"
    shutil.copy2(_exe(tmp_path), exe)
    before = exe.read_bytes()
    config = AuthenticodeConfig(
        p12=(pki / "cs.p12").read_bytes(),
        password="throwaway",
        timestamp_urls=(url,),
        ca_file=pki / "ca.crt",
        tsa_ca_file=pki / "ca.crt",
        ignore_cdp=True,
    )
    signed = sign_windows_binaries(staged.parent, config)
    assert signed == [exe]
    after = exe.read_bytes()
    assert after != before and len(after) > len(before)
    out = verify_file(exe, config)
    assert "Signature verification: ok" in out and "Timestamp Server Signature verification: ok" in out
    # a byte changed after signing is caught
    tampered = tmp_path / "tampered.exe"
    data = bytearray(after)
    data[len(data) // 3] ^= 0xFF
    tampered.write_bytes(bytes(data))
    with pytest.raises(SignError):
        verify_file(tampered, config)
