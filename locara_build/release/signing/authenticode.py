"""Authenticode for Windows binaries with ``osslsigncode`` (any host), before the zip is made.

Credentials (CI secrets), read through :func:`locara_build.core.redact.secret_env` so they are masked
everywhere:

* ``LOCARA_AUTHENTICODE_P12``: a path to the PKCS#12 file, or its contents base64-encoded;
* ``LOCARA_AUTHENTICODE_PASSWORD`` (or ``LOCARA_AUTHENTICODE_PASSWORD_FILE``): its password. It is
  handed to osslsigncode in a 0600 file (``-readpass``), never on the command line;
* ``LOCARA_AUTHENTICODE_TIMESTAMP_URL``: RFC 3161 server(s), space separated (default DigiCert's);
* ``LOCARA_AUTHENTICODE_CAFILE`` / ``LOCARA_AUTHENTICODE_TSA_CAFILE``: trust anchors for the check
  after signing (default: the system bundle); ``LOCARA_AUTHENTICODE_IGNORE_CDP=1`` skips CRL
  downloads (offline runners).

Two osslsigncode gotchas (Debian 12, 2.9) are handled: it refuses to overwrite ``-out`` and then
leaves the old file in place, so every signature goes to a fresh path that is renamed over the
original only after it verified; and ``verify`` exits 0 printing "Succeeded" even when the
timestamp does not verify, so the output must also say "Timestamp Server Signature verification:
ok" (else :class:`SignError`, exit 7).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from locara_build.core import log
from locara_build.core.errors import SignError
from locara_build.core.redact import register, secret_env
from locara_build.core.run import run, which
from locara_build.release.signing.secrets import names_a_file

__all__ = ["AuthenticodeConfig", "sign_windows_binaries", "sign_file", "verify_file", "windows_binaries"]

DEFAULT_TIMESTAMP_URLS = ("http://timestamp.digicert.com",)
P12_ENV = "LOCARA_AUTHENTICODE_P12"
PASSWORD_ENV = "LOCARA_AUTHENTICODE_PASSWORD"
PASSWORD_FILE_ENV = "LOCARA_AUTHENTICODE_PASSWORD_FILE"
TIMESTAMP_ENV = "LOCARA_AUTHENTICODE_TIMESTAMP_URL"
TIMEOUT = 300.0


@dataclass(frozen=True, repr=False)
class AuthenticodeConfig:
    p12: bytes  # PKCS#12 contents (secret)
    password: str  # secret
    timestamp_urls: tuple[str, ...] = DEFAULT_TIMESTAMP_URLS
    description: str = "llama-server (locara)"
    url: str = ""
    ca_file: Path | None = None
    tsa_ca_file: Path | None = None
    ignore_cdp: bool = False
    tool: str = "osslsigncode"
    extra_verify_args: tuple[str, ...] = field(default=())

    def __repr__(self) -> str:
        return f"AuthenticodeConfig(timestamp_urls={self.timestamp_urls}, p12=***, password=***)"

    @classmethod
    def from_env(cls, *, require: bool = False, p12_file: Path | None = None) -> AuthenticodeConfig | None:
        """Credentials from the environment; None when absent (unless ``require``: then SignError)."""
        raw = secret_env(P12_ENV)
        password = secret_env(PASSWORD_ENV)
        pw_file = os.environ.get(PASSWORD_FILE_ENV)
        if password is None and pw_file:
            try:
                password = Path(pw_file).read_text("utf-8").rstrip("\r\n")
            except OSError as exc:
                raise SignError(f"cannot read {PASSWORD_FILE_ENV}={pw_file}: {exc.strerror}.", hint="Check the path.") from None
            register(password)
        p12: bytes | None = None
        if p12_file is not None:
            p12 = _read(p12_file)
        elif raw:
            if names_a_file(raw):
                p12 = _read(Path(raw))
            else:
                try:
                    p12 = base64.b64decode("".join(raw.split()), validate=True)
                except (binascii.Error, ValueError):
                    raise SignError(
                        f"{P12_ENV} is neither a path to a PKCS#12 file nor base64-encoded PKCS#12 data.",
                        hint=f"Store `base64 -w0 cert.p12` in the {P12_ENV} secret.",
                    ) from None
        if p12 is None or password is None:
            if require:
                missing = [n for n, v in ((P12_ENV, p12), (PASSWORD_ENV, password)) if v is None]
                raise SignError(
                    f"Authenticode signing is required but {', '.join(missing)} is not set.",
                    hint="Provide the code-signing PKCS#12 and its password as CI secrets (see docs/signing.md), "
                    "or drop --require-signing for an unsigned test build.",
                )
            return None
        urls = tuple((os.environ.get(TIMESTAMP_ENV) or " ".join(DEFAULT_TIMESTAMP_URLS)).split())
        ca = os.environ.get("LOCARA_AUTHENTICODE_CAFILE")
        tsa_ca = os.environ.get("LOCARA_AUTHENTICODE_TSA_CAFILE")
        return cls(
            p12=p12,
            password=password,
            timestamp_urls=urls,
            url=os.environ.get("LOCARA_AUTHENTICODE_URL", ""),
            ca_file=Path(ca) if ca else None,
            tsa_ca_file=Path(tsa_ca) if tsa_ca else None,
            ignore_cdp=os.environ.get("LOCARA_AUTHENTICODE_IGNORE_CDP", "") in ("1", "true", "yes"),
        )


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SignError(f"cannot read the PKCS#12 file {path}: {exc.strerror}.", hint="Check the path.") from None


@contextlib.contextmanager
def _secret_files(config: AuthenticodeConfig) -> Iterator[tuple[Path, Path]]:
    """The PKCS#12 and password in a private 0700 temp dir (0600 files), removed afterwards."""
    register(config.password)
    tmp = Path(tempfile.mkdtemp(prefix="locara-authenticode-"))
    try:
        os.chmod(tmp, 0o700)
        p12 = tmp / "signer.p12"
        pw = tmp / "password"
        for path, data in ((p12, config.p12), (pw, config.password.encode("utf-8"))):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
        yield p12, pw
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def windows_binaries(root: Path) -> list[Path]:
    """Every PE file (.exe / .dll, starting with ``MZ``) under ``root``; symlinks are skipped."""
    found = []
    for path in sorted(root.rglob("*")):
        if path.is_symlink() or not path.is_file() or path.suffix.lower() not in (".exe", ".dll"):
            continue
        with open(path, "rb") as fh:
            if fh.read(2) == b"MZ":
                found.append(path)
    return found


