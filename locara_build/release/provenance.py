"""SLSA v1 provenance: one in-toto Statement v1 per artifact, wrapped in a signed DSSE envelope.

Choice (see docs/signing.md): a DSSE envelope (``<artifact>.intoto.json``, payload type
``application/vnd.in-toto+json``) signed with Ed25519 by the same minisign release key; the
signature's ``keyid`` is the minisign key id (hex, as minisign prints it). DSSE is what in-toto /
SLSA tooling reads; and since the envelope file is listed in ``SHA256SUMS`` (minisign-signed), it
is also covered by the signature people check by hand with ``minisign -Vm``.

Subject: the artifact file name + its sha256. ``resolvedDependencies``: the upstream commit, every
patch's sha256, the recipe hash and the tool that built it.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import os
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature

from locara_build import __version__
from locara_build.core.errors import VerifyError
from locara_build.release.signing.minisign import PublicKey, SecretKey

__all__ = [
    "STATEMENT_TYPE",
    "PREDICATE_TYPE",
    "PAYLOAD_TYPE",
    "BUILD_TYPE",
    "make_statement",
    "sign_envelope",
    "verify_envelope",
    "pae",
    "builder_id",
]

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
BUILD_TYPE = "https://github.com/locara/locara-build/blob/main/docs/signing.md#provenance-v1"


def builder_id() -> str:
    """``$LOCARA_BUILDER_ID``; on GitHub Actions the workflow that ran; else a local builder id."""
    explicit = os.environ.get("LOCARA_BUILDER_ID")
    if explicit:
        return explicit
    if os.environ.get("GITHUB_ACTIONS") == "true" and os.environ.get("GITHUB_WORKFLOW_REF"):
        server = os.environ.get("GITHUB_SERVER_URL", "https://github.com")
        return f"{server}/{os.environ['GITHUB_WORKFLOW_REF']}"
    return "urn:locara-build:builder:local"


def _invocation_id() -> str:
    if os.environ.get("GITHUB_ACTIONS") == "true" and os.environ.get("GITHUB_RUN_ID"):
        server = os.environ.get("GITHUB_SERVER_URL", "https://github.com")
        repo = os.environ.get("GITHUB_REPOSITORY", "")
        attempt = os.environ.get("GITHUB_RUN_ATTEMPT", "1")
        return f"{server}/{repo}/actions/runs/{os.environ['GITHUB_RUN_ID']}/attempts/{attempt}"
    return ""


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def make_statement(
    *,
    artifact: dict[str, Any],
    upstream: dict[str, Any],
    patches: list[dict[str, str]],
    recipe_file: str,
    version: str,
    build_key: str = "",
    configure_args: list[str] | None = None,
    started: datetime,
    finished: datetime,
    builder: str | None = None,
) -> dict[str, Any]:
    """The in-toto Statement v1 (SLSA provenance v1 predicate) for one artifact entry of release.json."""
    source = upstream.get("source", "")
    uri = source if "://" in source or source.startswith("pypi:") else f"file:{source}"
    deps: list[dict[str, Any]] = [
        {
            "name": "llama.cpp",
            "uri": f"git+{uri}@{upstream['commit']}" if not source.startswith("pypi:") else uri,
            "digest": {"gitCommit": upstream["commit"]},
            "annotations": {"tag": upstream.get("tag", ""), "commit_date": upstream.get("commit_date", "")},
        }
    ]
    for p in patches:
        deps.append({"name": f"patches/{p['name']}", "uri": f"patches/{p['name']}", "digest": {"sha256": p["sha256"]}})
    deps.append(
        {
            "name": f"recipe:{artifact['recipe']}",
            "uri": recipe_file,
            "digest": {"sha256": artifact["recipe_hash"]},
            "annotations": {"hashed": "canonical JSON of the resolved recipe (Recipe.to_dict), not the file bytes"},
        }
    )
    deps.append({"name": "locara-build", "uri": f"pkg:pypi/locara-build@{__version__}"})
    metadata: dict[str, Any] = {"startedOn": _iso(started), "finishedOn": _iso(finished)}
    inv = _invocation_id()
    if inv:
        metadata["invocationId"] = inv
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": artifact["file"], "digest": {"sha256": artifact["sha256"]}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "recipe": artifact["recipe"],
                    "version": version,
                    "os": artifact["os"],
                    "arch": artifact["arch"],
                    "backend": artifact["backend"],
                    "flavour": artifact["flavour"],
                    "upstream": {"source": source, "ref": upstream.get("ref", ""), "commit": upstream["commit"]},
                },
                "internalParameters": {
                    "build_key": build_key,
                    "configure_args": list(configure_args or []),
                    "signing": artifact.get("signing", "none"),
                },
                "resolvedDependencies": deps,
            },
            "runDetails": {
                "builder": {"id": builder or builder_id(), "version": {"locara-build": __version__}},
                "metadata": metadata,
            },
        },
    }


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding."""
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def sign_envelope(statement: dict[str, Any], key: SecretKey) -> dict[str, Any]:
    payload = json.dumps(statement, indent=2, sort_keys=True).encode("utf-8") + b"\n"
    sig = key.sign_raw(pae(PAYLOAD_TYPE, payload))
    return {
        "payloadType": PAYLOAD_TYPE,
        "payload": base64.b64encode(payload).decode(),
        "signatures": [{"keyid": key.id_hex, "sig": base64.b64encode(sig).decode()}],
    }


def verify_envelope(envelope_bytes: bytes, keys: list[PublicKey], *, what: str) -> tuple[dict[str, Any], PublicKey]:
    """Check the DSSE signature with a trusted key; return (statement, key)."""
    bad = VerifyError(f"{what} is not a valid DSSE envelope.", hint="Fetch the release again; the file is corrupted.")
    try:
        env = json.loads(envelope_bytes)
        payload = base64.b64decode(env["payload"], validate=True)
        sigs = env["signatures"]
        if env["payloadType"] != PAYLOAD_TYPE or not isinstance(sigs, list):
            raise bad
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise bad from None
    message = pae(PAYLOAD_TYPE, payload)
    for entry in sigs:
        try:
            keyid, sig = str(entry["keyid"]), base64.b64decode(entry["sig"], validate=True)
        except (KeyError, TypeError, binascii.Error, ValueError):
            continue
        for key in keys:
            if not hmac.compare_digest(key.id_hex, keyid.upper()):
                continue
            try:
                key._ed().verify(sig, message)
            except InvalidSignature:
                raise VerifyError(
                    f"{what}: provenance signature verification FAILED with key {key.id_hex}.",
                    hint="The provenance was altered after signing; do not trust this release's files.",
                ) from None
            try:
                statement = json.loads(payload)
            except ValueError:
                raise bad from None
            if statement.get("_type") != STATEMENT_TYPE or statement.get("predicateType") != PREDICATE_TYPE:
                raise VerifyError(f"{what}: not an in-toto SLSA v1 provenance statement.", hint="Fetch the release again.")
            return statement, key
    ids = ", ".join(str(s.get("keyid")) for s in sigs if isinstance(s, dict)) or "none"
    raise VerifyError(
        f"{what}: signed by key(s) {ids}, none of them trusted (trusted: {', '.join(k.id_hex for k in keys)}).",
        hint="Only trust provenance signed by the project's release key.",
    )

