"""Verified, resumable HTTP(S) downloads (and local paths / file:// URLs) — one implementation for
``models fetch`` and ``install``.

* Data goes to ``<dest>.part`` beside the destination; an interrupted download resumes with
  ``Range: bytes=N-`` and ``If-Range: <ETag or Last-Modified>``. A ``200`` reply to a range request
  means the resource changed (or ranges are unsupported): the partial file is discarded and the
  download starts over. A ``206`` whose ``Content-Range`` does not start at N is refused.
* A partial file is resumed only from the source that produced it: ``<dest>.part.validator`` holds
  the sha256 of the URL (never the URL: it may carry credentials) and its validator. Another URL
  (the next mirror, another ``--from``) starts over, so one mirror's bytes never end up in a file
  finished by another, and a sha256 mismatch always names the mirror that sent the bytes.
* The whole file is hashed after the last byte (also after a resume) and compared with the
  expected sha256 / size; a mismatch deletes the partial file and raises :class:`VerifyError`.
  Only a verified file is renamed (atomically) to its destination.
* Every request has connect/read timeouts, so a stalled server fails instead of hanging, and an
  overall deadline (:func:`deadline_for`: connect + read timeout + expected size / ``MIN_RATE``), so
  a server dribbling one byte a second fails too (exit 9, the mirror named). A watchdog shuts the
  socket down at the deadline, wherever the download is (headers, a half-read block).
* Local mirrors and ``file://`` are untrusted input as well: only regular files are read (a
  symlink to ``/dev/zero``, a FIFO, a device or a directory is refused), never more bytes than the
  signed size or the document's cap, under the same deadline; a refused copy leaves no ``.part``.
* URLs are shown and recorded without ``user:password@`` and with query values masked
  (:func:`redact_url`); those secrets are also registered with :mod:`locara_build.core.redact`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import stat
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

from locara_build.core import hostos, log, redact
from locara_build.core.digest import sha256_file
from locara_build.core.errors import DiskFullError, NetworkError, VerifyError

if TYPE_CHECKING:  # requests (+ urllib3, charset_normalizer, idna) is imported on the first download:
    import requests  # sha256_file and local paths need none of it, nor does the CLI's start-up

__all__ = [
    "fetch", "fetch_bytes", "sha256_file", "FetchResult", "DEFAULT_TIMEOUT", "MIN_RATE", "deadline_for", "redact_url",
    "register_url_secrets",
]

DEFAULT_TIMEOUT = (10.0, 30.0)  # connect, read (seconds between bytes)
CHUNK = 1 << 20  # hashing block
NET_CHUNK = 64 << 10  # network reads: small, so a cut connection loses little
#: The slowest transfer a download may average (bytes/s): the overall deadline is the connect and
#: read timeouts plus the expected size at this rate. ``$LOCARA_MIN_RATE`` (bytes/s) lowers or raises it.
MIN_RATE = 32 << 10
MIN_RATE_ENV = "LOCARA_MIN_RATE"

Progress = Callable[[int, int | None], None]  # (bytes so far, total or None)


@dataclass(frozen=True)
class FetchResult:
    path: Path
    sha256: str
    size: int
    resumed_from: int  # bytes already present when this call started (0 = fresh)


# --- URLs -------------------------------------------------------------------------------------------


def _is_local(url: str) -> bool:
    scheme = urlsplit(url).scheme
    return scheme in ("", "file") or (len(scheme) == 1 and hostos.is_windows())


def _local_path(url: str) -> Path:
    parsed = urlsplit(url)
    return Path(unquote(parsed.path) if parsed.scheme == "file" else url)


def redact_url(url: str) -> str:
    """``url`` fit to print or record: no ``user:password@``, query values masked, no fragment."""
    if _is_local(url) and not url.startswith("file:"):
        return url
    try:
        p = urlsplit(url)
        host = p.hostname or ""
        port = p.port
    except ValueError:
        return "<unparseable URL>"
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    if p.username is not None or p.password is not None or "@" in p.netloc:
        netloc = "***@" + netloc
    query = "&".join(f"{k}=***" for k, _ in parse_qsl(p.query, keep_blank_values=True)) if p.query else ""
    if p.query and not query:
        query = "***"
    return urlunsplit((p.scheme, netloc, p.path, query, ""))


def register_url_secrets(url: str) -> None:
    """Mask the URL's user, password and query values wherever the CLI prints (log, errors, --json)."""
    try:
        p = urlsplit(url)
        user, password = p.username, p.password
    except ValueError:
        return
    for value in (user, password, *(v for _, v in parse_qsl(p.query, keep_blank_values=True))):
        if value:
            redact.register(value)
            redact.register(unquote(value))


