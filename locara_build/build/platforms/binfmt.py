"""What a binary needs at load time, read with the platform's own tools (through ``locara_build.core.run``).

* ELF (Linux): ``readelf -W -d -V``: ``DT_NEEDED``, ``DT_SONAME``, ``DT_RUNPATH``/``DT_RPATH`` and
  the symbol versions it needs from each library (``GLIBC_2.34``, ``GLIBCXX_3.4.30``...).
* PE (Windows): ``objdump -p``: the ``DLL Name:`` import entries (Debian's binutils reads PE).
* Mach-O (macOS): ``otool -L`` (load commands; the first line of a dylib is its own install name)
  and ``otool -l`` (``LC_RPATH``).

The parsers are pure functions over the tools' text so they are tested with recorded output on
hosts that lack the tool (otool on Linux).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from locara_build.core import run as _run
from locara_build.core.errors import BuildError

__all__ = ["BinaryInfo", "read_elf", "parse_readelf", "read_pe", "parse_objdump_pe", "read_macho", "parse_otool"]

_C_ENV = {"LC_ALL": "C", "LANG": "C"}


@dataclass(frozen=True)
class BinaryInfo:
    path: Path
    needed: tuple[str, ...]  # library names the loader must find (DT_NEEDED / imports / load commands)
    soname: str | None = None  # the name others link it by (ELF DT_SONAME, Mach-O install name)
    runpath: tuple[str, ...] = ()  # where the loader looks first ($ORIGIN, @loader_path, ...)
    versions: dict[str, tuple[str, ...]] = field(default_factory=dict)  # library -> symbol versions


def _tool(argv: list[str], path: Path) -> str:
    result = _run.run(
        argv,
        env=_C_ENV,
        error=BuildError,
        what=Path(argv[0]).name,
        hint=f"Check that {path} is a complete binary of the right format (re-run `locara-build build`).",
        echo=False,
    )
    return result.stdout


_NEEDED = re.compile(r"\(NEEDED\)\s+Shared library: \[(?P<v>[^\]]+)\]")
_SONAME = re.compile(r"\(SONAME\)\s+Library soname: \[(?P<v>[^\]]+)\]")
_RUNPATH = re.compile(r"\((?:RUNPATH|RPATH)\)\s+Library r(?:un)?path: \[(?P<v>[^\]]*)\]")
_VERSION_FILE = re.compile(r"^\s*(?:0x)?[0-9a-f]+:\s+Version:\s+\d+\s+File:\s+(?P<file>\S+)\s+Cnt:")
_VERSION_NAME = re.compile(r"^\s*(?:0x)?[0-9a-f]+:\s+Name:\s+(?P<name>\S+)\s+Flags:")


def parse_readelf(path: Path, text: str) -> BinaryInfo:
    needed = tuple(m["v"] for m in _NEEDED.finditer(text))
    soname = next((m["v"] for m in _SONAME.finditer(text)), None)
    runpath: list[str] = []
    for m in _RUNPATH.finditer(text):
        runpath += [p for p in m["v"].split(":") if p]
    versions: dict[str, list[str]] = {}
    in_verneed = False
    current: str | None = None
    for line in text.splitlines():
        if line.startswith("Version needs section"):
            in_verneed = True
            continue
        if in_verneed and (line.startswith("Version ") or line.startswith("Symbol table")):
            in_verneed = False
        if not in_verneed:
            continue
        m = _VERSION_FILE.match(line)
        if m:
            current = m["file"]
            versions.setdefault(current, [])
            continue
        m = _VERSION_NAME.match(line)
        if m and current:
            versions[current].append(m["name"])
    return BinaryInfo(
        path=path,
        needed=needed,
        soname=soname,
        runpath=tuple(runpath),
        versions={k: tuple(sorted(set(v))) for k, v in sorted(versions.items())},
    )


def read_elf(path: Path) -> BinaryInfo:
    return parse_readelf(path, _tool(["readelf", "-W", "-d", "-V", str(path)], path))


_DLL = re.compile(r"^\s*DLL Name:\s*(?P<v>\S+)\s*$", re.M)


def parse_objdump_pe(path: Path, text: str) -> BinaryInfo:
    names: list[str] = []
    for m in _DLL.finditer(text):
        if m["v"] not in names:
            names.append(m["v"])
    return BinaryInfo(path=path, needed=tuple(names))


def read_pe(path: Path) -> BinaryInfo:
    return parse_objdump_pe(path, _tool(["objdump", "-p", str(path)], path))


def parse_otool(path: Path, libs_text: str, load_text: str = "", is_dylib: bool = False) -> BinaryInfo:
    lines = [ln.strip() for ln in libs_text.splitlines()[1:] if ln.strip()]
    entries = [ln.split(" (compatibility", 1)[0].strip() for ln in lines]
    soname = None
    if is_dylib and entries:
        soname, entries = entries[0], entries[1:]
    runpath: list[str] = []
    lines_l = load_text.splitlines()
    for i, ln in enumerate(lines_l):
        if ln.strip() == "cmd LC_RPATH":
            for follow in lines_l[i + 1 : i + 4]:
                m = re.match(r"^\s*path (?P<p>.+?) \(offset \d+\)\s*$", follow)
                if m:
                    runpath.append(m["p"])
                    break
    return BinaryInfo(path=path, needed=tuple(entries), soname=soname, runpath=tuple(runpath))


def read_macho(path: Path) -> BinaryInfo:
    libs = _tool(["otool", "-L", str(path)], path)
    load = _tool(["otool", "-l", str(path)], path)
    return parse_otool(path, libs, load, is_dylib=path.suffix in (".dylib", ".so"))
