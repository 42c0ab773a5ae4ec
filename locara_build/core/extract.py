"""Safe extraction of release archives (.tar.gz and .zip), each member checked BEFORE it is
written, and nothing visible outside a private temp dir until every member has passed.

Python's tar ``data`` filter has been bypassed repeatedly (CVE-2025-4517, -4330, -4138,
CVE-2024-12718, ...) and ``zipfile`` neither restores modes nor rejects odd names, so this module
trusts neither: it refuses the archive (VerifyError, exit 8) unless every member is

* a regular file or a directory (no symlinks, hard links, devices, FIFOs; no zip symlinks),
* a relative POSIX path under the one expected top folder, without ``..``, ``.``, empty parts,
  backslashes, drive letters / colons, NUL, control characters or bytes that are not UTF-8, no
  part longer than 255 bytes and no path longer than 1024 bytes,
* for an archive meant for Windows (``windows=True``, or when extracting on Windows): no reserved
  device name (``CON``, ``NUL.txt``, ``COM1``, ``LPT¹``...), no part ending in a dot or a space,
  none of ``< > " | ? *``,
* unique, also case-insensitively and after Unicode normalisation, for members and the folders
  above them alike (a folder extracted on macOS / Windows must not merge entries), and never both
  a file and the parent of another member,
* without setuid / setgid / sticky bits,
* within the size and member-count caps (zip bombs, tar bombs) and within ``max_ratio`` times the
  archive's own size (a 600-byte sparse tar declaring 50 MiB of zeros; see docs/reliability.md).

``check_members`` applies these rules to a listing. ``safe_extract`` applies them in its single
pass over the archive (one decompression): each member is checked against the rules and every
member before it, and only then written, by this module (never ``extractall``), into a fresh
private temporary directory beside the destination, with ``O_EXCL | O_NOFOLLOW``, modes normalised
to 0755 (executables, from the tar mode or the zip ``external_attr``) or 0644. Zip modes come from the
Unix mode in the central directory's ``external_attr`` (its high 16 bits), whatever DOS
attribute bits (read-only, hidden, archive, directory) share the low byte; an entry without a Unix
mode (made on Windows) is 0644. The first bad member, a corrupt stream or a full disk throws the
whole temp dir away; the caller renames a fully checked result into place, so a
half-extracted or partly checked tree is never visible.
"""

from __future__ import annotations

import lzma
import os
import shutil
import stat
import struct
import tarfile
import tempfile
import unicodedata
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from locara_build.core import hostos
from locara_build.core.errors import VerifyError, disk_full, is_no_space

__all__ = ["Limits", "Member", "check_members", "list_members", "safe_extract", "read_member", "DEFAULT_LIMITS"]


@dataclass(frozen=True)
class Limits:
    max_members: int = 20_000
    max_file: int = 4 << 30  # one member, bytes
    max_total: int = 16 << 30  # all members, bytes
    max_ratio: int = 100  # all members may add up to this many times the archive's own size ...
    ratio_floor: int = 1 << 20  # ... or this many bytes, whichever is more


DEFAULT_LIMITS = Limits()
_CHUNK = 1 << 20
_MAX_PART = 255  # bytes in one path component (NAME_MAX on Linux, macOS and Windows file systems)
_MAX_NAME = 1024  # bytes in a whole member path (far beyond any real release layout)
# Win32 device names: a file called `NUL.txt` or `com1` opens the device, whatever the folder
_WINDOWS_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"} | {f"{d}{n}" for d in ("COM", "LPT") for n in "0123456789\u00b9\u00b2\u00b3"}
)
_WINDOWS_BAD_CHARS = frozenset('<>"|?*')


@dataclass(frozen=True)
class Member:
    name: str  # normalised: no trailing slash
    is_dir: bool
    size: int
    executable: bool


def _fail(archive: Path, why: str) -> VerifyError:
    return VerifyError(
        f"{archive.name}: unsafe archive, refused (nothing of it was installed): {why}.",
        hint="Do not use this file. A release archive holds one top folder of plain files and directories; "
        "report the mirror or the release that served it.",
    )


