"""Fault suite: the upstream and the patch series.

Unreachable upstreams (nobody listening, a path or file:// URL that does not exist), a hanging one
(accepts, never answers: the timeouts end it), an unknown ref -> exit 3; a patch conflict, a
garbage or truncated patch file, a series naming a missing file -> exit 4. Each time: a `next:`
line, the lock byte for byte, the patched source tree (HEAD, branch, files, stamp) as it was.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from support.faults import (
    MAIN_LINE,
    PATCHED_LINE,
    StandInEnv,
    clone_env,
    closed_port,
    error_of,
    hint_of,
    prepared_env,
    silent_server,
    snapshot,
    tree_state,
)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> StandInEnv:
    return prepared_env(tmp_path_factory.mktemp("upstream-base"))


@pytest.fixture
def env(base: StandInEnv, tmp_path: Path) -> StandInEnv:
    return clone_env(base, tmp_path / "env")


def _state(env: StandInEnv) -> dict[str, object]:
    return {"lock": env.lock.read_bytes(), "tree": tree_state(env.tree), "patches": snapshot(env.project / "patches")}


def _no_tmp_mirrors(env: StandInEnv) -> None:
    mirrors = env.work / "mirrors"
    assert not [p.name for p in mirrors.iterdir() if p.name.endswith(".tmp")] if mirrors.is_dir() else True


def test_unreachable_upstreams_exit_3_and_touch_nothing(env: StandInEnv, tmp_path: Path) -> None:
    before = _state(env)
    for url, says in (
        (f"http://127.0.0.1:{closed_port()}/ggml-org/llama.cpp.git", "cannot fetch upstream"),
        (f"file://{tmp_path}/no/such/repo.git", "does not exist"),
        (str(tmp_path / "no" / "such" / "repo"), "does not exist"),
    ):
        start = time.monotonic()
        res = env.cli("sync", "--upstream", url, timeout=120)
        assert res.returncode == 3, f"{url}: {res.returncode}\n{res.stderr}"
        assert time.monotonic() - start < 60
        assert says in error_of(res.stderr)
        hint = hint_of(res.stderr)
        assert "URL" in hint or "path" in hint
        assert _state(env) == before
        _no_tmp_mirrors(env)


@pytest.mark.parametrize("scheme", ["http", "git"])
def test_hanging_upstream_is_ended_by_the_timeouts(env: StandInEnv, scheme: str) -> None:
    """A server that accepts and never answers. http: git's low-speed limit ($LOCARA_NET_TIMEOUT)
    ends it; git://, which has no such limit: the overall limit ($LOCARA_FETCH_TIMEOUT) does."""
    before = _state(env)
    limits = {"LOCARA_NET_TIMEOUT": "2", "LOCARA_FETCH_TIMEOUT": "60"} if scheme == "http" else \
        {"LOCARA_NET_TIMEOUT": "60", "LOCARA_FETCH_TIMEOUT": "4"}
    with silent_server() as port:
        start = time.monotonic()
        res = env.cli("sync", "--upstream", f"{scheme}://127.0.0.1:{port}/llama.cpp.git", env=limits, timeout=120)
        took = time.monotonic() - start
    assert res.returncode == 3, res.stderr
    assert took < 40, f"a hanging upstream must not hang sync ({took:.0f}s)"
    assert "cannot fetch upstream" in error_of(res.stderr)
    if scheme == "git":
        assert "did not finish within 4s" in res.stderr
    assert "The lock was not changed" in hint_of(res.stderr)
    assert _state(env) == before
    _no_tmp_mirrors(env)


def test_unknown_ref_exits_3_from_sync_and_weekly(env: StandInEnv) -> None:
    before = _state(env)
    for args in (("sync", "--ref", "b999"), ("weekly", "-r", "tiny", "--ref", "no-such-branch")):
        res = env.cli(*args)
        assert res.returncode == 3, res.stderr
        assert "unknown ref" in error_of(res.stderr)
        assert "--ref latest" in hint_of(res.stderr)
        assert _state(env) == before
    assert not (env.work / "builds").exists()