# --- the overall deadline ---------------------------------------------------------------------------


def min_rate() -> float:
    raw = os.environ.get(MIN_RATE_ENV, "")
    try:
        rate = float(raw) if raw else MIN_RATE
    except ValueError:
        rate = MIN_RATE
    return rate if rate > 0 else MIN_RATE


def deadline_for(size: int | None, timeout: tuple[float, float] = DEFAULT_TIMEOUT) -> float:
    """Seconds a whole transfer of ``size`` bytes may take: connect + read timeout + size / min rate."""
    return timeout[0] + timeout[1] + max(size or 0, 0) / min_rate()


def _deadline_error(url: str, seconds: float, have: int, size: int | None) -> NetworkError:
    expected = f"{size} bytes" if size is not None else "the file"
    return NetworkError(
        f"download of {redact_url(url)} did not finish within its {seconds:.0f} s deadline ({expected} at no less than "
        f"{min_rate() / 1024:.0f} KiB/s, plus the timeouts); got {have} bytes: the mirror is too slow or stalling on purpose.",
        hint=f"Try another mirror, or on a slow link raise ${MIN_RATE_ENV} (bytes/s) / --timeout and run again "
        "(a partial download resumes).",
        details={"mirror": redact_url(url), "deadline_s": round(seconds, 1), "bytes": have},
    )


class _Watchdog:
    """Shuts down every socket of one transfer when its deadline passes (a blocked recv returns).
    The deadline may move later (:meth:`extend`) for a download whose size was not known up front."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.start = time.monotonic()
        self.deadline = self.start + seconds
        self.expired = False
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="download-deadline", daemon=True)

    def extend(self, seconds: float) -> None:
        """Allow ``seconds`` in all (from the start), if that is later than now allowed."""
        with self._lock:
            if seconds > self.seconds:
                self.seconds = seconds
                self.deadline = self.start + seconds

    def add(self, sock: socket.socket) -> None:
        with self._lock:
            self._socks.append(sock)
            if self.expired:
                self._shut(sock)

    @staticmethod
    def _shut(sock: socket.socket) -> None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _run(self) -> None:
        while not self._stop.wait(max(0.0, min(self.deadline - time.monotonic(), 1.0))):
            if time.monotonic() >= self.deadline:
                with self._lock:
                    self.expired = True
                    for sock in self._socks:
                        self._shut(sock)
                return

    def __enter__(self) -> _Watchdog:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()


def _session(watch: _Watchdog) -> requests.Session:
    """A requests session whose every socket (direct or through a proxy) is handed to ``watch``."""
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    class _Conn(HTTPConnection):
        def _new_conn(self) -> socket.socket:
            sock = super()._new_conn()
            watch.add(sock)
            return sock

    class _TLSConn(HTTPSConnection):
        def _new_conn(self) -> socket.socket:
            sock = super()._new_conn()
            watch.add(sock)
            return sock

    class _Pool(HTTPConnectionPool):
        ConnectionCls = _Conn

    class _TLSPool(HTTPSConnectionPool):
        ConnectionCls = _TLSConn

    pools = {"http": _Pool, "https": _TLSPool}

    class _Adapter(HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = pools

        def proxy_manager_for(self, *args: Any, **kwargs: Any) -> Any:
            manager = super().proxy_manager_for(*args, **kwargs)
            manager.pool_classes_by_scheme = pools
            return manager

    session = requests.Session()
    session.mount("http://", _Adapter())
    session.mount("https://", _Adapter())
    return session


# --- local files ------------------------------------------------------------------------------------

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _not_regular(path: Path, mode: int) -> VerifyError:
    kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
    return VerifyError(
        f"{path} is {kind}, not a regular file: a release mirror or model source holds plain files only; refusing to read it.",
        hint="Point --from / the URL at a folder of real files (a copy of the release), not at links to devices or pipes.",
        details={"file": str(path), "kind": kind},
    )


def _too_big(where: str, size: int, cap: int, what: str) -> VerifyError:
    return VerifyError(
        f"{where} is larger than {what} ({size} > {cap} bytes); refusing it.",
        hint="The mirror serves a different or padded file. Use another mirror.",
        details={"file": where, "size": size, "limit": cap},
    )


def _open_local(url: str) -> tuple[Path, int, int]:
    """(path, fd, size) of a local regular file; anything else is refused before a byte is read."""
    path = _local_path(url)
    try:
        st = os.stat(path)  # follows symlinks: a link to /dev/zero is judged by what it points at
    except OSError as exc:
        raise NetworkError(f"cannot read {path}: {exc.strerror}.", hint="Check the path given with --from / the URL.",
                           details={"errno": exc.errno}) from None
    if not stat.S_ISREG(st.st_mode):
        raise _not_regular(path, st.st_mode)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise NetworkError(f"cannot read {path}: {exc.strerror}.", hint="Check the path given with --from / the URL.") from None
    st = os.fstat(fd)  # the file actually opened (swapped since the stat above?)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise _not_regular(path, st.st_mode)
    return path, fd, st.st_size


def _read_local(fd: int, path: Path, cap: int, what: str, deadline: float, seconds: float) -> Iterator[bytes]:
    """The file's bytes in blocks; never more than ``cap``, never past the deadline."""
    got = 0
    with os.fdopen(fd, "rb", buffering=0) as fh:
        while True:
            block = fh.read(min(CHUNK, cap + 1 - got))
            if not block:
                return
            got += len(block)
            if got > cap:
                raise _too_big(str(path), got, cap, what)
            if time.monotonic() > deadline:
                raise _deadline_error(str(path), seconds, got, cap)
            yield block


