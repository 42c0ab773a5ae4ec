"""Helpers for the release / install / publish tests: real plans over the repo's recipes, small real
archives with the artifact layout (one top folder, bin/, run.sh, ...), throwaway minisign keys,
and a byte-exact snapshot of an install prefix."""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import tarfile
import zipfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from locara_build.build.plan import Plan, RecipePlan, make_plan
from locara_build.core.workdir import Project, WorkDir
from locara_build.pipeline import records
from locara_build.pipeline.records import FileEntry, PackageRecord, SideFile, SigningStatus
from locara_build.release.release import ReleaseResult, make_release
from locara_build.release.signing import minisign
from locara_build.upstream.lock import Lock

REPO = Path(__file__).resolve().parents[2]

# Two real upstream commits (llama-cpp-python 0.3.35 / 0.3.36 vendor them): last week and this week.
OLD = dict(commit="9f0d017efb4a388bd5c60a27a575c90f20868e51", commit_date="2026-09-24T09:00:00Z")
NEW = dict(commit="0c1e57098bba43ac29e6e3b677cdceebdd22334f", commit_date="2026-10-01T10:00:00Z")


def make_lock(commit: str, commit_date: str, revision: int = 1, tag: str = "") -> Lock:
    return Lock(
        source="pypi:llama-cpp-python==0.3.36", ref="latest", channel="build", commit=commit, tag=tag,
        commit_date=commit_date, synced_at="2026-10-02T00:00:00Z", revision=revision,
    )


def plan_for(work: Path, lock: Lock, recipes: list[str] | None = None) -> Plan:
    return make_plan(Project(REPO), WorkDir(work), recipes, lock=lock)


@dataclass
class Keys:
    secret: minisign.SecretKey
    pub: Path  # .pub file
    key_file: Path  # unencrypted secret key file


def make_keys(where: Path, name: str = "test") -> Keys:
    where.mkdir(parents=True, exist_ok=True)
    key = minisign.generate()
    pub = where / f"{name}.pub"
    pub.write_text(key.public_key.to_text())
    key_file = where / f"{name}.key"
    key_file.write_text(key.to_text(None))
    os.chmod(key_file, 0o600)
    return Keys(key, pub, key_file)


def _layout(name: str, label: str, exe: str, payload: int) -> list[tuple[str, bytes, int]]:
    """(path, data, mode) with the artifact layout; ``payload`` bytes of incompressible data in bin/."""
    server = (
        "#!/bin/sh\n"
        f'echo "llama-server {label} $*"\n'
    ).encode()
    run_sh = b'#!/bin/sh\nhere="$(cd "$(dirname "$0")" && pwd)"\nexec "$here/bin/llama-server' + exe.encode() + b'" "$@"\n'
    rnd = hashlib.shake_256(label.encode()).digest(payload) if payload else b""
    return [
        (f"{name}/", b"", 0o755),
        (f"{name}/bin/", b"", 0o755),
        (f"{name}/bin/llama-server{exe}", server, 0o755),
        (f"{name}/bin/libggml-base.so", rnd, 0o644),
        (f"{name}/ui/", b"", 0o755),
        (f"{name}/ui/index.html", b"<!doctype html><title>locara</title>\n", 0o644),
        (f"{name}/run.sh", run_sh, 0o755),
        (f"{name}/llama-server.args", b"--host\n127.0.0.1\n", 0o644),
        (f"{name}/BUILDINFO.json", json.dumps({"label": label}).encode(), 0o644),
        (f"{name}/sbom.cdx.json", json.dumps({"bomFormat": "CycloneDX", "specVersion": "1.6", "label": label}).encode(), 0o644),
    ]


def write_tar(path: Path, members: list[tuple[str, bytes, int]], extra: list[tarfile.TarInfo] = ()) -> None:
    """``members`` as (name, data, mode), a trailing ``/`` for folders; then ``extra`` entries as given
    (hostile ones: links, devices...; a regular entry with a size is written as a header only, a lie)."""
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as tf:
        for name, data, mode in members:
            info = tarfile.TarInfo(name.rstrip("/"))
            info.mode = mode
            info.mtime = 1759312800
            if name.endswith("/"):
                info.type = tarfile.DIRTYPE
                tf.addfile(info)
            else:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
        for info in extra:
            if info.isreg() and info.size:
                tf.fileobj.write(info.tobuf(tf.format, tf.encoding, tf.errors))
            else:
                tf.addfile(info, io.BytesIO(b"") if info.isreg() else None)