def _conflicting_upstream(env: StandInEnv) -> str:
    """Upstream b101 rewrites the line the series patches."""
    text = env.up.read("main.c").replace(MAIN_LINE, 'static const char *banner = "upstream banner v2";\n')
    return env.up.commit("server: new banner (#4242)", {"main.c": text}, tag="b101")


def test_patch_conflict_exit_4_tree_restored(env: StandInEnv) -> None:
    b101 = _conflicting_upstream(env)
    res = env.cli("sync", "--ref", "b101")
    assert res.returncode == 0, res.stderr
    before = _state(env)  # the lock now names b101 (sync's job); the tree still holds b100 + patch
    res = env.cli("patches", "apply")
    assert res.returncode == 4, res.stderr
    err = error_of(res.stderr)
    assert f"patch {env.patch_name} does not apply" in err and "main.c" in err and "hunk #1" in err
    assert "back at" in err  # says the tree was restored
    hint = hint_of(res.stderr)
    assert "git am -3" in hint and "locara-build patches refresh" in hint
    assert _state(env) == before
    assert before["tree"]["main.c"].decode().count("(patched)") == 1  # type: ignore[index]
    # `patches check` reports it without touching anything either
    res = env.cli("patches", "check", "--ref", b101, "--json")
    assert res.returncode == 4, res.stderr
    report = json.loads(res.stdout)
    assert report["ok"] is False and [r["status"] for r in report["patches"]] == ["FAILED"]
    assert _state(env) == before


def test_patch_conflict_in_weekly_puts_the_lock_back(env: StandInEnv) -> None:
    before = _state(env)
    _conflicting_upstream(env)
    res = env.cli(*env.weekly_args("--json"))
    assert res.returncode == 4, res.stderr
    err = error_of(res.stderr)
    assert "no longer apply to upstream b101" in err and "left at the last good commit" in err
    assert "patches bisect" in hint_of(res.stderr)
    assert _state(env) == before  # lock bytes restored, tree untouched
    report = json.loads((env.work / "reports" / "weekly-latest.json").read_text())
    assert report["status"] == "failed" and report["exit_code"] == 4
    assert not (env.work / "builds").exists()


@pytest.mark.parametrize("fault", ["garbage", "truncated", "missing-from-series"])
def test_corrupt_patch_series_exit_4_nothing_touched(env: StandInEnv, fault: str) -> None:
    before = _state(env)
    patch = env.project / "patches" / env.patch_name
    good = patch.read_bytes()
    if fault == "garbage":
        patch.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    elif fault == "truncated":  # headers intact, the hunk cut in the middle
        text = good.decode()
        cut = text.index(PATCHED_LINE.split("(")[0], text.index("@@"))
        patch.write_bytes(text[:cut].encode() + b'+static const ch')
    else:
        (env.project / "patches" / "series").write_text(f"{env.patch_name}\n0002-not-there.patch\n")
    broken = _state(env)["patches"]
    for args in (("patches", "apply"), ("build", "-r", "tiny"), ("weekly", "-r", "tiny")):
        res = env.cli(*args)
        if fault == "truncated" and args[0] == "build":
            # the series reads fine, so `build` sees a tree that does not match it: exit 3, apply first
            assert res.returncode == 3, res.stderr
            assert "patches apply" in hint_of(res.stderr)
            continue
        assert res.returncode == 4, f"{args}: {res.returncode}\n{res.stderr}"
        err = error_of(res.stderr)
        if fault == "garbage":
            assert "not a `git format-patch` file" in err and "patches refresh" in hint_of(res.stderr)
        elif fault == "missing-from-series":
            assert "0002-not-there.patch" in err and "does not exist" in err
            assert "Restore the file" in hint_of(res.stderr)
        else:
            assert env.patch_name in err
            assert "git am" in hint_of(res.stderr) or "patches" in hint_of(res.stderr)
        state = _state(env)
        assert state["lock"] == before["lock"] and state["tree"] == before["tree"], args
        assert state["patches"] == broken  # never "repaired" behind the user's back
    assert not (env.work / "builds").exists()
