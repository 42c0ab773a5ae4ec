"""Verified, resumable HTTP(S) downloads (and local paths / file:// URLs) — one implementation for
``models fetch`` and ``install``.

* Data goes to ``<dest>.part`` beside the destination; an interrupted download resumes with
  ``Range: bytes=N-`` and ``If-Range: <ETag or Last-Modified>``. A ``200`` reply to a range request
  means the resource changed (or ranges are unsupported): the partial file is discarded and the
  download starts over. A ``206`` whose ``Content-Range`` does not start at N is refused.
* The whole file is hashed after the last byte (also after a resume) and compared with the
  expected sha256 / size; a mismatch deletes the partial file and raises :class:`VerifyError`.
  Only a verified file is renamed (atomically) to its destination.
* Every request has connect/read timeouts, so a stalled server fails instead of hanging.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from . import log
from .digest import sha256_file
from .errors import NetworkError, VerifyError

if TYPE_CHECKING:  # requests (+ urllib3, charset_normalizer, idna) is imported on the first download:
    import requests  # sha256_file and local paths need none of it, nor does the CLI's start-up

__all__ = ["fetch", "fetch_bytes", "sha256_file", "FetchResult", "DEFAULT_TIMEOUT"]

DEFAULT_TIMEOUT = (10.0, 30.0)  # connect, read (seconds between bytes)
CHUNK = 1 << 20  # hashing block
NET_CHUNK = 64 << 10  # network reads: small, so a cut connection loses little

Progress = Callable[[int, int | None], None]  # (bytes so far, total or None)


@dataclass(frozen=True)
class FetchResult:
    path: Path
    sha256: str
    size: int
    resumed_from: int  # bytes already present when this call started (0 = fresh)


def _is_local(url: str) -> bool:
    scheme = urlparse(url).scheme
    return scheme in ("", "file") or (len(scheme) == 1 and os.name == "nt")


def _local_path(url: str) -> Path:
    parsed = urlparse(url)
    return Path(parsed.path if parsed.scheme == "file" else url)


def _validator_path(part: Path) -> Path:
    return part.with_name(part.name + ".validator")


def fetch_bytes(url: str, *, timeout: tuple[float, float] = DEFAULT_TIMEOUT, max_size: int = 64 << 20) -> bytes:
    """Small documents (manifests, signatures). Size-capped."""
    import requests

    if _is_local(url):
        path = _local_path(url)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise NetworkError(f"cannot read {path}: {exc.strerror}.", hint="Check the path given with --from.") from None
    else:
        try:
            with requests.get(url, timeout=timeout, stream=True) as resp:
                if resp.status_code != 200:
                    raise NetworkError(
                        f"GET {url} answered HTTP {resp.status_code}.",
                        hint="Check the URL and that the release exists on the server.",
                    )
                chunks, total = [], 0
                for chunk in resp.iter_content(CHUNK):
                    total += len(chunk)
                    if total > max_size:
                        raise VerifyError(f"{url} is larger than {max_size} bytes; refusing it.", hint="Check the URL.")
                    chunks.append(chunk)
                data = b"".join(chunks)
        except requests.RequestException as exc:
            raise NetworkError(f"GET {url} failed: {_reason(exc)}.", hint="Check the network and the URL, then retry.") from None
    if len(data) > max_size:
        raise VerifyError(f"{url} is larger than {max_size} bytes; refusing it.", hint="Check the URL.")
    return data


def _reason(exc: BaseException) -> str:
    import requests

    # urllib3 reports a read timeout in the middle of a streamed body as a ConnectionError.
    if isinstance(exc, requests.Timeout) or "timed out" in str(exc).lower():
        return "timed out (the server stopped sending data)"
    if isinstance(exc, requests.ConnectionError):
        return "connection failed or was cut"
    return type(exc).__name__


def fetch(
    url: str,
    dest: Path,
    *,
    sha256: str | None,
    size: int | None = None,
    timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    progress: Progress | None = None,
) -> FetchResult:
    """Download ``url`` to ``dest`` (resuming ``dest.part``), verify, then rename into place.

    ``sha256`` may be None only for callers that verify by other means (it is then reported).
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    if _is_local(url):
        return _finish(_copy_local(url, part), dest, sha256, size, 0, url)
    import requests

    resumed_from = part.stat().st_size if part.exists() else 0
    validator_file = _validator_path(part)
    validator = validator_file.read_text().strip() if validator_file.exists() and resumed_from else ""
    if size is not None and resumed_from > size:
        part.unlink()
        resumed_from = 0
    headers = {}
    if resumed_from and validator:
        headers = {"Range": f"bytes={resumed_from}-", "If-Range": validator}
    elif resumed_from:
        part.unlink()  # no validator: we cannot prove the remote file is the same one
        resumed_from = 0
    try:
        with requests.get(url, headers=headers, timeout=timeout, stream=True) as resp:
            if resp.status_code == 416 and size is not None and resumed_from == size:
                pass  # already complete
            elif resp.status_code == 206 and resumed_from:
                content_range = resp.headers.get("Content-Range", "")
                if not content_range.startswith(f"bytes {resumed_from}-"):
                    raise VerifyError(
                        f"{url}: asked for bytes from {resumed_from} but the server sent `{content_range}`.",
                        hint="The server's range support is broken; delete the .part file to start over.",
                    )
                _write(resp, part, "ab", resumed_from, size, progress)
            elif resp.status_code == 200:
                if resumed_from:
                    log.detail(f"{url}: server sent the whole file (changed or no ranges); starting over")
                resumed_from = 0
                tag = resp.headers.get("ETag") or resp.headers.get("Last-Modified") or ""
                if tag and not tag.startswith("W/"):
                    validator_file.write_text(tag)
                else:
                    validator_file.unlink(missing_ok=True)
                _write(resp, part, "wb", 0, size, progress)
            else:
                raise NetworkError(
                    f"GET {url} answered HTTP {resp.status_code}.",
                    hint="Check the URL and that the file exists on the server; run again to resume.",
                )
    except requests.RequestException as exc:
        have = part.stat().st_size if part.exists() else 0
        raise NetworkError(
            f"download of {url} failed after {have} bytes: {_reason(exc)}.",
            hint="Run the same command again: the download resumes from the partial file.",
        ) from None
    return _finish(part, dest, sha256, size, resumed_from, url)


