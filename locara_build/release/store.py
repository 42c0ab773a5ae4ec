"""The content-addressed release store: every file of every artifact once, compressed per file,
plus a signed file index per artifact (the one writer and the one reader of that index).

Layout of a releases root (``<work>/releases/``) and of a published mirror alike::

    <root>/<version>/release.json              each artifact entry names its index: {"file", "sha256", "size"}
    <root>/<version>/<artifact>.files.json     the index (listed in SHA256SUMS; its hash is in release.json)
    <root>/blobs/sha256/<hex>                  one file's bytes, one zstd frame; <hex> = sha256 of the *file*
    <root>/deltas/sha256/<base>/<target>.<method>   the file <target> rebuilt from the file <base>

The store sits beside the version folders, so a file that does not change from one week to the next
(or that two artifacts share) is stored, uploaded and downloaded once. On GitHub Releases, whose
assets are flat names, the objects are the assets of one release tagged :data:`GITHUB_STORE_TAG`,
named by :func:`flat_name` (``/`` -> ``-``).

Why zstd (the ``zstandard`` package) per file rather than the archive's gzip: it decompresses about
3-5x faster than zlib, compresses shared libraries 10-25 % smaller at level 19 (measured on real
llama.cpp libraries: 3.37 MB of zstd frames vs 4.24 MB gzip -9), and one frame per file lets the
installer fetch exactly the files it lacks. Deltas: zstd ``patch-from`` (the old file as a
raw-content dictionary) and bsdiff are both made and the smallest is kept per file (bsdiff wins
where code moved, zstd on data and small edits, and it applies 10-20x faster; docs/performance.md).
bsdiff's three blocks (control, diff, extra) are written twice: as the standard ``BSDIFF40`` patch
(bzip2 blocks, what ``bspatch`` applies) and as ``bsdiff4-xz`` (the same blocks as xz streams: 12-16 %
smaller on llama.cpp libraries, whose diff block is long runs of small numeric differences that
LZMA's larger window and literal coding compress better than bzip2's 900 kB blocks).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from locara_build.core import hostos, log
from locara_build.core.errors import VerifyError
from locara_build.core.extract import DEFAULT_LIMITS, _Checker, _open_members

if TYPE_CHECKING:
    from locara_build.pipeline.records import ReleaseManifest

__all__ = [
    "INDEX_SCHEMA",
    "INDEX_SUFFIX",
    "BLOBS",
    "DELTAS",
    "GITHUB_STORE_TAG",
    "DEFAULT_DELTA_DEPTH",
    "Delta",
    "FileEntry",
    "Index",
    "Store",
    "blob_path",
    "delta_path",
    "flat_name",
    "write_index",
    "compress",
    "decompress",
]

INDEX_SCHEMA = 1
INDEX_SUFFIX = ".files.json"
BLOBS = "blobs/sha256"
DELTAS = "deltas/sha256"
GITHUB_STORE_TAG = "locara-store"
DEFAULT_DELTA_DEPTH = 2  # deltas against the same artifact of the previous N releases
DELTA_ENV = "LOCARA_DELTA_DEPTH"
MAX_INDEX = 16 << 20
_HEX = re.compile(r"^[0-9a-f]{64}$")
_LEVEL_SMALL, _LEVEL_LARGE, _LARGE = 19, 12, 64 << 20  # zstd level by file size (level 19 runs ~1 MB/s)
DELTA_METHODS = ("zstd-patch", "bsdiff4", "bsdiff4-xz")  # what this installer applies; `release` keeps the smallest
DELTA_METHOD_ENV = "LOCARA_DELTA_METHOD"  # auto (default: all made, the smallest kept) | one of DELTA_METHODS
BSDIFF_XZ_MAGIC = b"LBSDIFX1"  # + u64 LE: target size, control / diff / extra stream lengths; then 3 xz streams
_BSDIFF_XZ_HEADER = len(BSDIFF_XZ_MAGIC) + 32
BSDIFF_MAX = 64 << 20  # bsdiff's suffix sort needs ~17x the file in memory: larger files get zstd only


def _level(size: int) -> int:
    return _LEVEL_SMALL if size <= _LARGE else _LEVEL_LARGE


def blob_path(digest: str) -> str:
    return f"{BLOBS}/{digest}"


def delta_path(base: str, target: str, method: str) -> str:
    return f"{DELTAS}/{base}/{target}.{method}"


def flat_name(path: str) -> str:
    """The GitHub asset name of a store object: ``blobs/sha256/<hex>`` -> ``blobs-sha256-<hex>``."""
    return path.replace("/", "-")


# --- zstd ------------------------------------------------------------------------------------------


def compress(data: bytes) -> bytes:
    import zstandard

    return zstandard.ZstdCompressor(level=_level(len(data)), write_content_size=True, write_checksum=True).compress(data)


def decompress(frame: bytes, size: int, *, what: str) -> bytes:
    """One zstd frame -> exactly ``size`` bytes (a frame claiming more is refused, not inflated)."""
    import zstandard

    try:
        out = zstandard.ZstdDecompressor(max_window_size=1 << 31).decompress(frame, max_output_size=size)
    except zstandard.ZstdError as exc:
        raise VerifyError(f"{what}: not a valid zstd frame ({exc}).", hint="The store object is corrupt; report the mirror.") from None
    if len(out) != size:
        raise VerifyError(f"{what}: decompressed to {len(out)} bytes, the index says {size}.", hint="Report the mirror.")
    return out


def _window_log(*sizes: int) -> int:
    return min(31, max(20, (sum(sizes) - 1).bit_length() + 1))


def make_delta_zstd(base: bytes, target: bytes) -> bytes:
    """zstd ``--patch-from``: the old file is a raw-content dictionary, long-distance matching on."""
    import zstandard

    params = zstandard.ZstdCompressionParameters.from_level(
        _level(len(target)), source_size=len(target), window_log=_window_log(len(base), len(target)), enable_ldm=True,
        write_checksum=True, write_content_size=True,
    )
    d = zstandard.ZstdCompressionDict(base, dict_type=zstandard.DICT_TYPE_RAWCONTENT)
    return zstandard.ZstdCompressor(dict_data=d, compression_params=params).compress(target)


def bsdiff_blocks(base: bytes, target: bytes) -> tuple[bytes, bytes, bytes]:
    """bsdiff's suffix-sorted matching: the control, diff and extra blocks, uncompressed."""
    import bsdiff4.core

    ctrl, diff, extra = bsdiff4.core.diff(base, target)
    return ctrl, diff, extra


