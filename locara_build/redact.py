"""Secrets registry: every value registered here is replaced by ``***`` in logs, errors and argv echoes."""

from __future__ import annotations

import os
import threading

__all__ = ["register", "redact", "secret_env"]

_lock = threading.Lock()
_secrets: set[str] = set()

MASK = "***"


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
