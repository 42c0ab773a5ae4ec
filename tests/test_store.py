"""The release side of the store (locara_build/release/store.py): the index reader refuses hostile indexes,
deltas against the previous N releases, identical files stored once, and publishing to a mirror
folder or to GitHub Releases (the GitHub stand-in, tests/support/github.py) uploads only what is missing."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from support.github import TOKEN, GitHubStandIn
from support.release_kit import make_keys
from support.store_kit import make_week

from locara_build.core.errors import VerifyError
from locara_build.release.publish import GitHubClient, publish_dir, publish_github
from locara_build.release.release import read_manifest
from locara_build.release.store import GITHUB_STORE_TAG, Index, flat_name, release_objects


def _index(rel) -> Index:
    art = rel.record.artifacts[0]
    return Index.parse((rel.out / art.index.file).read_bytes(), source="index")


def test_index_is_signed_and_names_every_file(tmp_path: Path) -> None:
    keys = make_keys(tmp_path / "keys")
    rel = make_week(tmp_path, tmp_path / "releases", keys, 1)
    art = rel.record.artifacts[0]
    data = (rel.out / art.index.file).read_bytes()
    assert art.index.sha256 == hashlib.sha256(data).hexdigest()
    sums = (rel.out / "SHA256SUMS").read_text()
    assert f"{art.index.sha256}  {art.index.file}" in sums
    idx = Index.parse(data, source="x")
    assert {f.path for f in idx.files} >= {"bin/llama-server.bin", "run.sh", "ui/index.html"}
    assert {f.mode for f in idx.files if f.path in ("run.sh", "bin/llama-server")} == {0o755}
    store = tmp_path / "releases"
    for f in idx.files:
        assert (store / f.blob).stat().st_size == f.blob_size
        assert hashlib.sha256((store / f.blob).read_bytes()).hexdigest() == f.blob_sha256


@pytest.mark.parametrize(
    "change, why",
    [
        (lambda d: d["files"][0].__setitem__("path", "../evil"), "'..'"),
        (lambda d: d["files"][0].__setitem__("path", "/etc/passwd"), "absolute"),
        (lambda d: d["files"][1].__setitem__("path", d["files"][0]["path"].upper()), "case-insensitive"),
        (lambda d: d["files"][0]["blob"].__setitem__("path", "blobs/sha256/" + "0" * 64), "blob is not"),
        (lambda d: d["files"][0].__setitem__("mode", 0o4755), "mode"),
        (lambda d: d["files"][0].__setitem__("sha256", "XYZ"), "sha256 malformed"),
        (lambda d: d.__setitem__("schema", 99), "schema"),
    ],
)
def test_hostile_index_refused(tmp_path: Path, change, why: str) -> None:
    keys = make_keys(tmp_path / "keys")
    rel = make_week(tmp_path, tmp_path / "releases", keys, 1)
    doc = json.loads((rel.out / rel.record.artifacts[0].index.file).read_bytes())
    change(doc)
    with pytest.raises(VerifyError) as err:
        Index.parse(json.dumps(doc).encode(), source="mirror/x.files.json")
    assert "mirror/x.files.json" in err.value.message or "x.files.json" in err.value.message


def test_deltas_against_previous_two_releases_and_dedup(tmp_path: Path) -> None:
    keys = make_keys(tmp_path / "keys")
    releases = tmp_path / "releases"
    w1, w2, w3 = (make_week(tmp_path, releases, keys, n) for n in (1, 2, 3))
    i1, i2, i3 = _index(w1), _index(w2), _index(w3)
    server = {i.version: next(f for f in i.files if f.path == "bin/llama-server.bin") for i in (i1, i2, i3)}
    bases = {d.base for d in server[w3.version].deltas}
    assert bases == {server[w2.version].sha256, server[w1.version].sha256}, "deltas from the previous 2 releases"
    assert all(d.size < server[w3.version].blob_size / 10 for d in server[w3.version].deltas)
    # identical files (ui/index.html, run.sh, the CPU variants) are one blob for all three weeks
    blobs = list((releases / "blobs" / "sha256").iterdir())
    assert len(blobs) == len({f.sha256 for i in (i1, i2, i3) for f in i.files})


def test_delta_depth_is_configurable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCARA_DELTA_DEPTH", "1")
    keys = make_keys(tmp_path / "keys")
    releases = tmp_path / "releases"
    for n in (1, 2):
        make_week(tmp_path, releases, keys, n)
    w3 = make_week(tmp_path, releases, keys, 3)
    f = next(f for f in _index(w3).files if f.path == "bin/llama-server.bin")
    assert len(f.deltas) == 1


def test_publish_dir_refuses_a_release_copied_without_its_store(tmp_path: Path) -> None:
    keys = make_keys(tmp_path / "keys")
    rel = make_week(tmp_path, tmp_path / "releases", keys, 1)
    lonely = tmp_path / "elsewhere" / rel.version
    shutil.copytree(rel.out, lonely)
    with pytest.raises(VerifyError, match="store object missing"):
        publish_dir(lonely, tmp_path / "site")
    assert not (tmp_path / "site" / rel.version / "release.json").exists(), "no manifest served without its objects"


@pytest.fixture
def github_stand_in():
    with GitHubStandIn(TOKEN, "locara/locara-build") as srv:
        yield srv


def test_github_store_release_holds_each_object_once(github_stand_in: GitHubStandIn, tmp_path: Path) -> None:
    srv = github_stand_in
    keys = make_keys(tmp_path / "keys")
    releases = tmp_path / "releases"
    w1 = make_week(tmp_path, releases, keys, 1)
    w2 = make_week(tmp_path, releases, keys, 2)
    client = GitHubClient("locara/locara-build", TOKEN, api_url=srv.base, backoff=0.01)
    r1 = publish_github(w1.out, "locara/locara-build", client=client)
    first = set(r1.store["uploaded"])
    assert first == {flat_name(p) for p, _, _ in release_objects(w1.out, read_manifest(w1.out))}
    r2 = publish_github(w2.out, "locara/locara-build", client=client)
    second = set(r2.store["uploaded"])
    wanted2 = {flat_name(p) for p, _, _ in release_objects(w2.out, read_manifest(w2.out))}
    assert second == wanted2 - first, "only objects the store release lacked were uploaded"
    assert second and set(r2.store["skipped"]) == wanted2 & first
    (store_rel,) = [r for r in srv.state.releases if r["tag_name"] == GITHUB_STORE_TAG]
    assert store_rel["draft"] is False and store_rel.get("make_latest") == "false"
    assets = [a for a in srv.state.assets.values() if a["release"] == store_rel["id"]]
    assert len(assets) == len({a["name"] for a in assets}) == len(first | second)
    for a in assets:  # flat names (blobs-sha256-<hex>), the same bytes as the store
        if a["name"].startswith("blobs-sha256-"):
            assert a["data"] == (releases / "blobs" / "sha256" / a["name"].removeprefix("blobs-sha256-")).read_bytes()
    # publishing again uploads nothing
    assert publish_github(w2.out, "locara/locara-build", client=client).store["uploaded"] == []


def test_delta_method_is_the_smallest_of_zstd_and_both_bsdiffs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from locara_build.release.store import make_delta_bsdiff, make_delta_bsdiff_xz, make_delta_zstd

    keys = make_keys(tmp_path / "keys")
    releases = tmp_path / "releases"
    w1, w2 = (make_week(tmp_path, releases, keys, n) for n in (1, 2))
    old = {f.path: f for f in _index(w1).files}
    for f in _index(w2).files:
        for d in f.deltas:
            base = (releases / old[f.path].blob)
            import zstandard

            b = zstandard.ZstdDecompressor().decompress(base.read_bytes())
            t = zstandard.ZstdDecompressor().decompress((releases / f.blob).read_bytes())
            sizes = {"zstd-patch": len(make_delta_zstd(b, t)), "bsdiff4": len(make_delta_bsdiff(b, t)),
                     "bsdiff4-xz": len(make_delta_bsdiff_xz(b, t))}
            assert d.method == min(sizes, key=sizes.__getitem__) and d.size == sizes[d.method]


# --- bsdiff4-xz: the delta is checked against the signed index first, and still parsed defensively ----


def _xz_pair() -> tuple[bytes, bytes]:
    import random

    rng = random.Random(7)
    base = bytes(rng.getrandbits(8) for _ in range(200_000))
    # code-like change: an insertion shifts everything after it, a few 4-byte "addresses" move by one
    target = bytearray(base[:50_000] + b"inserted function body" * 40 + base[50_000:])
    for at in range(60_000, 200_000, 9_973):
        target[at:at + 4] = (int.from_bytes(target[at:at + 4], "little") + 1 & 0xFFFFFFFF).to_bytes(4, "little")
    return base, bytes(target)


def test_bsdiff_xz_round_trip() -> None:
    """Both bsdiff encodings rebuild the target from the same blocks (which of them is smaller on real
    libraries is measured in bench/, docs/performance.md; on tiny deltas xz's headers lose)."""
    from locara_build.release.store import apply_delta, bsdiff_blocks, make_delta_bsdiff, make_delta_bsdiff_xz

    base, target = _xz_pair()
    blocks = bsdiff_blocks(base, target)
    xz, bz = make_delta_bsdiff_xz(base, target, blocks), make_delta_bsdiff(base, target, blocks)
    assert apply_delta("bsdiff4-xz", base, xz, len(target), what="d") == target
    assert apply_delta("bsdiff4", base, bz, len(target), what="d") == target
    assert len(xz) < len(target) // 20 and len(bz) < len(target) // 20


def _xz_header(delta: bytes) -> tuple[int, list[int]]:
    import struct

    target, *lengths = struct.unpack_from("<4Q", delta, 8)
    return target, lengths


@pytest.mark.parametrize("attack", ["magic", "short", "size", "lengths", "trailing", "garbage-stream", "bomb",
                                    "control-not-triples"])
def test_bsdiff_xz_hostile_delta_refused(attack: str) -> None:
    import lzma
    import struct

    from locara_build.release.store import BSDIFF_XZ_MAGIC, apply_delta, make_delta_bsdiff_xz

    base, target = _xz_pair()
    good = make_delta_bsdiff_xz(base, target)
    size, lengths = _xz_header(good)
    body = good[40:]
    streams = [body[:lengths[0]], body[lengths[0]:lengths[0] + lengths[1]], body[lengths[0] + lengths[1]:]]

    def build(streams: list[bytes], size: int = size) -> bytes:
        return BSDIFF_XZ_MAGIC + struct.pack("<4Q", size, *(len(x) for x in streams)) + b"".join(streams)

    bad = {
        "magic": b"BSDIFF40" + good[8:],
        "short": good[:30],
        "size": build(streams, size + 1),
        "lengths": good[:-1],
        "trailing": build([streams[0], streams[1], streams[2] + b"\0" * 8]),
        "garbage-stream": build([streams[0], b"\xfd7zXZ\0" + b"x" * 64, streams[2]]),
        # a diff block that would inflate far past the file it claims to make
        "bomb": build([streams[0], lzma.compress(b"\0" * (size * 4)), streams[2]]),
        "control-not-triples": build([lzma.compress(b"\0" * 25), streams[1], streams[2]]),
    }[attack]
    with pytest.raises(VerifyError) as exc:
        apply_delta("bsdiff4-xz", base, bad, size, what="deltas/sha256/x/y.bsdiff4-xz")
    assert "deltas/sha256/x/y.bsdiff4-xz" in str(exc.value)
