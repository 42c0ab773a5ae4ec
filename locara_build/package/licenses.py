"""Licenses of what an artifact ships, gathered from the (patched) llama.cpp source tree.

Two sources, both checked against the tree at packaging time:

* license files: llama.cpp's ``LICENSE``, every ``licenses/LICENSE-*`` (upstream's list of extra
  licenses, embedded by its ``llama`` app) and every ``LICENSE*``/``COPYING*`` under ``vendor/``,
  ``ggml/``, ``common/``, ``src/`` and ``tools/server/``;
* licenses that live inside a vendored source file's header comment (stb, miniaudio, sheredom's
  subprocess.h, base64.hpp, the sha1 implementation, llamafile's sgemm): extracted verbatim by a
  marker, so a changed upstream header is noticed (the component is then reported missing).

:data:`KNOWN` names each component, its SPDX id and how to read its version. A license file that
the table does not know is still shipped (named after its path, SPDX ``NOASSERTION``), so nothing
new upstream is silently dropped. Upstream's web UI (``tools/ui``) and ``gguf-py`` are not in
llama-server and are never scanned.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from locara_build.core import log
from locara_build.core.errors import SourceError

__all__ = ["Component", "LicenseText", "KNOWN", "gather", "SCAN_DIRS"]

SCAN_DIRS = ("vendor", "ggml", "common", "src", "tools/server", "licenses")
_LICENSE_NAME = re.compile(r"^(LICEN[CS]E|COPYING)([-._].*)?$", re.I)


@dataclass(frozen=True)
class Component:
    name: str
    spdx: str
    files: tuple[str, ...] = ()  # license files (relative to the tree); the first that exists is used
    header: tuple[str, str] | None = None  # (source file, marker inside the license comment)
    version: tuple[str, str] | None = None  # (file, regex with a `v` group)
    url: str = ""
    purl: str = ""
    description: str = ""


@dataclass(frozen=True)
class LicenseText:
    component: Component
    source: str  # where in the tree the text came from
    text: str
    version: str

    @property
    def file_name(self) -> str:
        return re.sub(r"[^A-Za-z0-9._+-]+", "-", self.component.name) + ".txt"


KNOWN: tuple[Component, ...] = (
    Component(
        name="llama.cpp",
        spdx="MIT",
        files=("LICENSE",),
        url="https://github.com/ggml-org/llama.cpp",
        description="llama.cpp and ggml (the server, the library, the backends)",
    ),
    Component(
        name="cpp-httplib",
        spdx="MIT",
        files=("vendor/cpp-httplib/LICENSE",),
        version=("vendor/cpp-httplib/httplib.h", r'#define CPPHTTPLIB_VERSION "(?P<v>[^"]+)"'),
        url="https://github.com/yhirose/cpp-httplib",
        purl="pkg:github/yhirose/cpp-httplib",
        description="HTTP server of llama-server",
    ),
    Component(
        name="nlohmann-json",
        spdx="MIT",
        files=("licenses/LICENSE-jsonhpp", "vendor/nlohmann/LICENSE.MIT"),
        version=("vendor/nlohmann/json.hpp", r"version (?P<v>\d+\.\d+\.\d+)"),
        url="https://github.com/nlohmann/json",
        purl="pkg:github/nlohmann/json",
        description="JSON for Modern C++",
    ),
    Component(
        name="stb_image",
        spdx="MIT OR Unlicense",
        header=("vendor/stb/stb_image.h", "This software is available under 2 licenses"),
        version=("vendor/stb/stb_image.h", r"stb_image - v(?P<v>[\d.]+)"),
        url="https://github.com/nothings/stb",
        purl="pkg:github/nothings/stb",
        description="image decoding for multimodal input (mtmd)",
    ),
    Component(
        name="miniaudio",
        spdx="MIT-0 OR Unlicense",
        header=("vendor/miniaudio/miniaudio.h", "This software is available as a choice of the following licenses"),
        version=("vendor/miniaudio/miniaudio.h", r"miniaudio - v(?P<v>[\d.]+)"),
        url="https://github.com/mackron/miniaudio",
        purl="pkg:github/mackron/miniaudio",
        description="audio decoding for multimodal input (mtmd)",
    ),
    Component(
        name="subprocess.h",
        spdx="Unlicense",
        header=("vendor/sheredom/subprocess.h", "This is free and unencumbered software released into the public domain"),
        url="https://github.com/sheredom/subprocess.h",
        purl="pkg:github/sheredom/subprocess.h",
        description="process spawning (llama-server router mode)",
    ),
    Component(
        name="base64.hpp",
        spdx="Unlicense",
        header=("common/base64.hpp", "This is free and unencumbered software released into the public domain"),
        description="base64 coding in llama-common",
    ),
    Component(
        name="sha1",
        spdx="LicenseRef-Public-Domain",
        header=("vendor/hash/sha1/sha1.c", "100% Public Domain"),
        description="SHA-1 (Steve Reid) used for model hashes",
    ),
    Component(
        name="sha256",
        spdx="LicenseRef-Public-Domain",
        files=("vendor/hash/sha256/LICENSE",),
        description="SHA-256 (Igor Pavlov) used for model hashes",
    ),
    Component(
        name="xxhash",
        spdx="BSD-2-Clause",
        files=("vendor/hash/xxhash/LICENSE",),
        url="https://github.com/Cyan4973/xxHash",
        purl="pkg:github/Cyan4973/xxHash",
        description="xxHash used for model hashes",
    ),
    Component(
        name="rotate-bits",
        spdx="MIT",
        files=("vendor/hash/rotate-bits/LICENSE.md",),
        url="https://github.com/jb55/rotate-bits.h",
        description="bit rotation helpers for the hashes",
    ),
    Component(
        name="llamafile-sgemm",
        spdx="MIT",
        header=("ggml/src/ggml-cpu/llamafile/sgemm.cpp", "Permission is hereby granted"),
        url="https://github.com/Mozilla-Ocho/llamafile",
        description="llamafile's matrix multiplication kernels in the CPU backend (Mozilla Foundation)",
    ),
)


def _comment_block(text: str, marker: str) -> str | None:
    """The comment (``/* ... */`` or a run of ``//`` lines) that contains ``marker``."""
    at = text.find(marker)
    if at < 0:
        return None
    start = text.rfind("/*", 0, at)
    end_before = text.rfind("*/", 0, at)
    if start >= 0 and end_before < start:
        end = text.find("*/", at)
        if end >= 0:
            body = text[start + 2 : end]
            lines = [re.sub(r"^\s?\*? ?", "", ln) if ln.lstrip().startswith("*") else ln for ln in body.splitlines()]
            return "\n".join(ln.rstrip() for ln in lines).strip("\n") + "\n"
    lines = text.splitlines()
    line_no = text.count("\n", 0, at)
    if not lines[line_no].lstrip().startswith("//"):
        return None
    first = line_no
    while first > 0 and lines[first - 1].lstrip().startswith("//"):
        first -= 1
    last = line_no
    while last + 1 < len(lines) and lines[last + 1].lstrip().startswith("//"):
        last += 1
    return "\n".join(re.sub(r"^\s*// ?", "", ln).rstrip() for ln in lines[first : last + 1]).strip("\n") + "\n"


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


def _version(tree: Path, comp: Component) -> str:
    if not comp.version:
        return ""
    path = tree / comp.version[0]
    if not path.is_file():
        return ""
    m = re.search(comp.version[1], _read(path)[:200_000])
    return m["v"] if m else ""


def _discover(tree: Path) -> list[str]:
    found = []
    for top in SCAN_DIRS:
        base = tree / top
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*")):
            if path.is_file() and _LICENSE_NAME.match(path.name):
                found.append(path.relative_to(tree).as_posix())
    return found


def gather(tree: Path, *, strict: bool = True) -> list[LicenseText]:
    """The licenses to ship for the llama.cpp tree at ``tree``, known components first, sorted.

    ``strict``: a known component whose license cannot be found raises :class:`SourceError`
    (llama.cpp's own LICENSE always does); otherwise it is skipped with a warning — upstream
    may have dropped the component.
    """
    if not (tree / "LICENSE").is_file():
        raise SourceError(
            f"{tree}: no LICENSE file: this is not a llama.cpp source tree (or it is incomplete).",
            hint="Run `locara-build patches apply` to prepare the source tree, then package again.",
        )
    out: list[LicenseText] = []
    used: set[str] = set()
    missing: list[str] = []
    for comp in KNOWN:
        text = source = None
        for rel in comp.files:
            if (tree / rel).is_file():
                text, source = _read(tree / rel), rel
                break
        if text is None and comp.header:
            rel, marker = comp.header
            if (tree / rel).is_file():
                block = _comment_block(_read(tree / rel), marker)
                if block:
                    text, source = block, f"{rel} (license comment)"
        if text is None or source is None:
            where = ", ".join(comp.files) or (comp.header[0] if comp.header else "?")
            if comp.header and (tree / comp.header[0]).is_file() or any((tree / f).is_file() for f in comp.files):
                missing.append(f"{comp.name} ({where}: license text not found)")
            else:
                log.detail(f"licenses: {comp.name} is not in this tree ({where}); not shipped")
            continue
        used.update(comp.files)
        out.append(LicenseText(comp, source, text, _version(tree, comp)))
    if missing and strict:
        raise SourceError(
            "licenses: the source tree has these components but their license text was not found where expected: "
            + "; ".join(missing)
            + ".",
            hint="Upstream changed a vendored file's header. Update locara_build/package/licenses.py (KNOWN) to point at the new text.",
        )
    for rel in missing:
        log.warn(f"licenses: {rel}")
    for rel in _discover(tree):
        if rel in used or rel == "LICENSE":
            continue
        name = rel.replace("/", "-")
        out.append(LicenseText(Component(name=name, spdx="NOASSERTION", files=(rel,)), rel, _read(tree / rel), ""))
        log.warn(f"licenses: {rel} is not in the known component list; shipped as {name} (SPDX NOASSERTION)")
    return out


def readme(licenses: list[LicenseText]) -> str:
    lines = [
        "Licenses of the software in this archive",
        "=========================================",
        "",
        "llama-server and its libraries are built from llama.cpp, which bundles the components below.",
        "Each file in this folder holds one component's license text, verbatim from the source tree.",
        "The web UI (ui/) and the launchers are part of locara-build (MIT). Model weights are not",
        "included; each model's license is listed in models/manifest.json.",
        "",
    ]
    width = max(len(lic.component.name) for lic in licenses) if licenses else 10
    for lic in licenses:
        version = f" {lic.version}" if lic.version else ""
        lines.append(f"{lic.component.name:<{width}}  {lic.component.spdx:<26} {lic.file_name}  (from {lic.source}){version}")
    return "\n".join(lines) + "\n"
