"""`locara-build release`: manifest, SHA256SUMS, minisign signatures (checked with Debian's real
minisign and sha256sum), SLSA provenance, version monotonicity, no secrets in output."""

from __future__ import annotations

import base64
import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support.release_kit import NEW, OLD, fake_packages, make_keys, make_lock, plan_for, release_for

from locara_build.core.errors import VerifyError
from locara_build.core.workdir import Project
from locara_build.release.provenance import PREDICATE_TYPE, STATEMENT_TYPE, verify_envelope
from locara_build.release.release import parse_sums, verify_release_dir
from locara_build.release.signing import minisign
from locara_build.upstream.lock import write_lock

PATCH = """From 1111111111111111111111111111111111111111 Mon Sep 17 00:00:00 2001
From: locara <dev@locara.invalid>
Date: Wed, 1 Oct 2026 10:00:00 +0000
Subject: [PATCH] server: say hello

Upstream status: not upstreamable: packaging.
---
 README.md | 1 +
 1 file changed, 1 insertion(+)

diff --git a/README.md b/README.md
--- a/README.md
+++ b/README.md
@@ -1 +1,2 @@
 # llama.cpp
+hello
--
2.39.5
"""


@pytest.fixture
def proj(project: Path, work_dir: Path) -> tuple[Path, Path]:
    (project / "patches").mkdir(exist_ok=True)
    (project / "patches" / "0001-server-say-hello.patch").write_text(PATCH)
    (project / "patches" / "series").write_text("0001-server-say-hello.patch\n")
    write_lock(Project(project).lock_path, make_lock(**NEW))
    return project, work_dir


def _release_cli(cli, project: Path, work: Path, *args: str, env: dict[str, str] | None = None):
    return cli("--project", str(project), "--work-dir", str(work), "--json", "release", *args, env=env)


