"""Publish a release folder: to a static mirror directory or to GitHub Releases. Idempotent and resumable.

Static mirror (``--to DIR``), servable by any web server::

    DIR/latest.json              {"version": ..., "path": "<version>/", "versions": [...]}: a pointer, unsigned
    DIR/<version>/...            exactly the release folder's files

Each file is copied to a temp name and renamed into place (atomic); a file already there with the
same sha256 is skipped, a different one is an error (a published file never changes); release.json
goes last, so a mirror never serves a manifest whose files are missing; ``latest.json`` only moves
forward. Re-running after a failure finishes the job.

GitHub (``--to github:OWNER/REPO``): the release is created as a draft (or the existing one for the
tag is reused), only missing assets are uploaded (broken "starter" leftovers of a failed upload are
deleted first; an asset that exists with other content is an error), then the draft is published.
Requests are retried with exponential backoff (5xx, 429, connection errors; ``Retry-After`` is
honoured). Token: ``GITHUB_TOKEN`` or ``LOCARA_GITHUB_TOKEN``, registered as a secret and never logged.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

from locara_build import __version__
from locara_build.build.plan import PRODUCT
from locara_build.core import log
from locara_build.core.digest import sha256_file
from locara_build.core.errors import ConfigError, NetworkError, VerifyError, disk_full, is_no_space
from locara_build.core.redact import secret_env
from locara_build.core.version import Version
from locara_build.pipeline.records import ReleaseManifest
from locara_build.release import store
from locara_build.release.release import (
    MANIFEST,
    SIG_SUFFIX,
    SUMS,
    fsync_dir,
    manifest_version,
    parse_sums,
    release_versions,
    verify_release_dir,
)
from locara_build.upstream.lock import atomic_write_bytes

__all__ = ["PublishResult", "publish", "publish_dir", "publish_github", "GitHubClient", "upload_order", "LATEST"]

LATEST = "latest.json"
TOKEN_ENVS = ("LOCARA_GITHUB_TOKEN", "GITHUB_TOKEN")
DEFAULT_API = "https://api.github.com"


@dataclass
class PublishResult:
    target: str
    version: str
    uploaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    latest: bool = False  # the target's "latest" now points to this version
    url: str = ""
    store: dict[str, list[str]] = field(default_factory=dict)  # store objects: {"uploaded": [...], "skipped": [...]}

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "version": self.version,
            "uploaded": self.uploaded,
            "skipped": self.skipped,
            "latest": self.latest,
            "url": self.url,
            "store": self.store,
        }


def upload_order(release_dir: Path) -> list[str]:
    """Artifacts and side files first, then SHA256SUMS (+sig), then release.json's signature, release.json last."""
    sums = parse_sums((release_dir / SUMS).read_text("utf-8"))
    body = sorted(n for n in sums if n != MANIFEST)
    return body + [SUMS, SUMS + SIG_SUFFIX, MANIFEST + SIG_SUFFIX, MANIFEST]


def publish(release_dir: Path, to: str, *, force: bool = False, api_url: str | None = None) -> PublishResult:
    if to.startswith("github:"):
        repo = to[len("github:"):].strip("/")
        # GitHub's own name rules (fullmatch): `owner/..`, `a/b?x`, spaces or newlines would reach the API path
        if not re.fullmatch(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/(?!\.\.?$)[A-Za-z0-9._-]{1,100}", repo):
            raise ConfigError(f"--to {to!r}: expected github:OWNER/REPO.", hint="For example --to github:locara/locara-build.")
        return publish_github(release_dir, repo, force=force, api_url=api_url)
    if "://" in to:
        raise ConfigError(
            f"--to {to}: only a directory or github:OWNER/REPO is supported.",
            hint="Publish to a directory that your web server serves (or sync it with rsync / s3 sync afterwards).",
        )
    return publish_dir(release_dir, Path(to), force=force)


# --- static mirror ------------------------------------------------------------------------------


def _copy_atomic(src: Path, dst: Path) -> None:
    """Copy one file of the release folder into the mirror (whole or not at all)."""
    _atomic_copy(src, dst)


def _copy_object(src: Path, dst: Path) -> None:
    """Copy one store object into the mirror (whole or not at all)."""
    _atomic_copy(src, dst)


def _atomic_copy(src: Path, dst: Path) -> None:
    tmp = dst.with_name(f".{dst.name}.part-{secrets.token_hex(4)}")
    try:
        with open(src, "rb") as fin, open(tmp, "xb") as fout:
            shutil.copyfileobj(fin, fout, 1 << 20)
            fout.flush()
            os.fsync(fout.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)


def _read_latest(to_dir: Path) -> Version | None:
    path = to_dir / LATEST
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text("utf-8"))
        return Version.parse(doc["version"], doc.get("commit_date"))
    except (ValueError, KeyError, TypeError, ConfigError):
        raise VerifyError(f"{path}: unreadable latest pointer.", hint="Fix or remove it, then publish again.") from None


