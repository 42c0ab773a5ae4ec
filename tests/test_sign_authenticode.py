"""Authenticode with the real osslsigncode on real PE files compiled here with mingw-w64, a throwaway
CA made in the test, and a real RFC 3161 timestamp server on 127.0.0.1 (``openssl ts -reply``)."""

from __future__ import annotations

import base64
import datetime as dt
import json
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from locara_build.core.errors import SignError
from locara_build.release.signing import sign_staged
from locara_build.release.signing.authenticode import AuthenticodeConfig, verify_file

P12_PASSWORD = "p12-pass-7d1c"
MINGW = shutil.which("x86_64-w64-mingw32-gcc")
pytestmark = pytest.mark.skipif(
    MINGW is None or shutil.which("osslsigncode") is None,
    reason="needs mingw-w64 (to compile a real PE) and osslsigncode (Debian packages)",
)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject: str, key, issuer_cert, issuer_key, *, ca: bool = False, eku=None, not_before=None):
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_cert.subject if issuer_cert is not None else _name(subject))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
    else:
        builder = builder.add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
        builder = builder.add_extension(x509.ExtendedKeyUsage([eku]), critical=eku == ExtendedKeyUsageOID.TIME_STAMPING)
    return builder.sign(issuer_key or key, hashes.SHA256())


def _pem(obj) -> bytes:
    if isinstance(obj, x509.Certificate):
        return obj.public_bytes(serialization.Encoding.PEM)
    return obj.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


@dataclass
class PKI:
    dir: Path
    ca_file: Path
    p12: bytes
    tsa_url: str
    future_tsa_url: str


class _TSAHandler(BaseHTTPRequestHandler):
    server: _TSAServer

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        query = self.rfile.read(int(self.headers["Content-Length"]))
        with tempfile.TemporaryDirectory() as d:
            (Path(d) / "q.tsq").write_bytes(query)
            subprocess.run(["openssl", "ts", "-reply", "-queryfile", f"{d}/q.tsq", "-config", str(self.server.config),
                            "-out", f"{d}/r.tsr"], check=True, capture_output=True)
            body = (Path(d) / "r.tsr").read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "application/timestamp-reply")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _TSAServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, config: Path):
        super().__init__(("127.0.0.1", 0), _TSAHandler)
        self.config = config


def _tsa_config(d: Path, name: str, cert: Path, key: Path, ca: Path) -> Path:
    (d / f"{name}.serial").write_text("01\n")
    cfg = d / f"{name}.cnf"
    cfg.write_text(f"""[ tsa ]
default_tsa = tsa_config1
[ tsa_config1 ]
serial = {d / f'{name}.serial'}
crypto_device = builtin
signer_cert = {cert}
certs = {ca}
signer_key = {key}
signer_digest = sha256
default_policy = 1.2.3.4.1
other_policies = 1.2.3.4.5
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = yes
tsa_name = no
ess_cert_id_chain = no
ess_cert_id_alg = sha256
""")
    return cfg


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory):
    d = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("Locara Test Root CA", ca_key, None, None, ca=True)
    signer_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    signer = _cert("Locara Test Code Signing", signer_key, ca, ca_key, eku=ExtendedKeyUsageOID.CODE_SIGNING)
    tsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    tsa = _cert("Locara Test TSA", tsa_key, ca, ca_key, eku=ExtendedKeyUsageOID.TIME_STAMPING)
    # a TSA whose certificate only becomes valid tomorrow: its timestamps cannot verify
    future = _cert("Locara Future TSA", tsa_key, ca, ca_key, eku=ExtendedKeyUsageOID.TIME_STAMPING,
                   not_before=dt.datetime.now(dt.UTC) + dt.timedelta(days=1))
    (d / "ca.pem").write_bytes(_pem(ca))
    (d / "tsa.pem").write_bytes(_pem(tsa))
    (d / "future.pem").write_bytes(_pem(future))
    (d / "tsa.key").write_bytes(_pem(tsa_key))
    p12 = pkcs12.serialize_key_and_certificates(
        b"signer", signer_key, signer, [ca], serialization.BestAvailableEncryption(P12_PASSWORD.encode()))
    servers = [_TSAServer(_tsa_config(d, n, d / f"{n}.pem", d / "tsa.key", d / "ca.pem")) for n in ("tsa", "future")]
    for srv in servers:
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    urls = [f"http://127.0.0.1:{s.server_address[1]}/" for s in servers]
    yield PKI(d, d / "ca.pem", p12, urls[0], urls[1])
    for srv in servers:
        srv.shutdown()
        srv.server_close()


