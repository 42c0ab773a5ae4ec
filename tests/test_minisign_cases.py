"""Fixed hostile and edge cases for the pure-Python minisign (signing/minisign.py), checked against
Debian's real `minisign` (0.11) wherever it has a say: malformed signatures and keys of every
shape, legacy `Ed` signatures, both libsodium scrypt branches, the scrypt memory cap, one-line
comments and the key id minisign prints."""

from __future__ import annotations

import base64
import re
import subprocess
from pathlib import Path

import pytest

from locara_build.core.errors import ConfigError, VerifyError
from locara_build.release.signing import minisign
from locara_build.release.signing.minisign import (
    INTERACTIVE,
    SENSITIVE,
    KdfLimits,
    PublicKey,
    SecretKey,
    Signature,
)

MINISIGN = "/usr/bin/minisign"


def _minisign(*args: str, cwd: Path, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([MINISIGN, *args], capture_output=True, text=True, input=input, cwd=cwd, timeout=120)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture(scope="module")
def signed() -> tuple[SecretKey, bytes, str]:
    key = minisign.generate()
    data = b"SHA256SUMS body\n"
    return key, data, minisign.sign(key, data, trusted_comment="timestamp:1\tfile:SHA256SUMS").to_text()


# --- malformed .minisig files ------------------------------------------------------------------


def _lines(text: str) -> list[str]:
    return text.rstrip("\n").split("\n")


def _mutate(text: str, case: str) -> str:
    lines = _lines(text)
    blob = base64.b64decode(lines[1])
    glob = base64.b64decode(lines[3])
    if case == "three_lines":
        return "\n".join(lines[:3]) + "\n"
    if case == "empty":
        return ""
    if case == "untrusted_prefix":
        lines[0] = "untrusted: " + lines[0][len("untrusted comment: "):]
    if case == "trusted_prefix":
        lines[2] = "Trusted comment: " + lines[2][len("trusted comment: "):]
    if case == "swapped_comments":
        lines[0], lines[2] = lines[2], lines[0]
    if case == "unknown_algorithm":
        lines[1] = _b64(b"EE" + blob[2:])
    if case == "lowercase_algorithm":
        lines[1] = _b64(b"ed" + blob[2:])
    if case == "short_signature":
        lines[1] = _b64(blob[:-1])
    if case == "long_signature":
        lines[1] = _b64(blob + b"\0")
    if case == "short_global":
        lines[3] = _b64(glob[:-1])
    if case == "long_global":
        lines[3] = _b64(glob + b"\0")
    if case == "not_base64_signature":
        lines[1] = lines[1][:-4] + "!!!!"
    if case == "not_base64_global":
        lines[3] = "*" + lines[3][1:]
    if case == "base64_padding_missing":
        lines[1] = lines[1].rstrip("=")
    return "\n".join(lines) + "\n"


MALFORMED = ["three_lines", "empty", "untrusted_prefix", "trusted_prefix", "swapped_comments", "unknown_algorithm",
             "lowercase_algorithm", "short_signature", "long_signature", "short_global", "long_global",
             "not_base64_signature", "not_base64_global", "base64_padding_missing"]


@pytest.mark.parametrize("case", MALFORMED)
def test_a_malformed_signature_file_is_a_clean_verify_error(signed, case: str, tmp_path: Path) -> None:
    key, data, text = signed
    bad = _mutate(text, case)
    with pytest.raises(VerifyError, match=r"^SHA256SUMS.minisig (is not a minisign signature|is not valid base64)\.$") as err:
        Signature.from_text(bad, source="SHA256SUMS.minisig")
    assert err.value.exit_code == 8 and "fetch it again" in (err.value.hint or "")
    # and real minisign refuses it too (the same file, the same key)
    (tmp_path / "f").write_bytes(data)
    (tmp_path / "f.minisig").write_text(bad)
    (tmp_path / "k.pub").write_text(key.public_key.to_text())
    assert _minisign("-Vm", "f", "-p", "k.pub", cwd=tmp_path).returncode != 0


def test_a_signature_with_crlf_lines_or_a_unicode_line_separator_in_its_comment_verifies(tmp_path: Path) -> None:
    key = minisign.generate()
    data = b"x\n"
    comment = "version:1\u2028note\x85end"  # str.splitlines() would split here, minisign does not
    text = minisign.sign(key, data, trusted_comment=comment).to_text()
    for variant in (text, text.replace("\n", "\r\n")):
        sig = Signature.from_text(variant)
        assert sig.trusted_comment == comment
        assert minisign.verify(data, sig, [key.public_key]) == key.public_key
    (tmp_path / "f").write_bytes(data)
    (tmp_path / "f.minisig").write_text(text.replace("\n", "\r\n"), newline="")
    (tmp_path / "k.pub").write_text(key.public_key.to_text())
    res = _minisign("-Vm", "f", "-p", "k.pub", cwd=tmp_path)
    assert res.returncode == 0, res.stderr


def test_a_signature_text_round_trips_field_by_field(signed) -> None:
    key, data, text = signed
    sig = Signature.from_text(text)
    assert sig.algorithm == b"ED" and sig.key_id == key.key_id and len(sig.signature) == 64 and len(sig.global_signature) == 64
    assert sig.trusted_comment == "timestamp:1\tfile:SHA256SUMS"
    assert sig.untrusted_comment == f"signature from locara-build secret key {key.id_hex}"
    assert sig.to_text() == text
    assert sig.key_id_hex == key.id_hex
    custom = minisign.sign(key, data, trusted_comment="t", untrusted_comment="from CI")
    assert custom.to_text().startswith("untrusted comment: from CI\n")


# --- legacy signatures, comments, key ids ---------------------------------------------------------


def test_a_legacy_signature_from_real_minisign_verifies(tmp_path: Path) -> None:
    """`minisign -S -l`: Ed25519 over the raw file (algorithm `Ed`), not over its BLAKE2b hash."""
    assert _minisign("-G", "-W", "-p", "k.pub", "-s", "k.key", cwd=tmp_path).returncode == 0
    (tmp_path / "f").write_bytes(b"legacy payload\n" * 100)
    res = _minisign("-S", "-l", "-W", "-s", "k.key", "-m", "f", "-t", "legacy one", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    sig = Signature.from_text((tmp_path / "f.minisig").read_text())
    assert sig.algorithm == b"Ed"
    pub = PublicKey.from_file(tmp_path / "k.pub")
    assert minisign.verify((tmp_path / "f").read_bytes(), sig, [pub]) == pub
    with pytest.raises(VerifyError, match="altered after it was signed"):
        minisign.verify(b"legacy payload\n" * 99, sig, [pub])
    # a legacy signature checked as if prehashed, or the other way round, fails
    flipped = Signature(b"ED", sig.key_id, sig.signature, sig.trusted_comment, sig.global_signature)
    with pytest.raises(VerifyError, match="altered after it was signed"):
        minisign.verify((tmp_path / "f").read_bytes(), flipped, [pub])
    forged = Signature(sig.algorithm, sig.key_id, sig.signature, "legacy two", sig.global_signature)
    with pytest.raises(VerifyError, match="trusted comment of its signature was altered"):
        minisign.verify((tmp_path / "f").read_bytes(), forged, [pub])


@pytest.mark.parametrize("bad", ["two\nlines", "carriage\rreturn", "crlf\r\n", "nul\0byte", "\n"])
def test_sign_refuses_comments_that_are_not_one_line(bad: str) -> None:
    key = minisign.generate()
    with pytest.raises(ConfigError, match="a trusted comment must be one line of text") as err:
        minisign.sign(key, b"x", trusted_comment=bad)
    assert err.value.exit_code == 2
    with pytest.raises(ConfigError, match="an? untrusted comment must be one line of text"):
        minisign.sign(key, b"x", trusted_comment="fine", untrusted_comment=bad)


def test_key_ids_read_as_minisign_prints_them(tmp_path: Path) -> None:
    """minisign names both key ids when a signature is checked with the wrong key: ours match."""
    ours = minisign.generate()
    assert _minisign("-G", "-W", "-p", "theirs.pub", "-s", "theirs.key", cwd=tmp_path).returncode == 0
    theirs = PublicKey.from_file(tmp_path / "theirs.pub")
    # what minisign -G wrote: the id without leading zeros (`%PRIX64`); 1 key in 16 has fewer digits
    assert theirs.comment == f"minisign public key {minisign.key_id_comment(theirs.key_id)}"
    assert theirs.to_text() == (tmp_path / "theirs.pub").read_text()  # ours writes the same bytes
    (tmp_path / "f").write_bytes(b"f")
    (tmp_path / "f.minisig").write_text(minisign.sign(ours, b"f", trusted_comment="t").to_text())
    res = _minisign("-Vm", "f", "-p", "theirs.pub", cwd=tmp_path)
    assert res.returncode != 0
    printed = re.findall(r"key id in (?:f\.minisig|the public key) is ([0-9A-F]{1,16})\n", res.stdout + res.stderr)
    # (these messages drop leading zeros, `%PRIX64`, as the .pub comment does)
    assert [p.zfill(16) for p in printed] == [ours.id_hex, theirs.id_hex], res.stdout + res.stderr
    zero_led = minisign.SecretKey(key_id=bytes(range(1, 8)) + b"\0", seed=ours.seed)
    assert zero_led.id_hex == "0007060504030201" and zero_led.public_key.id_hex == zero_led.id_hex
    assert minisign.key_id_hex(bytes(range(1, 9))) == "0807060504030201"
    assert minisign.key_id_comment(zero_led.key_id) == "7060504030201"  # the form minisign -G writes
    assert zero_led.public_key.to_text().splitlines()[0] == "untrusted comment: minisign public key 7060504030201"


# --- malformed public keys -------------------------------------------------------------------------

PUB_CASES = {
    "not_base64": "untrusted comment: k\nRW!!notbase64!!\n",
    "too_short": f"untrusted comment: k\n{_b64(b'Ed' + bytes(39))}\n",
    "too_long": f"untrusted comment: k\n{_b64(b'Ed' + bytes(41))}\n",
    "wrong_algorithm": f"untrusted comment: k\n{_b64(b'ED' + bytes(40))}\n",
    "two_key_lines": f"untrusted comment: k\n{_b64(b'Ed' + bytes(40))}\n{_b64(b'Ed' + bytes(40))}\n",
    "comment_only": "untrusted comment: k\n",
    "empty": "",
    "a_secret_key": None,  # filled in below
}


@pytest.mark.parametrize("case", sorted(PUB_CASES))
def test_a_malformed_public_key_is_a_config_error(case: str, tmp_path: Path) -> None:
    text = PUB_CASES[case]
    if text is None:
        text = minisign.generate().to_text(None)
    path = tmp_path / "k.pub"
    path.write_text(text)
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}: (not a minisign Ed25519 public key|expected one base64 key line)") as err:
        PublicKey.from_file(path)
    assert err.value.exit_code == 2
    assert err.value.hint in ("Use the .pub file written by `locara-build keys generate` or `minisign -G`.",
                              "A minisign public key file has an `untrusted comment:` line and one base64 line starting with `RW`.")
    if case == "comment_only":
        with pytest.raises(ConfigError) as err:
            PublicKey.from_text(text)
        assert err.value.message == "public key: expected one base64 key line after the comment."
        assert err.value.hint == "Use the .pub file written by `locara-build keys generate` or `minisign -G`."


def test_an_unreadable_or_binary_public_key_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read public key .*missing.pub: No such file") as err:
        PublicKey.from_file(tmp_path / "missing.pub")
    assert err.value.hint == "Check the path."
    (tmp_path / "bin.pub").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match=r"bin.pub: not a minisign public key \(not text\)") as err:
        PublicKey.from_file(tmp_path / "bin.pub")
    assert err.value.hint == "Use the .pub file written by `locara-build keys generate` or `minisign -G`."


