"""Property tests (hypothesis) for the archive member pre-check in extract.py.

Arbitrary member lists — names built from safe parts and hostile pieces (`..`, `.`, empty parts,
absolute paths, backslashes, colons, control characters, case twins, over-long names), every tar
member type (files, dirs, symlinks, hard links, devices, FIFOs) and mode bits (setuid...) — packed
into real .tar.gz / .zip files, then checked and extracted:

* only VerifyError (exit 8) ever comes out, never another exception;
* a hostile member (not a plain file/dir, an escaping or odd name, setuid/setgid/sticky, outside
  the top folder) is always refused before anything is written;
* whatever is accepted lands inside the fresh temp dir, as plain files and dirs with modes
  0644/0755, and nothing outside it changes.
"""

from __future__ import annotations

import io
import os
import stat
import tarfile
import tempfile
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from locara_build.core.errors import VerifyError
from locara_build.core.extract import check_members, safe_extract

TOP = "locara-server-x"
KINDS = ("file", "dir", "symlink", "hardlink", "chardev", "fifo")


@dataclass(frozen=True)
class M:
    name: str
    kind: str
    mode: int
    data: bytes
    link: str


safe_part = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCXYZ0123456789._-+ éü", min_size=1, max_size=12).filter(
    lambda s: s not in (".", "..")
)
hostile_part = st.sampled_from(["..", ".", "", "a\\b", "c:", "C:", "x\x00y", "x\x01y", "tab\there", "del\x7f", "LPT1:",
                                "a" * 300, "é" * 200])
part = st.one_of(safe_part, safe_part, safe_part, hostile_part)


@st.composite
def member_name(draw: st.DrawFn) -> str:
    prefix = draw(st.sampled_from([TOP, TOP, TOP, "", "/", "/tmp", "other-top", "../" + TOP, TOP.upper()]))
    parts = draw(st.lists(part, min_size=0, max_size=4))
    name = "/".join([prefix, *parts]) if prefix else "/".join(parts)
    if draw(st.booleans()) and name:
        name += "/"
    return name


@st.composite
def member(draw: st.DrawFn) -> M:
    kind = draw(st.sampled_from(KINDS + ("file", "file", "dir")))
    mode = draw(st.sampled_from([0o644, 0o755, 0o600, 0o4755, 0o2755, 0o1777, 0o777]))
    data = draw(st.binary(max_size=64)) if kind == "file" else b""
    link = draw(st.sampled_from(["/etc/passwd", "../../x", f"{TOP}/a", "a"])) if kind in ("symlink", "hardlink") else ""
    return M(draw(member_name()), kind, mode, data, link)


members = st.lists(member(), min_size=1, max_size=8)


def hostile(m: M) -> bool:
    """What must always be refused, whatever else the archive holds."""
    name = m.name[:-1] if m.name.endswith("/") else m.name
    if m.kind not in ("file", "dir") or m.mode & 0o7000:
        return True
    if not name or m.name.startswith("/") or "\\" in m.name or ":" in m.name:
        return True
    if any(ord(c) < 32 or ord(c) == 127 for c in m.name):
        return True
    parts = name.split("/")
    if any(p in ("", ".", "..") for p in parts) or any(len(p.encode()) > 255 for p in parts):
        return True
    return name != TOP and not name.startswith(TOP + "/")


def write_tar(path: Path, ms: list[M]) -> None:
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as tf:
        for m in ms:
            info = tarfile.TarInfo(m.name)
            info.mode = m.mode
            info.type = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
                         "hardlink": tarfile.LNKTYPE, "chardev": tarfile.CHRTYPE, "fifo": tarfile.FIFOTYPE}[m.kind]
            info.linkname = m.link
            info.size = len(m.data) if m.kind == "file" else 0
            tf.addfile(info, io.BytesIO(m.data) if m.kind == "file" else None)


def write_zip(path: Path, ms: list[M]) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for m in ms:
            ftype = {"file": stat.S_IFREG, "dir": stat.S_IFDIR, "symlink": stat.S_IFLNK, "hardlink": stat.S_IFREG,
                     "chardev": stat.S_IFCHR, "fifo": stat.S_IFIFO}[m.kind]
            name = m.name + ("/" if m.kind == "dir" and not m.name.endswith("/") else "")
            info = zipfile.ZipInfo(name or "x", date_time=(2026, 10, 1, 0, 0, 0))
            info.create_system = 3
            info.external_attr = (ftype | (m.mode & 0o7777)) << 16
            zf.writestr(info, m.link.encode() if m.kind == "symlink" else m.data)


def _tree(root: Path) -> dict[str, tuple[str, int]]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for n in dirnames + filenames:
            p = Path(dirpath) / n
            st_ = p.lstat()
            out[str(p.relative_to(root))] = (stat.filemode(st_.st_mode), st_.st_size)
    return out


def _as_read_back(archive: Path, ms: list[M]) -> list[M]:
    """The members as every tar reader sees them: a name in a plain ustar header ends at its first
    NUL (``x\\0y`` is ``x``; only that much can ever reach a file system), while pax records keep
    the NUL (then it is a control character, refused)."""
    with tarfile.open(archive) as tf:
        names = [(t.name, t.linkname) for t in tf.getmembers()]
    assert len(names) == len(ms)
    return [M(n + "/" if m.name.endswith("/") and not n.endswith("/") else n, m.kind, m.mode, m.data, link)
            for m, (n, link) in zip(ms, names, strict=True)]


