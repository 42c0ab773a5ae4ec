"""Deterministic archives: the same tree gives the same bytes, whoever packs it, wherever, whenever.

What varies between two packagings of one build — staging path, umask, file mtimes, owner, the
order ``os.scandir`` returns, the packing time — never reaches the archive:

* entries are sorted by their path (directories first in their own order: a parent always
  precedes its children), every file is stored as a regular file (no symlinks, no hard links);
* modes are normalised: directories and executables ``0755``, everything else ``0644``;
* tar: PAX format, uid/gid 0, empty uname/gname, ``mtime = SOURCE_DATE_EPOCH`` of the upstream
  commit, inside a gzip stream whose header has mtime 0 and no file name (``gzip -n``);
* zip: every entry has the fixed ``date_time`` of the same epoch (UTC), ``create_system`` Unix,
  a fixed ``external_attr`` (mode bits) and deflate level 9.

The compressed bytes also depend on the zlib implementation; release builds pin their Python
(and so zlib), which is why ``zlib.ZLIB_RUNTIME_VERSION`` is recorded next to each archive.

Archives are written to a temporary file beside the destination and renamed into place, so a
reader never sees half an archive.
"""

from __future__ import annotations

import gzip
import io
import os
import stat
import tarfile
import tempfile
import time
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from locara_build.core.errors import BuildError

__all__ = [
    "Entry",
    "entries_from_tree",
    "write_archive",
    "write_tar_gz",
    "write_zip",
    "list_archive",
    "EXEC_MODE",
    "DATA_MODE",
    "DIR_MODE",
    "ZIP_EPOCH_MIN",
    "zlib_version",
]

EXEC_MODE = 0o755
DATA_MODE = 0o644
DIR_MODE = 0o755
ZIP_EPOCH_MIN = 315532800  # 1980-01-01T00:00:00Z: zip cannot store earlier dates
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Entry:
    """One archive member. ``path`` is relative (posix) and excludes the top folder."""

    path: str
    source: Path | None = None  # a file to read; None for a directory or in-memory data
    data: bytes | None = None
    executable: bool = False
    is_dir: bool = False

    @property
    def mode(self) -> int:
        return DIR_MODE if self.is_dir or self.executable else DATA_MODE

    def size(self) -> int:
        if self.is_dir:
            return 0
        if self.data is not None:
            return len(self.data)
        assert self.source is not None
        return self.source.stat().st_size

    def open(self) -> io.BufferedIOBase:
        if self.data is not None:
            return io.BytesIO(self.data)
        assert self.source is not None
        return open(self.source, "rb")  # noqa: SIM115 - the caller closes it


def zlib_version() -> str:
    return zlib.ZLIB_RUNTIME_VERSION


def _check_path(path: str) -> str:
    p = PurePosixPath(path)
    if p.is_absolute() or ".." in p.parts or path in ("", ".") or "\\" in path:
        raise BuildError(
            f"refusing to archive the entry `{path}`: archive paths must be relative and stay inside the top folder.",
            hint="This is a bug in the packaging step; report it with the recipe name.",
        )
    return p.as_posix()


def entries_from_tree(root: Path) -> list[Entry]:
    """Every directory and file under ``root`` (symlinks are refused: stage real files)."""
    out: list[Entry] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        here = Path(dirpath)
        rel_dir = here.relative_to(root)
        for name in dirnames:
            full = here / name
            if full.is_symlink():
                raise BuildError(
                    f"{full}: a symlink in the staged tree; archives hold regular files only.",
                    hint="Stage the file it points to under the name users need instead.",
                )
            out.append(Entry(path=(rel_dir / name).as_posix(), is_dir=True))
        for name in sorted(filenames):
            full = here / name
            st = full.lstat()
            if not stat.S_ISREG(st.st_mode):
                raise BuildError(
                    f"{full}: not a regular file (symlink, device or fifo); archives hold regular files only.",
                    hint="Stage the file it points to under the name users need instead.",
                )
            out.append(
                Entry(path=(rel_dir / name).as_posix(), source=full, executable=bool(st.st_mode & stat.S_IXUSR))
            )
    return out