def test_a_public_key_without_its_comment_line_and_its_text_form_round_trip() -> None:
    key = minisign.generate().public_key
    bare = PublicKey.from_text(key.to_base64() + "\n")
    assert bare.raw == key.raw and bare.key_id == key.key_id and bare.comment == ""
    again = PublicKey.from_text(key.to_text(), source="x.pub")
    assert again.comment == f"minisign public key {minisign.key_id_comment(key.key_id)}" and again.source == "x.pub"
    assert base64.b64decode(key.to_base64())[:2] == b"Ed" and key.to_base64().startswith("RW")
    # the words, with and without a source; junk inside the base64 is refused, not skipped
    line = key.to_base64()
    for text, source, who in ((line[:-2], "", "public key"), (line[:10] + "!!" + line[10:], "k.pub", "k.pub")):
        with pytest.raises(ConfigError) as err:
            PublicKey.from_base64(text, source=source)
        assert err.value.message == f"{who}: not a minisign Ed25519 public key."
        assert err.value.hint == ("A minisign public key file has an `untrusted comment:` line and one base64 line "
                                  "starting with `RW`.")


# --- malformed secret keys, scrypt ---------------------------------------------------------------


def _secret_blob(key: SecretKey) -> bytearray:
    return bytearray(base64.b64decode(key.to_text(None).split("\n")[1]))


