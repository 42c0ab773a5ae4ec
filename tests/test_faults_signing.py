"""Fault suite: signing keys that are missing, locked with another password, or corrupted.

`release` and `weekly` exit 2 (a key is configuration, docs/cli.md) with a `next:` line and write
nothing into the releases folder; `weekly` checks the key before it builds anything (the file, its
shape and the password's presence before the sync; the password itself once scrypt, run during
the sync, is done), so the lock and the build outputs stay untouched too (no hour of building before
a typo in a secret is found). Missing Authenticode credentials under --require-signing, or a corrupted PKCS#12, exit 7
with the staged binaries unchanged.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from support.faults import StandInEnv, error_of, hint_of, prepared_env, snapshot

from locara_build.release.signing import minisign

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> StandInEnv:
    """A finished release (weekly), then upstream b101: what a later run would release next."""
    env = prepared_env(tmp_path_factory.mktemp("signing"), release=True)
    readme = env.up.read("README.md")
    env.up.commit("docs: readme (#7001)", {"README.md": readme + "more\n"}, tag="b101")
    return env


def _keys(root: Path) -> dict[str, tuple[dict[str, str], list[str], str, str]]:
    """case -> (env, extra args, what the error says, what `next:` says)."""
    root.mkdir(parents=True, exist_ok=True)
    key = minisign.generate()
    encrypted = root / "encrypted.key"
    encrypted.write_text(key.to_text(PASSWORD, limits=minisign.INTERACTIVE))
    blob = bytearray(base64.b64decode(encrypted.read_text().splitlines()[1]))
    blob[100] ^= 0x01  # one bit flipped inside the encrypted secret
    flipped = root / "flipped.key"
    flipped.write_text("untrusted comment: minisign encrypted secret key\n" + base64.b64encode(bytes(blob)).decode() + "\n")
    truncated = root / "truncated.key"
    truncated.write_text(encrypted.read_text()[:90])
    garbage = root / "garbage.key"
    garbage.write_bytes(b"\x00\x01 not a key at all \xff")
    pw = {"LOCARA_MINISIGN_PASSWORD": PASSWORD}
    no_key = {"LOCARA_MINISIGN_KEY": "", "LOCARA_MINISIGN_PASSWORD": ""}
    return {
        "missing-file": ({}, ["--key", str(root / "nope.key")], "cannot read the signing key", "keys generate"),
        "no-key-at-all": (no_key, [], "no signing key", "keys generate"),
        "wrong-password": ({"LOCARA_MINISIGN_PASSWORD": "Tr0ub4dor&3"}, ["--key", str(encrypted)], "wrong password",
                           "LOCARA_MINISIGN_PASSWORD"),
        "no-password": ({"LOCARA_MINISIGN_PASSWORD": ""}, ["--key", str(encrypted)], "encrypted and no password",
                        "LOCARA_MINISIGN_PASSWORD"),
        "bit-flipped": (pw, ["--key", str(flipped)], "wrong password (or a corrupted key file)", "keys generate"),
        "truncated": (pw, ["--key", str(truncated)], "not a minisign secret key", "keys generate"),
        "garbage": (pw, ["--key", str(garbage)], "not a minisign secret key", "keys generate"),
        "garbage-in-env": ({"LOCARA_MINISIGN_KEY": "-----BEGIN nonsense-----\nxyz\n"}, [], "not a minisign secret key",
                           "LOCARA_MINISIGN_KEY"),
    }


CASES = ["missing-file", "no-key-at-all", "wrong-password", "no-password", "bit-flipped", "truncated", "garbage", "garbage-in-env"]


@pytest.mark.parametrize("case", CASES)
def test_bad_release_key_exit_2_nothing_written(packaged: StandInEnv, case: str, tmp_path: Path) -> None:
    env_vars, args, says, next_says = _keys(tmp_path / "keys")[case]
    env = packaged
    releases = env.work / "releases"
    before = {"releases": snapshot(releases), "lock": env.lock.read_bytes(), "builds": snapshot(env.work / "builds"),
              "dist": snapshot(env.work / "dist"), "mirrors": snapshot(env.work / "mirrors")}
    base_env = {"LOCARA_MINISIGN_KEY": "", **env_vars}

    # `release` of the packaged version, replacing it on purpose (--force): refused before any write
    res = env.cli("release", "-r", "tiny", "--force", *args, env=base_env)
    assert res.returncode == 2, res.stderr
    assert says in error_of(res.stderr) and next_says in hint_of(res.stderr)
    assert "Traceback" not in res.stderr

    if case == "no-key-at-all":  # weekly without a key packages and says so (exit 0): see the next test
        assert snapshot(releases) == before["releases"]
        return
    # `weekly` (upstream has moved to b101): a missing, malformed or password-less key is refused
    # before the sync; one that only the key derivation can find wrong (scrypt, run during the sync
    # so that a run with nothing to do never waits for it) before the patches, the build, anything
    # else: the sync's lock change is put back. The mirror (a cache of upstream) may have fetched.
    weekly = ["weekly", "-r", "tiny", *args]
    res = env.cli(*weekly, env=base_env, timeout=60)
    assert res.returncode == 2, res.stderr
    assert says in error_of(res.stderr) and next_says in hint_of(res.stderr)
    derived = case in ("wrong-password", "bit-flipped")
    assert ("==> sync upstream" in res.stderr) is derived
    assert "==> check patches" not in res.stderr and "==> build" not in res.stderr
    after = {"releases": snapshot(releases), "lock": env.lock.read_bytes(), "builds": snapshot(env.work / "builds"),
             "dist": snapshot(env.work / "dist"), "mirrors": snapshot(env.work / "mirrors")}
    if derived:
        assert "b101" in (env.work / "reports" / "weekly-latest.json").read_text()  # it had synced: lock put back
        del after["mirrors"], before["mirrors"]
    assert after == before


def test_require_signing_without_a_key_exit_7_before_anything(packaged: StandInEnv) -> None:
    env = packaged
    lock = env.lock.read_bytes()
    res = env.cli("weekly", "-r", "tiny", "--require-signing", env={"LOCARA_MINISIGN_KEY": ""})
    assert res.returncode == 7, res.stderr
    assert "no signing key" in error_of(res.stderr) and "--key" in hint_of(res.stderr)
    assert env.lock.read_bytes() == lock and "==> sync upstream" not in res.stderr


@pytest.mark.parametrize("p12", ["unset", "garbage", "missing-file"])
def test_authenticode_credentials_missing_or_corrupted_exit_7(packaged: StandInEnv, tmp_path: Path, p12: str) -> None:
    staged = tmp_path / "staged"
    (staged / "bin").mkdir(parents=True)
    (staged / "bin" / "llama-server.exe").write_bytes(b"MZ" + bytes(510))
    before = snapshot(staged)
    creds = {"unset": {"LOCARA_AUTHENTICODE_P12": "", "LOCARA_AUTHENTICODE_PASSWORD": ""},
             "garbage": {"LOCARA_AUTHENTICODE_P12": "@@not base64@@", "LOCARA_AUTHENTICODE_PASSWORD": "pw-1234"},
             "missing-file": {"LOCARA_AUTHENTICODE_P12": str(tmp_path / "nope.p12"), "LOCARA_AUTHENTICODE_PASSWORD": "pw-1234"}}
    res = packaged.cli("sign", str(staged), "--kind", "authenticode", "--require-signing", env=creds[p12])
    assert res.returncode == 7, res.stderr
    assert "LOCARA_AUTHENTICODE_P12" in error_of(res.stderr) or "PKCS#12" in error_of(res.stderr)
    assert hint_of(res.stderr)
    assert snapshot(staged) == before