def _write(
    resp: requests.Response, part: Path, mode: str, start: int, size: int | None, progress: Progress | None
) -> None:
    total = size
    if total is None:
        length = resp.headers.get("Content-Length")
        total = start + int(length) if length and length.isdigit() else None
    done = start
    with open(part, mode) as fh:
        for chunk in resp.iter_content(NET_CHUNK):
            fh.write(chunk)
            done += len(chunk)
            if size is not None and done > size:
                break  # oversized: verification below rejects it
            if progress:
                progress(done, total)
        fh.flush()
        os.fsync(fh.fileno())


def _copy_local(url: str, part: Path) -> Path:
    src = _local_path(url)
    try:
        shutil.copyfile(src, part)
    except OSError as exc:
        raise NetworkError(f"cannot read {src}: {exc.strerror}.", hint="Check the path.") from None
    return part


def _finish(part: Path, dest: Path, sha256: str | None, size: int | None, resumed_from: int, url: str) -> FetchResult:
    actual_size = part.stat().st_size
    if size is not None and actual_size != size:
        part.unlink(missing_ok=True)
        _validator_path(part).unlink(missing_ok=True)
        raise VerifyError(
            f"{url}: got {actual_size} bytes, expected {size}; the file was discarded.",
            hint="The server sent a truncated or altered file. Run again; if it persists, the mirror is bad.",
        )
    digest = sha256_file(part)
    if sha256 is not None and digest != sha256.lower():
        part.unlink(missing_ok=True)
        _validator_path(part).unlink(missing_ok=True)
        raise VerifyError(
            f"{url}: sha256 mismatch (expected {sha256}, got {digest}); the file was discarded and not used.",
            hint="The file was tampered with or corrupted in transit. Do not use this mirror until it is fixed.",
        )
    os.replace(part, dest)
    _validator_path(part).unlink(missing_ok=True)
    return FetchResult(dest, digest, actual_size, resumed_from)