def _check_name(archive: Path, raw: str, windows: bool = False) -> str:
    if not raw:
        raise _fail(archive, "a member has an empty name")
    if "\\" in raw:
        raise _fail(archive, f"member {raw!r} contains a backslash")
    if raw.startswith("/"):
        raise _fail(archive, f"member {raw!r} has an absolute path")
    if ":" in raw:
        raise _fail(archive, f"member {raw!r} contains a colon (drive letter or stream name)")
    if any(ord(c) < 32 or 127 <= ord(c) < 160 for c in raw):
        raise _fail(archive, f"member {raw!r} contains control characters")
    if any(0xD800 <= ord(c) < 0xE000 for c in raw):  # tarfile's surrogateescape for undecodable bytes
        raise _fail(archive, f"member {raw!r} has a name that is not UTF-8")
    name = raw[:-1] if raw.endswith("/") else raw
    for part in name.split("/"):
        if part in ("", ".", ".."):
            raise _fail(archive, f"member {raw!r} has a `{part or '//'}` path component")
        if len(part.encode("utf-8")) > _MAX_PART:  # no file system takes it: refuse, not crash
            raise _fail(archive, f"member {raw[:80]!r}... has a path component longer than {_MAX_PART} bytes")
        why = _windows_problem(part) if windows else None
        if why:
            raise _fail(archive, f"member {raw!r} cannot exist on Windows: `{part}` {why}")
    if len(name.encode("utf-8")) > _MAX_NAME:
        raise _fail(archive, f"member {raw[:80]!r}... has a path longer than {_MAX_NAME} bytes")
    return name


def _windows_problem(part: str) -> str | None:
    """Why Windows cannot hold a file or folder called ``part`` as it is spelled (None: it can)."""
    if part.endswith((".", " ")):
        return "ends with a dot or a space (Windows drops them: it would be another name)"
    bad = sorted(_WINDOWS_BAD_CHARS.intersection(part))
    if bad:
        return f"contains {''.join(bad)}, which Windows file names cannot"
    stem = part.split(".")[0].rstrip(" ").upper()
    if stem in _WINDOWS_RESERVED:
        return f"is the reserved device name {stem} (opening it opens the device)"
    return None


def _tar_infos(
    tf: tarfile.TarFile, archive: Path, limits: Limits
) -> Iterator[tuple[tuple[str, bool, int, int, str], tarfile.TarInfo]]:
    """((raw name, is_dir, size, mode, kind), TarInfo) per member; kind is 'file', 'dir' or what it
    really is."""
    count = 0
    while (info := tf.next()) is not None:
        count += 1
        if count > limits.max_members:
            raise _fail(archive, f"more than {limits.max_members} members")
        if info.isreg():
            kind = "file"
        elif info.isdir():
            kind = "dir"
        elif info.issym():
            kind = f"symlink -> {info.linkname}"
        elif info.islnk():
            kind = f"hard link -> {info.linkname}"
        elif info.ischr() or info.isblk():
            kind = "device file"
        elif info.isfifo():
            kind = "FIFO"
        else:
            kind = f"special member (type {info.type.decode('latin-1')!r})"
        yield (info.name, info.isdir(), info.size, info.mode, kind), info


def _tar_members(archive: Path, limits: Limits) -> Iterator[tuple[str, bool, int, int, str]]:
    try:
        with tarfile.open(archive) as tf:
            for raw_member, _info in _tar_infos(tf, archive, limits):
                yield raw_member
    except _READ_ERRORS as exc:
        raise VerifyError(f"{archive.name}: not a readable tar.gz archive ({_one_line(exc)}).", hint="Download it again.") from None


def _zip_kind(info: zipfile.ZipInfo) -> tuple[bool, int, str]:
    mode = (info.external_attr >> 16) & 0xFFFF
    is_dir = info.filename.endswith("/")  # (ZipInfo.is_dir() raises IndexError on an empty name)
    ftype = stat.S_IFMT(mode)  # 0 when the zip was made without Unix file types (e.g. on Windows)
    if ftype == stat.S_IFLNK:
        return is_dir, mode, "symlink"
    if ftype not in (0, stat.S_IFREG, stat.S_IFDIR):
        return is_dir, mode, f"special member (mode {oct(mode)})"
    if info.flag_bits & 0x1:
        return is_dir, mode, "encrypted member"
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        return is_dir, mode, f"unsupported compression {info.compress_type}"
    return is_dir, mode, "dir" if is_dir else "file"