def _complete(entries: Iterable[Entry]) -> list[Entry]:
    """Sorted entries, with every parent directory present exactly once."""
    by_path: dict[str, Entry] = {}
    for e in entries:
        path = _check_path(e.path)
        if path in by_path and not (by_path[path].is_dir and e.is_dir):
            raise BuildError(f"two archive entries named `{path}`.", hint="This is a bug in the packaging step.")
        by_path[path] = Entry(path=path, source=e.source, data=e.data, executable=e.executable, is_dir=e.is_dir)
        for parent in PurePosixPath(path).parents:
            if str(parent) != ".":
                by_path.setdefault(str(parent), Entry(path=str(parent), is_dir=True))
    # Sort by path components so `a/b` < `a-b` (component-wise, as `sort --name` in GNU tar).
    return sorted(by_path.values(), key=lambda e: PurePosixPath(e.path).parts)


def _atomic_target(dest: Path) -> tuple[int, str]:
    dest.parent.mkdir(parents=True, exist_ok=True)
    return tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)


def _finish(fd_path: str, dest: Path) -> None:
    os.chmod(fd_path, DATA_MODE)
    os.replace(fd_path, dest)


def write_tar_gz(dest: Path, top: str, entries: Iterable[Entry], mtime: int) -> Path:
    """PAX tar in gzip (level 9, header mtime 0, no name) under one top folder ``top``."""
    items = _complete(entries)
    fd, tmp = _atomic_target(dest)
    try:
        with os.fdopen(fd, "wb") as raw:
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz:
                with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
                    tar.addfile(_tarinfo(top, None, mtime))
                    for e in items:
                        info = _tarinfo(f"{top}/{e.path}", e, mtime)
                        if e.is_dir:
                            tar.addfile(info)
                        else:
                            with e.open() as fh:
                                tar.addfile(info, fh)
            raw.flush()
            os.fsync(raw.fileno())
        _finish(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest


def _tarinfo(name: str, e: Entry | None, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mtime = mtime
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if e is None or e.is_dir:
        info.type = tarfile.DIRTYPE
        info.mode = DIR_MODE
        info.size = 0
    else:
        info.type = tarfile.REGTYPE
        info.mode = e.mode
        info.size = e.size()
    return info


def write_zip(dest: Path, top: str, entries: Iterable[Entry], mtime: int) -> Path:
    """Zip (deflate 9) under one top folder ``top`` with fixed dates and attributes."""
    items = _complete(entries)
    date_time = time.gmtime(max(mtime, ZIP_EPOCH_MIN))[:6]
    fd, tmp = _atomic_target(dest)
    try:
        with os.fdopen(fd, "wb") as raw:
            with zipfile.ZipFile(raw, mode="w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
                zf.writestr(_zipinfo(f"{top}/", None, date_time), b"")
                for e in items:
                    if e.is_dir:
                        zf.writestr(_zipinfo(f"{top}/{e.path}/", e, date_time), b"")
                        continue
                    info = _zipinfo(f"{top}/{e.path}", e, date_time)
                    with e.open() as src, zf.open(info, "w", force_zip64=e.size() > 0x7FFFFFFF) as out:
                        for block in iter(lambda s=src: s.read(_CHUNK), b""):
                            out.write(block)
            raw.flush()
            os.fsync(raw.fileno())
        _finish(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest


def _zipinfo(name: str, e: Entry | None, date_time: tuple[int, ...]) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=date_time)  # type: ignore[arg-type]
    info.create_system = 3  # Unix, so external_attr carries the mode bits
    if e is None or e.is_dir:
        info.external_attr = ((stat.S_IFDIR | DIR_MODE) << 16) | 0x10  # MS-DOS directory bit
        info.compress_type = zipfile.ZIP_STORED
    else:
        info.external_attr = (stat.S_IFREG | e.mode) << 16
        info.compress_type = zipfile.ZIP_DEFLATED
    return info


def write_archive(dest: Path, fmt: str, top: str, entries: Iterable[Entry], mtime: int) -> Path:
    if fmt == "tar.gz":
        return write_tar_gz(dest, top, entries, mtime)
    if fmt == "zip":
        return write_zip(dest, top, entries, mtime)
    raise BuildError(f"unknown archive format `{fmt}` for {dest.name}.", hint="Recipes allow tar.gz or zip.")


def list_archive(path: Path) -> Iterator[tuple[str, int, bool]]:
    """(name, mode, is_dir) of each member, in archive order (for tests and records)."""
    if path.name.endswith(".zip"):
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                yield info.filename.rstrip("/"), (info.external_attr >> 16) & 0o7777, info.is_dir()
    else:
        with tarfile.open(path, "r:gz") as tar:
            for m in tar.getmembers():
                yield m.name, m.mode, m.isdir()
