"""minisign, in pure Python: keys, signatures and verification compatible with the `minisign` tool.

Nothing here needs the minisign binary, so ``install`` verifies releases on any machine with
Python. The formats (https://jedisct1.github.io/minisign/):

* public key: ``untrusted comment: ...`` + base64(``"Ed"`` + key id (8) + Ed25519 public key (32))
* secret key: ``untrusted comment: ...`` + base64(sig alg ``"Ed"`` + kdf alg (``"Sc"`` scrypt or
  ``\\0\\0`` none) + checksum alg ``"B2"`` + salt (32) + opslimit (u64 LE) + memlimit (u64 LE) +
  [key id (8) + Ed25519 secret key (64) + BLAKE2b-256 checksum (32)]); the bracket is XORed with
  a scrypt (``crypto_pwhash_scryptsalsa208sha256``) key stream when encrypted.
* signature (``.minisig``): untrusted comment, base64(``"ED"`` + key id + Ed25519 over
  BLAKE2b-512(message)), ``trusted comment: ...``, base64(Ed25519 over signature + trusted comment).
  Legacy ``"Ed"`` signatures (over the raw message) are verified, never produced.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from locara_build.core.errors import ConfigError, VerifyError
from locara_build.core.redact import register

__all__ = [
    "PublicKey",
    "SecretKey",
    "Signature",
    "KdfLimits",
    "SENSITIVE",
    "INTERACTIVE",
    "generate",
    "sign",
    "verify",
    "key_id_comment",
    "key_id_hex",
]

SIG_ALG = b"Ed"
SIG_ALG_PREHASHED = b"ED"
KDF_SCRYPT = b"Sc"
KDF_NONE = b"\x00\x00"
CHK_ALG = b"B2"
UNTRUSTED_PREFIX = "untrusted comment: "
TRUSTED_PREFIX = "trusted comment: "


@dataclass(frozen=True)
class KdfLimits:
    """libsodium's scrypt cost parameters as stored in the key file."""

    opslimit: int
    memlimit: int


# What `minisign -G` uses (libsodium's *_SENSITIVE): 1 GiB of memory, a few seconds.
SENSITIVE = KdfLimits(opslimit=33554432, memlimit=1073741824)
# libsodium's *_INTERACTIVE: 16 MiB; for throwaway keys (tests, short-lived CI keys).
INTERACTIVE = KdfLimits(opslimit=524288, memlimit=16777216)


def key_id_hex(key_id: bytes) -> str:
    """The key id as 16 upper-case hex digits (the 8 bytes read as a little-endian integer)."""
    return key_id[::-1].hex().upper()


def key_id_comment(key_id: bytes) -> str:
    """The key id as minisign writes it in a .pub comment and its messages (``%PRIX64``: no leading
    zeros, so 1 key in 16 has fewer than 16 digits)."""
    return f"{int.from_bytes(key_id, 'little'):X}"


