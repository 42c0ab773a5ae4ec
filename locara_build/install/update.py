"""Install from the release store: build the new version from what the prefix already has.

For the picked artifact, ``install`` calls :func:`build_from_store`, which

1. fetches the artifact's file index (``<artifact>.files.json``) and checks its sha256 against
   release.json (already verified with the pinned keys) and SHA256SUMS: a tampered index is refused;
2. selects the files this host needs (``--backend all``: every file; otherwise the CPU variants
   this CPU cannot run, ``libggml-cpu-<variant>``, are left out; ``x64`` is always kept);
3. for each file, in this order of preference: a file with the same sha256 already installed in
   ``versions/*`` (hard-linked when its mode matches, else copied; its hash is checked on the new
   link), a delta (``deltas/sha256/<base>/<target>.<method>``) from a base file the prefix has
   (the base's hash is checked first), or the file's blob (``blobs/sha256/<hex>``);
4. downloads only those objects (resumable, each checked against the sha256 the signed index
   gives before it is decompressed), shows one progress bar of bytes to fetch, and says how many
   bytes were reused;
5. writes everything into a private ``versions/.extract-*`` folder and checks every file (sha256
   of what was written, size, mode) against the index; only then does ``install`` write the record,
   rename the folder into ``versions/`` and switch ``current``, as it does for an archive.

Returns None when the store cannot be used (a mirror without it, an object it lacks, a first
install where the archive is smaller): ``install`` then falls back to the archive. A store object
that fails verification is an error (VerifyError, exit 8), never a fallback: nothing was switched.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from locara_build.build import hostdetect
from locara_build.core import httpfetch, log
from locara_build.core.errors import NetworkError, VerifyError
from locara_build.core.extract import _flush
from locara_build.release.store import (
    DELTA_METHODS,
    GITHUB_STORE_TAG,
    MAX_INDEX,
    Delta,
    FileEntry,
    Index,
    apply_delta,
    decompress,
    flat_name,
)

if TYPE_CHECKING:
    from locara_build.install.install import VerifiedRelease
    from locara_build.pipeline.records import InstallState, ReleaseArtifact

__all__ = ["UpdatePlan", "build_from_store", "fetch_index", "plan_update", "select_files", "store_url", "LOCAL_INDEX"]

STORE_WORTH = 0.9  # the store is used when what it fetches is at most this share of the archive (one request vs many)
FIRST_INSTALL_WORTH = 0.5  # ... with nothing to reuse: one request per file costs more than zstd's smaller frames save
LOCAL_INDEX = ".locara-index.json"  # the signed index, kept in each version folder installed from the store

# ggml's x86-64 CPU backend variants (ggml/src/CMakeLists.txt, ggml_add_cpu_backend_variant) and the
# /proc/cpuinfo flags each needs. A variant this CPU cannot run is never loaded by ggml, so it is not fetched.
_BASE = ("sse4_2", "avx", "f16c", "fma", "avx2", "bmi2")
_AVX512 = ("avx512f", "avx512cd", "avx512vl", "avx512dq", "avx512bw")
CPU_VARIANTS: dict[str, tuple[str, ...]] = {
    "x64": (),
    "sse42": ("sse4_2",),
    "sandybridge": ("sse4_2", "avx"),
    "ivybridge": ("sse4_2", "avx", "f16c"),
    "piledriver": ("sse4_2", "avx", "f16c", "fma"),
    "haswell": _BASE,
    "skylakex": _BASE + _AVX512,
    "cannonlake": _BASE + _AVX512 + ("avx512vbmi",),
    "cascadelake": _BASE + _AVX512 + ("avx512_vnni",),
    "icelake": _BASE + _AVX512 + ("avx512vbmi", "avx512_vnni"),
    "cooperlake": _BASE + _AVX512 + ("avx512_vnni", "avx512_bf16"),
    "zen4": _BASE + _AVX512 + ("avx512vbmi", "avx512_vnni", "avx512_bf16"),
    "alderlake": _BASE + ("avx_vnni",),
    "sapphirerapids": _BASE + _AVX512 + ("avx512vbmi", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8"),
}
_VARIANT_FILE = re.compile(r"(?:^|/)(?:lib)?ggml-cpu-([a-z0-9_.]+)\.(?:so|dll|dylib)$")


def select_files(index: Index, cpu_flags: frozenset[str] | None, *, every: bool) -> tuple[list[FileEntry], list[FileEntry]]:
    """(files to install, files left out): CPU variants whose instructions this CPU lacks are left
    out, unless ``every`` (``--backend all``) or the flags are unknown."""
    if every or cpu_flags is None:
        return list(index.files), []
    wanted, skipped = [], []
    for f in index.files:
        m = _VARIANT_FILE.search(f.path)
        need = CPU_VARIANTS.get(m[1]) if m else None
        (skipped if need is not None and not set(need) <= cpu_flags else wanted).append(f)
    return wanted, skipped


# --- where the store is ----------------------------------------------------------------------------


def store_url(base: str, path: str) -> str:
    """The URL (or path) of store object ``path`` for a release whose files are at ``base``: the
    store sits beside the version folders (``<base>/../blobs/...``); on GitHub Releases it is the
    release tagged ``locara-store``, with flat asset names."""
    m = re.match(r"^(https://github\.com/[^/]+/[^/]+)/releases/", base)
    if m:
        return f"{m[1]}/releases/download/{GITHUB_STORE_TAG}/{quote(flat_name(path))}"
    if "://" in base:
        return base.rstrip("/").rsplit("/", 1)[0] + "/" + "/".join(quote(p) for p in path.split("/"))
    return str(Path(base).parent.joinpath(*path.split("/")))


def fetch_index(rel: VerifiedRelease, art: ReleaseArtifact, *, timeout: float) -> Index | None:
    """The artifact's signed file index, or None when the release or the mirror has none."""
    meta = art.index
    if meta is None:
        return None
    url = rel.url(meta.file)
    try:
        data = httpfetch.fetch_bytes(url, timeout=(httpfetch.DEFAULT_TIMEOUT[0], timeout), max_size=MAX_INDEX)
    except NetworkError as exc:
        log.warn(f"no file index on this mirror ({exc.message}); installing from the archive")
        return None
    digest = hashlib.sha256(data).hexdigest()
    if digest != meta.sha256 or rel.sums.get(meta.file, digest) != digest:
        raise VerifyError(
            f"{url}: sha256 {digest} is not the one the signed release.json names ({meta.sha256}): the file index "
            "was tampered with or corrupted; nothing was installed.",
            hint="Report the mirror; `--no-store` installs from the archive.",
        )
    index = Index.parse(data, source=url, windows=art.os == "windows")  # Windows name rules for a Windows artifact
    if index.artifact != art.file or index.name != art.name or index.version != rel.record.version:
        raise VerifyError(f"{url}: the index is about {index.artifact} {index.version}, not {art.file}.", hint="Report the mirror.")
    return index


