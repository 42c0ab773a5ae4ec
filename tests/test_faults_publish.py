"""Fault suite: publishing fails midway, then the same command is run again.

Directory mirror: the disk fills up after some files went in, or the process is SIGKILLed in the
middle of a copy. GitHub (the stand-in of tests/support/faults.py): the CLI process is SIGKILLed in
the middle of uploading the artifact, leaving GitHub's broken "starter" asset behind. Each time:
the mirror never serves a release.json whose files are missing (it goes last, latest.json after
it), the failed run says what to do, and the retry completes the release with no duplicate and no
partial file / asset.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest
from support.faults import (
    GitHubStandIn,
    StandInEnv,
    disk_limit,
    error_of,
    hint_of,
    prepared_env,
    run_cli,
    snapshot,
    start_cli,
)
from support.release_kit import NEW, make_keys, make_lock, release_for

from locara_build.release.publish import upload_order
from locara_build.release.release import read_manifest
from locara_build.release.store import GITHUB_STORE_TAG, release_objects

TOKEN = "ghs_faultsuite_0123456789abcdef0123"


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> tuple[StandInEnv, Path]:
    env = prepared_env(tmp_path_factory.mktemp("publish"), release=True)
    (release,) = [p for p in (env.work / "releases").iterdir() if (p / "release.json").is_file()]  # beside it: the store
    return env, release


def _versions(gh: GitHubStandIn) -> list[dict]:
    """The version releases (beside them: the store's release, checked in tests/test_store.py)."""
    return [r for r in gh.state.releases if r["tag_name"] != GITHUB_STORE_TAG]


def _mirror_ok(mirror: Path, release: Path) -> None:
    version = release.name
    assert snapshot(mirror / version) == snapshot(release), "the mirror holds exactly the release's files"
    assert json.loads((mirror / "latest.json").read_text())["version"] == version


def test_dir_mirror_disk_full_midway_then_retried(released: tuple[StandInEnv, Path], tmp_path: Path) -> None:
    env, release = released
    mirror = tmp_path / "mirror"
    order = upload_order(release)
    with disk_limit(mirror, 1 << 20) as disk:
        # paused right before the biggest file's copy (the artifact; others went in before it), then
        # the disk is full
        big = max(order[:-1], key=lambda n: (release / n).stat().st_size)
        nth = order.index(big) + 1
        run = start_cli(*env.base(), "publish", "--to", str(mirror), str(release),
                        failpoint=f"locara_build.release.publish:_copy_atomic@{nth}")
        run.wait_for(r"^FAILPOINT ")
        disk.squeeze(run.proc.pid, leave=4096)
        run.resume()
        rc = run.wait(60)
        assert rc == 2, f"exit {rc} ({disk.kind})\n{run.stderr}"
        err = error_of(run.stderr)
        assert f"publish {release.name}:" in err and "release.json (copied last)" in err
        assert "run the same command again" in hint_of(run.stderr)
        served = mirror / release.name
        names = {p.name for p in served.iterdir()}
        assert "release.json" not in names and not (mirror / "latest.json").exists()
        assert not [n for n in names if n.startswith(".")], names  # no .part- leftovers
        for n in names:  # what went in, went in whole
            assert (served / n).read_bytes() == (release / n).read_bytes()
        assert big not in names
        disk.relax()
        res = run_cli(*env.base(), "--json", "publish", "--to", str(mirror), str(release))
        assert res.returncode == 0, res.stderr
        out = json.loads(res.stdout)
        assert sorted(out["skipped"]) == sorted(names) and sorted(out["uploaded"]) == sorted(set(order) - names)
        _mirror_ok(mirror, release)


def test_dir_mirror_killed_midway_then_retried(released: tuple[StandInEnv, Path], tmp_path: Path) -> None:
    env, release = released
    mirror = tmp_path / "mirror"
    # paused inside the 2nd copy of a release file (the store's objects go first): its temp file is
    # open (empty), then SIGKILL: no cleanup at all
    objects = len(release_objects(release, read_manifest(release)))
    run = start_cli(*env.base(), "publish", "--to", str(mirror), str(release), failpoint=f"shutil:copyfileobj@{objects + 2}")
    run.wait_for(r"^FAILPOINT ")
    run.signal_group(signal.SIGKILL)
    assert run.wait(30) == -signal.SIGKILL
    served = mirror / release.name
    leftovers = [p.name for p in served.iterdir() if ".part-" in p.name]
    assert len(leftovers) == 1, sorted(p.name for p in served.iterdir())
    assert "release.json" not in {p.name for p in served.iterdir()} and not (mirror / "latest.json").exists()
    res = run_cli(*env.base(), "--json", "publish", "--to", str(mirror), str(release))
    assert res.returncode == 0, res.stderr
    assert len(json.loads(res.stdout)["skipped"]) == 1
    _mirror_ok(mirror, release)


def test_github_publish_killed_mid_upload_then_retried(tmp_path: Path) -> None:
    keys = make_keys(tmp_path / "keys")
    rel = release_for(tmp_path / "r", make_lock(**NEW), keys, recipes=["linux-x86_64-cpu"], payload=24 << 20)
    artifact = rel.record.artifacts[0].file
    with GitHubStandIn(TOKEN) as gh:
        env = {"GITHUB_TOKEN": TOKEN, "LOCARA_GITHUB_API_URL": gh.base}
        gh.state.pause_upload = artifact
        run = start_cli("publish", "--to", f"github:{gh.repo}", str(rel.out), env=env)
        assert gh.state.upload_started.wait(60), run.stderr
        run.signal_group(signal.SIGKILL)
        assert run.wait(30) == -signal.SIGKILL
        gh.state.resume_upload.set()
        broken = gh.assets()[artifact]
        for _ in range(100):  # the server notices the dead client
            if broken["size"] < (rel.out / artifact).stat().st_size and broken["state"] == "starter":
                break
            time.sleep(0.05)
        assert broken["state"] == "starter" and broken["size"] < (rel.out / artifact).stat().st_size
        (draft,) = _versions(gh)
        assert draft["draft"] is True, "an incomplete release is never published"

        res = run_cli("--json", "publish", "--to", f"github:{gh.repo}", str(rel.out), env=env)
        assert res.returncode == 0, res.stderr
        assert artifact in json.loads(res.stdout)["uploaded"]
        gh.assets()  # asserts: no duplicate names
        (published,) = _versions(gh)
        assets = {a["name"]: a for a in gh.state.assets.values() if a["release"] == published["id"]}
        assert sorted(assets) == sorted(upload_order(rel.out))
        for name, a in assets.items():
            assert a["state"] == "uploaded" and a["data"] == (rel.out / name).read_bytes(), name
        assert published["draft"] is False and published["tag_name"] == rel.version
        assert any(m == "DELETE" for m, _ in gh.state.log), "the broken starter asset was removed first"