def _secret_text(blob: bytes) -> str:
    return f"untrusted comment: k\n{_b64(bytes(blob))}\n"


def _secret_case(case: str) -> tuple[str, str | None]:
    key = minisign.generate()
    blob = _secret_blob(key)
    if case == "not_base64":
        return "untrusted comment: k\nRWQ!!!\n", None
    if case == "two_lines":
        return key.to_text(None) + _b64(bytes(blob)) + "\n", None
    if case == "empty":
        return "", None
    if case == "short":
        return _secret_text(blob[:-1]), None
    if case == "long":
        return _secret_text(blob + b"\0"), None
    if case == "signature_algorithm":
        blob[0:2] = b"ED"
    if case == "checksum_algorithm":
        blob[4:6] = b"B3"
    if case == "kdf_algorithm":
        blob[2:4] = b"Xx"
    if case == "public_half_swapped":  # the key id and checksum fit, the public half is another key's
        other = minisign.generate()
        blob[54 + 8 + 32:54 + 8 + 64] = other.public_key.raw
        blob[54 + 72:54 + 104] = bytes(32)  # minisign -W's all-zero checksum: not checked
    if case == "a_public_key":
        return key.public_key.to_text(), None
    return _secret_text(blob), None


SECRET_CASES = ["not_base64", "two_lines", "empty", "short", "long", "signature_algorithm", "checksum_algorithm",
                "kdf_algorithm", "public_half_swapped", "a_public_key"]


