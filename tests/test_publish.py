"""`locara-build publish --to DIR`: a static mirror, atomic, idempotent, resumable, versions only go up."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from support.release_kit import NEW, OLD, make_keys, make_lock, release_for, snapshot

from locara_build.release.publish import publish_dir, upload_order


def test_publish_to_dir_idempotent_resumable_and_refusals(tmp_path: Path, cli) -> None:
    keys = make_keys(tmp_path / "keys")
    new = release_for(tmp_path / "new", make_lock(**NEW), keys, recipes=["linux-x86_64-cpu", "windows-x86_64-cpu"])
    mirror = tmp_path / "mirror"
    res = cli("--json", "publish", "--to", str(mirror), str(new.out))
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["latest"] is True and not out["skipped"]
    # the mirror folder holds exactly the release's files, byte for byte
    assert snapshot(mirror / new.version) == snapshot(new.out)
    assert out["uploaded"] == upload_order(new.out) and out["uploaded"][-1] == "release.json"
    latest = json.loads((mirror / "latest.json").read_text())
    assert latest["version"] == new.version and latest["release"] == f"{new.version}/release.json"

    # again: nothing copied
    res = cli("--json", "publish", "--to", str(mirror), str(new.out))
    assert res.returncode == 0 and json.loads(res.stdout)["uploaded"] == []

    # an interrupted publish (files missing, a temp leftover): the next run finishes it
    served = mirror / new.version
    for name in ("release.json", "SHA256SUMS.minisig"):
        (served / name).unlink()
    (served / ".release.json.part-dead").write_text("half")
    result = publish_dir(new.out, mirror)
    assert sorted(result.uploaded) == ["SHA256SUMS.minisig", "release.json"]
    assert snapshot(served) == snapshot(new.out)

    # a published file never changes
    art = next(served.glob("*.zip"))
    art.write_bytes(art.read_bytes() + b"x")
    res = cli("publish", "--to", str(mirror), str(new.out))
    assert res.returncode == 9 and "already exists with different content" in res.stderr
    shutil.copy(new.out / art.name, art)
    (served / "README").write_text("not part of the release")
    res = cli("publish", "--to", str(mirror), str(new.out))
    assert res.returncode == 9 and "not part of release" in res.stderr
    (served / "README").unlink()

    # an older release does not go out (unless forced, and latest.json stays)
    old = release_for(tmp_path / "old", make_lock(**OLD), keys, recipes=["linux-x86_64-cpu"])
    res = cli("publish", "--to", str(mirror), str(old.out))
    assert res.returncode == 8 and "older than" in res.stderr
    assert not (mirror / old.version).exists()
    res = cli("--json", "publish", "--to", str(mirror), str(old.out), "--force")
    assert res.returncode == 0 and json.loads(res.stdout)["latest"] is False
    assert json.loads((mirror / "latest.json").read_text())["version"] == new.version

    # a tampered release folder is not published
    bad = release_for(tmp_path / "bad", make_lock(**NEW, revision=2), keys, recipes=["linux-x86_64-cpu"])
    victim = next(bad.out.glob("*.tar.gz"))
    victim.write_bytes(victim.read_bytes()[:-1])
    res = cli("publish", "--to", str(mirror), str(bad.out))
    assert res.returncode == 8 and "does not match SHA256SUMS" in res.stderr
    assert not (mirror / bad.version).exists()

    # users install straight from the mirror folder
    prefix = tmp_path / "prefix"
    res = cli("install", "--from", str(mirror), "--prefix", str(prefix), "--trust", str(keys.pub))
    assert res.returncode == 0, res.stderr
    assert (prefix / "current" / "run.sh").is_file()
