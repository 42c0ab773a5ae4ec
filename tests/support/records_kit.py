"""Stage records for stand-in outputs: what a finished build leaves, written through the one writer
(locara_build.pipeline.records), so tests that fake a build output still hand later stages a real record."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from locara_build.pipeline import records
from locara_build.pipeline.records import BuildFile, BuildRecord, ReleaseArtifact


def write_build_record(out: Path, *, recipe: str, build_key: str = "stand-in", version: str = "test",
                       **changes: Any) -> BuildRecord:
    """``out/build.json`` for a stand-in build output (its bin/ files listed with their hashes)."""
    from locara_build.core.digest import sha256_file

    files = [BuildFile(path=p.relative_to(out).as_posix(), size=p.stat().st_size, sha256=sha256_file(p),
                       mode=f"{p.stat().st_mode & 0o777:04o}")
             for p in sorted((out / "bin").rglob("*")) if p.is_file() and not p.is_symlink()]
    fields: dict[str, Any] = dict(
        schema=BuildRecord.SCHEMA, recipe=recipe, recipe_file=f"recipes/{recipe}.toml", recipe_hash="0" * 64,
        build_key=build_key, os="linux", arch="x86_64", backend="cpu", flavour="ci", version=version,
        upstream={"source": "stand-in", "commit": "0" * 40, "tag": "", "commit_date": "2026-10-01T10:00:00Z"},
        patches={"hash": "0" * 64, "series": []}, source_date_epoch=1759312800, targets=["llama-server"],
        configure={"args": [], "ran": True, "env": {}}, toolchain={}, ccache={"enabled": False},
        ninja={"edges_run": 0, "edges_total": 0}, durations={"total": 0.0}, files=files, path_leaks=[],
        log="stand-in.log", host={"os": "linux", "arch": "x86_64"},
        started_at="2026-10-01T10:00:00Z", finished_at="2026-10-01T10:06:00Z",
    )
    fields.update(changes)
    record = BuildRecord(**fields)
    records.write(record, BuildRecord.path(out))
    return record


def release_artifact(*, os: str = "linux", arch: str = "x86_64", backend: str = "cpu", flavour: str = "release",
                     requirements: dict[str, str | int] | None = None, **changes: Any) -> ReleaseArtifact:
    """One ``release.json`` artifact entry (typed) for tests of what reads it (artifact choice, install):
    the fields a test does not name are plausible stand-ins, the file name follows the platform."""
    name = f"locara-server-test-{os}-{arch}-{backend}" + ("" if flavour == "release" else f"-{flavour}")
    ext = ".zip" if os == "windows" else ".tar.gz"
    fields: dict[str, Any] = dict(
        file=name + ext, name=name, format=ext.lstrip("."), os=os, arch=arch, backend=backend, flavour=flavour,
        size=1, sha256="0" * 64, recipe=f"{os}-{arch}-{backend}", recipe_hash="0" * 64,
        requirements=requirements or {}, signing="none", provenance=name + ext + ".intoto.json",
    )
    fields.update(changes)
    return ReleaseArtifact(**fields)