def publish_dir(release_dir: Path, to_dir: Path, *, force: bool = False) -> PublishResult:
    doc = verify_release_dir(release_dir)
    version = doc.version
    v = manifest_version(doc)
    to_dir.mkdir(parents=True, exist_ok=True)
    latest = _read_latest(to_dir)
    if latest is not None and v < latest and not force:
        raise VerifyError(
            f"release {version} is older than {latest}, the latest in {to_dir}: publishing it would go backwards.",
            hint="Publish a newer release, or pass --force to add this old version without moving latest.json.",
        )
    dest = to_dir / version
    dest.mkdir(exist_ok=True)
    order = upload_order(release_dir)
    allowed = set(order)
    for existing in dest.iterdir():
        if existing.name.startswith(".") and ".part-" in existing.name:
            existing.unlink(missing_ok=True)  # leftover of a killed publish
        elif existing.name not in allowed:
            raise NetworkError(
                f"{dest} holds {existing.name}, which is not part of release {version}: it would be served with it.",
                hint="Remove it by hand (a mirror folder holds exactly the release's files), then publish again.",
            )
    result = PublishResult(str(to_dir), version, url=str(dest))
    with log.step(f"publish {version} -> {to_dir}"):
        try:  # the store's blobs/deltas first, only those the mirror lacks
            copied, there = _publish_objects_dir(release_dir, doc, to_dir)
        except OSError as exc:
            if is_no_space(exc):
                raise disk_full(
                    exc, to_dir, f"publish {version}",
                    kept="Only whole store objects went in (they are named by their hash: harmless); release.json "
                    f"and {LATEST} were not touched, so the mirror still serves what it served before.",
                ) from None
            raise
        result.store = {"uploaded": copied, "skipped": there}
        for name in order:
            src, dst = release_dir / name, dest / name
            if dst.exists():
                if sha256_file(dst) == sha256_file(src):
                    result.skipped.append(name)
                    continue
                raise NetworkError(
                    f"{dst} already exists with different content: a published file never changes.",
                    hint="If this version was published by mistake, remove its folder from the mirror by hand; "
                    "otherwise release under a new version.",
                )
            try:
                _copy_atomic(src, dst)
            except OSError as exc:
                if is_no_space(exc):
                    raise disk_full(
                        exc, dest, f"publish {version}",
                        kept=f"{len(result.uploaded)} file(s) went in whole before it; release.json (copied last) and "
                        f"{LATEST} were not touched, so the mirror still serves what it served before.",
                    ) from None
                raise
            result.uploaded.append(name)
        fsync_dir(dest)
        if latest is None or v >= latest:
            versions = sorted(str(ver) for ver, _ in release_versions(to_dir))
            pointer = {
                "schema": 1,
                "product": PRODUCT,
                "version": version,
                "commit_date": doc.upstream.commit_date,
                "path": f"{version}/",
                "release": f"{version}/{MANIFEST}",
                "updated": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "versions": versions,
            }
            if latest is None or v > latest or _pointer_stale(to_dir, pointer):
                atomic_write_bytes(to_dir / LATEST, (json.dumps(pointer, indent=2, sort_keys=True) + "\n").encode())
            result.latest = True
    log.info(f"published {version} to {dest}: {len(result.uploaded)} copied, {len(result.skipped)} already there")
    return result


def _pointer_stale(to_dir: Path, pointer: dict[str, Any]) -> bool:
    try:
        old = json.loads((to_dir / LATEST).read_text("utf-8"))
    except (OSError, ValueError):
        return True
    return old.get("version") != pointer["version"] or old.get("versions") != pointer["versions"]


# --- GitHub Releases ------------------------------------------------------------------------------

RETRY_STATUSES = {429, 500, 502, 503, 504}


