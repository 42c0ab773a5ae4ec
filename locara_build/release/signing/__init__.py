"""Signing: minisign (every release), Authenticode (Windows binaries), codesign + notarization (macOS).

:func:`sign_staged` is what the packaging / weekly stages call on a staged package folder before it
is archived; it dispatches on the recipe's ``signing`` kind.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from locara_build.core import log
from locara_build.core.errors import ConfigError
from locara_build.release.signing.secrets import names_a_file

__all__ = ["SigningReport", "sign_staged", "names_a_file"]


@dataclass
class SigningReport:
    kind: str  # none | authenticode | macos
    status: str  # signed | skipped (no credentials, not required) | none (the recipe signs nothing)
    files: list[str] = field(default_factory=list)  # paths relative to the staged folder
    reason: str = ""

    def to_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "status": self.status, "files": list(self.files), "reason": self.reason}


def sign_staged(
    kind: str, staging_dir: Path, *, require: bool = False, host: str | None = None, entitlements: Path | None = None
) -> SigningReport:
    """Sign the binaries of a staged package (before it is archived), per the recipe's signing kind.

    * ``none``: nothing to do.
    * ``authenticode``: every .exe/.dll signed with osslsigncode and verified (credentials from env).
    * ``macos``: every Mach-O codesigned (hardened runtime, timestamp) on a macOS host.

    ``entitlements``: a plist for codesign, only when a recipe asks for one (default: none).
    Without credentials (or, for macOS, off macOS) the package stays unsigned with a warning, or
    :class:`~locara_build.core.errors.SignError` (exit 7) when ``require`` is set.
    """
    if kind == "none":
        return SigningReport(kind, "none")  # nothing to sign: not "skipped", which means credentials were missing
    if kind == "authenticode":
        from locara_build.release.signing.authenticode import AuthenticodeConfig, sign_windows_binaries

        config = AuthenticodeConfig.from_env(require=require)
        if config is None:
            reason = "no Authenticode credentials (LOCARA_AUTHENTICODE_P12 / _PASSWORD unset)"
            log.warn(f"{staging_dir.name}: Windows binaries left unsigned: {reason}")
            return SigningReport(kind, "skipped", reason=reason)
        signed = sign_windows_binaries(staging_dir, config)
        return SigningReport(kind, "signed" if signed else "nothing-to-sign", [str(p.relative_to(staging_dir)) for p in signed])
    if kind == "macos":
        from locara_build.release.signing.macos import MacSigningConfig, sign_macos_binaries

        config_m = MacSigningConfig.from_env(require=require, host=host, entitlements=entitlements)
        if config_m is None:
            reason = MacSigningConfig.why_not(host=host)
            log.warn(f"{staging_dir.name}: macOS binaries left unsigned: {reason}")
            return SigningReport(kind, "skipped", reason=reason)
        signed = sign_macos_binaries(staging_dir, config_m)
        return SigningReport(kind, "signed" if signed else "nothing-to-sign", [str(p.relative_to(staging_dir)) for p in signed])
    raise ConfigError(f"unknown signing kind `{kind}`.", hint="Use none, authenticode or macos in the recipe.")