# --- the plan ------------------------------------------------------------------------------------


@dataclass
class UpdatePlan:
    index: Index
    reuse: list[tuple[FileEntry, Path]] = field(default_factory=list)  # verified local copies
    deltas: list[tuple[FileEntry, Delta, Path]] = field(default_factory=list)  # + the local base
    blobs: list[FileEntry] = field(default_factory=list)
    skipped: list[FileEntry] = field(default_factory=list)

    @property
    def fetch_bytes(self) -> int:
        return sum(d.size for _, d, _ in self.deltas) + sum(f.blob_size for f in self.blobs)

    @property
    def reuse_bytes(self) -> int:
        return sum(f.size for f, _ in self.reuse)

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": len(self.reuse) + len(self.deltas) + len(self.blobs),
            "reused": len(self.reuse), "reused_bytes": self.reuse_bytes,
            "deltas": len(self.deltas), "blobs": len(self.blobs), "fetch_bytes": self.fetch_bytes,
            "skipped": [f.path for f in self.skipped],
        }


class _Local:
    """Files already in ``versions/*``, found by sha256 (from each version's saved index, or hashed),
    each confirmed by hashing it before it is used."""

    def __init__(self, prefix: Path, state: InstallState):
        self.candidates: dict[str, list[Path]] = {}
        self._confirmed: dict[str, Path | None] = {}
        versions = prefix / "versions"
        names = [n for n in state.installed if (versions / n).is_dir()]
        for name in names:
            folder = versions / name
            saved = folder / LOCAL_INDEX
            index = None
            if saved.is_file():
                try:
                    index = Index.parse(saved.read_bytes(), source=str(saved))
                except (OSError, VerifyError):
                    index = None
            if index is not None:
                for f in index.files:
                    self.candidates.setdefault(f.sha256, []).append(folder.joinpath(*f.path.split("/")))
                continue
            for p in sorted(folder.rglob("*")):
                if p.is_file() and not p.is_symlink() and not p.name.startswith(".locara-"):
                    self.candidates.setdefault(httpfetch.sha256_file(p), []).append(p)

    def find(self, digest: str) -> Path | None:
        if digest in self._confirmed:
            return self._confirmed[digest]
        found = None
        for p in self.candidates.get(digest, []):
            try:
                if p.is_file() and not p.is_symlink() and httpfetch.sha256_file(p) == digest:
                    found = p
                    break
            except OSError:
                continue
        self._confirmed[digest] = found
        return found


