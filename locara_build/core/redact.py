"""Secrets registry: every value registered here is replaced by ``***`` in logs, errors and argv echoes.

Credentials inside URLs get the same treatment whether or not anyone registered them: ``redact``
masks the password of every ``scheme://user:password@host`` (the whole user part of
``https://TOKEN@host``) and the value of every credential-like query parameter (``?token=``,
``X-Amz-Signature=``, ``sig=``, ...). :func:`strip_url_credentials` is the form a URL is *recorded*
in (lock, plans, BUILDINFO.json, release.json, mirror configs): no user information, no such
parameters. :func:`register_url` does both: registers what is secret in a URL and returns the
recordable form.
"""

from __future__ import annotations

import os
import re
import threading
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

__all__ = [
    "register",
    "redact",
    "redact_urls",
    "secret_env",
    "SECRET_ENV",
    "register_env_secrets",
    "register_url",
    "strip_url_credentials",
    "url_has_credentials",
    "git_credential_env",
]

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
    return redact_urls(text)


# --- credentials in URLs --------------------------------------------------------------------------

#: Query parameters that carry credentials: presigned S3/GCS/Azure URLs, OAuth/API tokens.
_SECRET_PARAM = re.compile(
    r"(?i)(sig|signature|key|code|auth|pwd|pass|session|jwt|"
    r".*(token|secret|passw|signature|credential|api[-_]?key|access[-_]?key|auth).*)"
)
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)([^/\s@\"'<>?#]+)@")
_QUERY_PARAM = re.compile(r"([?&;])([A-Za-z0-9_.%-]+)=([^&#\s\"'<>;]*)")
_KEYLESS_USERS = frozenset({"git", "ssh", "anonymous", "ftp"})


def _secret_param(name: str) -> bool:
    return bool(_SECRET_PARAM.fullmatch(unquote(name)))


def redact_urls(text: str) -> str:
    """Mask credentials inside any URL in ``text`` (registered or not)."""
    if "://" in text and "@" in text:

        def userinfo(m: re.Match[str]) -> str:
            user, sep, _password = m[2].partition(":")
            if sep:
                return f"{m[1]}{user}:{MASK}@"
            return m[0] if user.lower() in _KEYLESS_USERS else f"{m[1]}{MASK}@"

        text = _USERINFO.sub(userinfo, text)
    if "=" in text and ("?" in text or "&" in text):
        text = _QUERY_PARAM.sub(lambda m: f"{m[1]}{m[2]}={MASK}" if m[3] and _secret_param(m[2]) else m[0], text)
    return text


def url_has_credentials(url: str) -> bool:
    return strip_url_credentials(url) != url


def _url_secrets(url: str) -> list[str]:
    try:
        parts = urlsplit(url)
        password, username = parts.password, parts.username
    except ValueError:
        return []
    found: list[str] = []
    if password:
        found.append(password)
    elif username and username.lower() not in _KEYLESS_USERS:
        found.append(username)  # https://TOKEN@host: the user part is the token
    for name, value in parse_qsl(parts.query, keep_blank_values=False):
        if _secret_param(name):
            found.append(value)
    for raw in re.findall(r"[?&;]([^=&#;]+)=([^&#;]*)", parts.query and "?" + parts.query):
        if _secret_param(raw[0]) and raw[1]:
            found.append(raw[1])
    return [*found, *(unquote(f) for f in found)]


def strip_url_credentials(url: str) -> str:
    """``url`` as it may be recorded: no ``user:password@``, no credential-like query parameters."""
    if "://" not in url:
        return url
    try:
        parts = urlsplit(url)
        has_user = parts.password is not None or (parts.username is not None and parts.username.lower() not in _KEYLESS_USERS)
    except ValueError:
        return redact_urls(url)
    netloc = parts.netloc.rsplit("@", 1)[1] if has_user else parts.netloc
    kept = [q for q in re.split(r"[&;]", parts.query) if q and not _secret_param(q.split("=", 1)[0])] if parts.query else []
    return urlunsplit((parts.scheme, netloc, parts.path, "&".join(kept), parts.fragment))


def register_url(url: str) -> str:
    """Register every credential in ``url`` as a secret; return :func:`strip_url_credentials` of it."""
    for secret in _url_secrets(url):
        register(secret)
    return strip_url_credentials(url)


def git_credential_env(recorded: str, full: str, base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment that makes git fetch ``recorded`` (what the mirror's config holds) from ``full``
    (the URL with its credentials), through ``url.<full>.insteadOf`` in ``GIT_CONFIG_*`` variables:
    the credentials never land in a config file or on a command line."""
    if recorded == full:
        return {}
    env = os.environ if base is None else base
    try:
        count = int(env.get("GIT_CONFIG_COUNT", "0"))
    except ValueError:
        count = 0
    out = {f"GIT_CONFIG_KEY_{n}": env.get(f"GIT_CONFIG_KEY_{n}", "") for n in range(count)}
    out |= {f"GIT_CONFIG_VALUE_{n}": env.get(f"GIT_CONFIG_VALUE_{n}", "") for n in range(count)}
    out |= {"GIT_CONFIG_COUNT": str(count + 1), f"GIT_CONFIG_KEY_{count}": f"url.{full}.insteadOf",
            f"GIT_CONFIG_VALUE_{count}": recorded}
    return out


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