class GitHubClient:
    """The handful of Releases API calls publish needs, with retries. ``api_url`` is overridable (tests)."""

    def __init__(self, repo: str, token: str, *, api_url: str | None = None, attempts: int = 5, backoff: float = 1.0,
                 timeout: tuple[float, float] = (10.0, 120.0)):
        self.repo = repo
        self.api = (api_url or os.environ.get("LOCARA_GITHUB_API_URL") or DEFAULT_API).rstrip("/")
        self.attempts = attempts
        self.backoff = backoff
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers.update(
            {
                "Authorization": f"Bearer {token}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": "2022-11-28",
                "User-Agent": f"locara-build/{__version__}",
            }
        )

    def _sleep(self, attempt: int, resp: requests.Response | None) -> None:
        delay = self.backoff * (2 ** attempt)
        if resp is not None and resp.headers.get("Retry-After", "").isdigit():
            delay = max(delay, float(resp.headers["Retry-After"]))
        time.sleep(min(delay, 60.0))

    def request(self, method: str, url: str, *, ok: tuple[int, ...] = (200,), allow: tuple[int, ...] = (),
                what: str = "", **kwargs: Any) -> requests.Response:
        """One API call, retried on transient failures. Statuses in ``allow`` are returned, not raised."""
        label = what or f"{method} {url}"
        last = ""
        for attempt in range(self.attempts):
            resp = None
            try:
                resp = self.session.request(method, url, timeout=self.timeout, **kwargs)
            except requests.RequestException as exc:
                last = f"{type(exc).__name__} (connection failed or was cut)"
            else:
                if resp.status_code in ok or resp.status_code in allow:
                    return resp
                if resp.status_code not in RETRY_STATUSES:
                    raise NetworkError(
                        f"GitHub: {label} answered HTTP {resp.status_code}: {_gh_message(resp)}.",
                        hint=_gh_hint(resp.status_code),
                    )
                last = f"HTTP {resp.status_code}"
            if attempt + 1 < self.attempts:
                log.detail(f"GitHub: {label}: {last}; retrying ({attempt + 1}/{self.attempts - 1})")
                self._sleep(attempt, resp)
        raise NetworkError(
            f"GitHub: {label} failed {self.attempts} times (last: {last}).",
            hint="GitHub or the network is having trouble; run the same publish again: it resumes where it stopped.",
        )

    # releases
    def release_by_tag(self, tag: str) -> dict[str, Any] | None:
        r = self.request("GET", f"{self.api}/repos/{self.repo}/releases/tags/{quote(tag)}", allow=(404,), what=f"release {tag}")
        if r.status_code == 200:
            return r.json()
        # drafts have no tag yet: look through the release list
        for page in range(1, 4):
            r = self.request("GET", f"{self.api}/repos/{self.repo}/releases", params={"per_page": 100, "page": page},
                             what="list releases")
            items = r.json()
            for rel in items:
                if rel.get("tag_name") == tag:
                    return rel
            if len(items) < 100:
                break
        return None

    def latest_version(self) -> Version | None:
        r = self.request("GET", f"{self.api}/repos/{self.repo}/releases/latest", allow=(404,), what="latest release")
        if r.status_code == 404:
            return None
        try:
            return Version.parse(r.json().get("tag_name", ""))
        except ConfigError:
            return None  # the latest release is not one of ours (another tag scheme)

    def create_release(self, tag: str, name: str, body: str) -> dict[str, Any]:
        """Create a draft. Never blindly re-POSTed: GitHub allows several drafts with one tag, so after
        a failed attempt (which may have succeeded remotely) the release list is checked first."""
        url = f"{self.api}/repos/{self.repo}/releases"
        payload = {"tag_name": tag, "name": name, "body": body, "draft": True, "prerelease": False}
        last = ""
        for attempt in range(self.attempts):
            if attempt:
                existing = self.release_by_tag(tag)
                if existing is not None:
                    return existing
            resp = None
            try:
                resp = self.session.post(url, json=payload, timeout=self.timeout)
            except requests.RequestException as exc:
                last = f"{type(exc).__name__} (connection failed or was cut)"
            else:
                if resp.status_code == 201:
                    return resp.json()
                if resp.status_code == 422:
                    existing = self.release_by_tag(tag)
                    if existing is not None:
                        return existing
                if resp.status_code not in RETRY_STATUSES:
                    raise NetworkError(f"GitHub refused to create release {tag}: HTTP {resp.status_code}: {_gh_message(resp)}.",
                                       hint=_gh_hint(resp.status_code))
                last = f"HTTP {resp.status_code}"
            if attempt + 1 < self.attempts:
                self._sleep(attempt, resp)
        raise NetworkError(f"GitHub: creating release {tag} failed {self.attempts} times (last: {last}).",
                           hint="Run the same publish again: it reuses the release if it was created.")

    def publish_release(self, release_id: int, *, make_latest: bool) -> dict[str, Any]:
        r = self.request(
            "PATCH", f"{self.api}/repos/{self.repo}/releases/{release_id}", what="publish the draft release",
            json={"draft": False, "make_latest": "true" if make_latest else "false"},
        )
        return r.json()

    def assets(self, release_id: int) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for page in range(1, 50):
            r = self.request("GET", f"{self.api}/repos/{self.repo}/releases/{release_id}/assets",
                             params={"per_page": 100, "page": page}, what="list assets")
            items = r.json()
            out += items
            if len(items) < 100:
                break
        return out

    def delete_asset(self, asset_id: int) -> None:
        self.request("DELETE", f"{self.api}/repos/{self.repo}/releases/assets/{asset_id}", ok=(204,), allow=(404,),
                     what=f"delete asset {asset_id}")

    def upload(self, upload_url: str, path: Path) -> requests.Response | None:
        """One upload attempt (the caller re-lists assets before retrying). None when the connection broke."""
        url = upload_url.split("{", 1)[0]
        size = path.stat().st_size
        try:
            with open(path, "rb") as fh:
                return self.session.post(
                    url, params={"name": path.name}, data=fh, timeout=self.timeout,
                    headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
                )
        except requests.RequestException:
            return None