# --- documents --------------------------------------------------------------------------------------


def fetch_bytes(url: str, *, timeout: tuple[float, float] = DEFAULT_TIMEOUT, max_size: int = 64 << 20) -> bytes:
    """Small documents (manifests, signatures): at most ``max_size`` bytes, within ``deadline_for(max_size)``."""
    seconds = deadline_for(max_size, timeout)
    shown = redact_url(url)
    if _is_local(url):
        path, fd, size = _open_local(url)
        if size > max_size:
            os.close(fd)
            raise _too_big(str(path), size, max_size, "the limit for this document")
        return b"".join(_read_local(fd, path, max_size, "the limit for this document", time.monotonic() + seconds, seconds))
    import requests

    register_url_secrets(url)
    chunks: list[bytes] = []
    total = 0
    with _Watchdog(seconds) as watch:
        try:
            with _session(watch) as session, session.get(url, timeout=timeout, stream=True) as resp:
                if resp.status_code != 200:
                    raise NetworkError(
                        f"GET {shown} answered HTTP {resp.status_code}.",
                        hint="Check the URL and that the release exists on the server.",
                        details={"mirror": shown, "status": resp.status_code},
                    )
                length = resp.headers.get("Content-Length", "")
                if length.isdigit() and int(length) > max_size:
                    raise _too_big(shown, int(length), max_size, "the limit for this document")
                for chunk in resp.iter_content(NET_CHUNK):
                    total += len(chunk)
                    if total > max_size:
                        raise _too_big(shown, total, max_size, "the limit for this document")
                    chunks.append(chunk)
        except requests.RequestException as exc:
            if watch.expired:
                raise _deadline_error(url, seconds, total, None) from None
            raise NetworkError(f"GET {shown} failed: {_reason(exc)}.", hint="Check the network and the URL, then retry.",
                               details={"mirror": shown}) from None
        if watch.expired:
            raise _deadline_error(url, seconds, total, None)
    return b"".join(chunks)


def _reason(exc: BaseException) -> str:
    import requests

    # urllib3 reports a read timeout in the middle of a streamed body as a ConnectionError.
    if isinstance(exc, requests.Timeout) or "timed out" in str(exc).lower():
        return "timed out (the server stopped sending data)"
    if isinstance(exc, requests.ConnectionError):
        return "connection failed or was cut"
    return type(exc).__name__


