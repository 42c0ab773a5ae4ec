"""Linux arm64 (aarch64) on an x86-64 host: clang as the cross compiler, a Debian arm64 sysroot,
and qemu-user to run what was built.

Why this toolchain (measured on Debian 12, docs/backends.md "Linux arm64"):

* **Debian's gcc-aarch64-linux-gnu (gcc 12)** cannot build upstream's arm64 CPU variants: the SME
  ones are compiled with ``-march=armv9.2-a+...+sme`` and gcc 12 knows no ``armv9.2-a`` ("valid
  arguments are: ... armv8.8-a armv8-r armv9-a"). gcc 14 (trixie) would, but its cross packages
  drag a second libc/libstdc++ generation into the host.
* **zig cc** (``-target aarch64-linux-gnu``) knows every ``-march``, but links its own libc++
  statically into each shared object: llama.cpp's arm64 release is a set of ``.so`` files
  (``GGML_BACKEND_DL``, one plugin per CPU variant) with C++ types crossing them, the same reason the
  Windows recipe is one static ``.exe``.
* **Debian's clang-16** (``--target=aarch64-linux-gnu --sysroot=<Debian arm64 sysroot>``) accepts
  ``armv9.2-a+sme``, and links the sysroot's own glibc 2.36 and libstdc++ 12 (``libstdc++.so.6`` from
  the system at run time, like upstream's Ubuntu builds) with binutils-aarch64-linux-gnu's ``ld``.
  Upstream's own arm64 Docker images build with clang too. This is the toolchain.

The sysroot is unpacked (``dpkg-deb -x``, nothing is installed on the system) from Debian bookworm's
arm64 packages: glibc, libstdc++/libgcc (headers, crt files, runtime), OpenSSL 3 (``LLAMA_OPENSSL``).
Versions are those of the same packages on the host when installed (Debian requires multi-arch
packages to have the same version on every architecture), else the suite's candidate; apt checks
every .deb against the signed index and ``PROVENANCE.json`` records each sha256. The same sysroot is
``QEMU_LD_PREFIX`` when ``qemu-aarch64-static`` runs the server for the smoke test.

On an arm64 host (GitHub's ``ubuntu-22.04-arm`` runners) none of this is used: the toolchain file
builds natively with the system's clang and libraries.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import locara_build.build.platforms.host as platforms
from locara_build.build.toolchains._common import (
    ensure_dir,
    provision_lock,
    publish_dir,
    sha256_file,
    staging_dir,
    toolchains_dir,
)
from locara_build.core import run as _run
from locara_build.core.errors import BuildError

__all__ = [
    "SUITE",
    "SYSROOT_PACKAGES",
    "VULKAN_PACKAGES",
    "MIN_CLANG",
    "Clang",
    "is_cross",
    "find_clang",
    "find_qemu",
    "sysroot_dir",
    "sysroot_ready",
    "provision_sysroot",
    "plan_env",
    "smoke_env",
    "smoke_emulator",
]

SUITE = "bookworm"
APT_SOURCE = f"deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian {SUITE} main"
# What a C/C++ program of llama.cpp's compiles and links against, and what llama-server loads at run
# time (ld-linux, libc, libm, libstdc++, libgcc_s, libgomp, libssl/libcrypto).
SYSROOT_PACKAGES = (
    "libc6",
    "libc6-dev",
    "linux-libc-dev",
    "libcrypt1",
    "libcrypt-dev",
    "libgcc-s1",
    "libgcc-12-dev",
    "libstdc++6",
    "libstdc++-12-dev",
    "libgomp1",
    "libatomic1",
    "libssl3",
    "libssl-dev",
)
# linux-arm64-vulkan: the loader to link against (headers come from locara_build.build.toolchains.vulkan)
VULKAN_PACKAGES = ("libvulkan1", "libvulkan-dev")
MIN_CLANG = 15  # the first clang whose -march takes armv9.2-a+sme reliably (16 measured)
_TRIPLE = "aarch64-linux-gnu"


def is_cross(recipe_arch: str = "arm64") -> bool:
    """True when this host is not arm64 (the build is a cross build, the smoke test needs qemu)."""
    return recipe_arch == "arm64" and platforms.host_arch() != "arm64"


# --- clang -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Clang:
    cc: Path
    cxx: Path
    version: str
    major: int


_CLANG_VERSION = re.compile(r"clang version (\d+)(?:\.(\d+))?(?:\.(\d+))?")


def _clang_at(cc: str) -> Clang | None:
    path = _run.which(cc) if os.sep not in cc else (cc if Path(cc).is_file() else None)
    if not path:
        return None
    res = _run.run([path, "--version"], check=False, echo=False, timeout=60)
    m = _CLANG_VERSION.search(res.stdout or "") if res.ok else None
    if not m:
        return None
    major = int(m.group(1))
    version = ".".join(g for g in m.groups() if g is not None)
    cxx_name = Path(path).name.replace("clang", "clang++", 1)
    cxx = Path(path).with_name(cxx_name)
    if not cxx.is_file():
        found = _run.which(cxx_name)
        if not found:
            return None
        cxx = Path(found)
    return Clang(cc=Path(path), cxx=cxx, version=version, major=major)


def find_clang() -> Clang | None:
    """``$LOCARA_CLANG``, else the newest ``clang-N`` (N >= 15) on PATH, else ``clang``."""
    forced = os.environ.get("LOCARA_CLANG")
    names = [forced] if forced else [*(f"clang-{n}" for n in range(22, MIN_CLANG - 1, -1)), "clang"]
    for name in names:
        found = _clang_at(name)
        if found is not None and found.major >= MIN_CLANG:
            return found
    return None


def find_qemu() -> Path | None:
    for name in ("qemu-aarch64-static", "qemu-aarch64"):
        found = _run.which(name)
        if found:
            return Path(found)
    return None


# --- sysroot ---------------------------------------------------------------------------------------


def sysroot_dir() -> Path:
    return toolchains_dir() / f"sysroot-debian-{SUITE}-arm64"


RELATIVE_MARK = ".relative-links"


def make_links_relative(root: Path) -> int:
    """Point every absolute symlink of the sysroot inside it (Debian's ``libm.so -> /lib/aarch64-linux-gnu/
    libm.so.6`` would otherwise resolve to the *host's* x86-64 libm: ld skips it as incompatible and
    silently links ``libm.a`` instead, and the link of libllama fails on ``__frexpl``). Returns how many
    links were rewritten; leaves a marker so a cached sysroot is fixed once."""
    count = 0
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            link = Path(dirpath) / name
            if not link.is_symlink():
                continue
            target = os.readlink(link)
            if not target.startswith("/"):
                continue
            inside = root / target.lstrip("/")
            link.unlink()
            link.symlink_to(os.path.relpath(inside, link.parent))
            count += 1
    (root / RELATIVE_MARK).write_text(f"{count} absolute symlinks made relative\n", encoding="utf-8")
    return count


def sysroot_ready(root: Path | None = None, *, vulkan: bool = False) -> bool:
    root = root or sysroot_dir()
    need = [
        root / "lib" / "ld-linux-aarch64.so.1",
        root / "usr" / "lib" / _TRIPLE / "libstdc++.so.6",
        root / "usr" / "include" / "openssl" / "ssl.h",
        root / "PROVENANCE.json",
        root / RELATIVE_MARK,
    ]
    if vulkan:
        need.append(root / "usr" / "lib" / _TRIPLE / "libvulkan.so")
    return all(p.exists() or p.is_symlink() for p in need)


def _apt_options(root: Path) -> list[str]:
    return [
        "-o", f"Dir::Etc::SourceList={root / 'sources.list'}",
        "-o", "Dir::Etc::SourceParts=/dev/null",
        "-o", f"Dir::State::Lists={root / 'lists'}",
        "-o", f"Dir::Cache={root / 'cache'}",
        "-o", "Dir::State::Status=/dev/null",
        "-o", "APT::Architecture=arm64",
        "-o", "APT::Architectures=arm64",
        "-o", "APT::Sandbox::User=root",
        "-o", "Debug::NoLocking=1",
    ]


def _host_version(package: str) -> str | None:
    """The version of ``package`` installed on this (Debian) host, any architecture."""
    if _run.which("dpkg-query") is None:
        return None
    res = _run.run(["dpkg-query", "-W", "-f", "${Version}\\n", package], check=False, echo=False, timeout=30)
    lines = [ln.strip() for ln in (res.stdout or "").splitlines() if ln.strip()] if res.ok else []
    return lines[0] if lines else None


def provision_sysroot(*, vulkan: bool = False) -> Path:
    """Download and unpack the arm64 sysroot into ``<toolchains>/sysroot-debian-bookworm-arm64/``
    (cached; a minute the first time). Nothing is installed on the system."""
    final = sysroot_dir()
    if sysroot_ready(final, vulkan=vulkan):
        return final
    if final.is_dir() and not (final / RELATIVE_MARK).exists():
        with provision_lock():  # a sysroot unpacked before its links were made relative: fix it in place
            if not (final / RELATIVE_MARK).exists():
                make_links_relative(final)
        if sysroot_ready(final, vulkan=vulkan):
            return final
    for tool in ("apt-get", "dpkg-deb"):
        if _run.which(tool) is None:
            raise BuildError(
                f"cross-building for Linux arm64 needs a Debian arm64 sysroot, and `{tool}` is not here to "
                "unpack one.",
                hint="Build the arm64 recipes on an arm64 host (CI: ubuntu-22.04-arm), or run on Debian/Ubuntu.",
            )
    packages = [*SYSROOT_PACKAGES, *(VULKAN_PACKAGES if vulkan else ())]
    hint = (
        "Check that deb.debian.org is reachable (or your apt proxy). The versions asked for are the "
        "host's own (multi-arch packages match across architectures): `apt-get upgrade` the host if "
        "bookworm has moved on, or delete the sysroot folder and run again."
    )
    with provision_lock():
        if sysroot_ready(final, vulkan=vulkan):
            return final
        apt_root = ensure_dir(toolchains_dir() / f"apt-{SUITE}-arm64")
        (apt_root / "lists" / "partial").mkdir(parents=True, exist_ok=True)
        (apt_root / "cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
        (apt_root / "sources.list").write_text(APT_SOURCE + "\n", encoding="utf-8")
        downloads = ensure_dir(apt_root / "debs")
        opts = _apt_options(apt_root)
        _run.run(["apt-get", *opts, "update"], error=BuildError, what=f"apt-get update ({SUITE} arm64)", hint=hint,
                 timeout=600)
        wanted = []
        for pkg in packages:
            version = _host_version(pkg)
            wanted.append(f"{pkg}:arm64={version}" if version else f"{pkg}:arm64")
        for old in downloads.glob("*.deb"):
            old.unlink()
        res = _run.run(["apt-get", *opts, "download", *wanted], cwd=downloads, check=False,
                       what="apt-get download (arm64 sysroot)", timeout=600)
        if not res.ok:  # a host version no longer in the index: take the suite's candidate
            _run.run(["apt-get", *opts, "download", *(f"{p}:arm64" for p in packages)], cwd=downloads,
                     error=BuildError, what="apt-get download (arm64 sysroot)", hint=hint, timeout=600)
        debs = sorted(downloads.glob("*.deb"))
        staging = staging_dir(final)
        provenance = []
        for deb in debs:
            _run.run(["dpkg-deb", "-x", str(deb), str(staging)], error=BuildError, what="dpkg-deb -x", echo=False)
            provenance.append({"deb": deb.name, "sha256": sha256_file(deb)})
        make_links_relative(staging)
        (staging / "PROVENANCE.json").write_text(
            json.dumps({"apt_source": APT_SOURCE, "architecture": "arm64", "packages": provenance},
                       indent=2, sort_keys=True) + "\n",
            encoding="utf-8",
        )
        if not sysroot_ready(staging, vulkan=vulkan):
            shutil.rmtree(staging, ignore_errors=True)
            raise BuildError(
                f"the arm64 packages from Debian {SUITE} were unpacked, but the sysroot is incomplete "
                "(ld-linux-aarch64.so.1, libstdc++.so.6 or openssl/ssl.h missing).",
                hint="Delete " + str(apt_root) + " and run again; report the package list in PROVENANCE.json.",
            )
        if final.exists():  # an older sysroot without the Vulkan packages
            shutil.rmtree(final)
        publish_dir(staging, final)
    return final


# --- hooks (locara_build.build.platforms.linux forwards to these) ----------------------------------------


def plan_env(vulkan: bool = False) -> dict[str, str]:
    """Environment the toolchain file reads (shown in the plan): the clang to use and, when
    cross-building, the sysroot (provisioned by ``build`` before configuring)."""
    clang = find_clang()
    env: dict[str, str] = {"CCACHE_COMPILERCHECK": "%compiler% --version"}
    if clang is not None:
        env["LOCARA_CLANG"] = str(clang.cc)
        env["LOCARA_CLANGXX"] = str(clang.cxx)
    if is_cross():
        env["LOCARA_AARCH64_SYSROOT"] = str(sysroot_dir())
    return env


def smoke_env() -> dict[str, str]:
    """``QEMU_LD_PREFIX``: qemu-user resolves the ELF interpreter and every library in the sysroot."""
    return {"QEMU_LD_PREFIX": str(sysroot_dir())} if is_cross() else {}


def smoke_emulator() -> list[str]:
    if not is_cross():
        return []
    qemu = find_qemu()
    return [str(qemu) if qemu else "qemu-aarch64-static"]
