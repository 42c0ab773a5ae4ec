"""Fixed hostile cases for the archive gatekeeper (extract.py), each in tar.gz and zip: names inside
the top folder, every cap at its limit and one past, empty / encrypted / truncated / lying
archives, a full disk, modes under a strict umask, Windows names, sparse tars and zip DOS attributes.

The property tests (test_properties_extract.py) explore; these pin one case per rule so that
mutation testing (`make mutation`, docs/reliability.md) sees every check fail when it is broken.
Each refusal asserts the rule's own words, so a check that another check shadows is noticed.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import re
import resource
import signal
import stat
import subprocess
import tarfile
import tempfile
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.faults import disk_limit

from locara_build.core import extract, hostos
from locara_build.core.errors import DiskFullError, VerifyError
from locara_build.core.extract import DEFAULT_LIMITS, Limits, check_members, read_member, safe_extract

TOP = "locara-server-x"
FORMATS = ["tar.gz", "zip"]
Spec = tuple[str, bytes, int]  # name (a trailing / for a folder), data, mode


def _tar(path: Path, members: list[Spec]) -> Path:
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as tf:
        for name, data, mode in members:
            info = tarfile.TarInfo(name)
            info.mode = mode
            if name.endswith("/"):
                info.type = tarfile.DIRTYPE
                tf.addfile(info)
            else:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return path


def _zip(path: Path, members: list[Spec], *, compression: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as zf, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about a duplicate name written on purpose
        for name, data, mode in members:
            info = zipfile.ZipInfo(name, date_time=(2026, 10, 1, 0, 0, 0))
            info.create_system = 3
            info.compress_type = compression
            info.external_attr = ((stat.S_IFDIR if name.endswith("/") else stat.S_IFREG) | mode) << 16
            zf.writestr(info, data)
    return path


def _archive(tmp: Path, fmt: str, members: list[Spec], stem: str = "a") -> Path:
    path = tmp / f"{stem}.{fmt}"
    return _tar(path, members) if fmt == "tar.gz" else _zip(path, members)


def _with_top(*members: Spec) -> list[Spec]:
    return [(f"{TOP}/", b"", 0o755), *members]


def _refused(archive: Path, dest: Path, match: str, **kw: object) -> VerifyError:
    """Refused by the listing and by the extraction, with these words, leaving nothing in dest."""
    with pytest.raises(VerifyError, match=match):
        check_members(archive, top=TOP, **kw)  # type: ignore[arg-type]
    with pytest.raises(VerifyError, match=match) as err:
        safe_extract(archive, dest, top=TOP, **kw)  # type: ignore[arg-type]
    assert err.value.exit_code == 8
    assert "Traceback" not in err.value.message
    assert not dest.exists() or list(dest.iterdir()) == []
    return err.value


def _accepted(archive: Path, dest: Path, **kw: object) -> Path:
    check_members(archive, top=TOP, **kw)  # type: ignore[arg-type]
    return safe_extract(archive, dest, top=TOP, **kw)  # type: ignore[arg-type]


# --- 1. hostile names inside the top folder ----------------------------------------------------

HOSTILE_NAMES = {
    "backslash": (f"{TOP}/bin\\llama-server", "contains a backslash"),
    "backslash_dotdot": (f"{TOP}/a\\..\\..\\evil", "contains a backslash"),
    "colon_stream": (f"{TOP}/llama-server.exe:evil", "contains a colon"),
    "colon_drive": (f"{TOP}/C:/evil", "contains a colon"),
    "empty_part": (f"{TOP}//x", "has a `//` path component"),
    "empty_part_deep": (f"{TOP}/bin//x", "has a `//` path component"),
    "dot_part": (f"{TOP}/./x", r"has a `\.` path component"),
    "dotdot_part": (f"{TOP}/bin/../x", r"has a `\.\.` path component"),
    "del": (f"{TOP}/a\x7fb", "contains control characters"),
    "c1_control": (f"{TOP}/a\x85b", "contains control characters"),
    "escape": (f"{TOP}/a\x1b[2Jb", "contains control characters"),
    "newline": (f"{TOP}/a\nb", "contains control characters"),
    "absolute": (f"/{TOP}/x", "has an absolute path"),
}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("case", sorted(HOSTILE_NAMES))
def test_hostile_name_inside_the_top_folder_is_refused_for_its_own_reason(tmp_path: Path, fmt: str, case: str) -> None:
    name, why = HOSTILE_NAMES[case]
    archive = _archive(tmp_path, fmt, _with_top((name, b"x", 0o644)))
    err = _refused(archive, tmp_path / "dest", why)
    assert "unsafe archive, refused" in err.message and archive.name in err.message


def test_a_name_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    """A ustar name with raw bytes that are not UTF-8 (tarfile hands them over as surrogates)."""
    archive = tmp_path / "raw.tar.gz"
    with tarfile.open(archive, "w:gz", format=tarfile.USTAR_FORMAT, encoding="utf-8", errors="surrogateescape") as tf:
        d = tarfile.TarInfo(TOP)
        d.type = tarfile.DIRTYPE
        tf.addfile(d)
        f = tarfile.TarInfo(f"{TOP}/caf\udce9")  # the Latin-1 byte 0xE9 alone
        tf.addfile(f, io.BytesIO(b""))
    _refused(archive, tmp_path / "dest", "not UTF-8")


def _long(total: int, part: int = 200) -> str:
    """A member name of exactly ``total`` bytes: TOP/ then parts of ``part`` bytes."""
    name = TOP
    while len(name) + 1 + part < total:
        name += "/" + "d" * part
    return name + "/" + "f" * (total - len(name) - 1)


@pytest.mark.parametrize("fmt", FORMATS)
def test_name_lengths_at_and_one_past_each_limit(tmp_path: Path, fmt: str) -> None:
    at_part = f"{TOP}/" + "p" * 255
    at_part_utf8 = f"{TOP}/" + "é" * 127 + "p"  # 255 bytes in 128 characters
    at_path = _long(1024)
    assert len(at_path.encode()) == 1024 and max(len(p) for p in at_path.split("/")) <= 255
    ok = _archive(tmp_path, fmt, _with_top((at_part, b"1", 0o644), (at_part_utf8, b"2", 0o644), (at_path, b"3", 0o644)))
    top = _accepted(ok, tmp_path / "ok")
    assert (top.parent / at_part).read_bytes() == b"1"
    assert (top.parent / at_part_utf8).read_bytes() == b"2"
    assert (top.parent / at_path).read_bytes() == b"3"
    for i, (name, why) in enumerate([
        (f"{TOP}/" + "p" * 256, "path component longer than 255 bytes"),
        (f"{TOP}/" + "é" * 128, "path component longer than 255 bytes"),
        (_long(1025), "path longer than 1024 bytes"),
        (_long(1025) + "/", "path longer than 1024 bytes"),
    ]):
        bad = _archive(tmp_path, fmt, _with_top((name, b"" if name.endswith("/") else b"x", 0o755)), stem=f"bad{i}")
        _refused(bad, tmp_path / f"bad{i}", why)
    # a folder name's trailing slash does not count
    slash = _archive(tmp_path, fmt, _with_top((_long(1024) + "/", b"", 0o755)), stem="slash")
    assert _accepted(slash, tmp_path / "slash").is_dir()


# --- 2. every cap at the limit and one past ---------------------------------------------------

CAPPED = _with_top((f"{TOP}/a", b"a" * 10, 0o644), (f"{TOP}/b", b"b" * 20, 0o755), (f"{TOP}/c", b"c" * 30, 0o644))


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("field,at,why", [
    ("max_members", 4, "more than 3 members"),
    ("max_file", 30, r"'locara-server-x/c' is 30 bytes, over the 29-byte cap"),
    ("max_total", 60, "members add up to more than the 59-byte cap"),
    ("ratio_floor", 60, "members add up to more than 59 bytes, 0 times the archive's own"),
])
def test_each_cap_accepts_exactly_its_limit_and_refuses_one_more(tmp_path: Path, fmt: str, field: str, at: int, why: str) -> None:
    archive = _archive(tmp_path, fmt, CAPPED)
    base = {"max_ratio": 0} if field == "ratio_floor" else {}
    top = _accepted(archive, tmp_path / "at", limits=Limits(**base, **{field: at}))
    assert (top / "c").read_bytes() == b"c" * 30 and stat.S_IMODE((top / "b").stat().st_mode) == 0o755
    _refused(archive, tmp_path / "past", why, limits=Limits(**base, **{field: at - 1}))


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_archive_may_unpack_to_its_ratio_times_its_size(tmp_path: Path, fmt: str) -> None:
    """A 2 MiB library (half of it compressible): over the 1 MiB floor, far under 100 x the
    archive's size: accepted with the default limits; with a ratio of 1 refused (data > archive)."""
    data = os.urandom(1 << 20) + bytes(1 << 20)
    archive = _archive(tmp_path, fmt, _with_top((f"{TOP}/bin/libggml.so", data, 0o755)))
    top = _accepted(archive, tmp_path / "ok")
    assert (top / "bin/libggml.so").read_bytes() == data
    _refused(archive, tmp_path / "no", "times the archive's own", limits=Limits(max_ratio=1, ratio_floor=0))
    assert DEFAULT_LIMITS.max_ratio == 100 and DEFAULT_LIMITS.ratio_floor == 1 << 20  # docs/reliability.md


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_empty_archive_is_refused(tmp_path: Path, fmt: str) -> None:
    archive = _archive(tmp_path, fmt, [])
    err = _refused(archive, tmp_path / "dest", "it is empty")
    assert err.message == f"{archive.name}: unsafe archive, refused (nothing of it was installed): it is empty."
    assert check_members(archive) == []  # a listing without a top folder: just nothing


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_archive_without_its_top_folder_entry_gets_one_and_one_without_the_folder_is_refused(tmp_path: Path, fmt: str) -> None:
    implicit = _archive(tmp_path, fmt, [(f"{TOP}/bin/x", b"x", 0o755)])
    top = _accepted(implicit, tmp_path / "ok")
    assert stat.S_IMODE(top.stat().st_mode) == 0o755 and (top / "bin/x").read_bytes() == b"x"
    file_only = _archive(tmp_path, fmt, [(TOP, b"not a folder", 0o644)], stem="file")
    _refused(file_only, tmp_path / "no", f"it has no top folder `{TOP}/`, only a file of that name")