def plan_update(index: Index, wanted: list[FileEntry], skipped: list[FileEntry], local: _Local) -> UpdatePlan:
    plan = UpdatePlan(index, skipped=skipped)
    for f in wanted:
        src = local.find(f.sha256)
        if src is not None:
            plan.reuse.append((f, src))
            continue
        usable = [(d, base) for d in sorted(f.deltas, key=lambda d: d.size) if d.method in DELTA_METHODS
                  and (base := local.find(d.base)) is not None]
        if usable and usable[0][0].size < f.blob_size:
            plan.deltas.append((f, *usable[0]))
        else:
            plan.blobs.append(f)
    return plan


# --- building the tree -------------------------------------------------------------------------


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB" if n >= 1 << 20 else f"{n / 1024:.1f} KiB"


def _write_new(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.chmod(path, mode)


def _place_local(src: Path, dest: Path, f: FileEntry) -> bool:
    """Hard-link (same mode) or copy ``src`` to ``dest``, then check the result's sha256."""
    linked = False
    if (src.stat().st_mode & 0o777) == f.mode:
        try:
            os.link(src, dest)
            linked = True
        except OSError:
            linked = False
    if not linked:
        shutil.copyfile(src, dest)
        os.chmod(dest, f.mode)
    if httpfetch.sha256_file(dest) != f.sha256:  # changed since it was checked: not reused
        dest.unlink()
        return False
    return linked


def build_from_store(
    rel: VerifiedRelease, art: ReleaseArtifact, prefix: Path, state: InstallState, *, backend: str, timeout: float,
    force: bool = False,
) -> Path | None:
    """The new version's folder, built and verified under ``versions/.extract-*`` (see module doc);
    None to fall back to the archive."""
    index = fetch_index(rel, art, timeout=timeout)
    if index is None:
        return None
    flags = hostdetect.detect(gpus=False).cpu_flags
    wanted, skipped = select_files(index, flags, every=backend == "all")
    plan = plan_update(index, wanted, skipped, _Local(prefix, state))
    fetch, reuse = plan.fetch_bytes, plan.reuse_bytes
    worth = STORE_WORTH if plan.reuse or plan.deltas else FIRST_INSTALL_WORTH
    if not force and fetch > worth * art.size:
        log.info(f"store: {_mib(fetch)} to fetch is not much less than the {_mib(art.size)} archive; using the archive")
        return None
    log.info(
        f"update from the store: {len(wanted)} files; fetch {_mib(fetch)} ({len(plan.blobs)} blobs, {len(plan.deltas)} deltas), "
        f"reuse {_mib(reuse)} ({len(plan.reuse)} files already installed); the archive is {_mib(art.size)}"
        + (f"; left out {len(skipped)} CPU variant(s) this CPU cannot run" if skipped else "")
    )
    versions = prefix / "versions"
    versions.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=versions))
    downloads = prefix / ".downloads" / "store"
    try:
        top = _build(rel, plan, tmp, downloads, timeout, fetch, reuse)
        with contextlib.suppress(OSError):
            downloads.rmdir()  # only when empty: a partial download stays for the next run
    except NetworkError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        log.warn(f"the store on this mirror is incomplete ({exc.message}); installing from the archive")
        return None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return top


