"""Pure-Python minisign against Debian's real `minisign` (0.11), both ways, plus key handling."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from locara_build.core.errors import ConfigError, VerifyError
from locara_build.release.signing import keys as keymod
from locara_build.release.signing import minisign

MINISIGN = "/usr/bin/minisign"


def _minisign(*args: str, input: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([MINISIGN, *args], capture_output=True, text=True, input=input, cwd=cwd, timeout=120)


def test_sign_and_verify_roundtrip_and_tampering() -> None:
    key = minisign.generate()
    other = minisign.generate()
    data = b"hello release\n"
    sig = minisign.sign(key, data, trusted_comment="timestamp:1\tfile:x\tversion:v")
    parsed = minisign.Signature.from_text(sig.to_text())
    assert minisign.verify(data, parsed, [other.public_key, key.public_key]).key_id == key.key_id
    with pytest.raises(VerifyError, match="altered after it was signed"):
        minisign.verify(data + b"!", parsed, [key.public_key])
    with pytest.raises(VerifyError, match="not a trusted key"):
        minisign.verify(data, parsed, [other.public_key])
    forged = sig.to_text().replace("version:v", "version:w")
    with pytest.raises(VerifyError, match="trusted comment"):
        minisign.verify(data, minisign.Signature.from_text(forged), [key.public_key])
    # a key with the right id but other key material (an attacker re-using the id)
    impostor = minisign.PublicKey(key_id=key.key_id, raw=other.public_key.raw)
    with pytest.raises(VerifyError):
        minisign.verify(data, parsed, [impostor])


def test_our_signature_verifies_with_real_minisign(tmp_path: Path) -> None:
    key = minisign.generate()
    (tmp_path / "key.pub").write_text(key.public_key.to_text())
    (tmp_path / "SHA256SUMS").write_bytes(b"0" * 64 + b"  a.tar.gz\n")
    sig = minisign.sign(key, (tmp_path / "SHA256SUMS").read_bytes(), trusted_comment="timestamp:1759312800\tfile:SHA256SUMS\tversion:2026.10.01-g0c1e570-r1")
    (tmp_path / "SHA256SUMS.minisig").write_text(sig.to_text())
    res = _minisign("-Vm", "SHA256SUMS", "-p", "key.pub", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "version:2026.10.01-g0c1e570-r1" in res.stdout
    # prehashed (-H) requirement satisfied too
    assert _minisign("-H", "-Vm", "SHA256SUMS", "-p", "key.pub", cwd=tmp_path).returncode == 0
    (tmp_path / "SHA256SUMS").write_bytes(b"1" * 64 + b"  a.tar.gz\n")
    assert _minisign("-Vm", "SHA256SUMS", "-p", "key.pub", cwd=tmp_path).returncode != 0


def test_real_minisign_signature_verifies_with_our_code(tmp_path: Path) -> None:
    res = _minisign("-G", "-W", "-p", "k.pub", "-s", "k.key", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    (tmp_path / "f.bin").write_bytes(os.urandom(5000))
    res = _minisign("-S", "-W", "-s", "k.key", "-m", "f.bin", "-t", "made by minisign", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    pub = minisign.PublicKey.from_file(tmp_path / "k.pub")
    sig = minisign.Signature.from_text((tmp_path / "f.bin.minisig").read_text())
    assert sig.trusted_comment == "made by minisign"
    assert minisign.verify((tmp_path / "f.bin").read_bytes(), sig, [pub]) == pub
    with pytest.raises(VerifyError):
        minisign.verify(b"other", sig, [pub])
    # the unencrypted secret key minisign wrote is usable by us too
    sk = minisign.SecretKey.from_text((tmp_path / "k.key").read_text(), None)
    assert sk.public_key.raw == pub.raw and sk.key_id == pub.key_id


def test_encrypted_key_from_minisign_G_signs_for_minisign_V(tmp_path: Path) -> None:
    """minisign's own scrypt parameters (1 GiB, *_SENSITIVE): the slow, real case, once."""
    res = _minisign("-G", "-p", "k.pub", "-s", "k.key", input="s3cret-pass\ns3cret-pass\n", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    with pytest.raises(ConfigError, match="wrong password"):
        minisign.SecretKey.from_text((tmp_path / "k.key").read_text(), "not-the-password")
    sk = minisign.SecretKey.from_text((tmp_path / "k.key").read_text(), "s3cret-pass")
    (tmp_path / "m").write_bytes(b"manifest\n")
    (tmp_path / "m.minisig").write_text(minisign.sign(sk, b"manifest\n", trusted_comment="ours").to_text())
    res = _minisign("-Vm", "m", "-p", "k.pub", cwd=tmp_path)
    assert res.returncode == 0 and "ours" in res.stdout, res.stderr


def test_our_encrypted_key_is_usable_by_real_minisign(tmp_path: Path) -> None:
    key = minisign.generate()
    (tmp_path / "o.key").write_text(key.to_text("pw-for-minisign", limits=minisign.INTERACTIVE))
    (tmp_path / "o.pub").write_text(key.public_key.to_text())
    (tmp_path / "x").write_bytes(b"x\n")
    res = _minisign("-S", "-s", "o.key", "-m", "x", input="pw-for-minisign\n", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert _minisign("-Vm", "x", "-p", "o.pub", cwd=tmp_path).returncode == 0
    # and minisign refuses a wrong password on our file (the checksum is right)
    res = _minisign("-S", "-s", "o.key", "-m", "x", "-x", "y.minisig", input="wrong\n", cwd=tmp_path)
    assert res.returncode != 0


def test_keys_generate_cli_encrypted_and_unencrypted(tmp_path: Path, cli) -> None:
    secret = "correct horse battery staple 42"
    res = cli("--json", "keys", "generate", "--out", str(tmp_path), "--name", "rel", "--kdf", "interactive",
              env={"LOCARA_MINISIGN_PASSWORD": secret})
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    assert info["encrypted"] is True
    key_file, pub_file = tmp_path / "rel.key", tmp_path / "rel.pub"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert secret not in res.stdout + res.stderr
    sk = minisign.SecretKey.from_text(key_file.read_text(), secret)
    assert sk.id_hex == info["key_id"] == minisign.PublicKey.from_file(pub_file).id_hex
    # minisign itself reads the encrypted key we wrote
    (tmp_path / "f").write_text("f\n")
    assert _minisign("-S", "-s", "rel.key", "-m", "f", input=secret + "\n", cwd=tmp_path).returncode == 0
    assert _minisign("-Vm", "f", "-p", "rel.pub", cwd=tmp_path).returncode == 0
    # never overwrites a key by accident
    again = cli("keys", "generate", "--out", str(tmp_path), "--name", "rel", env={"LOCARA_MINISIGN_PASSWORD": secret})
    assert again.returncode == 2 and "already exists" in again.stderr
    # no password and no terminal: refuses unless --unencrypted is explicit
    env = {k: v for k, v in os.environ.items() if k != "LOCARA_MINISIGN_PASSWORD"}
    res = subprocess.run(["locara-build", "keys", "generate", "--out", str(tmp_path), "--name", "plain"],
                         capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
    assert res.returncode == 2 and "--unencrypted" in res.stderr
    res = cli("keys", "generate", "--out", str(tmp_path), "--name", "plain", "--unencrypted")
    assert res.returncode == 0, res.stderr
    assert minisign.SecretKey.from_text((tmp_path / "plain.key").read_text(), None).id_hex


def test_signing_key_from_env_is_registered_as_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from locara_build.core.redact import redact

    key = minisign.generate()
    text = key.to_text("env-password-123", limits=minisign.INTERACTIVE)
    monkeypatch.setenv("LOCARA_MINISIGN_KEY", text)
    monkeypatch.setenv("LOCARA_MINISIGN_PASSWORD", "env-password-123")
    loaded = keymod.load_signing_key(None)
    assert loaded.id_hex == key.id_hex
    body = text.splitlines()[1]
    assert redact(f"oops {body} and env-password-123") == "oops *** and ***"
    assert "env-password-123" not in repr(loaded) and body not in repr(loaded)
    monkeypatch.setenv("LOCARA_MINISIGN_PASSWORD", "nope")
    with pytest.raises(ConfigError, match="wrong password"):
        keymod.load_signing_key(None)
    monkeypatch.delenv("LOCARA_MINISIGN_KEY")
    with pytest.raises(ConfigError, match="no signing key"):
        keymod.load_signing_key(None)


def test_pinned_keys_and_rotation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pinned = keymod.pinned_keys()
    assert pinned, "the project's public key must be built in (locara_build/resources/keys/*.pub)"
    resources = Path(keymod.__file__).resolve().parents[2] / "resources" / "keys"
    assert not [p for p in resources.iterdir() if not p.name.endswith((".pub", ".md"))], "only public keys ship"
    docs = (Path(__file__).resolve().parents[1] / "docs" / "releases.md").read_text()
    assert all(k.to_base64() in docs for k in pinned), "docs/releases.md prints the pinned key(s) for manual checks"
    old, new = minisign.generate(), minisign.generate()
    for name, k in (("old.pub", old), ("new.pub", new)):
        (tmp_path / name).write_text(k.public_key.to_text())
    monkeypatch.setenv("LOCARA_TRUSTED_KEYS", str(tmp_path / "new.pub"))
    trusted = keymod.trusted_keys([tmp_path / "old.pub"])
    ids = {k.id_hex for k in trusted}
    assert {old.id_hex, new.id_hex} <= ids and {k.id_hex for k in pinned} <= ids
    data = b"rotating\n"
    for k in (old, new):
        minisign.verify(data, minisign.sign(k, data, trusted_comment="t"), trusted)
    # the old key removed from the trust list: its signatures no longer verify
    monkeypatch.delenv("LOCARA_TRUSTED_KEYS")
    only_new = keymod.trusted_keys([tmp_path / "new.pub"], builtin=False)
    with pytest.raises(VerifyError, match="not a trusted key"):
        minisign.verify(data, minisign.sign(old, data, trusted_comment="t"), only_new)