@pytest.mark.parametrize("case", SECRET_CASES)
def test_a_malformed_secret_key_is_a_config_error(case: str) -> None:
    text, password = _secret_case(case)
    with pytest.raises(ConfigError, match=r"^release.key: not a minisign secret key\.$") as err:
        SecretKey.from_text(text, password, source="release.key")
    assert err.value.exit_code == 2
    assert err.value.hint == ("Use the .key file written by `locara-build keys generate` or `minisign -G` "
                              "(in CI: the whole file's contents in LOCARA_MINISIGN_KEY).")
    if case != "public_half_swapped":  # (the cheap check stops short of the key material)
        with pytest.raises(ConfigError, match="not a minisign secret key"):
            SecretKey.check_text(text, password, source="release.key")


def test_a_corrupted_checksum_or_key_material_is_named_as_such() -> None:
    key = minisign.generate()
    blob = _secret_blob(key)
    blob[-1] ^= 1  # the checksum of an unencrypted key: not all zero, so it is checked
    with pytest.raises(ConfigError, match="wrong password \\(or a corrupted key file\\)") as err:
        SecretKey.from_text(_secret_text(blob), None)
    assert err.value.hint == "Check LOCARA_MINISIGN_PASSWORD; the key file must be the one `keys generate` wrote."
    line = _secret_text(_secret_blob(key)).split("\n")[1]
    with pytest.raises(ConfigError, match="not a minisign secret key"):  # junk inside the base64: refused, not skipped
        SecretKey.from_text(f"untrusted comment: k\n{line[:30]}!!{line[30:]}\n", None)
    blob = _secret_blob(key)
    blob[54 + 8] ^= 1  # one bit of the secret half
    with pytest.raises(ConfigError, match="wrong password \\(or a corrupted key file\\)"):
        SecretKey.from_text(_secret_text(blob), None)
    assert SecretKey.from_text(key.to_text(None), None).seed == key.seed
    # the zero checksum minisign -W writes is accepted (the public half is still compared)
    blob = _secret_blob(key)
    blob[54 + 72:] = bytes(32)
    assert SecretKey.from_text(_secret_text(blob), None).seed == key.seed