def _gh_message(resp: requests.Response) -> str:
    try:
        doc = resp.json()
    except ValueError:
        return resp.text[:200] or resp.reason
    msg = str(doc.get("message", "")) if isinstance(doc, dict) else ""
    errors = doc.get("errors") if isinstance(doc, dict) else None
    if errors:
        msg += " " + json.dumps(errors)[:300]
    return msg or resp.reason


def _gh_hint(status: int) -> str:
    if status in (401, 403):
        return "Check GITHUB_TOKEN / LOCARA_GITHUB_TOKEN: it needs `contents: write` on the repository."
    if status == 404:
        return "Check the OWNER/REPO name and that the token can see the repository."
    return "See the message above; run the same publish again once fixed."


def _token() -> str:
    for name in TOKEN_ENVS:
        value = secret_env(name)
        if value:
            return value
    raise ConfigError(
        "publishing to GitHub needs a token: set GITHUB_TOKEN or LOCARA_GITHUB_TOKEN.",
        hint="In GitHub Actions: `env: GITHUB_TOKEN: ${{ secrets.GITHUB_TOKEN }}` with `permissions: contents: write`.",
    )


def _asset_matches(asset: dict[str, Any], path: Path, digest: str) -> bool:
    if asset.get("size") != path.stat().st_size:
        return False
    remote = asset.get("digest")
    return remote is None or remote == f"sha256:{digest}"


def publish_github(
    release_dir: Path, repo: str, *, force: bool = False, api_url: str | None = None, client: GitHubClient | None = None
) -> PublishResult:
    doc = verify_release_dir(release_dir)
    version = doc.version
    v = manifest_version(doc)
    gh = client or GitHubClient(repo, _token(), api_url=api_url)
    result = PublishResult(f"github:{repo}", version)
    with log.step(f"publish {version} -> github:{repo}"):
        latest = gh.latest_version()
        if latest is not None and v < latest and not force:
            raise VerifyError(
                f"release {version} is older than {latest}, the latest release on github:{repo}.",
                hint="Publish a newer release, or pass --force to add this old version (it will not become latest).",
            )
        rel = gh.release_by_tag(version)
        if rel is None:
            notes = release_dir / "RELEASE_NOTES.md"
            body = notes.read_text("utf-8") if notes.is_file() else (
                f"{PRODUCT} {version}: llama.cpp {doc.upstream.tag or doc.upstream.commit[:12]} "
                f"({doc.upstream.commit_date}) with {len(doc.patches)} patch(es).\n\n"
                "Verify: `minisign -Vm SHA256SUMS -p locara-release.pub && sha256sum -c SHA256SUMS` (docs/releases.md)."
            )
            rel = gh.create_release(version, f"{PRODUCT} {version}", body)
            log.info(f"created draft release {version} (id {rel['id']})")
        else:
            log.info(f"reusing release {version} (id {rel['id']}, draft={rel.get('draft')})")
        _publish_objects_github(gh, release_dir, doc, result)  # the store release's missing objects first
        for name in upload_order(release_dir):
            path = release_dir / name
            digest = sha256_file(path)
            _upload_one(gh, rel, path, digest, result)
        make_latest = latest is None or v >= latest
        if rel.get("draft", False) or make_latest:
            rel = gh.publish_release(rel["id"], make_latest=make_latest)
        result.latest = make_latest
        result.url = str(rel.get("html_url", ""))
    log.info(f"published {version} to github:{repo}: {len(result.uploaded)} uploaded, {len(result.skipped)} already there")
    return result


