"""Secrets registry: every value registered here is replaced by ``***`` in logs, errors and argv echoes."""

from __future__ import annotations

import os
import threading

__all__ = ["register", "redact", "secret_env", "SECRET_ENV", "register_env_secrets"]

_lock = threading.Lock()
_secrets: set[str] = set()

MASK = "***"

#: Environment variables that hold credentials. They are registered (masked) as soon as the CLI
#: starts, and never passed on to child processes (builds run upstream's CMake code, smoke tests
#: run the server under test): whoever needs one reads it here and hands it over in a file.
SECRET_ENV = (
    "LOCARA_MINISIGN_KEY",
    "LOCARA_MINISIGN_PASSWORD",
    "LOCARA_AUTHENTICODE_P12",
    "LOCARA_AUTHENTICODE_PASSWORD",
    "LOCARA_NOTARY_KEY",
    "GITHUB_TOKEN",
    "LOCARA_GITHUB_TOKEN",
)


def register(value: str | bytes | None) -> None:
    """Remember ``value`` as secret. Short values (< 4 chars) are ignored to keep output readable."""
    if value is None:
        return
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    value = value.strip()
    if len(value) < 4:
        return
    with _lock:
        _secrets.add(value)


def redact(text: str) -> str:
    if not text:
        return text
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for s in secrets:
        if s in text:
            text = text.replace(s, MASK)
    return text


def secret_env(name: str) -> str | None:
    """Read a secret from the environment and register it before anyone can print it."""
    value = os.environ.get(name)
    if value:
        register(value)
    return value


def register_env_secrets() -> None:
    """Register every :data:`SECRET_ENV` value present (multi-line values, e.g. a key file's
    contents, line by line too)."""
    for name in SECRET_ENV:
        value = os.environ.get(name)
        if not value:
            continue
        register(value)
        for line in value.splitlines():
            if not line.startswith("untrusted comment:"):
                register(line)