def _zip_members(archive: Path, limits: Limits) -> Iterator[tuple[str, bool, int, int, str]]:
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
    except _READ_ERRORS as exc:
        raise VerifyError(f"{archive.name}: not a readable zip archive ({_one_line(exc)}).", hint="Download it again.") from None
    if len(infos) > limits.max_members:
        raise _fail(archive, f"more than {limits.max_members} members")
    for info in infos:
        is_dir, mode, kind = _zip_kind(info)
        yield info.filename, is_dir, info.file_size, mode, kind


def _is_zip(archive: Path) -> bool:
    return archive.name.endswith(".zip")


def list_members(archive: Path, limits: Limits = DEFAULT_LIMITS) -> list[Member]:
    return check_members(archive, limits=limits)


class _Checker:
    """The member rules, applied one member at a time (in archive order), so the same rules serve
    a listing (``check_members``) and the single extraction pass (``safe_extract``).

    ``archive_size`` (bytes) turns on the ratio cap; ``windows`` the Windows name rules."""

    def __init__(self, archive: Path, top: str | None, limits: Limits, *, archive_size: int | None = None,
                 windows: bool = False):
        self.archive, self.top, self.limits, self.windows = archive, top, limits, windows
        self.members: list[Member] = []
        self._seen: dict[str, Member] = {}
        self._spelling: dict[str, tuple[str, str]] = {}  # folded path -> (its spelling, the member that brought it)
        self._under: dict[str, str] = {}  # every proper ancestor of a member -> the first member under it
        self._total = 0
        self.cap, self._cap_why = limits.max_total, f"the {limits.max_total}-byte cap"
        if archive_size is not None:
            by_ratio = max(limits.ratio_floor, archive_size * limits.max_ratio)
            if by_ratio < self.cap:
                self.cap = by_ratio
                self._cap_why = (f"{by_ratio} bytes, {limits.max_ratio} times the archive's own {archive_size} bytes "
                                 "(a sparse file or a compression bomb)")

    def add(self, raw: str, is_dir: bool, size: int, mode: int, kind: str) -> Member:
        archive, top, limits = self.archive, self.top, self.limits  # (member count: checked by the readers)
        if kind not in ("file", "dir"):
            raise _fail(archive, f"member {raw!r} is a {kind}; only regular files and directories are allowed")
        name = _check_name(archive, raw, self.windows)
        if mode & (stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX):
            raise _fail(archive, f"member {raw!r} has setuid/setgid/sticky bits (mode {oct(mode & 0o7777)})")
        if top is not None and name != top and not name.startswith(top + "/"):
            raise _fail(archive, f"member {raw!r} is outside the top folder `{top}/`")
        if name == top and not is_dir:
            raise _fail(archive, f"it has no top folder `{top}/`, only a file of that name")
        if size < 0 or size > limits.max_file:
            raise _fail(archive, f"member {raw!r} is {size} bytes, over the {limits.max_file}-byte cap")
        self._total += size
        if self._total > self.cap:
            raise _fail(archive, f"members add up to more than {self._cap_why}")
        if name in self._seen:
            raise _fail(archive, f"member {name!r} appears twice")
        # one spelling per path, members and the folders above them alike: `a/x` + `A/y`, `x` + `X/y`
        # and NFC/NFD twins would merge (or clash) on macOS and Windows
        paths = [name]
        parent = name.rpartition("/")[0]
        while parent:
            paths.append(parent)
            parent = parent.rpartition("/")[0]
        for path in paths:
            spelled, by = self._spelling.setdefault(unicodedata.normalize("NFC", path).casefold(), (path, name))
            if spelled != path:
                raise _fail(archive, f"members {by!r} and {name!r} collide on a case-insensitive file system")
        # a file must never be the parent of another member, whichever comes first
        if not is_dir and name in self._under:
            raise _fail(archive, f"member {self._under[name]!r} lies under {name!r}, which is a file")
        for parent in paths[1:]:
            p = self._seen.get(parent)
            if p is not None and not p.is_dir:
                raise _fail(archive, f"member {name!r} lies under {parent!r}, which is a file")
            self._under.setdefault(parent, name)
        member = Member(name, is_dir, 0 if is_dir else size, bool(mode & 0o111) and not is_dir)
        self._seen[name] = member
        self.members.append(member)
        return member

    def finish(self) -> list[Member]:
        if self.top is not None and not self.members:
            raise _fail(self.archive, "it is empty")
        return self.members