@pytest.fixture(scope="module")
def pe_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    d = tmp_path_factory.mktemp("pe")
    (d / "main.c").write_text('#include <stdio.h>\nint main(void){puts("llama-server stand-in");return 0;}\n')
    (d / "lib.c").write_text("__declspec(dllexport) int ggml_fake(void){return 42;}\n")
    subprocess.run([MINGW, "-O1", "-o", str(d / "llama-server.exe"), str(d / "main.c")], check=True)
    subprocess.run([MINGW, "-shared", "-O1", "-o", str(d / "ggml-cpu.dll"), str(d / "lib.c")], check=True)
    return {n: (d / n).read_bytes() for n in ("llama-server.exe", "ggml-cpu.dll")}


def _staged(tmp_path: Path, pe_files: dict[str, bytes]) -> Path:
    top = tmp_path / "locara-server-2026.10.01-g0c1e570-r1-windows-x86_64-cpu"
    (top / "bin").mkdir(parents=True)
    for name, data in pe_files.items():
        (top / "bin" / name).write_bytes(data)
        (top / "bin" / name).chmod(0o755)
    (top / "run.cmd").write_text("@bin\\llama-server.exe %*\r\n")
    return top


def _env(pki: PKI, tsa_url: str) -> dict[str, str]:
    return {
        "LOCARA_AUTHENTICODE_P12": base64.b64encode(pki.p12).decode(),
        "LOCARA_AUTHENTICODE_PASSWORD": P12_PASSWORD,
        "LOCARA_AUTHENTICODE_TIMESTAMP_URL": tsa_url,
        "LOCARA_AUTHENTICODE_CAFILE": str(pki.ca_file),
        "LOCARA_AUTHENTICODE_TSA_CAFILE": str(pki.ca_file),
        "LOCARA_AUTHENTICODE_IGNORE_CDP": "1",
    }


def _independent_verify(path: Path, ca: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["osslsigncode", "verify", "-in", str(path), "-CAfile", str(ca), "-TSA-CAfile", str(ca),
                           "-ignore-cdp"], capture_output=True, text=True)


def test_sign_staged_package_with_timestamp(pki: PKI, pe_files, tmp_path: Path, cli) -> None:
    top = _staged(tmp_path, pe_files)
    res = cli("-v", "--json", "sign", str(top), "--kind", "authenticode", "--require-signing", env=_env(pki, pki.tsa_url))
    assert res.returncode == 0, res.stderr
    assert sorted(json.loads(res.stdout)["files"]) == ["bin/ggml-cpu.dll", "bin/llama-server.exe"]
    # the password never reaches a command line or the log; osslsigncode read it from a file
    assert P12_PASSWORD not in res.stdout + res.stderr
    assert "-readpass" in res.stderr and "-ts " + pki.tsa_url in res.stderr
    for name in pe_files:
        signed = top / "bin" / name
        assert signed.read_bytes() != pe_files[name]
        out = _independent_verify(signed, pki.ca_file)
        assert out.returncode == 0 and "Timestamp Server Signature verification: ok" in out.stdout, out.stdout
        assert "Text description: llama-server (locara)" in out.stdout
    assert (top / "bin" / "llama-server.exe").stat().st_mode & 0o111, "the exec bit survives"
    assert sorted(p.name for p in (top / "bin").iterdir()) == sorted(pe_files), "no temp files left"
    # signing an already signed tree again (a re-run) replaces the signature
    res = cli("sign", str(top), "--kind", "authenticode", env=_env(pki, pki.tsa_url))
    assert res.returncode == 0, res.stderr
    assert "Number of verified signatures: 1" in _independent_verify(top / "bin" / "llama-server.exe", pki.ca_file).stdout


