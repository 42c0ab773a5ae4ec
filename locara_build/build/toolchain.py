"""Toolchain discovery: which build/sign/run tools this host has, their versions, and how to get the rest.

Every probe returns a :class:`Tool` (found or not, version, path, a one-line detail and the
command that installs it). Requirements are strings such as ``"glslc"`` or ``"nvcc>=12.0"``;
:func:`unmet` says why one is not satisfied. Recipes, backends and platforms state requirements;
``doctor`` and ``build`` check them here; nothing else probes the host.

CMake and ninja come from the pinned PyPI wheels (``cmake``, ``ninja``; dependencies of
locara-build) when installed, so every runner configures with the same CMake whatever its image
ships; ``LOCARA_CMAKE`` / ``LOCARA_NINJA`` force another binary, and PATH is the fallback.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from locara_build.build.platforms import host as platforms
from locara_build.build.toolchains import probes as toolchains_probes
from locara_build.build.tooltypes import HostSetup, Requirement, Tool
from locara_build.core.run import run, which

__all__ = [
    "Tool",
    "Requirement",
    "HostSetup",
    "TOOLS",
    "probe",
    "probe_all",
    "parse_requirement",
    "unmet",
    "cmake_constraint",
    "clear_cache",
]

# --- data -----------------------------------------------------------------------------------


# --- helpers --------------------------------------------------------------------------------

_VERSION_RE = re.compile(r"(\d+(?:\.\d+)+|\d+)")


def _first_version(text: str) -> str | None:
    m = _VERSION_RE.search(text)
    return m.group(1) if m else None


def _output(argv: list[str], timeout: float = 30) -> str | None:
    """stdout+stderr of ``argv``, or None when it cannot run or fails."""
    try:
        res = run(argv, check=False, echo=False, timeout=timeout)
    except Exception:  # noqa: BLE001 - a probe never fails doctor
        return None
    if res.returncode != 0:
        return None
    return (res.stdout or "") + (res.stderr or "")


def _on_path(*names: str) -> str | None:
    for name in names:
        found = which(name)
        if found:
            return found
    return None


def _missing(name: str, fix: str, why: str = "") -> Tool:
    return Tool(name=name, found=False, detail=why or f"{name} not found on PATH", fix=fix)


def cmake_constraint() -> SpecifierSet:
    """The CMake version locara-build supports: the ``cmake`` pin of its own dependencies."""
    try:
        for req in importlib.metadata.requires("locara-build") or []:
            m = re.match(r"^\s*cmake\s*([<>=!~][^;]*)", req)
            if m:
                return SpecifierSet(m.group(1).replace(" ", ""))
    except importlib.metadata.PackageNotFoundError:
        pass
    return SpecifierSet(">=3.28")


def _satisfies(version: str | None, spec: SpecifierSet) -> bool:
    if version is None:
        return False
    try:
        return Version(version) in spec
    except InvalidVersion:
        return False


# --- probes ---------------------------------------------------------------------------------

FIXES: dict[str, str] = {
    "cmake": "pip install 'cmake{spec}' (locara-build's pinned dependency) or set LOCARA_CMAKE=/path/to/cmake",
    "ninja": "pip install ninja (locara-build's dependency) or apt-get install ninja-build",
    "cc": "apt-get install build-essential (gcc/g++) or clang; or set CC",
    "cxx": "apt-get install build-essential (gcc/g++) or clang; or set CXX",
    "ccache": "apt-get install ccache (optional: rebuilds after an upstream bump drop from minutes to seconds)",
    "nvcc": "install the CUDA toolkit (>= 12.0) from NVIDIA and put nvcc on PATH, or set CUDACXX=/path/to/nvcc",
    "vulkan-headers": (
        "apt-get install libvulkan-dev (Debian 12's 1.3.239 is too old: unpack trixie's libvulkan-dev "
        ".deb with dpkg -x into a prefix and set LOCARA_VULKAN_INCLUDE=<prefix>/usr/include; docs/recipes.md)"
    ),
    "glslc": "apt-get install glslc (or the LunarG Vulkan SDK)",
    "xcode": "install Xcode and run `xcode-select --install` (macOS only: build this recipe on a macOS runner)",
    "metal": "install Xcode (the metal compiler ships with it; macOS only)",
    "mingw": "apt-get install mingw-w64",
    "zig": "pip install ziglang (the zig compiler as a PyPI wheel) or put zig on PATH",
    "wine": "apt-get install wine64 (Debian) / wine (Ubuntu)",
    "minisign": "apt-get install minisign",
    "osslsigncode": "apt-get install osslsigncode",
    "codesign": "install the Xcode command line tools (`xcode-select --install`; macOS only)",
    "notarytool": "install Xcode 13+ (`xcrun notarytool`; macOS only)",
    "openssl": "apt-get install libssl-dev (OpenSSL 3 headers)",
    "clang": "apt-get install clang-16 (Debian 12; Ubuntu 22.04: clang-15) or set LOCARA_CLANG=/path/to/clang",
    "aarch64-binutils": "apt-get install binutils-aarch64-linux-gnu (ld, strip, objcopy for arm64 ELF files)",
    "dpkg-deb": "apt-get install dpkg (Debian/Ubuntu hosts have it: the arm64 sysroot is unpacked with it)",
    "qemu-aarch64": "apt-get install qemu-user-static (runs arm64 binaries for the smoke test)",
    "msvc": "build this recipe on its Windows runner (Visual Studio 2022 Build Tools: nvcc for Windows needs cl.exe)",
    "hipcc": "install ROCm >= 6.1 from AMD's apt repository (repo.radeon.com; Debian 12's hipcc is 5.2.3) "
             "or set HIPCXX; docs/backends.md, \"ROCm\"",
}


def _fix(name: str) -> str:
    return FIXES.get(name, f"install {name}").replace("{spec}", str(cmake_constraint()))


def _probe_cmake() -> Tool:
    constraint = cmake_constraint()
    candidates: list[tuple[str, str]] = []
    forced = os.environ.get("LOCARA_CMAKE")
    if forced:
        candidates.append((forced, "LOCARA_CMAKE"))
    else:
        try:
            import cmake as cmake_wheel  # the pinned PyPI wheel

            exe = Path(cmake_wheel.CMAKE_BIN_DIR) / ("cmake" + platforms.host_exe_suffix())
            if exe.is_file():
                candidates.append((str(exe), "pinned PyPI wheel"))
        except ImportError:
            pass
        on_path = which("cmake")
        if on_path:
            candidates.append((on_path, "PATH"))
    rejected: list[str] = []
    for exe, origin in candidates:
        out = _output([exe, "--version"])
        version = _first_version(out.splitlines()[0]) if out else None
        if version is None:
            rejected.append(f"{exe} ({origin}) does not run")
            continue
        if not _satisfies(version, constraint):
            rejected.append(f"{exe} ({origin}) is {version}, outside {constraint}")
            continue
        return Tool("cmake", True, version, exe, f"{origin}; supported: {constraint}", _fix("cmake"))
    why = "; ".join(rejected) if rejected else "cmake not found (no wheel, not on PATH)"
    return _missing("cmake", _fix("cmake"), why)


def _probe_ninja() -> Tool:
    candidates: list[tuple[str, str]] = []
    forced = os.environ.get("LOCARA_NINJA")
    if forced:
        candidates.append((forced, "LOCARA_NINJA"))
    else:
        try:
            import ninja as ninja_wheel

            exe = Path(ninja_wheel.BIN_DIR) / ("ninja" + platforms.host_exe_suffix())
            if ninja_wheel.BIN_DIR and exe.is_file():
                candidates.append((str(exe), "PyPI wheel"))
        except ImportError:
            pass
        on_path = _on_path("ninja", "ninja-build")
        if on_path:
            candidates.append((on_path, "PATH"))
    for exe, origin in candidates:
        out = _output([exe, "--version"])
        if out:
            return Tool("ninja", True, _first_version(out), exe, origin, _fix("ninja"))
    return _missing("ninja", _fix("ninja"))


def _compiler(name: str, env_var: str, names: tuple[str, ...]) -> Tool:
    chosen = os.environ.get(env_var)
    exe = which(chosen.split()[0]) if chosen else _on_path(*names)
    if not exe:
        return _missing(name, _fix(name), f"no C{'++' if name == 'cxx' else ''} compiler ({', '.join(names)}) on PATH")
    out = _output([exe, "--version"]) or ""
    first = out.splitlines()[0] if out else ""
    real = os.path.realpath(exe)
    kind = "clang" if "clang" in first.lower() else "gcc" if ("gcc" in first.lower() or "g++" in first.lower()
                                                                or "free software foundation" in out.lower()) else Path(real).name
    version = None
    if kind == "gcc":
        full = _output([exe, "-dumpfullversion"])
        version = full.strip() if full else _first_version(first)
    else:
        m = re.search(r"version\s+(\d+(?:\.\d+)+)", first)
        version = m.group(1) if m else _first_version(first)
    return Tool(name, True, version, exe, f"{kind} {version}", _fix(name), {"id": kind})


def _probe_simple(name: str, exes: tuple[str, ...], args: list[str], parse: Callable[[str], str | None] | None = None) -> Tool:
    exe = _on_path(*exes)
    if not exe:
        return _missing(name, _fix(name), f"{' / '.join(exes)} not found on PATH")
    out = _output([exe, *args])
    if out is None:
        return Tool(name, True, None, exe, f"{exe} found, but `{Path(exe).name} {' '.join(args)}` failed", _fix(name))
    first = out.strip().splitlines()[0] if out.strip() else ""
    version = parse(out) if parse else _first_version(first)
    return Tool(name, True, version, exe, first, _fix(name))


def _probe_nvcc() -> Tool:
    candidates = [os.environ.get("CUDACXX"), which("nvcc")]
    for root in (os.environ.get("CUDA_PATH"), os.environ.get("CUDA_HOME"), "/usr/local/cuda"):
        if root:
            candidates.append(str(Path(root) / "bin" / ("nvcc" + platforms.host_exe_suffix())))
    for exe in candidates:
        if not exe or not Path(exe).is_file():
            continue
        out = _output([exe, "--version"])
        if not out:
            continue
        m = re.search(r"release (\d+\.\d+), V(\d+(?:\.\d+)+)", out)
        version = m.group(2) if m else _first_version(out)
        cuda = m.group(1) if m else version
        on_path = which("nvcc") == exe
        return Tool(
            "nvcc", True, version, exe, f"CUDA {cuda}" + ("" if on_path else " (not on PATH: CUDACXX is set for builds)"),
            _fix("nvcc"), {"cuda": cuda or "", "on_path": str(on_path).lower()},
        )
    return _missing("nvcc", _fix("nvcc"), "nvcc not found (PATH, $CUDACXX, $CUDA_PATH, /usr/local/cuda)")


_VK_COMPLETE_RE = re.compile(r"#define\s+VK_HEADER_VERSION_COMPLETE\s+VK_MAKE_API_VERSION\(\s*\d+\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*VK_HEADER_VERSION\s*\)")
_VK_PATCH_RE = re.compile(r"#define\s+VK_HEADER_VERSION\s+(\d+)")


def vulkan_header_version(include_dir: Path) -> str | None:
    """``1.3.239`` from ``<include_dir>/vulkan/vulkan_core.h`` (VK_HEADER_VERSION_COMPLETE)."""
    header = include_dir / "vulkan" / "vulkan_core.h"
    try:
        text = header.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    complete, patch = _VK_COMPLETE_RE.search(text), _VK_PATCH_RE.search(text)
    if not complete or not patch:
        return None
    return f"{complete.group(1)}.{complete.group(2)}.{patch.group(1)}"


def _probe_vulkan_headers() -> Tool:
    # usable or provisionable headers (VK_EXT_layer_settings probed): locara_build/build/toolchains/vulkan.py
    usable = toolchains_probes.vulkan_headers()
    if usable is not None:
        return usable
    dirs: list[tuple[str, str]] = []
    provisioned = os.environ.get("LOCARA_VULKAN_INCLUDE")
    if provisioned:
        dirs.append((provisioned, "LOCARA_VULKAN_INCLUDE"))
    if os.environ.get("VULKAN_SDK"):
        dirs.append((str(Path(os.environ["VULKAN_SDK"]) / "include"), "VULKAN_SDK"))
    dirs += [(d, "system") for d in ("/usr/include", "/usr/local/include", "/opt/homebrew/include")]
    for d, origin in dirs:
        version = vulkan_header_version(Path(d))
        if version:
            return Tool("vulkan-headers", True, version, d, f"Vulkan headers {version} ({origin})", _fix("vulkan-headers"),
                        {"origin": origin})
        if origin == "LOCARA_VULKAN_INCLUDE":
            return _missing("vulkan-headers", _fix("vulkan-headers"), f"LOCARA_VULKAN_INCLUDE={d} has no vulkan/vulkan_core.h")
    return _missing("vulkan-headers", _fix("vulkan-headers"), "no vulkan/vulkan_core.h in the include dirs")


_OPENSSL_RE = re.compile(r'#\s*define\s+OPENSSL_VERSION_STR\s+"([^"]+)"')
_OPENSSL_OLD_RE = re.compile(r'#\s*define\s+OPENSSL_VERSION_TEXT\s+"OpenSSL\s+(\d+\.\d+\.\d+)')


def _probe_openssl() -> Tool:
    roots = [Path("/usr/include"), Path("/usr/local/include"), Path("/opt/homebrew/opt/openssl/include")]
    candidates: list[Path] = []
    for root in roots:
        candidates.append(root / "openssl" / "opensslv.h")
        candidates += sorted(root.glob("*-linux-gnu*/openssl/opensslv.h"))
    for header in candidates:
        try:
            text = header.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        m = _OPENSSL_RE.search(text) or _OPENSSL_OLD_RE.search(text)
        if m:
            return Tool("openssl", True, m.group(1), str(header.parent.parent), f"OpenSSL {m.group(1)} headers", _fix("openssl"))
    return _missing("openssl", _fix("openssl"), "no openssl/opensslv.h (OpenSSL development headers)")


def _probe_zig() -> Tool:
    """zig from the ``ziglang`` wheel (``python -m ziglang``) or PATH."""
    try:
        import ziglang

        exe = Path(ziglang.__file__).parent / ("zig" + platforms.host_exe_suffix())
        if exe.is_file():
            out = _output([sys.executable, "-m", "ziglang", "version"])
            version = out.strip() if out else None
            return Tool("zig", True, version, str(exe), f"zig {version} (PyPI ziglang wheel)", _fix("zig"))
    except ImportError:
        pass
    return _probe_simple("zig", ("zig",), ["version"])


def _mingw_headers_version() -> str | None:
    for header in (Path("/usr/share/mingw-w64/include/_mingw_mac.h"), Path("/usr/x86_64-w64-mingw32/include/_mingw_mac.h")):
        try:
            text = header.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        major = re.search(r"#define\s+__MINGW64_VERSION_MAJOR\s+(\d+)", text)
        minor = re.search(r"#define\s+__MINGW64_VERSION_MINOR\s+(\d+)", text)
        if major:
            return f"{major.group(1)}.{minor.group(1) if minor else 0}"
    return None


def _probe_mingw() -> Tool:
    tool = _probe_simple("mingw", ("x86_64-w64-mingw32-gcc", "x86_64-w64-mingw32-gcc-posix"), ["-dumpfullversion"])
    if not tool.found:
        return tool
    headers = _mingw_headers_version()
    return Tool("mingw", True, headers or tool.version, tool.path,
                f"mingw-w64 headers {headers or '?'}, gcc {tool.version}", _fix("mingw"))


def _probe_xcode() -> Tool:
    if platforms.host_os() != "macos":
        return _missing("xcode", _fix("xcode"), "Xcode exists only on macOS")
    return _probe_simple("xcode", ("xcodebuild",), ["-version"])


def _probe_xcrun_tool(name: str, tool: str, args: list[str]) -> Tool:
    if platforms.host_os() != "macos":
        return _missing(name, _fix(name), f"{name} exists only on macOS")
    xcrun = which("xcrun")
    if not xcrun:
        return _missing(name, _fix(name), "xcrun not found")
    path = _output([xcrun, "-f", tool])
    if not path:
        return _missing(name, _fix(name), f"`xcrun -f {tool}` found nothing")
    out = _output([xcrun, tool, *args]) or ""
    return Tool(name, True, _first_version(out), path.strip(), out.strip().splitlines()[0] if out.strip() else tool, _fix(name))


def _probe_codesign() -> Tool:
    if platforms.host_os() != "macos":
        return _missing("codesign", _fix("codesign"), "codesign exists only on macOS")
    exe = which("codesign")
    return Tool("codesign", True, None, exe, "codesign", _fix("codesign")) if exe else _missing("codesign", _fix("codesign"))


def _glslc_version(out: str) -> str | None:
    m = re.search(r"shaderc v?(\d+(?:\.\d+)+)", out)
    return m.group(1) if m else _first_version(out)


def _wine_version(out: str) -> str | None:
    m = re.search(r"wine-(\d+(?:\.\d+)*)", out)
    return m.group(1) if m else _first_version(out)


def _probe_clang() -> Tool:
    """clang for the Linux arm64 recipes (locara_build/build/toolchains/arm64.py): >= 15, newest first."""
    from locara_build.build.toolchains import arm64

    found = arm64.find_clang()
    if found is None:
        return _missing("clang", _fix("clang"), f"no clang >= {arm64.MIN_CLANG} (clang-N or clang on PATH, $LOCARA_CLANG)")
    return Tool("clang", True, found.version, str(found.cc), f"clang {found.version} (+ {found.cxx.name})", _fix("clang"))


def _probe_msvc() -> Tool:
    if platforms.host_os() != "windows":
        return _missing("msvc", _fix("msvc"), "MSVC (cl.exe) exists only on Windows")
    return _probe_simple("msvc", ("cl",), [])


def _hip_version(out: str) -> str | None:
    m = re.search(r"HIP version:\s*(\d+(?:\.\d+)+)", out)
    return m.group(1) if m else _first_version(out)


def _probe_hipcc() -> Tool:
    exe = _on_path("hipcc") or next((str(p) for p in (Path("/opt/rocm/bin/hipcc"),) if p.is_file()), None)
    if not exe:
        return _missing("hipcc", _fix("hipcc"), "hipcc not found (PATH, /opt/rocm/bin)")
    out = _output([exe, "--version"]) or ""
    version = _hip_version(out)
    return Tool("hipcc", True, version, exe, f"HIP {version}" if version else "hipcc", _fix("hipcc"))


def _probe_qemu_aarch64() -> Tool:
    from locara_build.build.toolchains import arm64

    exe = arm64.find_qemu()
    if exe is None:
        return _missing("qemu-aarch64", _fix("qemu-aarch64"), "qemu-aarch64-static / qemu-aarch64 not found on PATH")
    out = _output([str(exe), "--version"]) or ""
    return Tool("qemu-aarch64", True, _first_version(out), str(exe), (out.splitlines() or [""])[0], _fix("qemu-aarch64"))


TOOLS: dict[str, Callable[[], Tool]] = {
    "cmake": _probe_cmake,
    "ninja": _probe_ninja,
    "cc": lambda: _compiler("cc", "CC", ("cc", "gcc", "clang")),
    "cxx": lambda: _compiler("cxx", "CXX", ("c++", "g++", "clang++")),
    "ccache": lambda: _probe_simple("ccache", ("ccache",), ["--version"]),
    "nvcc": _probe_nvcc,
    "vulkan-headers": _probe_vulkan_headers,
    "vulkan-device": toolchains_probes.vulkan_device,  # real GPU or only lavapipe
    "cublas": toolchains_probes.cublas,
    "glslc": lambda: _probe_simple("glslc", ("glslc",), ["--version"], _glslc_version),
    "openssl": _probe_openssl,
    "xcode": _probe_xcode,
    "metal": lambda: _probe_xcrun_tool("metal", "metal", ["--version"]),
    "mingw": _probe_mingw,
    "zig": _probe_zig,
    "wine": lambda: _probe_simple("wine", ("wine", "wine64"), ["--version"], _wine_version),
    "minisign": lambda: _probe_simple("minisign", ("minisign",), ["-v"]),
    "osslsigncode": lambda: _probe_simple("osslsigncode", ("osslsigncode",), ["--version"]),
    "codesign": _probe_codesign,
    "notarytool": lambda: _probe_xcrun_tool("notarytool", "notarytool", ["--version"]),
    "clang": _probe_clang,
    "aarch64-binutils": lambda: _probe_simple("aarch64-binutils", ("aarch64-linux-gnu-ld",), ["--version"]),
    "dpkg-deb": lambda: _probe_simple("dpkg-deb", ("dpkg-deb",), ["--version"]),
    "qemu-aarch64": _probe_qemu_aarch64,
    "msvc": _probe_msvc,
    "hipcc": _probe_hipcc,
}


@functools.cache
def _probe_cached(name: str, path_env: str) -> Tool:
    return TOOLS[name]()


def probe(name: str) -> Tool:
    """Probe one tool (cached per process and PATH)."""
    if name not in TOOLS:
        return Tool(name, False, detail=f"doctor has no probe for `{name}`",
                    fix=f"fix the requirement name; known: {', '.join(TOOLS)}")
    return _probe_cached(name, os.environ.get("PATH", ""))


def probe_all(names: Iterable[str] | None = None) -> dict[str, Tool]:
    return {n: probe(n) for n in (names if names is not None else TOOLS)}


def clear_cache() -> None:
    _probe_cached.cache_clear()


# --- requirements ---------------------------------------------------------------------------

_REQ_RE = re.compile(r"^\s*([A-Za-z0-9_.+-]+?)\s*((?:[<>=!~]=?|===).*)?$")


def parse_requirement(text: str) -> Requirement:
    m = _REQ_RE.match(text)
    if not m:
        return Requirement(text.strip(), None, text)
    name, spec = m.group(1), (m.group(2) or "").strip()
    try:
        return Requirement(name, SpecifierSet(spec.replace(" ", "")) if spec else None, text)
    except InvalidSpecifier:
        return Requirement(name, None, text)


def unmet(text: str, tools: Mapping[str, Tool] | None = None) -> tuple[str, str] | None:
    """``(reason, fix)`` when requirement ``text`` is not met on this host, else None."""
    req = parse_requirement(text)
    tool = (tools or {}).get(req.name) or probe(req.name)
    if not tool.found:
        return (f"{req.name} not found: {tool.detail}" if tool.detail and req.name not in tool.detail
                else tool.detail or f"{req.name} not found"), tool.fix
    if req.spec is not None and not _satisfies(tool.version, req.spec):
        have = tool.version or "an unknown version"
        return f"{req.name} {have} at {tool.path} does not satisfy {req.spec}", tool.fix
    return None