def _zip_tool(tmp_path: Path, *args: str) -> Path:
    src = tmp_path / "src"
    (src / TOP / "bin").mkdir(parents=True, exist_ok=True)
    (src / TOP / "bin" / "llama-server").write_bytes(b"#!/bin/sh\necho hi\n" * 50)
    out = tmp_path / "tool.zip"
    res = subprocess.run(["zip", "-q", "-r", *args, str(out), TOP], cwd=src, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return out


def test_an_encrypted_zip_member_is_refused_cleanly(tmp_path: Path) -> None:
    """Info-ZIP's `zip -P` (traditional PKWARE encryption): exit 8, no password prompt, no traceback."""
    archive = _zip_tool(tmp_path, "-P", "secret")
    assert zipfile.ZipFile(archive).infolist()[-1].flag_bits & 0x1
    err = _refused(archive, tmp_path / "dest", r"member 'locara-server-x/bin/llama-server' is a encrypted member")
    assert "secret" not in err.message


def test_a_zip_member_in_an_unsupported_compression_is_refused(tmp_path: Path) -> None:
    archive = _zip_tool(tmp_path, "-Z", "bzip2")
    assert zipfile.ZipFile(archive).infolist()[-1].compress_type == zipfile.ZIP_BZIP2
    _refused(archive, tmp_path / "dest", "unsupported compression 12")


# --- 3. cleanup and modes ------------------------------------------------------------------------


def _big(fmt: str, tmp: Path) -> Path:
    return _archive(tmp, fmt, _with_top(*[(f"{TOP}/f{i}", os.urandom(200_000), 0o644) for i in range(4)]), stem="big")


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("keep", [0.3, 0.6, 0.95])
def test_a_truncated_archive_is_corrupt_and_leaves_nothing(tmp_path: Path, fmt: str, keep: float) -> None:
    archive = _big(fmt, tmp_path)
    data = archive.read_bytes()
    archive.write_bytes(data[: int(len(data) * keep)])
    dest = tmp_path / "dest"
    with pytest.raises(VerifyError, match="not a readable|corrupt archive data") as err:
        safe_extract(archive, dest, top=TOP)
    assert err.value.exit_code == 8 and err.value.hint == "Download it again."
    assert list(dest.iterdir()) == []
    with pytest.raises(VerifyError, match="not a readable|corrupt archive data"):
        check_members(archive, top=TOP)


@pytest.mark.parametrize("fmt", FORMATS)
def test_flipped_bytes_in_the_compressed_data_leave_nothing(tmp_path: Path, fmt: str) -> None:
    archive = _big(fmt, tmp_path)
    data = bytearray(archive.read_bytes())
    for at in range(len(data) // 2, len(data) // 2 + 64):
        data[at] ^= 0xFF
    archive.write_bytes(bytes(data))
    dest = tmp_path / "dest"
    with pytest.raises(VerifyError, match="corrupt archive data") as err:
        safe_extract(archive, dest, top=TOP)
    assert err.value.exit_code == 8
    assert list(dest.iterdir()) == []


def _lying_zip(tmp_path: Path, real: bytes, declared: int) -> Path:
    """A stored zip member whose central directory declares ``declared`` bytes (CRC of the real
    bytes, so zipfile itself notices nothing) while the stored data has ``len(real)``."""
    path = _zip(tmp_path / "lie.zip", _with_top((f"{TOP}/x", real, 0o644)), compression=zipfile.ZIP_STORED)
    raw = bytearray(path.read_bytes())
    cd = raw.rindex(b"PK\x01\x02")  # the last central directory entry: the member x
    raw[cd + 24:cd + 28] = declared.to_bytes(4, "little")  # uncompressed size
    path.write_bytes(bytes(raw))
    return path


def test_a_stream_shorter_than_its_header_leaves_nothing(tmp_path: Path) -> None:
    archive = _lying_zip(tmp_path, b"0123456789", 50)
    assert zipfile.ZipFile(archive).getinfo(f"{TOP}/x").file_size == 50
    dest = tmp_path / "dest"
    with pytest.raises(VerifyError, match=r"member 'locara-server-x/x' is shorter than its header declares"):
        safe_extract(archive, dest, top=TOP)
    assert list(dest.iterdir()) == []


def test_a_tar_stream_shorter_than_its_header_leaves_nothing(tmp_path: Path) -> None:
    """A tar header declaring more data than the archive holds (the archive ends inside it)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
        d = tarfile.TarInfo(TOP)
        d.type = tarfile.DIRTYPE
        tf.addfile(d)
        info = tarfile.TarInfo(f"{TOP}/x")
        info.size = 1 << 20
        tf.fileobj.write(info.tobuf(tf.format, tf.encoding, tf.errors) + b"y" * 512)  # the header, 512 bytes of data
    archive = tmp_path / "short.tar.gz"
    archive.write_bytes(gzip.compress(raw.getvalue()))
    dest = tmp_path / "dest"
    with pytest.raises(VerifyError) as err:
        safe_extract(archive, dest, top=TOP)
    assert err.value.message == "short.tar.gz: corrupt archive data (unexpected end of data)."
    assert list(dest.iterdir()) == []


def test_fake_reader_longer_than_its_header_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Python's readers stop at the declared size; a reader that would not (a fake: no stdlib
    reader does this) still cannot write more than the header declared."""
    archive = _archive(tmp_path, "tar.gz", _with_top((f"{TOP}/x", b"0123456789", 0o644)))
    real = tarfile.TarFile.extractfile

    def longer(self: tarfile.TarFile, member: tarfile.TarInfo) -> io.BytesIO:
        data = real(self, member)
        assert data is not None
        return io.BytesIO(data.read() + b"EXTRA")

    monkeypatch.setattr(tarfile.TarFile, "extractfile", longer)
    dest = tmp_path / "dest"
    with pytest.raises(VerifyError, match="holds more data than its header declares"):
        safe_extract(archive, dest, top=TOP)
    assert list(dest.iterdir()) == []


@contextlib.contextmanager
def _fsize_limit(limit: int) -> Iterator[None]:
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    old = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, old[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, old)
        signal.signal(signal.SIGXFSZ, old_handler)


@pytest.mark.parametrize("fmt", FORMATS)
def test_disk_full_on_the_third_file_leaves_nothing_and_says_so(tmp_path: Path, fmt: str) -> None:
    """A real full disk (a 512 KiB tmpfs where this process may mount one, else RLIMIT_FSIZE):
    ENOSPC / EFBIG on the third 200 KB file -> DiskFullError (exit 2) naming the folder; the
    two files already written are gone."""
    archive = _big(fmt, tmp_path)
    with disk_limit(tmp_path / "disk", 512 << 10) as disk:
        dest = disk.path / "versions"
        ctx = _fsize_limit(300_000) if disk.kind == "rlimit" else contextlib.nullcontext()
        with pytest.raises(DiskFullError) as err, ctx:
            safe_extract(archive, dest, top=TOP)
        assert err.value.exit_code == 2
        assert f"unpacking {archive.name}" in err.value.message and str(dest) in err.value.message
        assert "Nothing partial was left behind" in err.value.message
        assert list(dest.iterdir()) == []
        top = safe_extract(_archive(tmp_path, fmt, CAPPED, stem="small"), dest, top=TOP)  # room again: works
        assert (top / "c").read_bytes() == b"c" * 30


@pytest.mark.parametrize("fmt", FORMATS)
def test_modes_are_0755_and_0644_under_umask_077(tmp_path: Path, fmt: str) -> None:
    archive = _archive(tmp_path, fmt, [
        (f"{TOP}/", b"", 0o700),
        (f"{TOP}/bin/", b"", 0o700),
        (f"{TOP}/bin/llama-server", b"x", 0o700),
        (f"{TOP}/bin/lib.so", b"y", 0o600),
        (f"{TOP}/deep/er/file", b"z", 0o100),  # its folders exist only implicitly
        (f"{TOP}/ui/", b"", 0o000),
    ])
    old = os.umask(0o077)
    try:
        top = safe_extract(archive, tmp_path / "dest", top=TOP)
    finally:
        os.umask(old)
    modes = {str(p.relative_to(top)): stat.S_IMODE(p.stat().st_mode) for p in [top, *top.rglob("*")]}
    assert modes == {".": 0o755, "bin": 0o755, "bin/llama-server": 0o755, "bin/lib.so": 0o644, "deep": 0o755,
                     "deep/er": 0o755, "deep/er/file": 0o755, "ui": 0o755}


def test_files_are_created_exclusively_without_following_links_and_private_while_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A link planted in the private temp dir (a racing process of the same user; a stand-in: the
    test plants it through mkdtemp) is never written through: the file already exists -> refused,
    the link's target untouched. And each file is created 0600 (umask 0): nobody reads it while
    it is written."""
    victim = tmp_path / "victim"
    victim.write_text("keep")
    real_mkdtemp = tempfile.mkdtemp

    def planted(*args: object, **kw: object) -> str:
        d = real_mkdtemp(*args, **kw)  # type: ignore[call-overload]
        (Path(d) / TOP).mkdir()
        (Path(d) / TOP / "run.sh").symlink_to(victim)
        return d

    archive = _archive(tmp_path, "tar.gz", _with_top((f"{TOP}/run.sh", b"#!/bin/sh\nrm -rf ~\n", 0o755)))
    monkeypatch.setattr(tempfile, "mkdtemp", planted)
    dest = tmp_path / "dest"
    with pytest.raises(VerifyError, match="member 'locara-server-x/run.sh' cannot be written: its name is taken"):
        safe_extract(archive, dest, top=TOP)
    assert victim.read_text() == "keep" and list(dest.iterdir()) == []
    monkeypatch.setattr(tempfile, "mkdtemp", real_mkdtemp)

    created: list[int] = []
    real_open = os.open

    def spy(path: object, flags: int, mode: int = 0o777, **kw: object) -> int:
        fd = real_open(path, flags, mode, **kw)  # type: ignore[arg-type]
        if flags & os.O_CREAT:
            created.append(stat.S_IMODE(os.fstat(fd).st_mode))
        return fd

    monkeypatch.setattr(extract.os, "open", spy)
    old = os.umask(0)
    try:
        safe_extract(archive, tmp_path / "ok", top=TOP)
    finally:
        os.umask(old)
    assert created == [0o600]


# --- issue 19 #9: Windows names, sparse files, DOS attributes ------------------------------------

WINDOWS_BAD = {
    "con": (f"{TOP}/CON", "reserved device name CON"),
    "con_lower_ext": (f"{TOP}/bin/con.dll", "reserved device name CON"),
    "nul_txt": (f"{TOP}/NUL.txt", "reserved device name NUL"),
    "nul_double_ext": (f"{TOP}/nul.tar.gz", "reserved device name NUL"),
    "aux_space_ext": (f"{TOP}/AUX .txt", "reserved device name AUX"),
    "prn_folder": (f"{TOP}/prn/readme", "reserved device name PRN"),
    "com1": (f"{TOP}/COM1", "reserved device name COM1"),
    "com0": (f"{TOP}/com0.log", "reserved device name COM0"),
    "lpt9": (f"{TOP}/Lpt9.dll", "reserved device name LPT9"),
    "com_superscript": (f"{TOP}/COM\u00b9.txt", "reserved device name COM\u00b9"),
    "lpt_superscript3": (f"{TOP}/lpt\u00b3", "reserved device name LPT\u00b3"),
    "conin": (f"{TOP}/CONIN$", r"reserved device name CONIN\$"),
    "conout": (f"{TOP}/conout$.txt", r"reserved device name CONOUT\$"),
    "trailing_dot": (f"{TOP}/llama-server.exe.", "ends with a dot or a space"),
    "trailing_space": (f"{TOP}/run.cmd ", "ends with a dot or a space"),
    "trailing_dot_folder": (f"{TOP}/bin./x", "ends with a dot or a space"),
    "three_dots": (f"{TOP}/...", "ends with a dot or a space"),
    "lt": (f"{TOP}/a<b", "contains <"),
    "gt": (f"{TOP}/a>b", "contains >"),
    "quote": (f'{TOP}/a"b', 'contains "'),
    "pipe": (f"{TOP}/a|b", r"contains \|"),
    "question": (f"{TOP}/what?", r"contains \?"),
    "star": (f"{TOP}/*.dll", r"contains \*"),
}
WINDOWS_FINE = [f"{TOP}/CONSOLE", f"{TOP}/com10", f"{TOP}/LPT", f"{TOP}/nul-free.txt", f"{TOP}/auxiliary.dll",
                f"{TOP}/.hidden", f"{TOP}/a.b.c", f"{TOP}/x con", f"{TOP}/COM1x"]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("case", sorted(WINDOWS_BAD))
def test_names_windows_cannot_hold_are_refused_in_a_windows_archive(tmp_path: Path, fmt: str, case: str) -> None:
    name, why = WINDOWS_BAD[case]
    archive = _archive(tmp_path, fmt, _with_top((name, b"x", 0o644)))
    err = _refused(archive, tmp_path / "win", why, windows=True)
    assert "cannot exist on Windows" in err.message
    # the same archive for Linux: these are ordinary names there
    assert (_accepted(archive, tmp_path / "linux").parent / name).read_bytes() == b"x"


@pytest.mark.parametrize("fmt", FORMATS)
def test_names_close_to_reserved_ones_are_fine_for_windows(tmp_path: Path, fmt: str) -> None:
    archive = _archive(tmp_path, fmt, _with_top(*[(n, n.encode(), 0o644) for n in WINDOWS_FINE]))
    top = _accepted(archive, tmp_path / "dest", windows=True)
    assert sorted(p.name for p in top.iterdir()) == sorted(n.rsplit("/", 1)[1] for n in WINDOWS_FINE)


def test_extracting_on_windows_applies_the_windows_rules_to_every_archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = _archive(tmp_path, "tar.gz", _with_top((f"{TOP}/nul", b"x", 0o644)))
    monkeypatch.setattr(hostos.sys, "platform", "win32")
    _refused(archive, tmp_path / "dest", "reserved device name NUL")


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("first,second", [
    (f"{TOP}/run.sh", f"{TOP}/RUN.SH"),  # two members
    (f"{TOP}/Bin/a", f"{TOP}/bin/b"),  # two folders above them: merge on macOS / Windows
    (f"{TOP}/x/y", f"{TOP}/X"),  # a file and a folder above another member
    (f"{TOP}/X", f"{TOP}/x/y"),
    (f"{TOP}/caf\u00e9", f"{TOP}/cafe\u0301"),  # NFC and NFD
    (f"{TOP}/STRASSE", f"{TOP}/stra\u00dfe"),  # full case folding (ß -> ss)
])
def test_names_colliding_case_insensitively_are_refused_everywhere(tmp_path: Path, fmt: str, first: str, second: str) -> None:
    archive = _archive(tmp_path, fmt, _with_top((first, b"1", 0o644), (second, b"2", 0o644)))
    _refused(archive, tmp_path / "dest", rf"members '{first}' and '{second}' collide on a case-insensitive file system")


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_member_twice_and_a_file_above_a_member_are_refused(tmp_path: Path, fmt: str) -> None:
    twice = _archive(tmp_path, fmt, _with_top((f"{TOP}/x", b"1", 0o644), (f"{TOP}/x", b"2", 0o644)), stem="twice")
    _refused(twice, tmp_path / "d1", "member 'locara-server-x/x' appears twice")
    folder_twice = _archive(tmp_path, fmt, _with_top((f"{TOP}/d/", b"", 0o755), (f"{TOP}/d/", b"", 0o755)), stem="ft")
    _refused(folder_twice, tmp_path / "d2", "member 'locara-server-x/d' appears twice")
    for i, order in enumerate([[f"{TOP}/x", f"{TOP}/x/y/z"], [f"{TOP}/x/y/z", f"{TOP}/x"]]):
        above = _archive(tmp_path, fmt, _with_top(*[(n, b"f", 0o644) for n in order]), stem=f"above{i}")
        _refused(above, tmp_path / f"d{3 + i}", "member 'locara-server-x/x/y/z' lies under 'locara-server-x/x', which is a file")
    # a folder entry after files below it, and a folder above a folder: fine
    fine = _archive(tmp_path, fmt, _with_top((f"{TOP}/d/e/f", b"f", 0o644), (f"{TOP}/d/", b"", 0o755), (f"{TOP}/d/e/", b"", 0o755)),
                    stem="fine")
    assert (_accepted(fine, tmp_path / "d9") / "d/e/f").read_bytes() == b"f"


def _sparse_tar(tmp_path: Path, size: int) -> Path:
    """GNU tar's own sparse archive of a ``size``-byte file that is one hole."""
    src = tmp_path / "sparse-src"
    (src / TOP).mkdir(parents=True)
    with open(src / TOP / "model.bin", "wb") as fh:
        fh.truncate(size)
    out = tmp_path / "sparse.tar.gz"
    res = subprocess.run(["tar", "--sparse", "--format=gnu", "-czf", str(out), TOP], cwd=src, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return out


def test_a_600_byte_sparse_tar_of_50_mib_is_refused_before_writing(tmp_path: Path) -> None:
    archive = _sparse_tar(tmp_path, 50 << 20)
    assert archive.stat().st_size < 1000  # about 600 bytes
    assert tarfile.open(archive).getmember(f"{TOP}/model.bin").issparse()
    err = _refused(archive, tmp_path / "dest", rf"more than {1 << 20} bytes, 100 times the archive's own {archive.stat().st_size} bytes "
                   r"\(a sparse file or a compression bomb\)")
    assert err.exit_code == 8
    # what it would be: with the ratio lifted, tarfile expands the hole into 50 MiB of zeros
    top = _accepted(archive, tmp_path / "lifted", limits=Limits(max_ratio=1 << 20))
    assert (top / "model.bin").stat().st_size == 50 << 20


def test_a_deflate_bomb_is_refused_by_the_ratio_before_writing(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "bomb.zip", _with_top(*[(f"{TOP}/zeros{i}", bytes(8 << 20), 0o644) for i in range(4)]))
    assert archive.stat().st_size < 200_000
    _refused(archive, tmp_path / "dest", "times the archive's own")


def _dos_zip(path: Path, entries: list[tuple[str, bytes, int, int]]) -> Path:
    """Entries as (name, data, create_system, external_attr): 0 MS-DOS, 3 Unix, 11 NTFS, 19 macOS."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data, system, attr in entries:
            info = zipfile.ZipInfo(name, date_time=(2026, 10, 1, 0, 0, 0))
            info.create_system = system
            info.external_attr = attr
            zf.writestr(info, data)
    return path


RO, HIDDEN, DIRBIT, ARCHIVE = 0x01, 0x02, 0x10, 0x20


def test_zip_dos_attributes_never_change_the_exec_bit_the_central_directory_gives(tmp_path: Path) -> None:
    unix = lambda mode: (stat.S_IFREG | mode) << 16  # noqa: E731
    archive = _dos_zip(tmp_path / "dos.zip", [
        (f"{TOP}/", b"", 0, DIRBIT),  # a Windows-made folder entry: no Unix mode at all
        (f"{TOP}/llama-server.exe", b"MZ", 0, ARCHIVE),  # Windows-made: no Unix mode -> 0644
        (f"{TOP}/readonly.txt", b"r", 0, RO | ARCHIVE),
        (f"{TOP}/run.sh", b"#!", 3, unix(0o755) | ARCHIVE | RO),  # exec kept under DOS bits
        (f"{TOP}/ntfs-exec", b"e", 11, unix(0o750) | HIDDEN | ARCHIVE),
        (f"{TOP}/ntfs-plain", b"p", 11, unix(0o644) | ARCHIVE),
        (f"{TOP}/mac-exec", b"m", 19, unix(0o711)),
        (f"{TOP}/user-x-only", b"u", 3, unix(0o100) | RO),
        (f"{TOP}/dos-dir-bit-on-a-file", b"d", 3, unix(0o644) | DIRBIT),
    ])
    top = _accepted(archive, tmp_path / "dest")
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in top.iterdir()}
    assert modes == {"llama-server.exe": 0o644, "readonly.txt": 0o644, "run.sh": 0o755, "ntfs-exec": 0o755,
                     "ntfs-plain": 0o644, "mac-exec": 0o755, "user-x-only": 0o755, "dos-dir-bit-on-a-file": 0o644}
    assert (top / "dos-dir-bit-on-a-file").read_bytes() == b"d"
    assert {m.name.rsplit("/", 1)[-1]: m.executable for m in check_members(archive, top=TOP)}["run.sh"] is True


def test_info_zip_archive_keeps_modes_despite_its_dos_read_only_bit(tmp_path: Path) -> None:
    """Real Info-ZIP `zip`: a read-only 0555 program gets the DOS read-only bit as well; it stays
    executable, a 0444 data file stays 0644."""
    src = tmp_path / "src" / TOP
    src.mkdir(parents=True)
    (src / "llama-server").write_bytes(b"#!/bin/sh\n")
    (src / "llama-server").chmod(0o555)
    (src / "notes.txt").write_bytes(b"n")
    (src / "notes.txt").chmod(0o444)
    out = tmp_path / "info.zip"
    res = subprocess.run(["zip", "-q", "-r", str(out), TOP], cwd=tmp_path / "src", capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    attrs = {i.filename: i.external_attr for i in zipfile.ZipFile(out).infolist()}
    assert attrs[f"{TOP}/llama-server"] & RO  # the DOS bit really is there
    top = _accepted(out, tmp_path / "dest", windows=True)
    assert stat.S_IMODE((top / "llama-server").stat().st_mode) == 0o755
    assert stat.S_IMODE((top / "notes.txt").stat().st_mode) == 0o644


@pytest.mark.parametrize("fmt", FORMATS)
def test_read_member_returns_only_small_regular_files(tmp_path: Path, fmt: str) -> None:
    archive = _archive(tmp_path, fmt, _with_top((f"{TOP}/sbom.json", b"{}" * 10, 0o644), (f"{TOP}/d/", b"", 0o755)))
    assert read_member(archive, f"{TOP}/sbom.json", max_size=20) == b"{}" * 10
    assert read_member(archive, f"{TOP}/sbom.json", max_size=19) is None
    assert read_member(archive, f"{TOP}/d/" if fmt == "zip" else f"{TOP}/d", max_size=100) is None
    assert read_member(archive, f"{TOP}/missing", max_size=100) is None
    junk = tmp_path / f"junk.{fmt}"
    junk.write_bytes(b"\x1f\x8b" + os.urandom(300))
    assert read_member(junk, f"{TOP}/sbom.json", max_size=100) is None


# --- the exact words of every refusal (a check whose message breaks is a check that broke) ----------

HINT = ("Do not use this file. A release archive holds one top folder of plain files and directories; "
        "report the mirror or the release that served it.")


def _ti(name: str, kind: bytes, mode: int = 0o644, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.linkname = kind, mode, link
    return info


def _tar_extra(path: Path, *extra: tarfile.TarInfo) -> Path:
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as tf:
        tf.addfile(_ti(TOP, tarfile.DIRTYPE, 0o755))
        for info in extra:
            tf.addfile(info, io.BytesIO(b"") if info.isreg() else None)
    return path


def _zip_raw(path: Path, name: str, attr: int, *, system: int = 3, data: bytes = b"x") -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{TOP}/", b"")
        info = zipfile.ZipInfo(name, date_time=(2026, 10, 1, 0, 0, 0))
        info.create_system = system
        info.external_attr = attr
        zf.writestr(info, data)
    return path


EXACT = {
    "tar_symlink": (lambda p: _tar_extra(p / "a.tar.gz", _ti(f"{TOP}/l", tarfile.SYMTYPE, link="/etc")),
                    f"member '{TOP}/l' is a symlink -> /etc; only regular files and directories are allowed"),
    "tar_hardlink": (lambda p: _tar_extra(p / "a.tar.gz", _ti(f"{TOP}/h", tarfile.LNKTYPE, link=f"{TOP}/x")),
                     f"member '{TOP}/h' is a hard link -> {TOP}/x; only regular files and directories are allowed"),
    "tar_chardev": (lambda p: _tar_extra(p / "a.tar.gz", _ti(f"{TOP}/c", tarfile.CHRTYPE)),
                    f"member '{TOP}/c' is a device file; only regular files and directories are allowed"),
    "tar_blockdev": (lambda p: _tar_extra(p / "a.tar.gz", _ti(f"{TOP}/b", tarfile.BLKTYPE)),
                     f"member '{TOP}/b' is a device file; only regular files and directories are allowed"),
    "tar_fifo": (lambda p: _tar_extra(p / "a.tar.gz", _ti(f"{TOP}/f", tarfile.FIFOTYPE)),
                 f"member '{TOP}/f' is a FIFO; only regular files and directories are allowed"),
    "tar_unknown_type": (lambda p: _tar_extra(p / "a.tar.gz", _ti(f"{TOP}/z", b"Z")),
                         f"member '{TOP}/z' is a special member (type 'Z'); only regular files and directories are allowed"),
    "tar_setuid": (lambda p: _tar_extra(p / "a.tar.gz", _ti(f"{TOP}/su", tarfile.REGTYPE, 0o4755)),
                   f"member '{TOP}/su' has setuid/setgid/sticky bits (mode 0o4755)"),
    "tar_sticky_dir": (lambda p: _tar_extra(p / "a.tar.gz", _ti(f"{TOP}/tmp", tarfile.DIRTYPE, 0o1777)),
                       f"member '{TOP}/tmp' has setuid/setgid/sticky bits (mode 0o1777)"),
    "tar_empty_name": (lambda p: _tar_extra(p / "a.tar.gz", _ti("", tarfile.REGTYPE)), "a member has an empty name"),
    "tar_outside": (lambda p: _tar_extra(p / "a.tar.gz", _ti("other/x", tarfile.REGTYPE)),
                    f"member 'other/x' is outside the top folder `{TOP}/`"),
    "tar_top_prefix": (lambda p: _tar_extra(p / "a.tar.gz", _ti(f"{TOP}-evil/x", tarfile.REGTYPE)),
                       f"member '{TOP}-evil/x' is outside the top folder `{TOP}/`"),
    "zip_symlink": (lambda p: _zip_raw(p / "a.zip", f"{TOP}/l", (stat.S_IFLNK | 0o777) << 16),
                    f"member '{TOP}/l' is a symlink; only regular files and directories are allowed"),
    "zip_chardev": (lambda p: _zip_raw(p / "a.zip", f"{TOP}/c", (stat.S_IFCHR | 0o644) << 16),
                    f"member '{TOP}/c' is a special member (mode 0o20644); only regular files and directories are allowed"),
    "zip_fifo": (lambda p: _zip_raw(p / "a.zip", f"{TOP}/f", (stat.S_IFIFO | 0o600) << 16),
                 f"member '{TOP}/f' is a special member (mode 0o10600); only regular files and directories are allowed"),
    "zip_setgid": (lambda p: _zip_raw(p / "a.zip", f"{TOP}/sg", (stat.S_IFREG | 0o2755) << 16),
                   f"member '{TOP}/sg' has setuid/setgid/sticky bits (mode 0o2755)"),
    "zip_empty_name": (lambda p: _zip_raw(p / "a.zip", "", (stat.S_IFREG | 0o644) << 16), "a member has an empty name"),
    "zip_nul_name": (lambda p: _zip_raw(p / "a.zip", "\0evil", (stat.S_IFREG | 0o644) << 16), "a member has an empty name"),
    "zip_dos_only_empty_name": (lambda p: _zip_raw(p / "a.zip", "", 0x20, system=0), "a member has an empty name"),
}


@pytest.mark.parametrize("case", sorted(EXACT))
def test_each_refusal_says_exactly_what_it_found(tmp_path: Path, case: str) -> None:
    make, why = EXACT[case]
    archive = make(tmp_path)
    for call in (lambda: check_members(archive, top=TOP), lambda: safe_extract(archive, tmp_path / "dest", top=TOP)):
        with pytest.raises(VerifyError) as err:
            call()
        assert err.value.message == f"{archive.name}: unsafe archive, refused (nothing of it was installed): {why}."
        assert err.value.hint == HINT and err.value.exit_code == 8
    assert list((tmp_path / "dest").iterdir()) == []


@pytest.mark.parametrize("fmt", FORMATS)
def test_exact_words_for_names_caps_and_windows(tmp_path: Path, fmt: str) -> None:
    cases = [
        ([(f"{TOP}/a\\b", b"x", 0o644)], {}, f"member '{TOP}/a\\\\b' contains a backslash"),
        ([(f"{TOP}/a:b", b"x", 0o644)], {}, f"member '{TOP}/a:b' contains a colon (drive letter or stream name)"),
        ([(f"{TOP}/a\x7f", b"x", 0o644)], {}, f"member '{TOP}/a\\x7f' contains control characters"),
        ([(f"{TOP}//x", b"x", 0o644)], {}, f"member '{TOP}//x' has a `//` path component"),
        ([(f"{TOP}/./x", b"x", 0o644)], {}, f"member '{TOP}/./x' has a `.` path component"),
        ([(f"{TOP}/" + "p" * 256, b"x", 0o644)], {},
         f"member {(f'{TOP}/' + 'p' * 256)[:80]!r}... has a path component longer than 255 bytes"),
        ([(_long(1025), b"x", 0o644)], {}, f"member {_long(1025)[:80]!r}... has a path longer than 1024 bytes"),
        ([(f"{TOP}/x", b"x" * 11, 0o644)], {"limits": Limits(max_file=10)}, f"member '{TOP}/x' is 11 bytes, over the 10-byte cap"),
        ([(f"{TOP}/x", b"x" * 11, 0o644)], {"limits": Limits(max_total=10)}, "members add up to more than the 10-byte cap"),
        ([(f"{TOP}/x", b"x", 0o644), (f"{TOP}/y", b"y", 0o644)], {"limits": Limits(max_members=2)}, "more than 2 members"),
        ([(f"{TOP}/NUL.txt", b"x", 0o644)], {"windows": True},
         f"member '{TOP}/NUL.txt' cannot exist on Windows: `NUL.txt` is the reserved device name NUL (opening it opens the device)"),
        ([(f"{TOP}/a. ", b"x", 0o644)], {"windows": True},
         f"member '{TOP}/a. ' cannot exist on Windows: `a. ` ends with a dot or a space (Windows drops them: it would be another name)"),
        ([(f"{TOP}/a?*|", b"x", 0o644)], {"windows": True},
         f"member '{TOP}/a?*|' cannot exist on Windows: `a?*|` contains *?|, which Windows file names cannot"),
        ([(f"{TOP}/CON\u00a0.txt", b"x", 0o644), (f"{TOP}/CON\u00a0.TXT", b"x", 0o644)], {"windows": True},
         f"members {f'{TOP}/CON' + chr(0xA0) + '.txt'!r} and {f'{TOP}/CON' + chr(0xA0) + '.TXT'!r} collide on a case-insensitive file system"),
    ]
    for i, (members, kw, why) in enumerate(cases):
        archive = _archive(tmp_path, fmt, _with_top(*members), stem=f"c{i}")
        with pytest.raises(VerifyError) as err:
            safe_extract(archive, tmp_path / f"d{i}", top=TOP, **kw)  # type: ignore[arg-type]
        assert err.value.message == f"{archive.name}: unsafe archive, refused (nothing of it was installed): {why}.", i
        assert err.value.hint == HINT


@pytest.mark.parametrize("fmt", FORMATS)
def test_unreadable_archives_say_so_and_ask_for_a_new_download(tmp_path: Path, fmt: str) -> None:
    junk = tmp_path / f"junk.{fmt}"
    junk.write_bytes(b"\x1f\x8b\x08\x00" + os.urandom(500) if fmt == "tar.gz" else b"PK\x03\x04" + os.urandom(500))
    kind = "tar.gz" if fmt == "tar.gz" else "zip"
    cause = "file could not be opened successfully: - method gz" if fmt == "tar.gz" else "File is not a zip file"
    with pytest.raises(VerifyError, match=rf"^junk\.{re.escape(fmt)}: not a readable {kind} archive \({cause}.*\)\.$") as err:
        check_members(junk, top=TOP)
    assert err.value.hint == "Download it again." and err.value.exit_code == 8
    with pytest.raises(VerifyError, match=rf"^junk\.{re.escape(fmt)}: (corrupt archive data|not a readable {kind} archive) \(.+\)\.$") as err:
        safe_extract(junk, tmp_path / "dest", top=TOP)
    assert err.value.hint == "Download it again."
    assert list((tmp_path / "dest").iterdir()) == []
    with pytest.raises(VerifyError, match=r"^missing\.zip: cannot read the archive \(No such file or directory\)\.$"):
        safe_extract(tmp_path / "missing.zip", tmp_path / "dest", top=TOP)
    with pytest.raises(VerifyError, match="cannot read the archive"):
        check_members(tmp_path / "missing.tar.gz", top=TOP)


def test_members_come_back_with_names_sizes_and_exec_bits(tmp_path: Path) -> None:
    for fmt in FORMATS:
        archive = _archive(tmp_path, fmt, _with_top((f"{TOP}/bin/", b"", 0o755), (f"{TOP}/bin/s", b"abc", 0o750),
                                                    (f"{TOP}/r", b"rr", 0o644)), stem=fmt.replace(".", ""))
        assert check_members(archive, top=TOP) == [
            extract.Member(TOP, True, 0, False), extract.Member(f"{TOP}/bin", True, 0, False),
            extract.Member(f"{TOP}/bin/s", False, 3, True), extract.Member(f"{TOP}/r", False, 2, False)]
        assert extract.list_members(archive) == check_members(archive)
        with pytest.raises(VerifyError, match="more than 3 members"):
            extract.list_members(archive, Limits(max_members=3))


def test_zip_links_and_encrypted_members_are_not_read_as_files(tmp_path: Path) -> None:
    link = _zip_raw(tmp_path / "l.zip", f"{TOP}/sbom.cdx.json", (stat.S_IFLNK | 0o777) << 16, data=b"/etc/passwd")
    assert read_member(link, f"{TOP}/sbom.cdx.json", max_size=100) is None
    enc = _zip_tool(tmp_path, "-P", "pw")
    assert read_member(enc, f"{TOP}/bin/llama-server", max_size=1 << 20) is None
    empty = _zip_raw(tmp_path / "e.zip", "", (stat.S_IFREG | 0o644) << 16)
    assert read_member(empty, f"{TOP}/x", max_size=100) is None  # (an empty name no longer crashes is_dir())


def test_the_data_is_flushed_once_per_file_system_or_once_per_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Durability is only observable across a crash; these spies check the calls that give it:
    one syncfs(2) on the temp dir where libc has it (Linux), else an fsync per written file."""
    archive = _archive(tmp_path, "tar.gz", CAPPED)
    find_syncfs = extract._syncfs
    syncfs = find_syncfs()
    assert syncfs is not None  # Linux, glibc
    calls: list[tuple[str, int]] = []

    def spy_syncfs(fd: int) -> int:
        calls.append(("syncfs", os.fstat(fd).st_ino))
        return syncfs(fd)

    real_fsync = os.fsync
    monkeypatch.setattr(extract.os, "fsync", lambda fd: (calls.append(("fsync", os.fstat(fd).st_size)), real_fsync(fd))[1])
    monkeypatch.setattr(extract, "_syncfs", lambda: spy_syncfs)
    top = safe_extract(archive, tmp_path / "a", top=TOP)
    assert calls == [("syncfs", top.parent.stat().st_ino)]
    calls.clear()
    monkeypatch.setattr(extract, "_syncfs", lambda: None)
    safe_extract(archive, tmp_path / "b", top=TOP)
    assert calls == [("fsync", 10), ("fsync", 20), ("fsync", 30)]
    calls.clear()
    monkeypatch.setattr(extract, "_syncfs", lambda: (lambda fd: -1))  # syncfs failed: fsync each file instead
    safe_extract(archive, tmp_path / "c", top=TOP)
    assert calls == [("fsync", 10), ("fsync", 20), ("fsync", 30)]
    monkeypatch.setattr(hostos.sys, "platform", "darwin")
    assert find_syncfs() is None