def write_zip(path: Path, members: list[tuple[str, bytes, int]]) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data, mode in members:
            info = zipfile.ZipInfo(name, date_time=(2026, 10, 1, 0, 0, 0))
            info.create_system = 3
            info.external_attr = ((stat.S_IFDIR if name.endswith("/") else stat.S_IFREG) | mode) << 16
            if name.endswith("/"):
                info.external_attr |= 0x10
            zf.writestr(info, data)


def fake_packages(plan: Plan, dist: Path, *, payload: int = 0, label: str | None = None) -> list[Path]:
    """One small real archive per planned recipe, named and laid out like packaging's output."""
    dist.mkdir(parents=True, exist_ok=True)
    out = []
    for rp in plan.recipes:
        exe = ".exe" if rp.recipe.os == "windows" else ""
        members = _layout(rp.artifact.name, f"{label or plan.version} {rp.recipe.backend}", exe, payload)
        path = dist / rp.artifact.file
        (write_zip if rp.artifact.format == "zip" else write_tar)(path, members)
        write_package_record(plan, rp, path, members)
        out.append(path)
    return out


def write_package_record(plan: Plan, rp: RecipePlan, path: Path, members: list[tuple[str, bytes, int]] = (),
                         **changes: object) -> PackageRecord:
    """The package stage's record for a stand-in archive (what `release` reads), ``changes`` applied."""
    r = rp.recipe
    files = [FileEntry(path=n.split("/", 1)[1], sha256=hashlib.sha256(d).hexdigest(), size=len(d), mode=f"{m:04o}")
             for n, d, m in members if not n.endswith("/")]
    signing = SigningStatus(kind=r.signing, status="none" if r.signing == "none" else "skipped", files=[],
                            reason=None if r.signing == "none" else "stand-in package: not signed")
    sbom_data = next((d for n, d, _ in members if n.endswith("/sbom.cdx.json")), None)
    sbom = None
    if sbom_data is not None:  # written beside the archive, as packaging does
        side = path.with_name(path.name + ".cdx.json")
        side.write_bytes(sbom_data)
        sbom = SideFile(file=side.name, sha256=hashlib.sha256(sbom_data).hexdigest(), size=len(sbom_data))
    fields: dict[str, object] = dict(
        schema=PackageRecord.SCHEMA, file=path.name, name=rp.artifact.name, format=rp.artifact.format,
        sha256=hashlib.sha256(path.read_bytes()).hexdigest(), size=path.stat().st_size,
        unpacked_size=sum(len(d) for _, d, _ in members), version=str(plan.version), recipe=rp.name,
        recipe_hash=r.recipe_hash, os=r.os, arch=r.arch, backend=r.backend, flavour=r.flavour,
        build_key=rp.build_key, build_started_at="2026-10-01T10:00:00Z", build_finished_at="2026-10-01T10:06:00Z",
        upstream={"commit": plan.lock.commit, "tag": plan.lock.tag}, source_date_epoch=plan.source_date_epoch,
        requirements={"glibc": ">= 2.34", "system_libraries": {"libc.so.6": "glibc"}, **dict(r.requirements)}, files=files, debug=None, sbom=sbom, signing=signing,
        smoke={"status": "not run"}, zlib="1.2.13", packaged_by={"name": "locara-build", "version": "test"},
    )
    fields.update(changes)
    record = PackageRecord(**fields)  # type: ignore[arg-type]
    records.write(record, PackageRecord.path(path.parent, path.name))
    return record


def release_for(
    tmp: Path, lock: Lock, keys: Keys, *, recipes: list[str] | None = None, releases: Path | None = None,
    payload: int = 0, expires_days: int = 90, now: datetime | None = None, force: bool = False,
) -> ReleaseResult:
    work = tmp / "work"
    plan = plan_for(work, lock, recipes)
    dist = work / "dist" / str(plan.version)
    fake_packages(plan, dist, payload=payload)
    out = (releases or tmp / "releases") / str(plan.version)
    return make_release(plan, dist, out, keys.secret, expires_days=expires_days, now=now, force=force)


def snapshot(root: Path) -> dict[str, str]:
    """Every path under ``root`` -> its kind and content hash / link target (mtimes ignored)."""
    snap: dict[str, str] = {}
    if not root.exists():
        return snap
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in sorted(dirnames + filenames):
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            if p.is_symlink():
                snap[rel] = "link:" + os.readlink(p)
            elif p.is_dir():
                snap[rel] = "dir"
            else:
                snap[rel] = f"file:{oct(p.stat().st_mode & 0o7777)}:" + hashlib.sha256(p.read_bytes()).hexdigest()
    return snap