def _for_windows(windows: bool) -> bool:
    return windows or hostos.is_windows()


def check_members(archive: Path, *, top: str | None = None, limits: Limits = DEFAULT_LIMITS,
                  windows: bool = False) -> list[Member]:
    """Every member checked (see the module docstring); raises VerifyError naming the first bad one.
    ``windows``: the archive is meant for Windows (its name rules apply; always so on Windows)."""
    checker = _Checker(archive, top, limits, archive_size=_size_of(archive), windows=_for_windows(windows))
    for raw_member in _zip_members(archive, limits) if _is_zip(archive) else _tar_members(archive, limits):
        checker.add(*raw_member)
    return checker.finish()


def _size_of(archive: Path) -> int:
    try:
        return archive.stat().st_size
    except OSError as exc:
        raise VerifyError(f"{archive.name}: cannot read the archive ({exc.strerror}).", hint="Download it again.") from None


_Opened = tuple[tuple[str, bool, int, int, str], IO[bytes] | None]


def _open_members(archive: Path, limits: Limits) -> Iterator[_Opened]:
    """(the member's (raw name, is_dir, size, mode, kind), a readable stream or None), in archive
    order, reading the archive once. A stream is opened only for a regular file."""
    if _is_zip(archive):
        with zipfile.ZipFile(archive) as zf:
            raw_members = list(_zip_members(archive, limits))  # the central directory: no decompression
            for info, raw_member in zip(zf.infolist(), raw_members, strict=True):
                if raw_member[4] != "file":
                    yield raw_member, None
                else:
                    with zf.open(info) as fh:
                        yield raw_member, fh
    else:
        with tarfile.open(archive) as tf:
            for raw_member, tinfo in _tar_infos(tf, archive, limits):
                if raw_member[4] != "file":
                    yield raw_member, None
                else:
                    data = tf.extractfile(tinfo)
                    assert data is not None
                    with data:
                        yield raw_member, data
            # to the end of the compressed stream: only there does gzip compare its CRC-32 (tar's
            # end blocks come before it), so flipped bits in a member's data are noticed
            while tf.fileobj.read(_CHUNK):  # type: ignore[union-attr]
                pass


def safe_extract(
    archive: Path, dest_parent: Path, *, top: str, limits: Limits = DEFAULT_LIMITS, prefix: str = ".extract-",
    windows: bool = False,
) -> Path:
    """Check every member and extract it, in one pass over the archive, into a new private temp dir
    under ``dest_parent``: a member is checked (with everything seen before it) before it is
    written, and the first bad one throws the whole temp dir away. ``windows``: the archive is
    meant for Windows (its name rules apply; always so when running on Windows).

    Returns the path of the extracted top folder (``<tempdir>/<top>``); the caller renames it into
    place and removes the temp dir. The files' data is on disk (one ``syncfs`` on Linux, else an
    ``fsync`` per file) before this returns. On any failure nothing is left behind: an unsafe
    member or corrupt data is a VerifyError (exit 8), a full disk a DiskFullError (exit 2).
    """
    checker = _Checker(archive, top, limits, archive_size=_size_of(archive), windows=_for_windows(windows))
    dest_parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=dest_parent))
    members = _open_members(archive, limits)
    m: Member | None = None
    try:
        files: list[Path] = []
        while (item := _next(archive, members)) is not None:
            raw_member, stream = item
            m = checker.add(*raw_member)
            _write_member(archive, tmp, m, stream)
            if not m.is_dir:
                files.append(tmp / m.name)
        checker.finish()
        result = tmp / top  # a folder: at least one member, each the top folder or under it
        for d in sorted((p for p in tmp.rglob("*") if p.is_dir()), reverse=True):
            os.chmod(d, 0o755)
        _flush(tmp, files)
        return result
    except BaseException as exc:
        members.close()
        shutil.rmtree(tmp, ignore_errors=True)
        if is_no_space(exc):  # (reading errors are VerifyErrors by now: an OSError here is from writing)
            raise disk_full(exc, dest_parent, f"unpacking {archive.name}") from None  # type: ignore[arg-type]
        if isinstance(exc, (FileExistsError, IsADirectoryError, NotADirectoryError)) and m is not None:
            # only where the file system folds names further than the checks above (or a racing writer)
            raise _fail(archive, f"member {m.name!r} cannot be written: its name is taken ({exc.strerror})") from None
        raise


