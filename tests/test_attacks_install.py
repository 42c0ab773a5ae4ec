"""Attacks on what `install` reads (issue 19, item 7 on the user side): hostile JSON, wrong types in a
*validly signed* release.json (a buggy or compromised release job), provenance fields that point
elsewhere, an archive member named like the install record, versions with path parts.

Each is refused with its documented exit code and a message naming the field; no traceback; the
prefix byte for byte as it was; and for provenance, the file it points at is never requested.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from support.faults import error_of, run_cli, snapshot
from support.httpserver import LoopbackServer
from support.release_kit import (
    NEW,
    OLD,
    _layout,
    make_keys,
    make_lock,
    plan_for,
    release_for,
    write_package_record,
    write_tar,
)

from locara_build.release.publish import publish_dir
from locara_build.release.release import (
    MANIFEST,
    SIG_SUFFIX,
    SUMS,
    format_sums,
    make_release,
    parse_sums,
    trusted_comment,
)
from locara_build.release.signing import minisign


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory):
    """A mirror with OLD installed in a base prefix, and NEW's release folder to tamper with."""
    tmp = tmp_path_factory.mktemp("install-attacks")
    keys = make_keys(tmp / "keys")
    old = release_for(tmp / "old", make_lock(**OLD), keys, recipes=["linux-x86_64-cpu"])
    new = release_for(tmp / "new", make_lock(**NEW), keys, recipes=["linux-x86_64-cpu"])
    site = tmp / "site"
    publish_dir(old.out, site)
    with LoopbackServer(site) as srv:
        base = tmp / "base-prefix"
        res = _install(srv.base_url, base, keys.pub)
        assert res.returncode == 0, res.stderr
        yield tmp, keys, srv, site, base, old, new


def _install(url: str, prefix: Path, pub: Path, *extra: str):
    return run_cli("install", "--from", url, "--prefix", str(prefix), "--trust", str(pub), "--timeout", "3", *extra,
                   timeout=120)


def _prefix(env, tmp_path: Path) -> Path:
    prefix = tmp_path / "prefix"
    shutil.copytree(env[4], prefix, symlinks=True)
    return prefix


def _state(prefix: Path) -> dict[str, str]:
    return {k: v for k, v in snapshot(prefix).items() if not k.startswith(".lock")}


def _refused(res, code: int, *words: str) -> str:
    assert "Traceback" not in res.stderr, res.stderr
    assert res.returncode == code, res.stderr
    err = error_of(res.stderr)
    for w in words:
        assert w in err, f"{w!r} not in: {err}"
    return err