def make_delta_bsdiff(base: bytes, target: bytes, blocks: tuple[bytes, bytes, bytes] | None = None) -> bytes:
    """bsdiff 4 (``BSDIFF40``, what ``bspatch`` applies): suffix-sorted matches + bzip2'd control/diff/extra."""
    import io

    import bsdiff4.format

    out = io.BytesIO()
    bsdiff4.format.write_patch(out, len(target), *(blocks or bsdiff_blocks(base, target)))
    return out.getvalue()


def make_delta_bsdiff_xz(base: bytes, target: bytes, blocks: tuple[bytes, bytes, bytes] | None = None) -> bytes:
    """``bsdiff4-xz``: bsdiff's three blocks as xz streams (LZMA2 preset 9e) behind a fixed header."""
    import lzma
    import struct

    streams = [lzma.compress(b, preset=9 | lzma.PRESET_EXTREME) for b in (blocks or bsdiff_blocks(base, target))]
    head = BSDIFF_XZ_MAGIC + struct.pack("<4Q", len(target), *(len(x) for x in streams))
    return head + b"".join(streams)


def _bsdiff_xz_blocks(delta: bytes, size: int, what: str) -> tuple[bytes, bytes, bytes]:
    """The three blocks of a ``bsdiff4-xz`` delta, each inflated to at most what ``size`` allows."""
    import lzma
    import struct

    def bad(why: str) -> VerifyError:
        return VerifyError(f"{what}: the delta does not apply ({why}).", hint="The delta is corrupt; report the mirror.")

    if len(delta) < _BSDIFF_XZ_HEADER or not delta.startswith(BSDIFF_XZ_MAGIC):
        raise bad("not a bsdiff4-xz delta")
    target, *lengths = struct.unpack_from("<4Q", delta, len(BSDIFF_XZ_MAGIC))
    if target != size:
        raise bad(f"it makes {target} bytes, the index says {size}")
    if _BSDIFF_XZ_HEADER + sum(lengths) != len(delta):
        raise bad("its stream lengths do not add up to its size")
    out: list[bytes] = []
    offset = _BSDIFF_XZ_HEADER
    # control: 24 bytes a triple, at most one triple per target byte (+1); diff and extra: at most the target
    for length, cap in zip(lengths, (24 * (size + 1), size, size), strict=True):
        dec = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
        try:
            block = dec.decompress(delta[offset:offset + length], max_length=cap + 1)
        except lzma.LZMAError as exc:
            raise bad(str(exc)) from None
        if len(block) > cap or not dec.eof or dec.unused_data:
            raise bad("a block is larger than the file it makes, truncated, or followed by other bytes")
        out.append(block)
        offset += length
    if len(out[0]) % 24:
        raise bad("its control block is not made of 24-byte triples")
    return out[0], out[1], out[2]