# what reading a damaged archive stream raises (gzip: OSError subclasses, bz2: OSError, zip: ValueError...)
_READ_ERRORS = (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, lzma.LZMAError, OSError, ValueError, struct.error)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())  # tarfile lists one reason per compression, one per line


def _corrupt(archive: Path, exc: BaseException) -> VerifyError:
    return VerifyError(f"{archive.name}: corrupt archive data ({_one_line(exc)}).", hint="Download it again.")


def _next(archive: Path, members: Iterator[_Opened]) -> _Opened | None:
    try:
        return next(members, None)
    except _READ_ERRORS as exc:
        raise _corrupt(archive, exc) from None


def _read(archive: Path, stream: IO[bytes]) -> bytes:
    try:
        return stream.read(_CHUNK)
    except _READ_ERRORS as exc:
        raise _corrupt(archive, exc) from None


def _write_member(archive: Path, tmp: Path, m: Member, stream: IO[bytes] | None) -> None:
    """One checked member into ``tmp``: a folder 0755, a new file (never through an existing path
    or link) 0600 while written, then 0755 / 0644; exactly as many bytes as its header declares."""
    target = tmp / m.name  # (checked: relative, `/`-separated, no `.` / `..` / empty parts)
    if m.is_dir:
        target.mkdir(parents=True, exist_ok=True)  # (modes: all set to 0755 once every member is in)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    assert stream is not None
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    got = 0
    with os.fdopen(fd, "wb") as out:
        while block := _read(archive, stream):
            got += len(block)
            if got > m.size:
                raise _fail(archive, f"member {m.name!r} holds more data than its header declares")
            out.write(block)
    if got != m.size:
        raise _fail(archive, f"member {m.name!r} is shorter than its header declares")
    os.chmod(target, 0o755 if m.executable else 0o644)


def _syncfs() -> Callable[[int], int] | None:
    """libc's ``syncfs(fd)`` (Linux): one call writes back every dirty page of one file system."""
    if not hostos.is_linux():
        return None
    try:
        import ctypes

        fn = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int]
    return fn  # type: ignore[no-any-return]


def _flush(tmp: Path, files: list[Path]) -> None:
    """Make the extracted data durable before the caller renames it into place (after a crash the
    installed version is complete or absent, never a tree of empty files)."""
    syncfs = _syncfs()
    if syncfs is not None:
        fd = os.open(tmp, os.O_RDONLY)
        try:
            if syncfs(fd) == 0:
                return
        finally:
            os.close(fd)
    for path in files:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def read_member(archive: Path, name: str, *, max_size: int) -> bytes | None:
    """The bytes of one regular-file member (None when absent or not a regular file)."""
    try:
        if _is_zip(archive):
            with zipfile.ZipFile(archive) as zf:
                try:
                    info = zf.getinfo(name)
                except KeyError:
                    return None
                if _zip_kind(info)[2] != "file" or info.file_size > max_size:  # (not links, encrypted...)
                    return None
                return zf.read(info)
        with tarfile.open(archive) as tf:
            try:
                tinfo = tf.getmember(name)
            except KeyError:
                return None
            if not tinfo.isreg() or tinfo.size > max_size:
                return None
            data = tf.extractfile(tinfo)
            assert data is not None  # (a regular file always has a stream)
            return data.read()
    except _READ_ERRORS:
        return None
