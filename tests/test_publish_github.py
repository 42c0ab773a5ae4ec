"""`publish --to github:OWNER/REPO` against a local stand-in of the few GitHub Releases API endpoints
it uses (GitHub itself cannot be reached from here): create-or-reuse by tag, draft until complete,
only missing assets uploaded, retries with backoff, and an upload that dies midway leaves neither
a duplicate nor a partial asset after the retry."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from support.github import TOKEN, GitHubServer
from support.release_kit import NEW, OLD, make_keys, make_lock, release_for

from locara_build.core.errors import NetworkError, VerifyError
from locara_build.release.publish import GitHubClient, publish_github, upload_order
from locara_build.release.store import GITHUB_STORE_TAG

_Server = GitHubServer  # the one GitHub stand-in (tests/support/github.py)


@pytest.fixture
def github_stand_in():
    srv = _Server("locara/locara-build")
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _versions(srv: _Server) -> list[dict[str, Any]]:
    """The version releases (not the content-addressed store release, tests/test_store.py checks that one)."""
    return [r for r in srv.state.releases if r["tag_name"] != GITHUB_STORE_TAG]


def _assets(srv: _Server) -> dict[str, dict[str, Any]]:
    ids = {r["id"] for r in _versions(srv)}
    mine = [a for a in srv.state.assets.values() if a["release"] in ids]
    names = [a["name"] for a in mine]
    assert len(names) == len(set(names)), f"duplicate assets: {names}"
    return {a["name"]: a for a in mine}


def _assert_complete(srv: _Server, release_dir: Path) -> None:
    assets = _assets(srv)
    assert sorted(assets) == sorted(upload_order(release_dir))
    for name, a in assets.items():
        assert a["state"] == "uploaded", f"{name} left in state {a['state']}"
        assert a["data"] == (release_dir / name).read_bytes()


def test_github_stand_in_publish_create_reuse_and_token_never_logged(github_stand_in: _Server, tmp_path: Path, cli) -> None:
    srv = github_stand_in
    keys = make_keys(tmp_path / "keys")
    rel = release_for(tmp_path / "r", make_lock(**NEW), keys, recipes=["linux-x86_64-cpu", "windows-x86_64-cpu"])
    env = {"GITHUB_TOKEN": TOKEN, "LOCARA_GITHUB_API_URL": srv.base}
    res = cli("-v", "--json", "publish", "--to", "github:locara/locara-build", str(rel.out), env=env)
    assert res.returncode == 0, res.stderr
    assert TOKEN not in res.stdout + res.stderr
    out = json.loads(res.stdout)
    assert out["latest"] is True and sorted(out["uploaded"]) == sorted(upload_order(rel.out))
    _assert_complete(srv, rel.out)
    (release,) = _versions(srv)
    assert release["tag_name"] == rel.version and release["draft"] is False
    # release.json is uploaded last: while the draft was incomplete, nobody could fetch a manifest
    uploads = [p for m, p in srv.state.log if m == "POST" and p.startswith("/uploads/")]
    assert uploads[-1].endswith("name=release.json")

    # again: the release is reused, nothing re-uploaded
    res = cli("--json", "publish", "--to", "github:locara/locara-build", str(rel.out), env=env)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["uploaded"] == [] and len(_versions(srv)) == 1
    _assert_complete(srv, rel.out)

    # no token: a configuration error that names the variables
    res = cli("publish", "--to", "github:locara/locara-build", str(rel.out),
              env={"GITHUB_TOKEN": "", "LOCARA_GITHUB_TOKEN": "", "LOCARA_GITHUB_API_URL": srv.base})
    assert res.returncode == 2 and "GITHUB_TOKEN" in res.stderr
    # a wrong token: GitHub's 401 with the next step, and the token is not printed
    res = cli("publish", "--to", "github:locara/locara-build", str(rel.out),
              env={"GITHUB_TOKEN": "ghs_wrong_token_value_xyz", "LOCARA_GITHUB_API_URL": srv.base})
    assert res.returncode == 9 and "HTTP 401" in res.stderr and "ghs_wrong_token_value_xyz" not in res.stderr

    # an older version is refused; forced, it is published without becoming latest
    old = release_for(tmp_path / "o", make_lock(**OLD), keys, recipes=["linux-x86_64-cpu"])
    client = GitHubClient("locara/locara-build", TOKEN, api_url=srv.base, backoff=0.01)
    with pytest.raises(VerifyError, match="older than"):
        publish_github(old.out, "locara/locara-build", client=client)
    res = publish_github(old.out, "locara/locara-build", client=client, force=True)
    assert res.latest is False
    assert _versions(srv)[-1]["make_latest"] == "false"


def test_github_stand_in_upload_fails_midway_then_retried_no_duplicate_or_partial(
    github_stand_in: _Server, tmp_path: Path, cli
) -> None:
    srv = github_stand_in
    keys = make_keys(tmp_path / "keys")
    rel = release_for(tmp_path / "r", make_lock(**NEW), keys, recipes=["linux-x86_64-cpu"], payload=2 << 20)
    artifact = rel.record.artifacts[0].file
    client = GitHubClient("locara/locara-build", TOKEN, api_url=srv.base, attempts=3, backoff=0.01)

    # 1. within one run: the release is created but the reply is lost, the artifact upload dies
    #    halfway once, the asset list call fails once (502)
    srv.state.lose_create_reply = 1
    srv.state.break_uploads[artifact] = 1
    srv.state.transient.append(("GET", r".*/releases/\d+/assets"))
    result = publish_github(rel.out, "locara/locara-build", client=client)
    assert len(_versions(srv)) == 1, "no second draft for the same tag"
    assert artifact in result.uploaded
    _assert_complete(srv, rel.out)
    assert any(m == "DELETE" for m, _ in srv.state.log), "the broken starter asset was deleted before the retry"

    # 2. across runs: every attempt dies midway, the run fails (exit 9 from the CLI), the next run completes
    srv.state.releases.clear()
    srv.state.assets.clear()
    srv.state.break_uploads[artifact] = 3
    with pytest.raises(NetworkError, match="failed 3 times"):
        publish_github(rel.out, "locara/locara-build", client=client)
    assert _versions(srv)[0]["draft"] is True, "an incomplete release stays a draft"
    partial = [a for a in srv.state.assets.values() if a["state"] != "uploaded"]
    assert partial, "the stand-in left a broken asset, as GitHub does"
    env = {"GITHUB_TOKEN": TOKEN, "LOCARA_GITHUB_API_URL": srv.base}
    res = cli("--json", "publish", "--to", "github:locara/locara-build", str(rel.out), env=env)
    assert res.returncode == 0, res.stderr
    _assert_complete(srv, rel.out)
    assert len(_versions(srv)) == 1 and _versions(srv)[0]["draft"] is False
    assert artifact in json.loads(res.stdout)["uploaded"]
