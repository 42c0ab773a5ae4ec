"""Safe extraction: every hostile member is refused before a single byte is written."""

from __future__ import annotations

import os
import stat
import tarfile
import warnings
import zipfile
from pathlib import Path

import pytest
from support.release_kit import write_tar, write_zip

from locara_build.core.errors import VerifyError
from locara_build.core.extract import Limits, check_members, read_member, safe_extract

TOP = "locara-server-x"


def _good() -> list[tuple[str, bytes, int]]:
    return [
        (f"{TOP}/", b"", 0o755),
        (f"{TOP}/bin/", b"", 0o755),
        (f"{TOP}/bin/llama-server", b"#!/bin/sh\necho hi\n", 0o755),
        (f"{TOP}/bin/libggml.so", b"\x7fELF" + b"\0" * 100, 0o644),
        (f"{TOP}/run.sh", b"#!/bin/sh\n", 0o700),
        (f"{TOP}/ui/index.html", b"<html></html>", 0o600),
    ]


def _tar_with(path: Path, extra: list[tarfile.TarInfo]) -> Path:
    write_tar(path, _good(), extra)
    return path


def _ti(name: str, kind: bytes = tarfile.REGTYPE, mode: int = 0o644, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.linkname = link
    return info


def test_good_tar_and_zip_extract_with_normalised_modes(tmp_path: Path) -> None:
    for fmt, writer in (("tar.gz", write_tar), ("zip", write_zip)):
        archive = tmp_path / f"a.{fmt}"
        writer(archive, _good())
        dest = tmp_path / f"dest-{fmt}"
        top = safe_extract(archive, dest, top=TOP)
        assert top.name == TOP and top.parent.parent == dest and top.parent.name.startswith(".extract-")
        assert stat.S_IMODE((top / "bin/llama-server").stat().st_mode) == 0o755
        assert stat.S_IMODE((top / "run.sh").stat().st_mode) == 0o755  # exec bit restored (zip: external_attr)
        assert stat.S_IMODE((top / "bin/libggml.so").stat().st_mode) == 0o644
        assert stat.S_IMODE((top / "ui/index.html").stat().st_mode) == 0o644
        assert (top / "bin/llama-server").read_bytes() == b"#!/bin/sh\necho hi\n"
        assert read_member(archive, f"{TOP}/run.sh", max_size=100) == b"#!/bin/sh\n"
        assert read_member(archive, f"{TOP}/missing", max_size=100) is None


HOSTILE_TAR = {
    "dotdot": [_ti(f"{TOP}/../evil")],
    "dotdot_nested": [_ti(f"{TOP}/bin/../../evil")],
    "absolute": [_ti("/tmp/evil")],
    "symlink_out": [_ti(f"{TOP}/bin/etc", tarfile.SYMTYPE, link="/etc")],
    "symlink_relative_out": [_ti(f"{TOP}/up", tarfile.SYMTYPE, link="../../..")],
    "symlink_inside": [_ti(f"{TOP}/bin/alias", tarfile.SYMTYPE, link="llama-server")],
    "hardlink": [_ti(f"{TOP}/bin/passwd", tarfile.LNKTYPE, link="/etc/passwd")],
    "hardlink_inside": [_ti(f"{TOP}/bin/copy", tarfile.LNKTYPE, link=f"{TOP}/bin/llama-server")],
    "char_device": [_ti(f"{TOP}/dev-null", tarfile.CHRTYPE)],
    "block_device": [_ti(f"{TOP}/sda", tarfile.BLKTYPE)],
    "fifo": [_ti(f"{TOP}/pipe", tarfile.FIFOTYPE)],
    "setuid": [_ti(f"{TOP}/bin/su", mode=0o4755)],
    "setgid": [_ti(f"{TOP}/bin/sg", mode=0o2755)],
    "duplicate": [_ti(f"{TOP}/run.sh")],
    "case_collision": [_ti(f"{TOP}/RUN.sh")],
    "backslash": [_ti(f"{TOP}\\..\\evil")],
    "drive_letter": [_ti("C:/evil")],
    "outside_top": [_ti("other-folder/file")],
    "file_as_parent": [_ti(f"{TOP}/run.sh/inner")],
    "dot_component": [_ti(f"{TOP}/./run2.sh")],
}


@pytest.mark.parametrize("case", sorted(HOSTILE_TAR))
def test_hostile_tar_refused_before_writing(tmp_path: Path, case: str) -> None:
    archive = _tar_with(tmp_path / "h.tar.gz", HOSTILE_TAR[case])
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(VerifyError, match="unsafe archive"):
        safe_extract(archive, dest, top=TOP)
    assert list(dest.iterdir()) == []
    assert not (tmp_path / "evil").exists()


def test_caps_members_and_sizes(tmp_path: Path) -> None:
    archive = tmp_path / "a.tar.gz"
    write_tar(archive, _good())
    dest = tmp_path / "d"
    with pytest.raises(VerifyError, match="more than 3 members"):
        safe_extract(archive, dest, top=TOP, limits=Limits(max_members=3))
    with pytest.raises(VerifyError, match="over the 50-byte cap"):
        safe_extract(archive, dest, top=TOP, limits=Limits(max_file=50))
    with pytest.raises(VerifyError, match="add up to more than"):
        safe_extract(archive, dest, top=TOP, limits=Limits(max_total=120))
    # a zip bomb: 64 MiB of zeros compress to a few KB; the declared sizes are checked first
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{TOP}/", b"")
        for i in range(4):
            zf.writestr(f"{TOP}/zeros{i}", b"\0" * (16 << 20))
    assert bomb.stat().st_size < 1 << 20
    with pytest.raises(VerifyError, match="add up to more than"):
        safe_extract(bomb, dest, top=TOP, limits=Limits(max_total=32 << 20))
    assert not dest.exists() or list(dest.iterdir()) == []


def _zip_with(path: Path, name: str, data: bytes = b"x", mode: int = stat.S_IFREG | 0o644) -> Path:
    write_zip(path, _good())
    with zipfile.ZipFile(path, "a") as zf, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about a duplicate name written on purpose
        info = zipfile.ZipInfo(name)
        info.create_system = 3
        info.external_attr = mode << 16
        zf.writestr(info, data)
    return path


@pytest.mark.parametrize(
    "name,mode",
    [
        (f"{TOP}/../evil", stat.S_IFREG | 0o644),
        ("/abs/evil", stat.S_IFREG | 0o644),
        (f"{TOP}/ok/../../evil", stat.S_IFREG | 0o644),
        (f"{TOP}/link", stat.S_IFLNK | 0o777),
        (f"{TOP}/bin/su", stat.S_IFREG | 0o4755),
        (f"{TOP}/run.sh", stat.S_IFREG | 0o755),
        (f"{TOP}\\evil", stat.S_IFREG | 0o644),
        ("D:evil", stat.S_IFREG | 0o644),
    ],
    ids=["dotdot", "absolute", "nested_dotdot", "symlink", "setuid", "duplicate", "backslash", "drive"],
)
def test_hostile_zip_refused_before_writing(tmp_path: Path, name: str, mode: int) -> None:
    archive = _zip_with(tmp_path / "h.zip", name, mode=mode)
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(VerifyError, match="unsafe archive"):
        safe_extract(archive, dest, top=TOP)
    assert list(dest.iterdir()) == []


def test_not_an_archive_and_wrong_top(tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(os.urandom(1000))
    with pytest.raises(VerifyError, match="not a readable"):
        check_members(junk)
    archive = tmp_path / "a.zip"
    write_zip(archive, _good())
    with pytest.raises(VerifyError, match="outside the top folder"):
        safe_extract(archive, tmp_path / "d", top="another-name")


def test_a_bad_member_after_good_ones_leaves_nothing(tmp_path: Path) -> None:
    """One pass: the good members before the bad one were already written into the private temp
    dir; the refusal throws all of it away."""
    archive = _tar_with(tmp_path / "late.tar.gz", [_ti(f"{TOP}/bin/zz", tarfile.SYMTYPE, link="/etc/passwd")])
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(VerifyError, match=r"unsafe archive.*symlink"):
        safe_extract(archive, dest, top=TOP)
    assert list(dest.iterdir()) == []


@pytest.mark.parametrize("order", ["file-first", "file-last"])
def test_a_file_that_is_the_parent_of_another_member_is_refused_in_either_order(tmp_path: Path, order: str) -> None:
    members = [(f"{TOP}/", b"", 0o755), (f"{TOP}/x", b"file", 0o644), (f"{TOP}/x/y", b"below", 0o644)]
    if order == "file-last":
        members = [members[0], members[2], members[1]]
    archive = tmp_path / "p.tar.gz"
    write_tar(archive, members)
    with pytest.raises(VerifyError, match=r"'locara-server-x/x/y' lies under 'locara-server-x/x', which is a file"):
        check_members(archive, top=TOP)
    dest = tmp_path / "dest"
    with pytest.raises(VerifyError, match="which is a file"):
        safe_extract(archive, dest, top=TOP)
    assert list(dest.iterdir()) == []


def test_extraction_reads_the_archive_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Checks and writes share one decompression (docs/performance.md, row 6)."""
    archive = _tar_with(tmp_path / "a.tar.gz", [])
    opened: list[object] = []
    real_open = tarfile.open

    def counting_open(*args: object, **kwargs: object) -> tarfile.TarFile:
        opened.append(args[0])
        return real_open(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(tarfile, "open", counting_open)
    top = safe_extract(archive, tmp_path / "dest", top=TOP)
    assert (top / "bin/llama-server").read_bytes() == b"#!/bin/sh\necho hi\n"
    assert opened == [archive]