def _tool(config: AuthenticodeConfig) -> str:
    tool = which(config.tool) or (config.tool if os.path.isabs(config.tool) else None)
    if tool is None:
        raise SignError(
            "osslsigncode is not installed: cannot Authenticode-sign Windows binaries.",
            hint="Install it (Debian/Ubuntu: `apt-get install osslsigncode`, macOS: `brew install osslsigncode`).",
        )
    return tool


def verify_file(path: Path, config: AuthenticodeConfig) -> str:
    """``osslsigncode verify``; the signature AND the timestamp must verify. Returns the output."""
    argv = [_tool(config), "verify", "-in", str(path)]
    if config.ca_file:
        argv += ["-CAfile", str(config.ca_file)]
    if config.tsa_ca_file:
        argv += ["-TSA-CAfile", str(config.tsa_ca_file)]
    if config.ignore_cdp:
        argv.append("-ignore-cdp")
    argv += list(config.extra_verify_args)
    res = run(argv, check=False, timeout=TIMEOUT, error=SignError)
    out = res.stdout + "\n" + res.stderr
    problems = []
    if res.returncode != 0:
        problems.append(f"osslsigncode verify exited {res.returncode}")
    if "Signature verification: ok" not in out:
        problems.append("the signature did not verify")
    if "Timestamp Server Signature verification: ok" not in out:
        problems.append("the RFC 3161 timestamp did not verify (osslsigncode still says 'Succeeded' in that case)")
    if "MISMATCH" in out:
        problems.append("the file's digest does not match its signature")
    if problems:
        tail = "\n".join(line for line in out.splitlines() if any(w in line for w in ("rror", "ailed", "verification", "MISMATCH")))
        raise SignError(
            f"Authenticode check of {path.name} failed: {'; '.join(problems)}.\n{tail}".rstrip(),
            hint="Check the timestamp server (LOCARA_AUTHENTICODE_TIMESTAMP_URL), its certificate chain "
            "(LOCARA_AUTHENTICODE_TSA_CAFILE) and the signing certificate's validity.",
        )
    return out


def sign_file(path: Path, config: AuthenticodeConfig, *, p12: Path, password_file: Path) -> None:
    """Sign ``path`` in place: sign to a fresh sibling path, verify it, then rename it over ``path``."""
    out = path.with_name(f".{path.name}.signed-{secrets.token_hex(6)}")
    argv = [_tool(config), "sign", "-pkcs12", str(p12), "-readpass", str(password_file), "-h", "sha256", "-n", config.description]
    if config.url:
        argv += ["-i", config.url]
    for url in config.timestamp_urls:
        argv += ["-ts", url]
    argv += ["-in", str(path), "-out", str(out)]
    try:
        run(argv, timeout=TIMEOUT, error=SignError, what=f"osslsigncode sign {path.name}",
            hint="Check the PKCS#12 password and that the timestamp server answers.")
        if not out.is_file():
            raise SignError(f"osslsigncode wrote no signed file for {path.name}.", hint="Run with -v to see its output.")
        verify_file(out, config)
        os.chmod(out, path.stat().st_mode & 0o777)
        os.replace(out, path)
    finally:
        out.unlink(missing_ok=True)


def sign_windows_binaries(staging_dir: Path, config: AuthenticodeConfig) -> list[Path]:
    """Sign and verify every .exe / .dll of a staged package folder (before it is zipped)."""
    files = windows_binaries(staging_dir)
    if not files:
        log.warn(f"{staging_dir}: no .exe or .dll to sign")
        return []
    with log.step(f"Authenticode-sign {len(files)} file(s) in {staging_dir.name}"), _secret_files(config) as (p12, pw):
        for path in files:
            sign_file(path, config, p12=p12, password_file=pw)
            log.info(f"signed + verified (timestamped): {path.relative_to(staging_dir)}")
    return files
