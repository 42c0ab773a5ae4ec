"""Where signing keys come from (release side) and which public keys are trusted (install side).

Release side: the secret key is read from ``--key FILE`` or ``$LOCARA_MINISIGN_KEY`` (the whole key
file's contents, as a CI secret), its password from ``$LOCARA_MINISIGN_PASSWORD`` or an interactive
prompt. Both are registered as secrets before anything else touches them.

Install side: the project's public keys pinned in ``locara_build/resources/keys/*.pub`` (several
during a key rotation), plus keys the user adds with ``--trust FILE`` or ``$LOCARA_TRUSTED_KEYS``
(paths separated by ``os.pathsep``).
"""

from __future__ import annotations

import base64
import binascii
import getpass
import os
import sys
import threading
from importlib import resources
from pathlib import Path

from locara_build.core.errors import ConfigError
from locara_build.core.redact import register, secret_env
from locara_build.release.signing.minisign import (
    INTERACTIVE,
    SENSITIVE,
    KdfLimits,
    PublicKey,
    SecretKey,
    generate,
)

__all__ = [
    "KEY_ENV",
    "PASSWORD_ENV",
    "TRUST_ENV",
    "load_signing_key",
    "pinned_keys",
    "trusted_keys",
    "write_keypair",
    "read_password",
]

KEY_ENV = "LOCARA_MINISIGN_KEY"
PASSWORD_ENV = "LOCARA_MINISIGN_PASSWORD"
TRUST_ENV = "LOCARA_TRUSTED_KEYS"


def read_password(*, confirm: bool = False, prompt: str = "Password for the minisign secret key: ") -> str | None:
    """``$LOCARA_MINISIGN_PASSWORD``, else ask on the terminal (never echoed); None without either."""
    value = secret_env(PASSWORD_ENV)
    if value is not None:
        return value
    if not sys.stdin.isatty():
        return None
    first = getpass.getpass(prompt)
    register(first)
    if confirm:
        again = getpass.getpass("Repeat the password: ")
        if again != first:
            raise ConfigError("the two passwords differ.", hint="Run the command again.")
    return first


def load_signing_key(key_file: Path | None = None) -> SecretKey:
    """The release signing key from ``key_file``, else from ``$LOCARA_MINISIGN_KEY``."""
    text, password, source = _read_signing_key(key_file)
    return SecretKey.from_text(text, password, source=source)


class PendingSigningKey:
    """A signing key whose file, shape and password were checked at once, and whose decryption
    (minisign's scrypt: ~6 s and 1 GiB here) runs in a background thread meanwhile. ``weekly`` only
    waits for it once there is work to do, so a run with nothing to do never pays for it."""

    def __init__(self, key_file: Path | None = None) -> None:
        text, password, source = _read_signing_key(key_file)
        SecretKey.check_text(text, password, source=source)
        self._key: SecretKey | None = None
        self._error: BaseException | None = None

        def derive() -> None:
            try:
                self._key = SecretKey.from_text(text, password, source=source)
            except BaseException as exc:  # handed to the thread that asks for the key
                self._error = exc

        # a daemon: a run that ends (up to date, Ctrl-C) does not wait for the key derivation
        self._thread = threading.Thread(target=derive, name="signing-key", daemon=True)
        self._thread.start()

    def result(self) -> SecretKey:
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._key is not None
        return self._key


def _read_signing_key(key_file: Path | None) -> tuple[str, str | None, str]:
    """The key's text, its password (asked for on a terminal when it is encrypted) and where it came from."""
    if key_file is not None:
        try:
            text = key_file.read_text("utf-8")
        except OSError as exc:
            raise ConfigError(
                f"cannot read the signing key {key_file}: {exc.strerror}.",
                hint="Pass the secret key written by `locara-build keys generate` with --key, or set LOCARA_MINISIGN_KEY.",
            ) from None
        except UnicodeDecodeError:  # a binary file: never echo its bytes, it may be key material
            raise ConfigError(
                f"{key_file}: not a minisign secret key (not text).",
                hint="Pass the secret key written by `locara-build keys generate` with --key, or set LOCARA_MINISIGN_KEY.",
            ) from None
        source = str(key_file)
    else:
        env = secret_env(KEY_ENV)
        if not env:
            raise ConfigError(
                "no signing key: neither --key FILE nor LOCARA_MINISIGN_KEY is set.",
                hint="Create one with `locara-build keys generate`, then pass --key FILE (or, in CI, put the key "
                "file's contents in the LOCARA_MINISIGN_KEY secret and its password in LOCARA_MINISIGN_PASSWORD).",
            )
        text = env
        source = f"${KEY_ENV}"
    for line in text.splitlines():  # the key material (not the comment line), wherever it might be quoted
        if line.strip() and not line.startswith("untrusted comment:"):
            register(line)
    password = secret_env(PASSWORD_ENV)
    if password is None and _is_encrypted(text) and sys.stdin.isatty():
        password = read_password()
    return text, password, source


def _is_encrypted(text: str) -> bool:
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("untrusted comment:"):
            try:
                return base64.b64decode(line)[2:4] == b"Sc"
            except (binascii.Error, ValueError):
                return False
    return False


def write_keypair(
    secret_path: Path,
    public_path: Path,
    *,
    password: str | None,
    limits: KdfLimits = SENSITIVE,
    force: bool = False,
) -> SecretKey:
    """Generate a keypair; the secret key file is created 0600 and never overwritten without ``force``."""
    for path in (secret_path, public_path):
        if path.exists() and not force:
            raise ConfigError(
                f"{path} already exists; not overwriting a key.",
                hint="Choose another --out/--name, or pass --force if you really mean to replace it.",
            )
    key = generate()
    secret_path.parent.mkdir(parents=True, exist_ok=True)
    public_path.parent.mkdir(parents=True, exist_ok=True)
    text = key.to_text(password, limits=limits)
    tmp = secret_path.with_name(f".{secret_path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, secret_path)
    public_path.write_text(key.public_key.to_text(), encoding="utf-8")
    return key


def pinned_keys() -> list[PublicKey]:
    """The project's public keys built into the tool (``resources/keys/*.pub``)."""
    keys = []
    base = resources.files("locara_build").joinpath("resources", "keys")
    if not base.is_dir():
        return keys
    for entry in sorted(base.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".pub") and entry.is_file():
            keys.append(PublicKey.from_text(entry.read_text("utf-8"), source=f"built-in key {entry.name}"))
    return keys


def trusted_keys(extra: list[Path] | None = None, *, builtin: bool = True) -> list[PublicKey]:
    """Pinned keys + ``--trust`` files + ``$LOCARA_TRUSTED_KEYS`` files."""
    keys = pinned_keys() if builtin else []
    paths = list(extra or [])
    env = os.environ.get(TRUST_ENV, "")
    paths += [Path(p) for p in env.split(os.pathsep) if p.strip()]
    for path in paths:
        keys.append(PublicKey.from_file(path))
    if not keys:
        raise ConfigError(
            "no trusted public key: nothing is built in and none was given.",
            hint="Pass --trust KEY.pub (the project's minisign public key).",
        )
    return keys


KDF_CHOICES = {"sensitive": SENSITIVE, "interactive": INTERACTIVE}