def _build(rel: VerifiedRelease, plan: UpdatePlan, tmp: Path, downloads: Path, timeout: float, fetch: int, reuse: int) -> Path:
    index = plan.index
    top = tmp / index.name
    top.mkdir(mode=0o755)
    for d in index.dirs:
        top.joinpath(*d.split("/")).mkdir(mode=0o755, parents=True, exist_ok=True)

    def dest_of(f: FileEntry) -> Path:
        p = top.joinpath(*f.path.split("/"))
        p.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        return p

    written: list[Path] = []
    linked = 0
    reused = []
    for f, src in plan.reuse:
        try:
            linked += _place_local(src, dest_of(f), f)
        except OSError:
            pass
        if dest_of(f).exists():
            reused.append((f, src))
        else:  # unreadable or changed since it was checked: fetch it instead
            plan.blobs.append(f)
    plan.reuse = reused

    done = 0
    with log.download_progress(f"fetch {_mib(plan.fetch_bytes)}, reuse {_mib(reuse)}", plan.fetch_bytes or None) as bar:

        def get(path: str, size: int, digest: str) -> bytes:
            nonlocal done
            start = done
            progress: Callable[[int, int | None], None] = lambda n, _t: bar(start + n, None)  # noqa: E731
            dest = downloads / flat_name(path)
            httpfetch.fetch(store_url(rel.base, path), dest, sha256=digest, size=size,
                            timeout=(httpfetch.DEFAULT_TIMEOUT[0], timeout), progress=progress)
            data = dest.read_bytes()
            dest.unlink()
            done = start + size
            bar(done, None)
            return data

        for f, d, base_path in plan.deltas:
            try:
                delta = get(d.path, d.size, d.sha256)
            except NetworkError:
                log.detail(f"{f.path}: delta unavailable, fetching the whole file")
                plan.blobs.append(f)
                continue
            base = base_path.read_bytes()
            if hashlib.sha256(base).hexdigest() != d.base:  # changed since it was planned: take the blob
                plan.blobs.append(f)
                continue
            data = apply_delta(d.method, base, delta, f.size, what=store_url(rel.base, d.path))
            _check(data, f, store_url(rel.base, d.path))
            _write_new(dest_of(f), data, f.mode)
            written.append(dest_of(f))
        for f in plan.blobs:
            url = store_url(rel.base, f.blob)
            data = decompress(get(f.blob, f.blob_size, f.blob_sha256), f.size, what=url)
            _check(data, f, url)
            _write_new(dest_of(f), data, f.mode)
            written.append(dest_of(f))
    # every file, as it is on disk now, against the signed index
    for f in (e for e in index.files if e not in plan.skipped):
        p = top.joinpath(*f.path.split("/"))
        st = p.lstat()
        if not p.is_file() or st.st_size != f.size or (st.st_mode & 0o777) != f.mode:
            raise VerifyError(f"{p}: not the file the index names ({f.size} bytes, mode {oct(f.mode)}).", hint="Run the install again.")
    expected = {top.joinpath(*f.path.split("/")): f.sha256 for f in index.files}
    for p in written:
        if httpfetch.sha256_file(p) != expected[p]:
            raise VerifyError(f"{p}: changed on disk after it was written.", hint="Check the disk; run the install again.")
    (top / LOCAL_INDEX).write_bytes(index.to_bytes())
    _flush(tmp, written)
    log.info(
        f"store: {len(plan.reuse)} files reused ({linked} hard-linked), {len(plan.deltas)} rebuilt from deltas, "
        f"{len(plan.blobs)} fetched whole; every file verified against the signed index"
    )
    return top


def _check(data: bytes, f: FileEntry, url: str) -> None:
    digest = hashlib.sha256(data).hexdigest()
    if digest != f.sha256:
        raise VerifyError(
            f"{url}: rebuilt {f.path} has sha256 {digest}, the signed index says {f.sha256}; nothing was installed.",
            hint="The store object was tampered with or corrupted; report the mirror (`--no-store` uses the archive).",
        )