def apply_delta(method: str, base: bytes, delta: bytes, size: int, *, what: str) -> bytes:
    """Rebuild a file from ``base`` and a delta whose sha256 was already checked against the signed index."""
    if method in ("bsdiff4", "bsdiff4-xz"):
        import bsdiff4
        import bsdiff4.core

        try:
            if method == "bsdiff4":
                out = bsdiff4.patch(base, delta)
            else:
                out = bsdiff4.core.patch(base, size, *_bsdiff_xz_blocks(delta, size, what))
        except (ValueError, MemoryError, OSError) as exc:
            raise VerifyError(f"{what}: the delta does not apply ({exc}).", hint="The delta is corrupt; report the mirror.") from None
        if len(out) != size:
            raise VerifyError(f"{what}: the delta produced {len(out)} bytes, the index says {size}.", hint="Report the mirror.")
        return out
    if method != "zstd-patch":
        raise VerifyError(f"{what}: unknown delta method {method!r}.", hint="Upgrade locara-build.")
    import zstandard

    d = zstandard.ZstdCompressionDict(base, dict_type=zstandard.DICT_TYPE_RAWCONTENT)
    try:
        out = zstandard.ZstdDecompressor(dict_data=d, max_window_size=1 << 31).decompress(delta, max_output_size=size)
    except zstandard.ZstdError as exc:
        raise VerifyError(f"{what}: the delta does not apply ({exc}).", hint="The delta is corrupt; report the mirror.") from None
    if len(out) != size:
        raise VerifyError(f"{what}: the delta produced {len(out)} bytes, the index says {size}.", hint="Report the mirror.")
    return out


# --- the index ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Delta:
    base: str  # sha256 of the old file this delta applies to
    method: str
    path: str  # store path
    size: int  # bytes of the delta object
    sha256: str  # of the delta object

    def to_dict(self) -> dict[str, Any]:
        return {"base": self.base, "method": self.method, "path": self.path, "size": self.size, "sha256": self.sha256}


@dataclass(frozen=True)
class FileEntry:
    path: str  # relative to the artifact's top folder, POSIX
    mode: int  # 0o755 or 0o644 (as extraction normalises them)
    size: int
    sha256: str  # of the file
    blob: str  # store path of its zstd frame
    blob_size: int
    blob_sha256: str  # of the compressed frame (what is downloaded)
    deltas: tuple[Delta, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "path": self.path, "mode": self.mode, "size": self.size, "sha256": self.sha256,
            "blob": {"path": self.blob, "size": self.blob_size, "sha256": self.blob_sha256},
        }
        if self.deltas:
            out["deltas"] = [d.to_dict() for d in self.deltas]
        return out


