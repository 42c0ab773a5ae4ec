"""Deterministic archives: same tree -> same bytes, whatever the umask, mtimes, owner or walk order."""

from __future__ import annotations

import gzip
import hashlib
import os
import stat
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

from locara_build.core.errors import BuildError
from locara_build.package.archive import (
    Entry,
    entries_from_tree,
    list_archive,
    write_archive,
    write_tar_gz,
    write_zip,
)

SDE = 1790820708  # the upstream commit time of llama.cpp 0c1e570


def _make_tree(root: Path, umask: int, mtime: float, reverse: bool = False) -> Path:
    old = os.umask(umask)
    try:
        top = root / "tree"
        names = ["bin/llama-server", "bin/libggml-base.so.0", "ui/index.html", "ui/app.js", "LICENSES/a b.txt", "run.sh", "z/deep/er/file"]
        for name in (reversed(names) if reverse else names):
            path = top / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(hashlib.sha256(name.encode()).digest() * 100)
        for exe in ("bin/llama-server", "run.sh"):
            p = top / exe
            p.chmod(p.stat().st_mode | stat.S_IXUSR)
        for path in top.rglob("*"):
            os.utime(path, (mtime, mtime))
    finally:
        os.umask(old)
    return top


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("fmt", ["tar.gz", "zip"])
def test_same_bytes_despite_umask_mtime_and_order(tmp_path: Path, fmt: str) -> None:
    a = _make_tree(tmp_path / "a", 0o022, time.time())
    b = _make_tree(tmp_path / "b", 0o077, 1_000_000_000.0, reverse=True)
    out_a = write_archive(tmp_path / f"a.{fmt}", fmt, "top", entries_from_tree(a), SDE)
    out_b = write_archive(tmp_path / f"b.{fmt}", fmt, "top", entries_from_tree(b), SDE)
    assert _sha(out_a) == _sha(out_b)
    # and a different epoch gives different bytes (the mtime is really in there)
    out_c = write_archive(tmp_path / f"c.{fmt}", fmt, "top", entries_from_tree(a), SDE + 86400)
    assert _sha(out_c) != _sha(out_a)


def test_tar_metadata_is_normalised(tmp_path: Path) -> None:
    tree = _make_tree(tmp_path, 0o077, time.time())
    out = write_tar_gz(tmp_path / "x.tar.gz", "top", entries_from_tree(tree), SDE)
    raw = out.read_bytes()
    # gzip header: magic, deflate, no FNAME flag, mtime 0
    assert raw[:3] == b"\x1f\x8b\x08"
    assert raw[3] & 0x08 == 0, "gzip header must not carry a file name"
    assert raw[4:8] == b"\0\0\0\0", "gzip header mtime must be 0"
    with tarfile.open(out) as tar:
        members = tar.getmembers()
        assert tar.pax_headers == {} or isinstance(tar.pax_headers, dict)
    names = [m.name for m in members]
    assert names[0] == "top"
    assert all(n == "top" or n.startswith("top/") for n in names), "one top folder"
    assert names == sorted(names, key=lambda n: n.split("/")), "sorted, parents first"
    for m in members:
        assert (m.uid, m.gid, m.uname, m.gname, m.mtime) == (0, 0, "", "", SDE)
        if m.isdir():
            assert m.mode == 0o755
        elif m.name in ("top/bin/llama-server", "top/run.sh"):
            assert m.mode == 0o755
        else:
            assert m.mode == 0o644, m.name
    # the format is PAX
    with gzip.open(out) as fh:
        header = fh.read(512)
    assert header[257:263] == b"ustar\x00"


def test_zip_metadata_is_normalised(tmp_path: Path) -> None:
    tree = _make_tree(tmp_path, 0o077, time.time())
    out = write_zip(tmp_path / "x.zip", "top", entries_from_tree(tree), SDE)
    with zipfile.ZipFile(out) as zf:
        infos = zf.infolist()
        assert zf.testzip() is None
    expected_dt = time.gmtime(SDE)[:6]
    for info in infos:
        assert info.date_time == expected_dt
        assert info.create_system == 3
        mode = (info.external_attr >> 16) & 0o777
        if info.is_dir():
            assert mode == 0o755
        elif info.filename in ("top/bin/llama-server", "top/run.sh"):
            assert mode == 0o755
        else:
            assert mode == 0o644
    assert [i.filename.rstrip("/") for i in infos][0] == "top"
    assert list(list_archive(out))[1][0] == "top/LICENSES"


def test_in_memory_and_file_entries_and_missing_parents(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"x")
    entries = [Entry(path="a/b/c.txt", data=b"hello"), Entry(path="bin/tool", source=f, executable=True)]
    out = write_tar_gz(tmp_path / "m.tar.gz", "top", entries, SDE)
    names = [n for n, _, _ in list_archive(out)]
    assert names == ["top", "top/a", "top/a/b", "top/a/b/c.txt", "top/bin", "top/bin/tool"]


@pytest.mark.parametrize("bad", ["../evil", "/abs", "a/../../b", "a\\b", ""])
def test_unsafe_entry_names_are_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(BuildError, match="refusing to archive"):
        write_tar_gz(tmp_path / "x.tar.gz", "top", [Entry(path=bad, data=b"")], SDE)
    assert not (tmp_path / "x.tar.gz").exists()
    assert not list(tmp_path.glob(".x.tar.gz.*")), "no temp file left behind"


def test_symlinks_in_the_tree_are_refused(tmp_path: Path) -> None:
    tree = tmp_path / "t"
    tree.mkdir()
    (tree / "real").write_text("x")
    (tree / "link").symlink_to("real")
    with pytest.raises(BuildError, match="symlink"):
        entries_from_tree(tree)
