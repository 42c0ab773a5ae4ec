"""macOS: codesign every Mach-O (executables and GGML backend plugins) with one Developer ID
identity, hardened runtime and a secure timestamp; notarize a ``ditto`` zip of the package.

Flow (what Ollama does for its llama.cpp builds, see docs/signing.md):

1. ``codesign --force --options runtime --timestamp --sign <identity> [--keychain K] FILE`` for each
   Mach-O in the staged folder, libraries before executables; no entitlements unless the caller
   (a recipe) passes a file; every backend plugin is signed with the same identity, so
   ``disable-library-validation`` is not needed. Then ``codesign --verify --strict`` on each.
2. ``ditto -c -k --keepParent <folder> <zip>`` and
   ``xcrun notarytool submit <zip> --wait --timeout 20m --output-format json`` with an App Store
   Connect API key (``LOCARA_NOTARY_KEY`` = path to or contents of the .p8, ``LOCARA_NOTARY_KEY_ID``,
   ``LOCARA_NOTARY_ISSUER``) or a keychain profile (``LOCARA_NOTARY_PROFILE``). Apple-ID passwords are
   not supported: notarytool would need them on its command line.
3. No stapling: ``stapler`` cannot staple bare Mach-O binaries (nor zips); Gatekeeper looks the
   ticket up online on first launch.

Identity: ``LOCARA_MACOS_SIGN_IDENTITY`` (the certificate is imported into a keychain by the CI job).
This needs macOS; elsewhere :meth:`MacSigningConfig.from_env` reports "skipped: needs macOS" (or
raises :class:`SignError`, exit 7, when signing is required).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from locara_build.build import platforms
from locara_build.core import log
from locara_build.core.errors import SignError
from locara_build.core.redact import register, secret_env
from locara_build.core.run import run, which
from locara_build.release.signing.secrets import names_a_file

__all__ = ["MacSigningConfig", "NotaryCredentials", "macho_files", "sign_macos_binaries", "codesign_file", "notarize"]

MACHO_MAGICS = {
    bytes.fromhex(h)
    for h in ("feedface", "feedfacf", "cefaedfe", "cffaedfe", "cafebabe", "bebafeca", "cafebabf", "bfbafeca")
}
IDENTITY_ENV = "LOCARA_MACOS_SIGN_IDENTITY"
NOTARY_TIMEOUT = "20m"


@dataclass(frozen=True, repr=False)
class NotaryCredentials:
    key: str = ""  # App Store Connect API key (.p8) contents: secret
    key_id: str = ""
    issuer: str = ""
    profile: str = ""  # keychain profile stored with `notarytool store-credentials`

    def __repr__(self) -> str:
        return f"NotaryCredentials(key_id={self.key_id!r}, profile={self.profile!r}, key=***)"

    @classmethod
    def from_env(cls) -> NotaryCredentials | None:
        profile = os.environ.get("LOCARA_NOTARY_PROFILE", "")
        key = secret_env("LOCARA_NOTARY_KEY") or ""
        if names_a_file(key):
            key = Path(key).read_text("utf-8")
            register(key)
        key_id = os.environ.get("LOCARA_NOTARY_KEY_ID", "")
        issuer = os.environ.get("LOCARA_NOTARY_ISSUER", "")
        if profile:
            return cls(profile=profile)
        if key and key_id and issuer:
            return cls(key=key, key_id=key_id, issuer=issuer)
        return None


@dataclass(frozen=True)
class MacSigningConfig:
    identity: str
    keychain: str = ""
    entitlements: Path | None = None  # only when a recipe asks for one
    notary: NotaryCredentials | None = None

    @staticmethod
    def why_not(*, host: str | None = None) -> str:
        if (host or platforms.host_os()) != "macos":
            return "skipped: needs macOS (codesign and notarytool exist only there)"
        if not os.environ.get(IDENTITY_ENV):
            return f"skipped: no signing identity ({IDENTITY_ENV} unset)"
        return ""

    @classmethod
    def from_env(
        cls, *, require: bool = False, host: str | None = None, entitlements: Path | None = None
    ) -> MacSigningConfig | None:
        why = cls.why_not(host=host)
        if why:
            if require:
                raise SignError(
                    f"macOS signing is required but {why.removeprefix('skipped: ')}.",
                    hint="Run the macOS recipes on a macOS runner with the Developer ID certificate imported "
                    f"and {IDENTITY_ENV} set (docs/signing.md), or drop --require-signing.",
                )
            return None
        notary = NotaryCredentials.from_env()
        if notary is None and require:
            raise SignError(
                "macOS notarization is required but no notary credentials are set.",
                hint="Set LOCARA_NOTARY_KEY, LOCARA_NOTARY_KEY_ID and LOCARA_NOTARY_ISSUER (or LOCARA_NOTARY_PROFILE).",
            )
        return cls(
            identity=os.environ[IDENTITY_ENV],
            keychain=os.environ.get("LOCARA_MACOS_KEYCHAIN", ""),
            entitlements=entitlements,
            notary=notary,
        )


def macho_files(root: Path) -> list[Path]:
    """Mach-O files under ``root`` (by magic number), libraries/plugins first; symlinks skipped."""
    found = []
    for path in sorted(root.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        with open(path, "rb") as fh:
            if fh.read(4) in MACHO_MAGICS:
                found.append(path)
    return sorted(found, key=lambda p: (os.access(p, os.X_OK) and p.suffix not in (".dylib", ".so"), str(p)))


def _need(tool: str) -> str:
    found = which(tool)
    if found is None:
        raise SignError(f"`{tool}` not found: macOS signing needs Xcode's command line tools.", hint="Run `xcode-select --install`.")
    return found


def codesign_file(path: Path, config: MacSigningConfig) -> None:
    argv = [_need("codesign"), "--force", "--options", "runtime", "--timestamp", "--sign", config.identity]
    if config.keychain:
        argv += ["--keychain", config.keychain]
    if config.entitlements is not None:
        argv += ["--entitlements", str(config.entitlements)]
    argv.append(str(path))
    run(argv, timeout=300, error=SignError, what=f"codesign {path.name}",
        hint="Check that the Developer ID certificate is in the keychain and the timestamp service is reachable.")
    run([_need("codesign"), "--verify", "--strict", "--verbose=2", str(path)], timeout=120, error=SignError,
        what=f"codesign --verify {path.name}")


def _notary_args(creds: NotaryCredentials, key_file: Path | None) -> list[str]:
    if creds.profile:
        return ["--keychain-profile", creds.profile]
    assert key_file is not None
    return ["--key", str(key_file), "--key-id", creds.key_id, "--issuer", creds.issuer]


def notarize(folder: Path, creds: NotaryCredentials) -> dict[str, object]:
    """Zip ``folder`` with ditto, submit it to Apple's notary service and wait; SignError unless Accepted."""
    tmp = Path(tempfile.mkdtemp(prefix="locara-notary-"))
    try:
        os.chmod(tmp, 0o700)
        key_file = None
        if not creds.profile:
            key_file = tmp / "AuthKey.p8"
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(creds.key)
        archive = tmp / f"{folder.name}.zip"
        run([_need("ditto"), "-c", "-k", "--keepParent", str(folder), str(archive)], error=SignError, timeout=600)
        res = run(
            [_need("xcrun"), "notarytool", "submit", str(archive), "--wait", "--timeout", NOTARY_TIMEOUT,
             "--output-format", "json", *_notary_args(creds, key_file)],
            check=False, error=SignError, timeout=1500,
        )
        try:
            reply = json.loads(res.stdout)
        except ValueError:
            reply = {}
        status = str(reply.get("status", ""))
        if res.returncode != 0 or status != "Accepted":
            detail = ""
            sub_id = reply.get("id")
            if sub_id:
                log_res = run([_need("xcrun"), "notarytool", "log", str(sub_id), *_notary_args(creds, key_file)],
                              check=False, error=SignError, timeout=300)
                detail = "\nNotary log:\n" + log_res.stdout.strip()[-4000:]
            raise SignError(
                f"notarization of {folder.name} failed: status {status or 'unknown'} "
                f"(notarytool exit {res.returncode}){': ' + str(reply.get('message')) if reply.get('message') else ''}.{detail}",
                hint="Fix what the notary log lists (usually an unsigned binary, a missing timestamp or hardened "
                "runtime), or retry if the service timed out.",
            )
        log.info(f"notarized {folder.name}: submission {reply.get('id')} Accepted (not stapled: bare Mach-O binaries)")
        return reply
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def sign_macos_binaries(staging_dir: Path, config: MacSigningConfig) -> list[Path]:
    """Codesign every Mach-O of a staged package folder, verify, then notarize (when credentials exist)."""
    files = macho_files(staging_dir)
    if not files:
        log.warn(f"{staging_dir}: no Mach-O file to sign")
        return []
    with log.step(f"codesign {len(files)} Mach-O file(s) in {staging_dir.name}"):
        for path in files:
            codesign_file(path, config)
    if config.notary is not None:
        with log.step(f"notarize {staging_dir.name}"):
            notarize(staging_dir, config.notary)
    else:
        log.warn(f"{staging_dir.name}: signed but NOT notarized (no notary credentials)")
    return files