def test_an_encrypted_key_without_a_password_is_refused_before_any_scrypt() -> None:
    text = minisign.generate().to_text("pw", limits=INTERACTIVE)
    for password in (None, ""):
        with pytest.raises(ConfigError, match="is encrypted and no password was given") as err:
            SecretKey.check_text(text, password, source="ci.key")
        assert err.value.hint == "Set LOCARA_MINISIGN_PASSWORD (a CI secret) or run interactively to be asked for it."
        with pytest.raises(ConfigError, match="is encrypted and no password was given"):
            SecretKey.from_text(text, password, source="ci.key")
    SecretKey.check_text(text, "any password: not derived here", source="ci.key")
    from locara_build.core.redact import redact

    assert redact("pw any password: not derived here") == "pw ***"  # registered as a secret on read
    assert "\nRWRTY" in text  # `Ed` + `Sc` + `B2`: minisign's own prefix for encrypted keys


@pytest.mark.parametrize("ops,mem,expected", [
    (SENSITIVE.opslimit, SENSITIVE.memlimit, (1 << 20, 8, 1)),  # minisign -G
    (INTERACTIVE.opslimit, INTERACTIVE.memlimit, (1 << 14, 8, 1)),
    (524288, 33554432, (1 << 14, 8, 1)),  # opslimit < memlimit / 32: the p = 1 branch, N from opslimit
    (1, 1 << 30, (1 << 10, 8, 1)),  # opslimit raised to 32768 first
    (1 << 26, 1 << 20, (1 << 10, 8, 2048)),  # memory-bound: p grows
    (1 << 40, 1 << 40, (1 << 30, 8, 32)),
    (1 << 62, 1 << 20, (1 << 10, 8, 0x3FFFFFFF // 8)),  # p capped as libsodium caps it
])
def test_scrypt_parameters_are_libsodiums(ops: int, mem: int, expected: tuple[int, int, int]) -> None:
    """libsodium's pickparams() by hand (crypto_pwhash/scryptsalsa208sha256/pwhash_scryptsalsa208sha256.c)."""
    assert minisign._scrypt_params(ops, mem) == expected


def test_a_key_from_the_other_scrypt_branch_signs_through_real_minisign(tmp_path: Path) -> None:
    """SENSITIVE and INTERACTIVE both take libsodium's memory-bound branch; opslimit <
    memlimit / 32 takes the other one (p = 1, N from opslimit). Real minisign derives the same
    key stream from what we wrote, and we read back a key minisign re-encrypted."""
    limits = KdfLimits(opslimit=524288, memlimit=33554432)
    key = minisign.generate()
    (tmp_path / "o.key").write_text(key.to_text("other-branch", limits=limits))
    (tmp_path / "o.pub").write_text(key.public_key.to_text())
    (tmp_path / "x").write_bytes(b"x\n")
    res = _minisign("-S", "-s", "o.key", "-m", "x", input="other-branch\n", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert _minisign("-Vm", "x", "-p", "o.pub", cwd=tmp_path).returncode == 0
    blob = base64.b64decode((tmp_path / "o.key").read_text().split("\n")[1])
    assert int.from_bytes(blob[38:46], "little") == 524288 and int.from_bytes(blob[46:54], "little") == 33554432
    assert SecretKey.from_text((tmp_path / "o.key").read_text(), "other-branch").seed == key.seed
    with pytest.raises(ConfigError, match="wrong password"):
        SecretKey.from_text((tmp_path / "o.key").read_text(), "other-branch!")
    # 64 MiB of scrypt (over hashlib's 32 MiB default maxmem, so the cap must be passed on)
    big = KdfLimits(opslimit=1 << 21, memlimit=1 << 26)
    assert minisign._scrypt_params(big.opslimit, big.memlimit) == (1 << 16, 8, 1)
    assert SecretKey.from_text(key.to_text("64m", limits=big), "64m").seed == key.seed


@pytest.mark.parametrize("ops,mem", [(1 << 40, 1 << 40), (1 << 62, 1 << 20), (2**64 - 1, 2**64 - 1)])
def test_a_key_needing_more_scrypt_memory_than_the_cap_is_refused_at_once(ops: int, mem: int) -> None:
    key = minisign.generate()
    blob = bytearray(base64.b64decode(key.to_text("pw", limits=INTERACTIVE).split("\n")[1]))
    blob[38:46] = ops.to_bytes(8, "little")
    blob[46:54] = mem.to_bytes(8, "little")
    with pytest.raises(ConfigError, match=r"the secret key's scrypt parameters need \d+ MiB, more than this tool allows") as err:
        SecretKey.from_text(_secret_text(blob), "pw")
    assert err.value.exit_code == 2
    assert err.value.hint == "Re-encrypt the key with `minisign -C` or generate a new one with `locara-build keys generate`."
    with pytest.raises(ConfigError, match="more than this tool allows"):
        key.to_text("pw", limits=KdfLimits(ops, mem))


def test_the_memory_cap_sits_at_two_gib() -> None:
    """minisign's own 1 GiB (N = 2^20, p = 1) passes the cap (run in test_sign_minisign.py); one N
    step more (2^21 blocks of 1 KiB, plus p) is over it. Refused before any memory is taken."""
    n, r, p = minisign._scrypt_params(1 << 30, 1 << 30)
    assert (n, r, p) == (1 << 20, 8, 32) and 128 * r * (n + p + 2) + (1 << 20) <= (1 << 31) - 1
    with pytest.raises(ConfigError, match="need 2049 MiB"):
        minisign._kdf_stream("pw", bytes(32), KdfLimits(1 << 31, 1 << 31), 104)
    with pytest.raises(ConfigError, match="need 4097 MiB"):
        minisign._kdf_stream("pw", bytes(32), KdfLimits(1 << 32, 1 << 32), 104)


# --- the exact words of every refusal -----------------------------------------------------------------


def test_verify_refusals_say_exactly_what_failed(signed) -> None:
    key, data, text = signed
    sig = Signature.from_text(text)
    other = minisign.generate()
    with pytest.raises(VerifyError) as err:
        minisign.verify(data, sig, [other.public_key])
    assert err.value.message == (f"file is signed by key {key.id_hex}, which is not a trusted key (trusted: {other.id_hex}).")
    assert err.value.hint == ("Only install releases signed by a key you trust; add another project key with --trust KEY.pub "
                              "if you expected this one.")
    with pytest.raises(VerifyError) as err:
        minisign.verify(data, sig, [], what="release.json")
    assert err.value.message == f"release.json is signed by key {key.id_hex}, which is not a trusted key (trusted: none)."
    third = minisign.generate()
    with pytest.raises(VerifyError, match=re.escape(f"(trusted: {', '.join(sorted([other.id_hex, third.id_hex]))})")):
        minisign.verify(data, sig, (third.public_key, other.public_key, other.public_key))
    with pytest.raises(VerifyError) as err:
        minisign.verify(data + b"!", sig, [key.public_key])
    assert err.value.message == (f"file: signature verification FAILED with key {key.id_hex}: "
                                 "the file was altered after it was signed.")
    assert err.value.hint == ("Do not use this file. Fetch it again from the project's release page; "
                              "report the mirror if it persists.")
    forged = Signature.from_text(text.replace("file:SHA256SUMS", "file:OTHER"))
    with pytest.raises(VerifyError) as err:
        minisign.verify(data, forged, [key.public_key], what="SHA256SUMS")
    assert err.value.message == "SHA256SUMS: the trusted comment of its signature was altered (comment signature invalid)."
    assert err.value.hint == "Do not use this file; fetch the release again."
    assert minisign.verify(data, sig, [other.public_key, key.public_key], what="x") == key.public_key


def test_comment_refusals_say_exactly_which_comment(signed) -> None:
    key = signed[0]
    long = "x" * 100 + "\n"
    with pytest.raises(ConfigError) as err:
        minisign.sign(key, b"d", trusted_comment=long)
    assert err.value.message == f"a trusted comment must be one line of text (no newline, carriage return or NUL): {'x' * 60!r}."
    assert err.value.hint == "Remove the line breaks from the comment (minisign reads each comment as one line)."
    with pytest.raises(ConfigError) as err:
        minisign.sign(key, b"d", trusted_comment="ok", untrusted_comment="a\rb")
    assert err.value.message == "a untrusted comment must be one line of text (no newline, carriage return or NUL): 'a\\rb'."
    # X, spaces, tabs, unicode and an empty comment are all fine
    for fine in ("XX", "", "tab\there", "\u00e9\u2028"):
        sig = minisign.sign(key, b"d", trusted_comment=fine, untrusted_comment=fine or None)
        assert minisign.verify(b"d", Signature.from_text(sig.to_text()), [key.public_key]) == key.public_key


def test_sign_raw_is_a_plain_ed25519_signature() -> None:
    """(DSSE envelopes: a bare Ed25519 signature over the bytes, no minisign framing.)"""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    key = minisign.generate()
    raw = key.sign_raw(b"payload")
    assert len(raw) == 64
    Ed25519PublicKey.from_public_bytes(key.public_key.raw).verify(raw, b"payload")
    assert repr(key) == f"SecretKey(id={key.id_hex})" and key.seed.hex() not in repr(key)


def test_junk_inside_a_base64_line_is_refused_not_skipped(signed, tmp_path: Path) -> None:
    """A lenient decoder drops characters outside the alphabet, so `RW!!!!...` would decode to the
    real signature; minisign refuses such a line, and so do we."""
    key, data, text = signed
    lines = _lines(text)
    for at in (1, 3):
        bad = list(lines)
        bad[at] = bad[at][:20] + "!!!!" + bad[at][20:]
        assert base64.b64decode(bad[at]) == base64.b64decode(lines[at])  # what a lenient decoder would see
        with pytest.raises(VerifyError) as err:
            Signature.from_text("\n".join(bad) + "\n", source="f.minisig")
        assert err.value.message == "f.minisig is not valid base64."
        assert err.value.hint == "The file is corrupted; fetch it again."
        (tmp_path / "f").write_bytes(data)
        (tmp_path / "f.minisig").write_text("\n".join(bad) + "\n")
        (tmp_path / "k.pub").write_text(key.public_key.to_text())
        assert _minisign("-Vm", "f", "-p", "k.pub", cwd=tmp_path).returncode != 0


def test_signature_defaults_and_a_file_without_its_last_newline(signed) -> None:
    key, data, text = signed
    sig = Signature.from_text(text.rstrip("\n"))  # minisign accepts it too
    assert minisign.verify(data, sig, [key.public_key]) == key.public_key
    with pytest.raises(VerifyError) as err:
        Signature.from_text("\n".join(_lines(text)[:3]))
    assert err.value.message == "signature is not a minisign signature."
    assert err.value.hint == "The .minisig file is corrupted or not the one published with this file; fetch it again."


def test_secret_key_file_fields_as_minisign_writes_them() -> None:
    key = minisign.generate()
    text = key.to_text(None)
    assert text.split("\n")[0] == "untrusted comment: minisign secret key (unencrypted)"
    blob = _secret_blob(key)
    assert blob[:6] == b"Ed\0\0B2" and blob[38:54] == bytes(16)  # no kdf: opslimit = memlimit = 0, as minisign -W
    from locara_build.core.redact import redact

    enc_text = key.to_text("pw-3f9a-never-printed", limits=INTERACTIVE)
    assert enc_text.split("\n")[0] == "untrusted comment: minisign encrypted secret key"
    assert redact("key password pw-3f9a-never-printed") == "key password ***"  # registered as a secret on write
    enc = base64.b64decode(enc_text.split("\n")[1])
    assert enc[:6] == b"EdScB2" and enc[38:54] == (524288).to_bytes(8, "little") + (16777216).to_bytes(8, "little")
    assert enc[6:38] != blob[6:38]  # a fresh salt each time
    with pytest.raises(ConfigError) as err:
        SecretKey.check_text("junk", None)
    assert err.value.message == "secret key: not a minisign secret key."
