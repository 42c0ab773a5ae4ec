"""Which files of a build output ship: the DT_NEEDED closure rules, on synthetic dependency graphs
(the real graphs are covered by test_package_e2e.py / test_package_standin.py), plus the binary
format parsers on recorded tool output."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import pytest

from locara_build.build import platforms
from locara_build.build.platforms.binfmt import BinaryInfo, parse_objdump_pe, parse_otool, parse_readelf
from locara_build.build.recipe import load_recipes
from locara_build.core.errors import BuildError, ConfigError
from locara_build.core.workdir import Project
from locara_build.package.package import resolve_binaries

REPO = Path(__file__).resolve().parent.parent


def _recipe(name: str):  # noqa: ANN202
    return SimpleNamespace(recipe=load_recipes(Project(REPO), [name])[name])


class FakeLinux(type(platforms.get("linux"))):  # type: ignore[misc]
    """The real Linux platform, but `inspect_binary` answers from a table instead of readelf."""

    graph: dict = {}

    def inspect_binary(self, path: Path) -> BinaryInfo:
        needed, soname = self.graph[path.name]
        return BinaryInfo(path=path, needed=tuple(needed), soname=soname, runpath=("$ORIGIN",),
                          versions={"libc.so.6": ("GLIBC_2.17", "GLIBC_2.34", "GLIBC_2.4")})


def _bin(tmp_path: Path, graph: dict[str, tuple[list[str], str | None]], links: dict[str, str] | None = None) -> Path:
    d = tmp_path / "bin"
    d.mkdir()
    for name in graph:
        (d / name).write_bytes(b"\x7fELF" + name.encode())
    for link, target in (links or {}).items():
        (d / link).symlink_to(target)
    return d


def _fake(graph: dict) -> FakeLinux:
    p = FakeLinux()
    object.__setattr__(p, "graph", graph) if dataclasses.is_dataclass(p) else setattr(p, "graph", graph)
    return p


GRAPH = {
    "llama-server": (["libllama-server-impl.so", "libc.so.6", "libstdc++.so.6"], None),
    "libllama-server-impl.so": (["libllama.so.0", "libggml.so.0", "libssl.so.3"], None),
    "libllama.so.0.5.0": (["libggml.so.0", "libggml-base.so.0"], "libllama.so.0"),
    "libggml.so.0.25.3": (["libggml-base.so.0"], "libggml.so.0"),
    "libggml-base.so.0.25.3": (["libc.so.6", "libgomp.so.1"], "libggml-base.so.0"),
    "libggml-cpu-haswell.so": (["libggml-base.so.0", "libgomp.so.1"], None),
    "libggml-vulkan.so": (["libggml-base.so.0", "libvulkan.so.1"], None),
    "libvulkan.so.1": ([], "libvulkan.so.1"),  # someone copied the loader into bin/: still never shipped
    "libmtmd.so.0.5.0": (["libllama.so.0"], "libmtmd.so.0"),  # built, but nothing loads it
}
LINKS = {
    "libllama.so.0": "libllama.so.0.5.0", "libllama.so": "libllama.so.0",
    "libggml.so.0": "libggml.so.0.25.3", "libggml.so": "libggml.so.0",
    "libggml-base.so.0": "libggml-base.so.0.25.3", "libggml-base.so": "libggml-base.so.0",
    "libmtmd.so.0": "libmtmd.so.0.5.0",
}


def test_closure_ships_needed_libraries_and_plugins_never_system_ones(tmp_path: Path) -> None:
    graph = dict(GRAPH)
    for link, target in LINKS.items():
        graph[link] = graph[target] if target in graph else graph[LINKS[target]]
    bin_dir = _bin(tmp_path, GRAPH, LINKS)
    shipped, system = resolve_binaries(bin_dir, _recipe("linux-x86_64-vulkan"), _fake(graph))
    by_name = {b.name: b for b in shipped}
    assert sorted(by_name) == [
        "libggml-base.so.0", "libggml-cpu-haswell.so", "libggml-vulkan.so", "libggml.so.0",
        "libllama-server-impl.so", "libllama.so.0", "llama-server",
    ]
    assert by_name["libggml-cpu-haswell.so"].role == "plugin" and by_name["libggml-vulkan.so"].role == "plugin"
    assert by_name["llama-server"].role == "binary"
    assert by_name["libllama.so.0"].source == (bin_dir / "libllama.so.0.5.0").resolve(), "shipped under its soname"
    assert by_name["libggml-base.so.0"].needed_by == ("libggml-cpu-haswell.so", "libggml-vulkan.so", "libggml.so.0", "libllama.so.0")
    assert "libvulkan.so.1" in system and "never shipped" in system["libvulkan.so.1"]["provided_by"]
    assert set(system) == {"libc.so.6", "libstdc++.so.6", "libssl.so.3", "libgomp.so.1", "libvulkan.so.1"}
    assert system["libc.so.6"]["versions"] == ["GLIBC_2.17", "GLIBC_2.34", "GLIBC_2.4"]


def test_a_library_outside_ship_libraries_is_a_config_error(tmp_path: Path) -> None:
    graph = {"llama-server": (["libfancy.so.2"], None), "libfancy.so.2": ([], "libfancy.so.2")}
    with pytest.raises(ConfigError, match="does not allow it in ship.libraries"):
        resolve_binaries(_bin(tmp_path, graph), _recipe("linux-x86_64-cpu"), _fake(graph))


def test_a_symlink_out_of_the_build_output_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere" / "libllama.so.0"
    outside.parent.mkdir()
    outside.write_bytes(b"\x7fELF")
    graph = {"llama-server": (["libllama.so.0"], None), "libllama.so.0": ([], "libllama.so.0")}
    bin_dir = _bin(tmp_path, {"llama-server": graph["llama-server"]}, {"libllama.so.0": str(outside)})
    with pytest.raises(BuildError, match="outside the build output"):
        resolve_binaries(bin_dir, _recipe("linux-x86_64-cpu"), _fake(graph))


def test_missing_binary(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="`llama-server` .* is not in the build output"):
        resolve_binaries(_bin(tmp_path, {}), _recipe("linux-x86_64-cpu"), _fake({}))


# --- parsers on recorded tool output -----------------------------------------------------------

READELF = """
Dynamic section at offset 0x2dd8 contains 30 entries:
  Tag        Type                         Name/Value
 0x0000000000000001 (NEEDED)             Shared library: [libggml-base.so.0]
 0x0000000000000001 (NEEDED)             Shared library: [libgomp.so.1]
 0x000000000000000e (SONAME)             Library soname: [libggml.so.0]
 0x000000000000001d (RUNPATH)            Library runpath: [$ORIGIN:/opt/x]