def _upload_one(gh: GitHubClient, rel: dict[str, Any], path: Path, digest: str, result: PublishResult) -> None:
    name = path.name
    last = ""
    for attempt in range(gh.attempts):
        existing = [a for a in gh.assets(rel["id"]) if a.get("name") == name]
        for asset in existing:
            if asset.get("state") == "uploaded" and _asset_matches(asset, path, digest):
                (result.skipped if attempt == 0 else result.uploaded).append(name)
                return
            if asset.get("state") == "uploaded":
                raise NetworkError(
                    f"github release {result.version} already has an asset {name} with different content "
                    f"({asset.get('size')} bytes, {asset.get('digest') or 'no digest'}).",
                    hint="A published file never changes: delete the asset by hand if it was uploaded by mistake, "
                    "or release under a new version.",
                )
            log.detail(f"deleting the broken leftover of an earlier upload of {name} (state {asset.get('state')})")
            gh.delete_asset(asset["id"])
        resp = gh.upload(rel["upload_url"], path)
        if resp is not None and resp.status_code == 201:
            asset = resp.json()
            if not _asset_matches(asset, path, digest):
                raise NetworkError(f"GitHub stored {name} with a different size/digest than sent.", hint="Publish again.")
            result.uploaded.append(name)
            log.info(f"uploaded {name}")
            return
        if resp is not None and resp.status_code not in RETRY_STATUSES and resp.status_code != 422:
            raise NetworkError(f"GitHub: upload of {name} answered HTTP {resp.status_code}: {_gh_message(resp)}.",
                               hint=_gh_hint(resp.status_code))
        last = "connection cut" if resp is None else f"HTTP {resp.status_code}"
        if attempt + 1 < gh.attempts:
            log.detail(f"upload of {name} failed ({last}); retrying")
            gh._sleep(attempt, resp)
    raise NetworkError(
        f"GitHub: upload of {name} failed {gh.attempts} times (last: {last}).",
        hint="Run the same publish again: uploaded assets are kept, broken ones are replaced.",
    )


# --- the release store's objects (locara_build.release.store) --------------------------------------------


def _publish_objects_dir(release_dir: Path, doc: ReleaseManifest, to_dir: Path) -> tuple[list[str], list[str]]:
    """Copy the store objects the release names into the mirror ``to_dir`` (before its release.json):
    only those the mirror lacks. Returns (copied, already there)."""
    copied, skipped = [], []
    for rel, size, digest in store.release_objects(release_dir, doc):
        dst = store.Store(to_dir).path(rel)
        if dst.is_file() and dst.stat().st_size == size:
            skipped.append(rel)
            continue
        src = store.source_object(release_dir, rel, size, digest)
        dst.parent.mkdir(parents=True, exist_ok=True)
        _copy_object(src, dst)
        copied.append(rel)
    if copied or skipped:
        log.info(f"store: {len(copied)} object(s) copied to {to_dir}, {len(skipped)} already there")
    return copied, skipped


def _publish_objects_github(gh: GitHubClient, release_dir: Path, doc: ReleaseManifest, result: Any) -> None:
    """Upload the release's store objects the GitHub store release (tag :data:`store.GITHUB_STORE_TAG`)
    lacks, as flat asset names; the store release is never marked latest."""
    import tempfile

    objects = store.release_objects(release_dir, doc)
    if not objects:
        return
    rel = gh.release_by_tag(store.GITHUB_STORE_TAG)
    if rel is None:
        rel = gh.create_release(store.GITHUB_STORE_TAG, "locara store (content-addressed files of every release)",
                                "Blobs and deltas named by sha256; see docs/releases.md. Not a release to download by hand.")
    have = {a.get("name"): a for a in gh.assets(rel["id"]) if a.get("state") == "uploaded"}
    missing = [(r, s, d) for r, s, d in objects if have.get(store.flat_name(r), {}).get("size") != s]
    mine = PublishResult(f"{result.target}@{store.GITHUB_STORE_TAG}", result.version)
    with tempfile.TemporaryDirectory(prefix="locara-store-") as tmp:
        for r, s, d in missing:
            src = store.source_object(release_dir, r, s, d)
            named = Path(tmp) / store.flat_name(r)
            try:
                os.link(src, named)
            except OSError:
                import shutil

                shutil.copyfile(src, named)
            _upload_one(gh, rel, named, d, mine)
            named.unlink()
    if rel.get("draft", False):
        gh.publish_release(rel["id"], make_latest=False)
    result.store = {"uploaded": mine.uploaded, "skipped": sorted(set(map(store.flat_name, (o[0] for o in objects))) - set(mine.uploaded))}
    log.info(f"store: {len(missing)} object(s) uploaded to release {store.GITHUB_STORE_TAG}, {len(objects) - len(missing)} already there")