def _check(ms: list[M], fmt: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        archive = root / f"a.{fmt}"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # zipfile warns about the duplicate names we feed it
                (write_tar if fmt == "tar.gz" else write_zip)(archive, ms)
        except (ValueError, UnicodeEncodeError, OSError):
            return  # not even representable in this format
        dest = root / "dest"
        outside = root / "outside"
        outside.mkdir()
        (outside / "keep").write_text("keep")
        before = _tree(root)
        try:
            check_members(archive, top=TOP)
            checked = True
        except VerifyError:
            checked = False
        representable = [m for m in ms if fmt == "tar.gz" or m.kind not in ("hardlink",)]
        if fmt == "tar.gz":
            representable = _as_read_back(archive, representable)
        if any(hostile(m) for m in representable) and fmt == "tar.gz":
            assert not checked, f"hostile member accepted: {ms}"
        try:
            top = safe_extract(archive, dest, top=TOP)
        except VerifyError:
            after = _tree(root)
            assert after == before | ({"dest": after["dest"]} if "dest" in after else {}), "a refused archive wrote something"
            if "dest" in after:
                assert not any(k.startswith("dest/") for k in after), after
            return
        assert checked, "safe_extract accepted what check_members refused"
        assert not any(hostile(m) for m in representable if fmt == "tar.gz"), ms
        tmpdir = top.parent
        assert tmpdir.parent == dest and top.name == TOP
        for p in tmpdir.rglob("*"):
            st_ = p.lstat()
            assert stat.S_ISDIR(st_.st_mode) or stat.S_ISREG(st_.st_mode), p
            assert stat.S_IMODE(st_.st_mode) in (0o644, 0o755), (p, oct(st_.st_mode))
            assert p.resolve().is_relative_to(tmpdir.resolve()), p
        assert (outside / "keep").read_text() == "keep"
        after = {k: v for k, v in _tree(root).items() if not k.startswith("dest")}
        assert after == {k: v for k, v in before.items() if not k.startswith("dest")}


NASTY = [  # found by hand or by hypothesis; always tried first
    [M(f"{TOP}/x\x00y", "dir", 0o644, b"", "")],  # ustar name ends at NUL: read back as `x`, harmless
    [M(f"{TOP}/", "file", 0o644, b"", "")],  # a file whose name ends in `/`: tarfile keeps the slash
    [M(f"{TOP}/" + "a" * 120 + "\x00y", "file", 0o644, b"", "")],  # pax keeps the NUL: refused
    [M(TOP, "dir", 0o755, b"", ""), M(f"{TOP}/" + "a" * 300, "file", 0o644, b"x", "")],  # over-long name: OSError once
    [M(f"{TOP}/a", "file", 0o644, b"", ""), M(f"{TOP}/A", "file", 0o644, b"", "")],
    [M(f"{TOP}/bin", "symlink", 0o777, b"", "/etc"), M(f"{TOP}/bin/passwd", "file", 0o644, b"x", "")],
    [M(f"{TOP}/x", "file", 0o644, b"", ""), M(f"{TOP}/x/y", "file", 0o644, b"", "")],
    [M(f"{TOP}/../{TOP}-evil", "file", 0o644, b"x", "")],
    [M(f"{TOP}/e\u0301", "file", 0o644, b"", ""), M(f"{TOP}/\u00e9", "file", 0o644, b"", "")],
]


def _nasty(test):  # noqa: ANN001, ANN202
    for ms in NASTY:
        test = example(ms)(test)
    return test


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(members)
@_nasty
def test_tar_members_never_escape_and_hostile_ones_are_refused(ms: list[M]) -> None:
    _check(ms, "tar.gz")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(members)
@_nasty
def test_zip_members_never_escape(ms: list[M]) -> None:
    _check(ms, "zip")


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.lists(safe_part, min_size=1, max_size=3), st.binary(max_size=32)), min_size=1, max_size=6))
def test_plain_archives_extract_exactly(files: list[tuple[list[str], bytes]]) -> None:
    """The other side: an archive of plain files under the top folder is accepted and extracted
    byte for byte (unless two names collide, which is refused)."""
    ms = [M(f"{TOP}/" + "/".join(parts), "file", 0o644, data, "") for parts, data in files]
    names = [m.name for m in ms]
    folded = {n.casefold() for n in names}
    prefixes = {"/".join(n.split("/")[:i]) for n in names for i in range(2, n.count("/") + 1)}
    clean = len(folded) == len(names) and not (set(names) & prefixes) and not ({n.casefold() for n in prefixes} & folded)
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "a.tar.gz"
        write_tar(archive, ms)
        try:
            top = safe_extract(archive, Path(tmp) / "dest", top=TOP)
        except VerifyError as exc:
            assert not clean, exc.message
            return
        for m in ms:
            assert (top.parent / m.name).read_bytes() == m.data