@dataclass(frozen=True)
class Index:
    artifact: str  # the archive's file name
    name: str  # its top folder
    version: str
    dirs: tuple[str, ...]
    files: tuple[FileEntry, ...]
    schema: int = INDEX_SCHEMA

    def to_bytes(self) -> bytes:
        doc = {
            "schema": self.schema, "artifact": self.artifact, "name": self.name, "version": self.version,
            "dirs": list(self.dirs), "files": [f.to_dict() for f in self.files],
        }
        return (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode()

    @property
    def total(self) -> int:
        return sum(f.size for f in self.files)

    @classmethod
    def parse(cls, data: bytes, *, source: str, windows: bool = False) -> Index:
        """The strict reader: shapes, hashes, store paths that match the hashes, and every path
        checked by the same rules as archive members (relative, no ``..``, unique, no case clash)."""

        def bad(why: str) -> VerifyError:
            return VerifyError(f"{source}: invalid file index: {why}.", hint="Report the mirror; install with --no-store.")

        try:
            doc = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            raise bad("not JSON") from None
        if not isinstance(doc, dict) or doc.get("schema") != INDEX_SCHEMA:
            raise bad(f"schema {doc.get('schema') if isinstance(doc, dict) else None!r}, this locara-build reads {INDEX_SCHEMA}")
        for key in ("artifact", "name", "version"):
            if not isinstance(doc.get(key), str) or not doc[key]:
                raise bad(f"`{key}` missing")
        name = doc["name"]
        if "/" in name or name in (".", ".."):
            raise bad(f"top folder {name!r} is unsafe")
        dirs, files = doc.get("dirs"), doc.get("files")
        if not isinstance(dirs, list) or not isinstance(files, list):
            raise bad("`dirs` / `files` missing")
        checker = _Checker(Path(source.rsplit("/", 1)[-1]), name, DEFAULT_LIMITS, windows=windows or hostos.is_windows())
        checker.add(name, True, 0, 0o755, "dir")
        out_dirs = []
        for i, d in enumerate(dirs):
            if not isinstance(d, str):
                raise bad(f"dirs[{i}] is not a string")
            checker.add(f"{name}/{d}", True, 0, 0o755, "dir")
            out_dirs.append(d)
        out_files = []
        for i, f in enumerate(files):
            where = f"files[{i}]"
            if not isinstance(f, dict):
                raise bad(f"{where} is not an object")
            path, mode, size, digest, blob = f.get("path"), f.get("mode"), f.get("size"), f.get("sha256"), f.get("blob")
            if not isinstance(path, str) or mode not in (0o755, 0o644) or not isinstance(size, int) or size < 0:
                raise bad(f"{where}: path/mode/size missing or wrong")
            if not isinstance(digest, str) or not _HEX.match(digest):
                raise bad(f"{where} ({path}): sha256 malformed")
            if (not isinstance(blob, dict) or blob.get("path") != blob_path(digest) or not isinstance(blob.get("size"), int)
                    or not isinstance(blob.get("sha256"), str) or not _HEX.match(blob["sha256"])):
                raise bad(f"{where} ({path}): blob is not {blob_path(digest)} with a size and sha256")
            deltas = []
            for j, d in enumerate(f.get("deltas", [])):
                if (not isinstance(d, dict) or not isinstance(d.get("base"), str) or not _HEX.match(d["base"])
                        or not isinstance(d.get("method"), str) or not re.fullmatch(r"[a-z0-9-]+", d["method"])
                        or d.get("path") != delta_path(d["base"], digest, d["method"])
                        or not isinstance(d.get("size"), int) or not isinstance(d.get("sha256"), str) or not _HEX.match(d["sha256"])):
                    raise bad(f"{where} ({path}): deltas[{j}] malformed")
                deltas.append(Delta(d["base"], d["method"], d["path"], d["size"], d["sha256"]))
            checker.add(f"{name}/{path}", False, size, mode, "file")
            out_files.append(FileEntry(path, mode, size, digest, blob["path"], blob["size"], blob["sha256"], tuple(deltas)))
        return cls(doc["artifact"], name, doc["version"], tuple(out_dirs), tuple(out_files))


# --- the release side: the store writer ----------------------------------------------------------


@dataclass
class Store:
    """A store folder on the release host (``<releases root>``): objects are written once, atomically."""

    root: Path
    written: list[str] = field(default_factory=list)

    def path(self, rel: str) -> Path:
        return self.root.joinpath(*rel.split("/"))

    def _put(self, rel: str, data: bytes) -> None:
        dest = self.path(rel)
        if dest.is_file():
            return
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.tmp-{secrets.token_hex(4)}")
        try:
            with open(tmp, "xb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
        self.written.append(rel)

    def put_blob(self, digest: str, data: bytes) -> tuple[str, int, str]:
        rel = blob_path(digest)
        dest = self.path(rel)
        frame = dest.read_bytes() if dest.is_file() else compress(data)
        self._put(rel, frame)
        return rel, len(frame), hashlib.sha256(frame).hexdigest()

    def read_file(self, digest: str, size: int) -> bytes | None:
        p = self.path(blob_path(digest))
        if not p.is_file():
            return None
        data = decompress(p.read_bytes(), size, what=str(p))
        return data if hashlib.sha256(data).hexdigest() == digest else None

    def put_delta(self, base_digest: str, base: bytes, target_digest: str, target: bytes) -> Delta:
        """The smallest of a zstd patch-from and the two bsdiff encodings (``$LOCARA_DELTA_METHOD`` forces
        one; bsdiff only up to :data:`BSDIFF_MAX`); an existing delta for the pair is reused."""
        for method in DELTA_METHODS:
            existing = self.path(delta_path(base_digest, target_digest, method))
            if existing.is_file():
                data = existing.read_bytes()
                return Delta(base_digest, method, delta_path(base_digest, target_digest, method), len(data),
                             hashlib.sha256(data).hexdigest())
        wanted = os.environ.get(DELTA_METHOD_ENV, "auto")
        made: list[tuple[int, str, bytes]] = []
        if wanted in ("auto", "zstd-patch"):
            z = make_delta_zstd(base, target)
            made.append((len(z), "zstd-patch", z))
        if wanted in ("auto", "bsdiff4", "bsdiff4-xz") and max(len(base), len(target)) <= BSDIFF_MAX:
            blocks = bsdiff_blocks(base, target)
            if wanted in ("auto", "bsdiff4"):
                b = make_delta_bsdiff(base, target, blocks)
                made.append((len(b), "bsdiff4", b))
            if wanted in ("auto", "bsdiff4-xz"):
                x = make_delta_bsdiff_xz(base, target, blocks)
                made.append((len(x), "bsdiff4-xz", x))
        if not made:
            z = make_delta_zstd(base, target)
            made.append((len(z), "zstd-patch", z))
        _, method, data = min(made, key=lambda m: m[0])
        rel = delta_path(base_digest, target_digest, method)
        self._put(rel, data)
        return Delta(base_digest, method, rel, len(data), hashlib.sha256(data).hexdigest())


def _archive_files(archive: Path, top: str) -> Iterator[tuple[str, bool, int, bytes]]:
    """(path under the top folder, is_dir, mode, data) of every member, by extraction's rules."""
    checker = _Checker(archive, top, DEFAULT_LIMITS)
    for raw, stream in _open_members(archive, DEFAULT_LIMITS):
        m = checker.add(*raw)
        if m.name == top:
            continue
        rel = m.name[len(top) + 1:]
        if m.is_dir:
            yield rel, True, 0o755, b""
        else:
            assert stream is not None
            yield rel, False, 0o755 if m.executable else 0o644, stream.read()
    checker.finish()


def _delta_depth() -> int:
    raw = os.environ.get(DELTA_ENV, "")
    return int(raw) if raw.isdigit() else DEFAULT_DELTA_DEPTH


def _previous_indexes(older: list[tuple[Path, ReleaseManifest]], entry: dict[str, Any], depth: int) -> list[Index]:
    """The same artifact (os, arch, backend, flavour) in the ``depth`` newest of ``older`` (release
    folders with their parsed release.json, newest first, all older than the release being made)."""
    if depth <= 0:
        return []
    found: list[Index] = []
    for folder, doc in older:
        if len(found) >= depth:
            break
        for a in doc.artifacts:
            if (a.os, a.arch, a.backend, a.flavour) == tuple(entry[k] for k in ("os", "arch", "backend", "flavour")) \
                    and a.index is not None:
                p = folder / a.index.file
                try:
                    found.append(Index.parse(p.read_bytes(), source=str(p)))
                except (OSError, VerifyError) as exc:
                    log.warn(f"{p}: not used as a delta base ({getattr(exc, 'message', exc)})")
    return found


def build_index(archive: Path, entry: dict[str, Any], store: Store, *, version: str, previous: list[Index]) -> Index:
    """Store every file of ``archive`` (once) and its deltas from ``previous``; return the index."""
    olds: dict[str, dict[str, FileEntry]] = {}
    for idx in previous:  # newest first: path -> entries of earlier releases with other content
        for f in idx.files:
            olds.setdefault(f.path, {}).setdefault(f.sha256, f)
    dirs, files = [], []
    for rel, is_dir, mode, data in _archive_files(archive, entry["name"]):
        if is_dir:
            dirs.append(rel)
            continue
        digest = hashlib.sha256(data).hexdigest()
        blob, blob_size, blob_sha = store.put_blob(digest, data)
        deltas = []
        for base_digest, old in olds.get(rel, {}).items():
            if base_digest == digest:
                continue
            base = store.read_file(base_digest, old.size)
            if base is None:
                log.detail(f"{rel}: no delta from {base_digest[:12]} (not in the store here)")
                continue
            d = store.put_delta(base_digest, base, digest, data)
            if d.size < blob_size * 0.9:  # a delta that saves little is not worth a round trip
                deltas.append(d)
        files.append(FileEntry(rel, mode, len(data), digest, blob, blob_size, blob_sha, tuple(deltas)))
    return Index(entry["file"], entry["name"], version, tuple(dirs), tuple(files))


def write_index(archive: Path, entry: dict[str, Any], staged: Path, manifest: dict[str, Any],
                older: list[tuple[Path, ReleaseManifest]]) -> dict[str, str]:
    """The release hook: store ``archive``'s files in the store beside the release folder (``staged``
    is a temp folder inside the releases root), write ``<artifact>.files.json`` into ``staged``, name
    it in ``entry`` (release.json's artifact entry, signed) and return {file name: sha256} for SHA256SUMS.
    ``older``: the releases beside it that are older (folder, release.json), newest first: delta bases."""
    root = staged.parent
    store = Store(root)
    previous = _previous_indexes(older, entry, _delta_depth())
    try:
        index = build_index(archive, entry, store, version=manifest["version"], previous=previous)
    except (VerifyError, tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error) as exc:
        # an archive extraction would refuse: no index, so installs take the archive (and refuse it)
        log.warn(f"store: {entry['file']} not indexed: {getattr(exc, 'message', exc)}")
        return {}
    data = index.to_bytes()
    name = entry["file"] + INDEX_SUFFIX
    (staged / name).write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    entry["index"] = {"file": name, "sha256": digest, "size": len(data)}
    n_deltas = sum(len(f.deltas) for f in index.files)
    log.info(
        f"store: {entry['file']}: {len(index.files)} files, {len(store.written)} new objects "
        f"({n_deltas} deltas from {len(previous)} earlier release(s)) in {root}"
    )
    return {name: digest}


def objects_of(index: Index) -> list[tuple[str, int, str]]:
    """(store path, size, sha256) of every object ``index`` names (blobs, then deltas)."""
    out = {f.blob: (f.blob, f.blob_size, f.blob_sha256) for f in index.files}
    for f in index.files:
        for d in f.deltas:
            out[d.path] = (d.path, d.size, d.sha256)
    return sorted(out.values())


def release_objects(release_dir: Path, doc: ReleaseManifest) -> list[tuple[str, int, str]]:
    """Every store object the release in ``release_dir`` names (its indexes, read strictly)."""
    out: dict[str, tuple[str, int, str]] = {}
    for a in doc.artifacts:
        if a.index is None:
            continue
        p = release_dir / a.index.file
        for obj in objects_of(Index.parse(p.read_bytes(), source=str(p))):
            out[obj[0]] = obj
    return sorted(out.values())


# --- publishing the store ------------------------------------------------------------------------


def source_object(release_dir: Path, rel: str, size: int, digest: str) -> Path:
    src = Store(release_dir.parent).path(rel)
    if not src.is_file() or src.stat().st_size != size or _sha256_file(src) != digest:
        raise VerifyError(
            f"{src}: store object missing or not the one the file index names ({rel}, {size} bytes).",
            hint="Publish from the releases root that `locara-build release` wrote (the store, blobs/ and deltas/, "
            "sits beside the version folders), or release again there.",
        )
    return src


def _sha256_file(path: Path) -> str:
    from locara_build.core.digest import sha256_file

    return sha256_file(path)