def test_timestamp_that_does_not_verify_fails_although_osslsigncode_says_succeeded(
    pki: PKI, pe_files, tmp_path: Path, cli
) -> None:
    top = _staged(tmp_path, pe_files)
    # the gotcha itself: osslsigncode verify exits 0 and prints "Succeeded" for this file
    probe = tmp_path / "probe.exe"
    probe.write_bytes(pe_files["llama-server.exe"])
    pw = tmp_path / "pw"
    pw.write_text(P12_PASSWORD)
    (tmp_path / "s.p12").write_bytes(pki.p12)
    subprocess.run(["osslsigncode", "sign", "-pkcs12", str(tmp_path / "s.p12"), "-readpass", str(pw), "-h", "sha256",
                    "-ts", pki.future_tsa_url, "-in", str(probe), "-out", str(tmp_path / "probe-signed.exe")],
                   check=True, capture_output=True)
    raw = _independent_verify(tmp_path / "probe-signed.exe", pki.ca_file)
    assert raw.returncode == 0 and "Succeeded" in raw.stdout
    assert "Timestamp Server Signature verification: failed" in raw.stdout
    # ... and locara-build refuses it: exit 7, the binaries untouched
    res = cli("sign", str(top), "--kind", "authenticode", "--require-signing", env=_env(pki, pki.future_tsa_url))
    assert res.returncode == 7, res.stderr
    assert "timestamp did not verify" in res.stderr
    for name, data in pe_files.items():
        assert (top / "bin" / name).read_bytes() == data
    assert sorted(p.name for p in (top / "bin").iterdir()) == sorted(pe_files)


def test_missing_or_wrong_credentials(pki: PKI, pe_files, tmp_path: Path, cli, monkeypatch: pytest.MonkeyPatch) -> None:
    top = _staged(tmp_path, pe_files)
    empty = {"LOCARA_AUTHENTICODE_P12": "", "LOCARA_AUTHENTICODE_PASSWORD": ""}
    res = cli("sign", str(top), "--kind", "authenticode", "--require-signing", env=empty)
    assert res.returncode == 7 and "LOCARA_AUTHENTICODE_P12" in res.stderr
    res = cli("--json", "sign", str(top), "--kind", "authenticode", env=empty)
    assert res.returncode == 0 and '"skipped"' in res.stdout and "left unsigned" in res.stderr
    wrong = {**_env(pki, pki.tsa_url), "LOCARA_AUTHENTICODE_PASSWORD": "not-the-p12-password"}
    res = cli("sign", str(top), "--kind", "authenticode", env=wrong)
    assert res.returncode == 7 and "not-the-p12-password" not in res.stderr
    for name, data in pe_files.items():
        assert (top / "bin" / name).read_bytes() == data
    # a signed file altered afterwards does not verify
    for k, v in _env(pki, pki.tsa_url).items():
        monkeypatch.setenv(k, v)
    report = sign_staged("authenticode", top, require=True)
    assert report.status == "signed"
    exe = top / "bin" / "llama-server.exe"
    data = bytearray(exe.read_bytes())
    data[0x200] ^= 0xFF
    exe.write_bytes(bytes(data))
    config = AuthenticodeConfig.from_env()
    assert config is not None and P12_PASSWORD not in repr(config)
    with pytest.raises(SignError, match="failed"):
        verify_file(exe, config)