def test_release_end_to_end_with_real_minisign_and_sha256sum(proj, cli, tmp_path: Path) -> None:
    project, work = proj
    keys = make_keys(tmp_path / "keys")
    from locara_build.build.plan import make_plan
    from locara_build.core.workdir import WorkDir

    plan = make_plan(Project(project), WorkDir(work), None)
    fake_packages(plan, work / "dist" / str(plan.version))
    password = "release-pass-9f3b"
    env = {"LOCARA_MINISIGN_KEY": keys.secret.to_text(password, limits=minisign.INTERACTIVE),
           "LOCARA_MINISIGN_PASSWORD": password}
    res = _release_cli(cli, project, work, "--expires-days", "30", env=env)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    for secret in (password, env["LOCARA_MINISIGN_KEY"].splitlines()[1]):
        assert secret not in res.stdout + res.stderr
    rel = Path(out["out"])
    assert rel == work / "releases" / str(plan.version)

    # exactly the listed files plus the two signatures
    sums = parse_sums((rel / "SHA256SUMS").read_text())
    assert sorted(p.name for p in rel.iterdir()) == sorted([*sums, "SHA256SUMS", "SHA256SUMS.minisig", "release.json.minisig"])
    lines = (rel / "SHA256SUMS").read_text().splitlines()
    assert lines == sorted(lines, key=lambda ln: ln.split("  ", 1)[1])
    assert subprocess.run(["sha256sum", "-c", "--strict", "SHA256SUMS"], cwd=rel, capture_output=True).returncode == 0
    for name in ("SHA256SUMS", "release.json"):
        res = subprocess.run(["minisign", "-Vm", name, "-p", str(keys.pub)], cwd=rel, capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
        assert f"file:{name}" in res.stdout and f"version:{plan.version}" in res.stdout and "created:" in res.stdout

    doc = json.loads((rel / "release.json").read_text())
    assert doc["schema"] == 1 and doc["product"] == "locara-server" and doc["version"] == str(plan.version)
    created, expires = (datetime.fromisoformat(doc[k].replace("Z", "+00:00")) for k in ("created", "expires"))
    assert expires - created == timedelta(days=30)
    assert doc["upstream"] == {"source": "pypi:llama-cpp-python==0.3.36", "commit": NEW["commit"], "tag": "",
                               "commit_date": NEW["commit_date"]}
    assert [p["name"] for p in doc["patches"]] == ["0001-server-say-hello.patch"]
    assert doc["signing_key"] == keys.secret.id_hex
    arts = {a["backend"] + ("" if a["os"] == "linux" else "-" + a["os"]): a for a in doc["artifacts"]}
    # (linux arm64 cpu/vulkan share the keys of their x86-64 siblings here; every recipe is counted below)
    assert set(arts) == {"cpu", "cuda", "vulkan", "metal-macos", "cpu-windows", "cuda-windows", "vulkan-windows",
                         "cpu-macos", "rocm", "universal"}
    assert len(doc["artifacts"]) == len(plan.recipes)
    assert {(a["os"], a["arch"]) for a in doc["artifacts"]} >= {("linux", "arm64"), ("macos", "x86_64")}
    assert arts["cuda"]["requirements"]["min_cuda_driver"]
    assert arts["cpu-windows"]["file"].endswith(".zip")
    # signing status and computed requirements come from the package record, not from the recipe
    assert arts["cpu-windows"]["signing"] == "authenticode"
    assert arts["cpu-windows"]["signing_status"] == {"status": "skipped", "reason": "stand-in package: not signed"}
    assert arts["cpu"]["signing"] == "none" and arts["cpu"]["signing_status"] == {"status": "none"}
    assert all(a["requirements"]["glibc"] == ">= 2.34" for a in doc["artifacts"])
    assert all(a["system_libraries"] == {"libc.so.6": "glibc"} for a in doc["artifacts"])
    by_recipe = {rp.name: rp for rp in plan.recipes}
    for a in doc["artifacts"]:
        assert a["flavour"] == "release" and a["recipe_hash"] == by_recipe[a["recipe"]].recipe.recipe_hash
        assert sums[a["file"]] == a["sha256"] and (rel / a["file"]).stat().st_size == a["size"]
        # packaged here without a smoke test: the manifest says so
        assert a["smoke"] == {"status": "not run", "proved": "built-only"}
        # signed provenance for each artifact
        statement, key = verify_envelope((rel / a["provenance"]).read_bytes(), [keys.secret.public_key], what=a["provenance"])
        assert key.id_hex == keys.secret.id_hex
        assert statement["_type"] == STATEMENT_TYPE and statement["predicateType"] == PREDICATE_TYPE
        assert statement["subject"] == [{"name": a["file"], "digest": {"sha256": a["sha256"]}}]
        deps = statement["predicate"]["buildDefinition"]["resolvedDependencies"]
        assert {"gitCommit": NEW["commit"]} in [d["digest"] for d in deps if "digest" in d]
        assert {"sha256": doc["patches"][0]["sha256"]} in [d.get("digest") for d in deps]
        assert {"sha256": a["recipe_hash"]} in [d.get("digest") for d in deps]
        meta = statement["predicate"]["runDetails"]["metadata"]
        # the build's real start and end, carried by the package record (no clamping, no archive mtime)
        assert (meta["startedOn"], meta["finishedOn"]) == ("2026-10-01T10:00:00Z", "2026-10-01T10:06:00Z")
        assert statement["predicate"]["runDetails"]["builder"]["id"]
        # the SBOM is shipped beside the artifact, listed and hashed
        assert json.loads((rel / a["sbom"]).read_text())["bomFormat"] == "CycloneDX"
    # a provenance envelope altered after signing is refused
    env_doc = json.loads((rel / doc["artifacts"][0]["provenance"]).read_text())
    payload = json.loads(base64.b64decode(env_doc["payload"]))
    payload["subject"][0]["digest"]["sha256"] = "0" * 64
    env_doc["payload"] = base64.b64encode(json.dumps(payload).encode()).decode()
    with pytest.raises(VerifyError, match="provenance signature verification FAILED"):
        verify_envelope(json.dumps(env_doc).encode(), [keys.secret.public_key], what="x")
    assert verify_release_dir(rel, [keys.secret.public_key]).version == str(plan.version)

    # running it again over the same artifacts: nothing to do
    again = _release_cli(cli, project, work, "--key", str(keys.key_file))
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["already_released"] is True
    assert json.loads((rel / "release.json").read_text())["created"] == doc["created"]


def test_versions_only_go_up(tmp_path: Path) -> None:
    keys = make_keys(tmp_path / "keys")
    releases = tmp_path / "releases"
    new = release_for(tmp_path / "a", make_lock(**NEW), keys, recipes=["linux-x86_64-cpu"], releases=releases)
    assert not new.already
    with pytest.raises(VerifyError, match="not newer than"):
        release_for(tmp_path / "b", make_lock(**OLD), keys, recipes=["linux-x86_64-cpu"], releases=releases)
    assert not (releases / "2026.09.24-g9f0d017-r1").exists()
    forced = release_for(tmp_path / "c", make_lock(**OLD), keys, recipes=["linux-x86_64-cpu"], releases=releases, force=True)
    assert forced.version == "2026.09.24-g9f0d017-r1"
    # a revision bump of the same commit is newer
    r2 = release_for(tmp_path / "d", make_lock(**NEW, revision=2), keys, recipes=["linux-x86_64-cpu"], releases=releases)
    assert r2.version.endswith("-r2")
    # the same version again with different artifact bytes: a published version never changes
    with pytest.raises(VerifyError, match="different artifacts"):
        work = tmp_path / "e" / "work"
        plan = plan_for(work, make_lock(**NEW, revision=2), ["linux-x86_64-cpu"])
        dist = work / "dist" / str(plan.version)
        fake_packages(plan, dist, label="other bytes")
        from locara_build.release.release import make_release

        make_release(plan, dist, releases / str(plan.version), keys.secret)


def test_release_refuses_missing_or_changed_artifacts(proj, cli, tmp_path: Path) -> None:
    project, work = proj
    keys = make_keys(tmp_path / "keys")
    res = _release_cli(cli, project, work, "--key", str(keys.key_file))
    assert res.returncode == 2 and "nothing to release" in res.stderr and "locara-build package" in res.stderr
    from locara_build.build.plan import make_plan
    from locara_build.core.workdir import WorkDir

    plan = make_plan(Project(project), WorkDir(work), ["linux-x86_64-cpu"])
    dist = work / "dist" / str(plan.version)
    (path,) = fake_packages(plan, dist)
    record = path.with_name(path.name + ".json")
    with open(path, "ab") as fh:  # the archive changed after its record was written
        fh.write(b"tampered")
    res = _release_cli(cli, project, work, "--key", str(keys.key_file), "--recipe", "linux-x86_64-cpu")
    assert res.returncode == 8 and "changed after packaging" in res.stderr
    # a record that is not the package stage's shape is refused, naming the field (exit 2)
    for change, field in ((lambda d: d.pop("signing"), "missing field `signing`"),
                          (lambda d: d.update(size="12"), "field `size` is a string, expected an integer"),
                          (lambda d: d["signing"].update(status=None), "field `signing.status` is null"),
                          (lambda d: d.update(extra=1), "unknown field `extra`"),
                          (lambda d: d.update(build_started_at="2026-10-01T11:00:00Z"), "not two ISO 8601 times in order")):
        fake_packages(plan, dist)  # packaged again, then its record altered
        doc = json.loads(record.read_bytes())
        change(doc)
        record.write_text(json.dumps(doc))
        res = _release_cli(cli, project, work, "--key", str(keys.key_file), "--recipe", "linux-x86_64-cpu")
        assert res.returncode == 2 and field in res.stderr and str(record) in res.stderr, (field, res.stderr)
    # the SBOM beside the archive must be the one its record lists
    fake_packages(plan, dist)
    sbom = path.with_name(path.name + ".cdx.json")
    sbom.write_bytes(sbom.read_bytes().replace(b"CycloneDX", b"CycloneDY"))
    res = _release_cli(cli, project, work, "--key", str(keys.key_file), "--recipe", "linux-x86_64-cpu")
    assert res.returncode == 8 and "SBOM beside the archive" in res.stderr and str(sbom) in res.stderr, res.stderr
    record.unlink()
    res = _release_cli(cli, project, work, "--key", str(keys.key_file), "--recipe", "linux-x86_64-cpu")
    assert res.returncode == 2 and "has no package record" in res.stderr
    res = _release_cli(cli, project, work, "--key", str(keys.key_file), "--require-all")
    assert res.returncode == 2 and "no packaged artifact" in res.stderr
    res = _release_cli(cli, project, work, "--key", str(tmp_path / "nope.key"), "--recipe", "linux-x86_64-cpu")
    assert res.returncode == 2 and "cannot read the signing key" in res.stderr


def test_verify_release_dir_catches_extra_and_altered_files(tmp_path: Path) -> None:
    keys = make_keys(tmp_path / "keys")
    rel = release_for(tmp_path, make_lock(**NEW), keys, recipes=["linux-x86_64-cpu"]).out
    verify_release_dir(rel, [keys.secret.public_key])
    (rel / "notes.txt").write_text("unlisted\n")
    with pytest.raises(VerifyError, match="not listed in SHA256SUMS"):
        verify_release_dir(rel)
    (rel / "notes.txt").unlink()
    art = next(p for p in rel.iterdir() if p.name.endswith(".tar.gz"))
    data = bytearray(art.read_bytes())
    data[-10] ^= 1
    art.write_bytes(bytes(data))
    with pytest.raises(VerifyError, match="does not match SHA256SUMS"):
        verify_release_dir(rel)
    other = make_keys(tmp_path / "other")
    with pytest.raises(VerifyError, match="not a trusted key"):
        verify_release_dir(rel, [other.secret.public_key])


def test_the_json_summary_lists_release_json_s_artifacts(tmp_path: Path) -> None:
    """`release --json` (ReleaseResult.to_dict, from the typed record) has the bytes it had when it was
    built from release.json's dict: these fields of each artifact as written, nothing else."""
    keys = make_keys(tmp_path / "keys")
    res = release_for(tmp_path, make_lock(**NEW), keys, recipes=["linux-x86_64-cpu", "windows-x86_64-cpu"])
    doc = json.loads((res.out / "release.json").read_text())
    fields = ("file", "os", "arch", "backend", "flavour", "size", "sha256")
    expected = {
        "out": str(res.out), "version": doc["version"], "key_id": keys.secret.id_hex, "already_released": False,
        "files": sorted(p.name for p in res.out.iterdir()), "missing": [],
        "artifacts": [{k: a[k] for k in fields} for a in doc["artifacts"]],
    }
    assert len(expected["artifacts"]) == 2
    assert json.dumps(res.to_dict(), indent=2, sort_keys=True) == json.dumps(expected, indent=2, sort_keys=True)


def test_expiry_is_recorded_from_now(tmp_path: Path) -> None:
    keys = make_keys(tmp_path / "keys")
    now = datetime(2026, 10, 2, 12, 0, tzinfo=UTC)
    res = release_for(tmp_path, make_lock(**NEW), keys, recipes=["linux-x86_64-cpu"], now=now, expires_days=7)
    assert res.record.created == "2026-10-02T12:00:00Z" and res.record.expires == "2026-10-09T12:00:00Z"