Version needs section '.gnu.version_r' contains 2 entries:
 Addr: 0x0000000000001718  Offset: 0x00001718  Link: 7 (.dynstr)
  000000: Version: 1  File: libgomp.so.1  Cnt: 1
  0x0010:   Name: GOMP_4.0  Flags: none  Version: 4
  0x0020: Version: 1  File: libc.so.6  Cnt: 2
  0x0030:   Name: GLIBC_2.34  Flags: none  Version: 12
  0x0040:   Name: GLIBC_2.2.5  Flags: none  Version: 11
"""

OBJDUMP_PE = """
The Import Tables (interpreted .idata section contents)
 vma:            Hint    Time      Forward  DLL       First
\tDLL Name: KERNEL32.dll
\tvma:  Hint/Ord Member-Name Bound-To
\tDLL Name: ggml-base.dll
\tDLL Name: api-ms-win-crt-runtime-l1-1-0.dll
"""

OTOOL_L = """libllama.0.dylib:
\t@rpath/libllama.0.dylib (compatibility version 0.0.0, current version 0.0.5)
\t@rpath/libggml.0.dylib (compatibility version 0.0.0, current version 0.25.3)
\t/System/Library/Frameworks/Metal.framework/Versions/A/Metal (compatibility version 1.0.0, current version 343.19.0)
\t/usr/lib/libc++.1.dylib (compatibility version 1.0.0, current version 1800.105.0)
"""
OTOOL_l = """Load command 12
          cmd LC_RPATH
      cmdsize 32
         path @loader_path (offset 12)
"""


def test_parsers() -> None:
    elf = parse_readelf(Path("x"), READELF)
    assert elf.needed == ("libggml-base.so.0", "libgomp.so.1") and elf.soname == "libggml.so.0"
    assert elf.runpath == ("$ORIGIN", "/opt/x")
    assert elf.versions == {"libc.so.6": ("GLIBC_2.2.5", "GLIBC_2.34"), "libgomp.so.1": ("GOMP_4.0",)}
    pe = parse_objdump_pe(Path("x.exe"), OBJDUMP_PE)
    assert pe.needed == ("KERNEL32.dll", "ggml-base.dll", "api-ms-win-crt-runtime-l1-1-0.dll")
    win = platforms.get("windows")
    assert [win.system_library(n) is not None for n in pe.needed] == [True, False, True]
    mac = parse_otool(Path("libllama.0.dylib"), OTOOL_L, OTOOL_l, is_dylib=True)
    assert mac.soname == "@rpath/libllama.0.dylib"
    assert mac.needed[0] == "@rpath/libggml.0.dylib" and mac.runpath == ("@loader_path",)
    macos = platforms.get("macos")
    assert macos.system_library(mac.needed[1]) == "macOS" and macos.system_library(mac.needed[0]) is None
    assert macos.finds_beside(mac)
    linux = platforms.get("linux")
    assert linux.system_library("libvulkan.so.1") and linux.system_library("libllama.so.0") is None
    assert linux.strip_commands(Path("/s/x"), Path("/d/x.debug"))[1] == ["strip", "--strip-unneeded", "/s/x"]