def resign(folder: Path, keys, *, manifest: Any = None, files: dict[str, bytes] | None = None) -> None:
    """Rewrite ``folder``'s release.json (``manifest``: a dict, or raw bytes) and/or other files, then
    update SHA256SUMS and sign both again with the release key: a validly signed hostile release."""
    sums = parse_sums((folder / SUMS).read_text())
    doc = json.loads((folder / MANIFEST).read_text())
    version, created = doc["version"], doc["created"]
    for name, data in (files or {}).items():
        (folder / name).write_bytes(data)
        sums[name] = hashlib.sha256(data).hexdigest()
    if manifest is not None:
        body = manifest if isinstance(manifest, bytes) else (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
        (folder / MANIFEST).write_bytes(body)
        sums[MANIFEST] = hashlib.sha256(body).hexdigest()
    sums_bytes = format_sums(sums).encode()
    (folder / SUMS).write_bytes(sums_bytes)
    for name in (MANIFEST, SUMS):
        data = (folder / name).read_bytes()
        sig = minisign.sign(keys.secret, data, trusted_comment=trusted_comment(file=name, version=version, created=created))
        (folder / (name + SIG_SUFFIX)).write_text(sig.to_text())


def _serve_new(env, tmp_path: Path, **changes: Any) -> tuple[LoopbackServer, Path]:
    """A fresh mirror with OLD and a re-signed, altered NEW; returns (server, NEW's folder on it)."""
    tmp, keys, _srv, _site, _base, old, new = env
    site = tmp_path / "site"
    publish_dir(old.out, site)
    publish_dir(new.out, site)
    folder = site / new.version
    if changes:
        resign(folder, keys, **changes)
    return LoopbackServer(site), folder


# --- hostile latest.json (unsigned: anyone on the path can change it) ---------------------------------

LATEST = {
    "nested-200000": (b"[" * 200_000, "larger than the limit"),  # over latest.json's 64 KiB cap: never parsed
    "nested-60000": (b"[" * 60_000, "nested too deeply"),
    "nested-object": (b'{"version": ' + b'{"a":' * 9_000 + b"1" + b"}" * 9_000 + b"}", "nested too deeply"),
    "huge": (b'{"version": "' + b"9" * (1 << 20) + b'"}', "larger than the limit"),
    "not-json": (b"\xff\xfe<html>", "not valid JSON"),
    "version-int": (b'{"version": 5}', "`version`"),
    "version-null": (b'{"version": null}', "`version`"),
    "version-newline": (json.dumps({"version": "2026.10.01-g0c1e570-r1\n"}).encode(), "`version`"),
    "version-path": (json.dumps({"version": "../../../etc"}).encode(), "`version`"),
    "version-dotdot-ident": (json.dumps({"version": "2026.10.01-..-r1"}).encode(), "`version`"),
    "version-slash": (json.dumps({"version": "2026.10.01-a/../../b-r1"}).encode(), "`version`"),
    "list": (b"[1, 2, 3]", "`version`"),
}


@pytest.mark.parametrize("case", list(LATEST))
def test_hostile_latest_json(env, tmp_path: Path, case: str) -> None:
    tmp, keys, srv, site, base, old, new = env
    prefix = _prefix(env, tmp_path)
    mirror = tmp_path / "site"
    publish_dir(old.out, mirror)
    data, words = LATEST[case]
    (mirror / "latest.json").write_bytes(data)
    before = _state(prefix)
    with LoopbackServer(mirror) as s:
        res = _install(s.base_url, prefix, keys.pub)
        assert not [p for (_m, p, _h) in s.requests if "etc" in p or ".." in p], s.requests
    _refused(res, 8, "latest.json", words)
    assert _state(prefix) == before


@pytest.mark.parametrize("version", ["2026.10.01-g0c1e570-r1\n", "../../etc/passwd", "2026.10.01-g0c1e570-r1/../../x",
                                     "2026.10.01-..-r1", "/etc", " 2026.10.01-g0c1e570-r1"])
def test_version_argument_with_path_parts_refused(env, tmp_path: Path, version: str) -> None:
    tmp, keys, srv, site, base, old, new = env
    prefix = _prefix(env, tmp_path)
    before = _state(prefix)
    srv.requests.clear()
    res = _install(srv.base_url, prefix, keys.pub, "--version", version)
    _refused(res, 2, "--version")
    assert not srv.requests, "nothing is fetched for an invalid --version"
    assert _state(prefix) == before


# --- wrong types in a signed release.json --------------------------------------------------------------


def _mutated(env, change) -> dict[str, Any]:
    doc = json.loads((env[6].out / MANIFEST).read_text())
    change(doc)
    return doc


def _set(path: str, value: Any):
    def change(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = doc
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node[p]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return change


def _drop(path: str):
    def change(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = doc
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node[p]
        del node[last]
    return change


SIGNED = {
    "expires-no-tz": (_set("expires", "2099-01-01T00:00:00"), "`expires`"),
    "expires-int": (_set("expires", 4102444800), "`expires`"),
    "expires-garbage": (_set("expires", "next tuesday"), "`expires`"),
    "created-no-tz": (_set("created", "2026-10-01T10:00:00"), "`created`"),
    "commit-date-int": (_set("upstream.commit_date", 5), "`upstream.commit_date`"),
    "commit-date-no-tz": (_set("upstream.commit_date", "2026-10-01T10:00:00"), "`upstream.commit_date`"),
    "commit-date-list": (_set("upstream.commit_date", ["2026"]), "`upstream.commit_date`"),
    "size-true": (_set("artifacts.0.size", True), "size"),
    "size-float": (_set("artifacts.0.size", 578.0), "size"),
    "size-string": (_set("artifacts.0.size", "578"), "size"),
    "size-negative": (_set("artifacts.0.size", -1), "size"),
    "size-huge": (_set("artifacts.0.size", 1 << 62), "size"),
    "sha-upper": (_set("artifacts.0.sha256", "A" * 64), "sha256"),
    "signing-key-non-ascii": (_set("signing_key", "ÄÖÜ\u0661\u0662\u0663ABCDEFGHIJ"), "`signing_key`"),
    "signing-key-int": (_set("signing_key", 12), "`signing_key`"),
    "version-newline": (_set("version", "2026.10.01-g0c1e570-r1\n"), "version"),
    "file-newline": (_set("artifacts.0.file", "locara-server.tar.gz\n"), "file"),
    "backend-path": (_set("artifacts.0.backend", "../cpu"), "backend"),
    "provenance-empty": (_set("artifacts.0.provenance", ""), "provenance"),
    "provenance-missing": (_drop("artifacts.0.provenance"), "provenance"),
    "provenance-null": (_set("artifacts.0.provenance", None), "provenance"),
    "provenance-absolute": (_set("artifacts.0.provenance", "/etc/passwd"), "provenance"),
    "provenance-dotdot": (_set("artifacts.0.provenance", "../../../../etc/passwd"), "provenance"),
    "provenance-other-file": (_set("artifacts.0.provenance", "SHA256SUMS"), "provenance"),
    "provenance-url": (_set("artifacts.0.provenance", "http://127.0.0.1:9/evil.json"), "provenance"),
    "requirements-list": (_set("artifacts.0.requirements", ["x"]), "requirements"),
    "requirements-nested": (_set("artifacts.0.requirements", {"glibc": {"min": "2.34"}}), "requirements"),
    "system-libraries-list": (_set("artifacts.0.system_libraries", ["libc.so.6"]), "system_libraries"),
    "system-libraries-nested": (_set("artifacts.0.system_libraries", {"libc.so.6": {"by": "glibc"}}), "system_libraries"),
    "upstream-string": (_set("upstream", "x"), "upstream"),
    "artifacts-dict": (_set("artifacts", {"a": 1}), "artifacts"),
}


@pytest.mark.parametrize("case", list(SIGNED))
def test_signed_manifest_with_wrong_types(env, tmp_path: Path, case: str) -> None:
    tmp, keys, _srv, _site, base, old, new = env
    change, words = SIGNED[case]
    prefix = _prefix(env, tmp_path)
    before = _state(prefix)
    srv, folder = _serve_new(env, tmp_path, manifest=_mutated(env, change))
    with srv:
        res = _install(srv.base_url, prefix, keys.pub)
        asked = [p for (_m, p, _h) in srv.requests]
    err = _refused(res, 8, words)
    assert "release.json" in err or "manifest" in err, err
    assert _state(prefix) == before
    assert not [p for p in asked if p.endswith((".tar.gz", ".intoto.json", "passwd"))], asked  # nothing past the manifest


def test_signed_manifest_nested_deeply(env, tmp_path: Path) -> None:
    tmp, keys, *_rest = env
    prefix = _prefix(env, tmp_path)
    before = _state(prefix)
    doc = json.loads((env[6].out / MANIFEST).read_text())
    raw = json.dumps(doc).encode()
    raw = raw[:-1] + b', "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    srv, _folder = _serve_new(env, tmp_path, manifest=raw)
    with srv:
        res = _install(srv.base_url, prefix, keys.pub)
    _refused(res, 8, "release.json", "nested too deeply")
    assert _state(prefix) == before


def test_provenance_field_never_reads_local_files(env, tmp_path: Path) -> None:
    """A local mirror whose signed release.json points `provenance` at a FIFO elsewhere on the disk:
    before, install opened whatever path the field named (Path(base).joinpath('/abs') is '/abs');
    now the field is refused first, so the FIFO is never opened (opening it would block)."""
    import os

    tmp, keys, *_rest, new = env
    prefix = _prefix(env, tmp_path)
    fifo = tmp_path / "trap.fifo"
    os.mkfifo(fifo)
    mirror = tmp_path / "local"
    publish_dir(env[5].out, mirror)
    publish_dir(new.out, mirror)
    resign(mirror / new.version, keys, manifest=_mutated(env, _set("artifacts.0.provenance", str(fifo))))
    before = _state(prefix)
    res = _install(str(mirror), prefix, keys.pub)
    _refused(res, 8, "provenance")
    assert _state(prefix) == before


def test_provenance_non_ascii_key_id(env, tmp_path: Path) -> None:
    """The DSSE envelope's keyid in full-width digits (hmac.compare_digest raised TypeError: a traceback)."""
    tmp, keys, *_rest, new = env
    prefix = _prefix(env, tmp_path)
    art = new.record.artifacts[0]
    envelope = json.loads((new.out / art.provenance).read_text())
    for sig in envelope["signatures"]:
        sig["keyid"] = "\uff21\uff22" + sig["keyid"][2:]
    before = _state(prefix)
    srv, _folder = _serve_new(env, tmp_path, files={art.provenance: json.dumps(envelope).encode()})
    with srv:
        res = _install(srv.base_url, prefix, keys.pub)
    _refused(res, 8, "keyid")
    assert _state(prefix) == before


def test_provenance_payload_of_wrong_types(env, tmp_path: Path) -> None:
    """A provenance envelope signed by the release key whose statement has `subject` as a string."""
    from locara_build.release.provenance import sign_envelope

    tmp, keys, *_rest, new = env
    prefix = _prefix(env, tmp_path)
    art = new.record.artifacts[0]
    envelope = json.loads((new.out / art.provenance).read_text())
    statement = json.loads(base64.b64decode(envelope["payload"]))
    statement["subject"] = "not a list"
    data = json.dumps(sign_envelope(statement, keys.secret)).encode()
    before = _state(prefix)
    srv, _folder = _serve_new(env, tmp_path, files={art.provenance: data})
    with srv:
        res = _install(srv.base_url, prefix, keys.pub)
    _refused(res, 8, "provenance")
    assert _state(prefix) == before


# --- an archive member named like the install record -----------------------------------------------------


@pytest.mark.parametrize("kind", ["file", "directory"])
def test_member_named_like_install_record(env, tmp_path: Path, kind: str) -> None:
    """A signed archive carrying `<top>/.locara-install.json` (a forged record that would claim
    another version, or a folder in its place): refused, naming the member."""
    tmp, keys, _srv, _site, base, old, new = env
    lock = make_lock(**NEW, revision=7)
    work = tmp_path / "work"
    plan = plan_for(work, lock, ["linux-x86_64-cpu"])
    rp = plan.recipes[0]
    dist = work / "dist" / str(plan.version)
    dist.mkdir(parents=True)
    members = _layout(rp.artifact.name, "forged", "", 0)
    extra: list = []
    if kind == "file":
        forged = json.dumps({"version": "9999.01.01-b1-r1", "sha256": "0" * 64}).encode()
        members.append((f"{rp.artifact.name}/.locara-install.json", forged, 0o644))
    else:  # (a symlink member is refused by release and by the extractor already)
        members.append((f"{rp.artifact.name}/.locara-install.json/", b"", 0o755))
    path = dist / rp.artifact.file
    write_tar(path, members, extra)
    write_package_record(plan, rp, path, members)
    rel = make_release(plan, dist, tmp_path / "rel" / str(plan.version), keys.secret)
    site = tmp_path / "site"
    publish_dir(old.out, site)
    publish_dir(rel.out, site)
    prefix = _prefix(env, tmp_path)
    before = _state(prefix)
    with LoopbackServer(site) as srv:
        res = _install(srv.base_url, prefix, keys.pub)
    assert "Traceback" not in res.stderr
    assert res.returncode == 8, res.stderr
    assert ".locara-install.json" in error_of(res.stderr)
    assert _state(prefix) == before


# --- hostile install state ----------------------------------------------------------------------------


@pytest.mark.parametrize("content", [b"[" * 200_000, b'{"schema": 1, "installed": []}', b'{"schema": 1, "previous": 5}',
                                     b'{"schema": 1, "highest_seen": {"version": "x\\n"}}'],
                         ids=["nested", "installed-list", "previous-int", "highest-newline"])
def test_hostile_state_json(env, tmp_path: Path, content: bytes) -> None:
    tmp, keys, srv, *_rest = env
    prefix = _prefix(env, tmp_path)
    (prefix / "state.json").write_bytes(content)
    before = _state(prefix)
    res = _install(srv.base_url, prefix, keys.pub)
    _refused(res, 2, "state.json")
    assert _state(prefix) == before
    res = run_cli("install", "--prefix", str(prefix), "--rollback", timeout=60)
    _refused(res, 2, "state.json")