def _validator_path(part: Path) -> Path:
    return part.with_name(part.name + ".validator")


def _source_id(url: str) -> str:
    return hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest()


def _read_validator(part: Path, url: str) -> str | None:
    """The validator of ``part`` if it came from ``url``; None when it came from elsewhere (or is unknown)."""
    try:
        doc = json.loads(_validator_path(part).read_text("utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(doc, dict) or doc.get("source") != _source_id(url) or not isinstance(doc.get("validator"), str):
        return None
    return doc["validator"]


def _discard(part: Path) -> None:
    part.unlink(missing_ok=True)
    _validator_path(part).unlink(missing_ok=True)


def fetch(
    url: str,
    dest: Path,
    *,
    sha256: str | None,
    size: int | None = None,
    timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    progress: Progress | None = None,
) -> FetchResult:
    """Download ``url`` to ``dest`` (resuming ``dest.part`` when it came from the same URL), verify,
    then rename into place.

    ``sha256`` may be None only for callers that verify by other means (it is then reported).
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    if _is_local(url):
        return _finish(_copy_local(url, part, size, timeout, progress), dest, sha256, size, 0, url)
    import requests

    register_url_secrets(url)
    shown = redact_url(url)
    resumed_from = part.stat().st_size if part.exists() else 0
    validator = _read_validator(part, url) if resumed_from else None
    if resumed_from and validator is None:
        if _validator_path(part).exists():
            log.detail(f"{dest.name}: the partial download came from another source (or has no validator); starting over")
        _discard(part)  # we cannot prove the remote file is the one these bytes came from
        resumed_from = 0
    if size is not None and resumed_from > size:
        _discard(part)
        resumed_from = 0
    headers = {"Range": f"bytes={resumed_from}-", "If-Range": validator} if resumed_from and validator else {}
    seconds = deadline_for(size, timeout)
    have = resumed_from
    with _Watchdog(seconds) as watch:
        try:
            with _session(watch) as session, session.get(url, headers=headers, timeout=timeout, stream=True) as resp:
                if resp.status_code == 416 and size is not None and resumed_from == size:
                    pass  # already complete
                elif resp.status_code == 206 and resumed_from:
                    content_range = resp.headers.get("Content-Range", "")
                    if not content_range.startswith(f"bytes {resumed_from}-"):
                        raise VerifyError(
                            f"{shown}: asked for bytes from {resumed_from} but the server sent `{content_range[:100]}`.",
                            hint="The server's range support is broken; delete the .part file to start over.",
                            details={"mirror": shown},
                        )
                    have = _write(resp, part, "ab", resumed_from, size, progress, watch)
                elif resp.status_code == 200:
                    if resumed_from:
                        log.detail(f"{shown}: server sent the whole file (changed or no ranges); starting over")
                    resumed_from = 0
                    tag = resp.headers.get("ETag") or resp.headers.get("Last-Modified") or ""
                    if tag and not tag.startswith("W/") and len(tag) < 1024:
                        _validator_path(part).write_text(json.dumps({"source": _source_id(url), "validator": tag}))
                    else:
                        _validator_path(part).unlink(missing_ok=True)
                    have = 0
                    have = _write(resp, part, "wb", 0, size, progress, watch)
                else:
                    raise NetworkError(
                        f"GET {shown} answered HTTP {resp.status_code}.",
                        hint="Check the URL and that the file exists on the server; run again to resume.",
                        details={"mirror": shown, "status": resp.status_code},
                    )
        except requests.RequestException as exc:
            have = part.stat().st_size if part.exists() else 0
            if watch.expired:
                raise _deadline_error(url, seconds, have, size) from None
            raise NetworkError(
                f"download of {shown} failed after {have} bytes: {_reason(exc)}.",
                hint="Run the same command again: the download resumes from the partial file.",
                details={"mirror": shown, "bytes": have},
            ) from None
        if watch.expired:
            raise _deadline_error(url, seconds, part.stat().st_size if part.exists() else have, size)
    return _finish(part, dest, sha256, size, resumed_from, url)


def _write(
    resp: requests.Response, part: Path, mode: str, start: int, size: int | None, progress: Progress | None,
    watch: _Watchdog,
) -> int:
    total = size
    if total is None:
        length = resp.headers.get("Content-Length")
        total = start + int(length) if length and length.isdigit() else None
    done = start
    if size is None:  # the deadline follows the announced length, else what arrived, at the minimum rate
        timeout = (0.0, watch.seconds)
        watch.extend(deadline_for(total, timeout) if total is not None else watch.seconds)
    cap = size if size is not None else total  # no declared size: the announced length is the cap
    checked = done
    with open(part, mode) as fh:
        for chunk in resp.iter_content(NET_CHUNK):
            if cap is not None and done + len(chunk) > cap:
                fh.write(chunk[: cap - done + 1])  # one byte too many is enough for the size check to refuse it
                done = cap + 1
                break
            fh.write(chunk)
            done += len(chunk)
            if cap is None and done - checked >= _SPACE_CHECK_EVERY:  # neither declared nor announced: keep a reserve
                checked = done
                free = shutil.disk_usage(part.parent).free
                if free < UNSIZED_RESERVE:
                    raise DiskFullError(
                        f"{redact_url(resp.url)}: stopped after {done:,} bytes: the file has no declared size and the "
                        f"disk under {part.parent} is down to {free:,} bytes free (a {UNSIZED_RESERVE >> 20} MiB reserve "
                        "is kept for downloads of unknown size).",
                        hint="Pass --size (the file's size in bytes) or free some space; the partial file is kept "
                        "and the next run resumes it.",
                    )
            if size is None and total is None:
                watch.extend(deadline_for(done - start, timeout))
            if progress:
                progress(done, total)
        fh.flush()
        os.fsync(fh.fileno())
    return done


#: Downloads that declare no size (``models fetch --url`` without ``--size``, served without a
#: Content-Length) stop before the disk holds less than this.
UNSIZED_RESERVE = 1 << 30
_SPACE_CHECK_EVERY = 16 << 20


def _copy_local(url: str, part: Path, size: int | None, timeout: tuple[float, float], progress: Progress | None) -> Path:
    """A local file copied to ``part``: a regular file only, at most ``size`` (+1) bytes, within the deadline."""
    path, fd, actual = _open_local(url)
    cap = size if size is not None else actual
    what = "the size the manifest declares" if size is not None else "its size when opened"
    if actual > cap:
        os.close(fd)
        raise _too_big(str(path), actual, cap, what)
    seconds = deadline_for(cap, timeout)
    _discard(part)
    try:
        with open(part, "wb") as out:
            done = 0
            for block in _read_local(fd, path, cap, what, time.monotonic() + seconds, seconds):
                out.write(block)
                done += len(block)
                if progress:
                    progress(done, cap)
            out.flush()
            os.fsync(out.fileno())
    except OSError as exc:
        _discard(part)
        raise NetworkError(f"cannot read {path}: {exc.strerror}.", hint="Check the path.") from None
    except BaseException:
        _discard(part)  # a refused local copy leaves nothing behind (it is not resumed anyway)
        raise
    return part


def _finish(part: Path, dest: Path, sha256: str | None, size: int | None, resumed_from: int, url: str) -> FetchResult:
    shown = redact_url(url)
    actual_size = part.stat().st_size
    if size is not None and actual_size != size:
        _discard(part)
        raise VerifyError(
            f"{shown}: got {actual_size if actual_size <= size else f'more than {size}'} bytes, expected {size}; "
            "the file was discarded.",
            hint="The server sent a truncated or altered file. Run again; if it persists, the mirror is bad.",
            details={"mirror": shown},
        )
    digest = sha256_file(part)
    if sha256 is not None and digest != sha256.lower():
        _discard(part)
        how = f" (resumed at byte {resumed_from}; every byte came from this mirror)" if resumed_from else ""
        raise VerifyError(
            f"{shown}: sha256 mismatch (expected {sha256}, got {digest}){how}; the file was discarded and not used.",
            hint="The file was tampered with or corrupted in transit. Do not use this mirror until it is fixed.",
            details={"mirror": shown},
        )
    os.replace(part, dest)
    _validator_path(part).unlink(missing_ok=True)
    return FetchResult(dest, digest, actual_size, resumed_from)
