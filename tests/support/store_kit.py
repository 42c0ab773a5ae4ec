"""Weekly releases for the store / update tests: the same artifact in successive weeks, where a few
small spots of the big files change (what an upstream bump does to a shared library), made by the
real `release` into one releases root, so the store holds blobs and deltas."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from locara_build.release.release import ReleaseResult, make_release
from locara_build.upstream.lock import Lock
from support.release_kit import NEW, OLD, make_lock, plan_for, write_package_record, write_tar

WEEKS = {1: OLD, 2: NEW, 3: dict(commit="3aa0ce9" + "0" * 33, commit_date="2026-10-08T10:00:00Z")}


RECIPE = "linux-x86_64-cpu"


def _binary(seed: str, size: int) -> bytes:
    return hashlib.shake_256(seed.encode()).digest(size)


def _edit(data: bytes, where: list[int], label: str) -> bytes:
    """A new build of the same library: a few small spots differ (what a weekly upstream bump does)."""
    out = bytearray(data)
    for i, at in enumerate(where):
        patch = hashlib.sha256(f"{label}{i}".encode()).digest()
        out[at:at + len(patch)] = patch
    return bytes(out)


def files_for(week: int) -> dict[str, tuple[bytes, int]]:
    server = _binary("llama-server", 600_000)
    base = _binary("libggml-base", 400_000)
    if week >= 2:
        server = _edit(server, [1000, 250_000, 599_000], "w2")
        base = _edit(base, [77_000], "w2")
    if week >= 3:
        server = _edit(server, [400_000], "w3")
    return {
        "bin/llama-server": (b"#!/bin/sh\necho \"llama-server week" + str(week).encode() + b" $*\"\n#" + server.hex().encode()[:64], 0o755),
        "bin/llama-server.bin": (server, 0o755),
        "bin/libggml-base.so": (base, 0o644),
        "bin/libggml-cpu-x64.so": (_binary("x64", 200_000), 0o644),
        "bin/libggml-cpu-sapphirerapids.so": (_binary("spr", 200_000), 0o644),
        "ui/index.html": (b"<!doctype html><title>locara</title>\n" * 50, 0o644),
        "run.sh": (b'#!/bin/sh\nhere="$(cd "$(dirname "$0")" && pwd)"\nexec "$here/bin/llama-server" "$@"\n', 0o755),
        "llama-server.args": (b"--host\n127.0.0.1\n", 0o644),
        "BUILDINFO.json": (json.dumps({"week": week}).encode(), 0o644),
    }


def make_week(tmp: Path, releases: Path, keys, week: int) -> ReleaseResult:
    lock: Lock = make_lock(**WEEKS[week])
    plan = plan_for(tmp / f"work{week}", lock, [RECIPE])
    rp = plan.recipes[0]
    dist = tmp / f"work{week}" / "dist" / str(plan.version)
    dist.mkdir(parents=True)
    name = rp.artifact.name
    members = [(f"{name}/", b"", 0o755), (f"{name}/bin/", b"", 0o755), (f"{name}/ui/", b"", 0o755)]
    members += [(f"{name}/{p}", d, m) for p, (d, m) in sorted(files_for(week).items())]
    path = dist / rp.artifact.file
    write_tar(path, members)
    write_package_record(plan, rp, path, members)
    return make_release(plan, dist, releases / str(plan.version), keys.secret)