def _b64decode(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise VerifyError(f"{what} is not valid base64.", hint="The file is corrupted; fetch it again.") from None


# --- scrypt as libsodium's crypto_pwhash_scryptsalsa208sha256 picks its parameters ---------------


def _scrypt_params(opslimit: int, memlimit: int) -> tuple[int, int, int]:
    """(N, r, p) exactly as libsodium's ``pickparams()`` derives them."""
    opslimit = max(opslimit, 32768)
    r = 8
    if opslimit < memlimit // 32:
        p = 1
        max_n = opslimit // (r * 4)
        n_log2 = 1
        while n_log2 < 63 and (1 << n_log2) <= max_n // 2:
            n_log2 += 1
    else:
        max_n = memlimit // (r * 128)
        n_log2 = 1
        while n_log2 < 63 and (1 << n_log2) <= max_n // 2:
            n_log2 += 1
        max_rp = (opslimit // 4) // (1 << n_log2)
        max_rp = min(max_rp, 0x3FFFFFFF)
        p = max(1, max_rp // r)
    return 1 << n_log2, r, p


def _kdf_stream(password: str, salt: bytes, limits: KdfLimits, length: int) -> bytes:
    n, r, p = _scrypt_params(limits.opslimit, limits.memlimit)
    need = 128 * r * (n + p + 2) + (1 << 20)
    if need > (1 << 31) - 1:
        raise ConfigError(
            f"the secret key's scrypt parameters need {need >> 20} MiB, more than this tool allows.",
            hint="Re-encrypt the key with `minisign -C` or generate a new one with `locara-build keys generate`.",
        )
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=need, dklen=length)


def _checksum(sig_alg: bytes, key_id: bytes, sk: bytes) -> bytes:
    return hashlib.blake2b(sig_alg + key_id + sk, digest_size=32).digest()


# --- keys -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PublicKey:
    key_id: bytes  # 8 bytes
    raw: bytes  # 32 bytes Ed25519
    comment: str = ""
    source: str = ""  # where it came from, for messages

    @property
    def id_hex(self) -> str:
        return key_id_hex(self.key_id)

    @classmethod
    def from_base64(cls, text: str, *, source: str = "", comment: str = "") -> PublicKey:
        bad = ConfigError(  # a trust setting (--trust, LOCARA_TRUSTED_KEYS, a pinned key): exit 2
            f"{source or 'public key'}: not a minisign Ed25519 public key.",
            hint="A minisign public key file has an `untrusted comment:` line and one base64 line starting with `RW`.",
        )
        try:
            blob = base64.b64decode(text.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise bad from None
        if len(blob) != 42 or blob[:2] != SIG_ALG:
            raise bad
        return cls(key_id=blob[2:10], raw=blob[10:42], comment=comment, source=source)

    @classmethod
    def from_text(cls, text: str, *, source: str = "") -> PublicKey:
        lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
        comment = ""
        if lines and lines[0].startswith(UNTRUSTED_PREFIX):
            comment = lines.pop(0)[len(UNTRUSTED_PREFIX):]
        if len(lines) != 1:
            raise ConfigError(
                f"{source or 'public key'}: expected one base64 key line after the comment.",
                hint="Use the .pub file written by `locara-build keys generate` or `minisign -G`.",
            )
        return cls.from_base64(lines[0], source=source, comment=comment)

    @classmethod
    def from_file(cls, path: Path) -> PublicKey:
        try:
            text = path.read_text("utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read public key {path}: {exc.strerror}.", hint="Check the path.") from None
        except UnicodeDecodeError:
            raise ConfigError(
                f"{path}: not a minisign public key (not text).",
                hint="Use the .pub file written by `locara-build keys generate` or `minisign -G`.",
            ) from None
        return cls.from_text(text, source=str(path))

    def to_base64(self) -> str:
        return base64.b64encode(SIG_ALG + self.key_id + self.raw).decode()

    def to_text(self) -> str:
        return f"{UNTRUSTED_PREFIX}minisign public key {key_id_comment(self.key_id)}\n{self.to_base64()}\n"

    def _ed(self) -> Ed25519PublicKey:
        return Ed25519PublicKey.from_public_bytes(self.raw)


@dataclass(frozen=True, repr=False)
class SecretKey:
    key_id: bytes
    seed: bytes  # 32-byte Ed25519 seed (libsodium's sk = seed + public key)

    def __repr__(self) -> str:  # never print key material
        return f"SecretKey(id={self.id_hex})"

    @property
    def id_hex(self) -> str:
        return key_id_hex(self.key_id)

    @property
    def public_key(self) -> PublicKey:
        raw = Ed25519PrivateKey.from_private_bytes(self.seed).public_key().public_bytes_raw()
        return PublicKey(key_id=self.key_id, raw=raw)

    def _ed(self) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.from_private_bytes(self.seed)

    def sign_raw(self, data: bytes) -> bytes:
        """A bare Ed25519 signature (used for DSSE envelopes)."""
        return self._ed().sign(data)

    # -- file format --
    def to_text(self, password: str | None, *, limits: KdfLimits = SENSITIVE) -> str:
        """The secret key file. ``password=None`` writes it unencrypted (``minisign -W`` format)."""
        pk = self.public_key.raw
        sk = self.seed + pk
        body = self.key_id + sk + _checksum(SIG_ALG, self.key_id, sk)
        salt = secrets.token_bytes(32)
        if password is None:
            kdf, ops, mem = KDF_NONE, 0, 0
            comment = "minisign secret key (unencrypted)"
        else:
            register(password)
            kdf, ops, mem = KDF_SCRYPT, limits.opslimit, limits.memlimit
            stream = _kdf_stream(password, salt, limits, len(body))
            body = bytes(a ^ b for a, b in zip(body, stream, strict=True))
            comment = "minisign encrypted secret key"
        blob = SIG_ALG + kdf + CHK_ALG + salt + ops.to_bytes(8, "little") + mem.to_bytes(8, "little") + body
        return f"{UNTRUSTED_PREFIX}{comment}\n{base64.b64encode(blob).decode()}\n"

    @classmethod
    def check_text(cls, text: str, password: str | None, *, source: str = "secret key") -> None:
        """Everything :meth:`from_text` checks short of the key derivation (seconds of scrypt): the
        file's shape, its algorithms, and that an encrypted key has a password."""
        cls._parse(text, password, source)

    @staticmethod
    def _parse(text: str, password: str | None, source: str) -> tuple[bytes, bytes, KdfLimits, bytes]:
        lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
        if lines and lines[0].startswith(UNTRUSTED_PREFIX):
            lines.pop(0)
        bad = _not_a_secret_key(source)
        if len(lines) != 1:
            raise bad
        try:
            blob = base64.b64decode(lines[0], validate=True)
        except (binascii.Error, ValueError):
            raise bad from None
        if len(blob) != 2 + 2 + 2 + 32 + 8 + 8 + 104 or blob[:2] != SIG_ALG or blob[4:6] != CHK_ALG:
            raise bad
        kdf = blob[2:4]
        salt = blob[6:38]
        limits = KdfLimits(int.from_bytes(blob[38:46], "little"), int.from_bytes(blob[46:54], "little"))
        body = blob[54:]
        if kdf == KDF_SCRYPT:
            if not password:
                raise ConfigError(
                    f"{source} is encrypted and no password was given.",
                    hint="Set LOCARA_MINISIGN_PASSWORD (a CI secret) or run interactively to be asked for it.",
                )
            register(password)
        elif kdf != KDF_NONE:
            raise bad
        return kdf, salt, limits, body

    @classmethod
    def from_text(cls, text: str, password: str | None, *, source: str = "secret key") -> SecretKey:
        kdf, salt, limits, body = cls._parse(text, password, source)
        bad = _not_a_secret_key(source)
        if kdf == KDF_SCRYPT:
            assert password  # _parse refused an encrypted key without one
            stream = _kdf_stream(password, salt, limits, len(body))
            body = bytes(a ^ b for a, b in zip(body, stream, strict=True))
        key_id, sk, chk = body[:8], body[8:72], body[72:104]
        # minisign -W writes an all-zero checksum for unencrypted keys; the public-key check below still applies
        unchecked = kdf == KDF_NONE and chk == bytes(32)
        if not unchecked and not hmac.compare_digest(_checksum(SIG_ALG, key_id, sk), chk):
            raise ConfigError(
                f"{source}: wrong password (or a corrupted key file).",
                hint="Check LOCARA_MINISIGN_PASSWORD; the key file must be the one `keys generate` wrote.",
            )
        key = cls(key_id=key_id, seed=sk[:32])
        if key.public_key.raw != sk[32:]:
            raise bad
        return key


def _not_a_secret_key(source: str) -> ConfigError:
    return ConfigError(
        f"{source}: not a minisign secret key.",
        hint="Use the .key file written by `locara-build keys generate` or `minisign -G` "
        "(in CI: the whole file's contents in LOCARA_MINISIGN_KEY).",
    )


def generate() -> SecretKey:
    seed = Ed25519PrivateKey.generate().private_bytes_raw()
    return SecretKey(key_id=os.urandom(8), seed=seed)


# --- signatures -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Signature:
    algorithm: bytes  # b"ED" prehashed, b"Ed" legacy
    key_id: bytes
    signature: bytes
    trusted_comment: str
    global_signature: bytes
    untrusted_comment: str = ""

    @property
    def key_id_hex(self) -> str:
        return key_id_hex(self.key_id)

    def to_text(self) -> str:
        return (
            f"{UNTRUSTED_PREFIX}{self.untrusted_comment}\n"
            f"{base64.b64encode(self.algorithm + self.key_id + self.signature).decode()}\n"
            f"{TRUSTED_PREFIX}{self.trusted_comment}\n"
            f"{base64.b64encode(self.global_signature).decode()}\n"
        )

    @classmethod
    def from_text(cls, text: str, *, source: str = "signature") -> Signature:
        # lines end at \n only (and may carry a \r before it), as minisign reads them: a comment may
        # hold any other character str.splitlines() would split at (\x85, \u2028...)
        lines = [ln.removesuffix("\r") for ln in text.split("\n")]
        bad = VerifyError(
            f"{source} is not a minisign signature.",
            hint="The .minisig file is corrupted or not the one published with this file; fetch it again.",
        )
        if len(lines) < 4 or not lines[0].startswith(UNTRUSTED_PREFIX) or not lines[2].startswith(TRUSTED_PREFIX):
            raise bad
        blob = _b64decode(lines[1], source)
        glob = _b64decode(lines[3], source)
        if len(blob) != 74 or blob[:2] not in (SIG_ALG, SIG_ALG_PREHASHED) or len(glob) != 64:
            raise bad
        return cls(
            algorithm=blob[:2],
            key_id=blob[2:10],
            signature=blob[10:],  # (74 bytes: checked above)
            trusted_comment=lines[2][len(TRUSTED_PREFIX):],
            global_signature=glob,
            untrusted_comment=lines[0][len(UNTRUSTED_PREFIX):],
        )


def _prehash(data: bytes) -> bytes:
    return hashlib.blake2b(data).digest()  # BLAKE2b-512 (64 bytes, the default size)


def sign(key: SecretKey, data: bytes, *, trusted_comment: str, untrusted_comment: str | None = None) -> Signature:
    """A prehashed (``ED``) signature, as `minisign -S` makes by default."""
    for what, comment in (("trusted", trusted_comment), ("untrusted", untrusted_comment)):
        if comment and any(c in comment for c in "\n\r\0"):
            raise ConfigError(
                f"a {what} comment must be one line of text (no newline, carriage return or NUL): {comment[:60]!r}.",
                hint="Remove the line breaks from the comment (minisign reads each comment as one line).",
            )
    ed = key._ed()
    sig = ed.sign(_prehash(data))
    glob = ed.sign(sig + trusted_comment.encode())
    return Signature(
        algorithm=SIG_ALG_PREHASHED,
        key_id=key.key_id,
        signature=sig,
        trusted_comment=trusted_comment,
        global_signature=glob,
        untrusted_comment=untrusted_comment or f"signature from locara-build secret key {key.id_hex}",
    )


def verify(data: bytes, sig: Signature, keys: list[PublicKey] | tuple[PublicKey, ...], *, what: str = "file") -> PublicKey:
    """Check ``sig`` over ``data`` with whichever of ``keys`` has its key id; return that key.

    Raises :class:`VerifyError` when no trusted key has that id, or when either the signature or
    the trusted-comment signature is wrong.
    """
    matching = [k for k in keys if hmac.compare_digest(k.key_id, sig.key_id)]
    if not matching:
        trusted = ", ".join(sorted({k.id_hex for k in keys})) or "none"
        raise VerifyError(
            f"{what} is signed by key {sig.key_id_hex}, which is not a trusted key (trusted: {trusted}).",
            hint="Only install releases signed by a key you trust; add another project key with --trust KEY.pub "
            "if you expected this one.",
        )
    key = matching[0]
    message = _prehash(data) if sig.algorithm == SIG_ALG_PREHASHED else data
    try:
        key._ed().verify(sig.signature, message)
    except InvalidSignature:
        raise VerifyError(
            f"{what}: signature verification FAILED with key {key.id_hex}: the file was altered after it was signed.",
            hint="Do not use this file. Fetch it again from the project's release page; report the mirror if it persists.",
        ) from None
    try:
        key._ed().verify(sig.global_signature, sig.signature + sig.trusted_comment.encode())
    except InvalidSignature:
        raise VerifyError(
            f"{what}: the trusted comment of its signature was altered (comment signature invalid).",
            hint="Do not use this file; fetch the release again.",
        ) from None
    return key
