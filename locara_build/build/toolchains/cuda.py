"""The CUDA toolkit: nvcc, the architectures it can target, cuBLAS, the driver stub, and the
runtime libraries an artifact bundles.

Runtime policy (docs/backends.md, "CUDA"): the artifact ships ``libcudart``, ``libcublas`` and
``libcublasLt`` of the toolkit's major version beside the binary (``$ORIGIN``), which NVIDIA's
CUDA EULA (Attachment A) allows to redistribute; the user needs only the NVIDIA *driver*
(``libcuda.so.1``, never shipped) at or above :data:`MIN_DRIVER` for that major version.

Provisioning, only for what the host's toolkit lacks (a toolkit assembled from NVIDIA's PyPI
wheels, as on the development machines, has nvcc and cudart but no cuBLAS and no driver stub):

* cuBLAS: the pinned ``nvidia-cublas`` wheel (PyPI, sha256-checked) unpacked into
  ``<toolchains>/cublas-<ver>/`` and handed to CMake's FindCUDAToolkit as
  ``CUDA_cublas_LIBRARY`` / ``CUDA_cublasLt_LIBRARY`` + ``CMAKE_CUDA_STANDARD_INCLUDE_DIRECTORIES``.
* ``libcuda.so``: ggml-cuda links the driver API (VMM). With no driver and no toolkit stub on the
  build host, a link-time stand-in with the driver's soname (``libcuda.so.1``, no code) is built in
  ``<toolchains>/cuda-stubs/`` (exactly what the toolkit's own ``stubs/libcuda.so`` is). It is
  never shipped: at run time the real driver provides every symbol.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from locara_build.build.toolchains._common import (
    Finding,
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
    "MIN_DRIVER",
    "CUBLAS_PINS",
    "Toolkit",
    "find",
    "parse_arch_list",
    "arch_supported",
    "runtime_libraries",
    "min_driver",
    "cmake_defines",
    "prepare",
    "runtime_dirs",
    "findings",
]

# Minimum Linux driver for binaries built with each CUDA major version (CUDA release notes,
# "CUDA Toolkit and Corresponding Driver Versions": 12.0 GA >= 525.60.13, 13.0 GA >= 580.65.06).
# Minor-version compatibility: anything built with 13.x runs on any 13.x-capable driver.
MIN_DRIVER: dict[int, str] = {12: "525.60.13", 13: "580.65.06"}

# Architectures each nvcc major can target (`nvcc --list-gpu-arch`). CUDA 13 dropped Maxwell,
# Pascal and Volta (compute_50..72); measured here with nvcc 13.0.88.
KNOWN_ARCHS: dict[int, frozenset[int]] = {
    12: frozenset({50, 52, 53, 60, 61, 62, 70, 72, 75, 80, 86, 87, 89, 90, 100, 101, 103, 120, 121}),
    13: frozenset({75, 80, 86, 87, 88, 89, 90, 100, 103, 110, 120, 121}),
}


@dataclass(frozen=True)
class WheelPin:
    requirement: str  # what `pip download` asks for
    filename: str
    sha256: str
    prefix: str  # folder inside the wheel that holds include/ and lib/

    @property
    def version(self) -> str:
        return self.requirement.split("==", 1)[1]


# cuBLAS for a toolkit that lacks it, per CUDA major (the wheel also serves as the bundled runtime).
CUBLAS_PINS: dict[int, WheelPin] = {
    13: WheelPin(
        requirement="nvidia-cublas==13.1.1.3",
        filename="nvidia_cublas-13.1.1.3-py3-none-manylinux_2_27_x86_64.whl",
        sha256="37936a16db8fe4ac1f065c2139360608a543a09275cb1a1af612e08cfa065436",
        prefix="nvidia/cu13/",
    ),
}


@dataclass(frozen=True)
class Toolkit:
    nvcc: Path  # the real nvcc inside the toolkit (not a wrapper script on PATH)
    root: Path
    version: str  # "13.0.88"
    archs: tuple[int, ...]  # compute capabilities nvcc can target
    lib_dir: Path
    include_dir: Path
    cublas_lib: Path | None  # folder with libcublas.so in the toolkit itself
    driver_lib: Path | None  # a libcuda.so to link against (toolkit stub or an installed driver)

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])


_RELEASE = re.compile(r"release (\d+\.\d+), V(\d+\.\d+\.\d+)")
_TOP = re.compile(r"^#\$ TOP=(.+)$", re.M)
_HERE = re.compile(r"^#\$ _HERE_=(.+)$", re.M)
_TARGET_DIR = re.compile(r"^#\$ _TARGET_DIR_=(\S+)$", re.M)


def parse_arch_list(text: str) -> tuple[int, ...]:
    """``nvcc --list-gpu-arch`` -> compute capabilities (``compute_89`` -> 89)."""
    return tuple(sorted({int(m) for m in re.findall(r"compute_(\d+)", text)}))


def _nvcc_candidates() -> list[Path]:
    out: list[Path] = []
    for var in ("CUDACXX",):
        if os.environ.get(var):
            out.append(Path(os.environ[var]))
    for var in ("CUDAToolkit_ROOT", "CUDA_PATH", "CUDA_HOME"):
        if os.environ.get(var):
            out.append(Path(os.environ[var]) / "bin" / "nvcc")
    on_path = _run.which("nvcc")
    if on_path:
        out.append(Path(on_path))
    out.append(Path("/usr/local/cuda/bin/nvcc"))
    return out


def _first_existing(*paths: Path) -> Path | None:
    return next((p for p in paths if p.exists()), None)


def find() -> Toolkit | None:
    """The CUDA toolkit nvcc belongs to (None when there is no nvcc); cached per process and search path."""
    key = tuple(os.environ.get(v, "") for v in ("CUDACXX", "CUDAToolkit_ROOT", "CUDA_PATH", "CUDA_HOME", "PATH"))
    return _find_cached(key)


@functools.cache
def _find_cached(key: tuple[str, ...]) -> Toolkit | None:
    for candidate in _nvcc_candidates():
        if not candidate.is_file():
            continue
        res = _run.run([candidate, "--version"], check=False, echo=False, timeout=60)
        m = _RELEASE.search(res.stdout)
        if not res.ok or not m:
            continue
        # nvcc on PATH may be a wrapper script: ask nvcc where its toolkit is.
        dry = _run.run([candidate, "--dryrun", "-E", "-x", "cu", os.devnull], check=False, echo=False, timeout=60)
        text = dry.stdout + dry.stderr
        here = _HERE.search(text)
        top = _TOP.search(text)
        root = Path(top.group(1)).resolve() if top else (Path(here.group(1)).parent if here else candidate.parent.parent)
        target = _TARGET_DIR.findall(text)
        target_dir = root / target[-1] if target else root
        lib_dir = _first_existing(target_dir / "lib", root / "lib64", root / "lib") or root / "lib64"
        include_dir = _first_existing(target_dir / "include", root / "include") or root / "include"
        nvcc = root / "bin" / "nvcc"
        archs = _run.run([nvcc if nvcc.exists() else candidate, "--list-gpu-arch"], check=False, echo=False, timeout=60)
        cublas = next(
            (d for d in (lib_dir, root / "lib64", root / "lib") if (d / "libcublas.so").exists()),
            None,
        )
        if cublas is not None and not (include_dir / "cublas_v2.h").exists():
            cublas = None
        driver = _first_existing(
            *(d / "stubs" / "libcuda.so" for d in (lib_dir, root / "lib64", root / "lib")),
            Path("/usr/lib/x86_64-linux-gnu/libcuda.so"),
            Path("/usr/lib64/libcuda.so"),
        )
        return Toolkit(
            nvcc=nvcc if nvcc.exists() else candidate,
            root=root,
            version=m.group(2),
            archs=parse_arch_list(archs.stdout),
            lib_dir=lib_dir,
            include_dir=include_dir,
            cublas_lib=cublas,
            driver_lib=driver,
        )
    return None


_ARCH = re.compile(r"^(\d+)([af]?)(-real|-virtual)?$")


def parse_arch(entry: str) -> int:
    m = _ARCH.match(entry.strip())
    if not m:
        raise ValueError(f"not a CMAKE_CUDA_ARCHITECTURES entry: {entry!r}")
    return int(m.group(1))


def arch_supported(entries: str, supported: frozenset[int] | tuple[int, ...]) -> list[str]:
    """Entries of a ``CMAKE_CUDA_ARCHITECTURES`` value that ``supported`` lacks."""
    return [e for e in entries.split(";") if e and parse_arch(e) not in supported]


def runtime_libraries(major: int) -> tuple[str, ...]:
    """Globs of what an artifact bundles for CUDA ``major`` (the recipe's ``ship.runtime``)."""
    return (f"libcudart.so.{major}*", f"libcublas.so.{major}*", f"libcublasLt.so.{major}*")


def min_driver(major: int) -> str:
    return MIN_DRIVER[major]


def _cublas_dir(pin: WheelPin) -> Path:
    return toolchains_dir() / f"cublas-{pin.version}"


def _stub_dir() -> Path:
    return toolchains_dir() / "cuda-stubs"


def cmake_defines(toolkit: Toolkit | None = None) -> dict[str, str]:
    """Host-specific CMake entries for a CUDA build on this host (shown in the plan)."""
    tk = toolkit or find()
    if tk is None:
        return {}
    out: dict[str, str] = {"CMAKE_CUDA_COMPILER": str(tk.nvcc), "CUDAToolkit_ROOT": str(tk.root)}
    if tk.cublas_lib is None and tk.major in CUBLAS_PINS:
        base = _cublas_dir(CUBLAS_PINS[tk.major])
        out["CUDA_cublas_LIBRARY"] = str(base / "lib" / "libcublas.so")
        out["CUDA_cublasLt_LIBRARY"] = str(base / "lib" / "libcublasLt.so")
        out["CMAKE_CUDA_STANDARD_INCLUDE_DIRECTORIES"] = str(base / "include")
    if tk.driver_lib is None:
        out["CUDA_cuda_driver_LIBRARY"] = str(_stub_dir() / "libcuda.so")
    return out


def _provision_cublas(pin: WheelPin) -> Path:
    final = _cublas_dir(pin)
    if (final / "lib" / "libcublas.so").exists():
        return final
    with provision_lock():
        if (final / "lib" / "libcublas.so").exists():
            return final
        downloads = ensure_dir(toolchains_dir() / "wheels")
        wheel = downloads / pin.filename
        if wheel.exists() and sha256_file(wheel) != pin.sha256:
            wheel.unlink()
        if not wheel.exists():
            _run.run(
                [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                 "--dest", str(downloads), pin.requirement],
                error=BuildError,
                what=f"pip download {pin.requirement}",
                hint="cuBLAS comes from PyPI here; check the package index (pip config), or install "
                "the full CUDA toolkit (with cuBLAS) and point CUDAToolkit_ROOT at it.",
                timeout=1800,
            )
        got = sha256_file(wheel)
        if got != pin.sha256:
            raise BuildError(
                f"{wheel} has sha256 {got}, not the pinned {pin.sha256}.",
                hint="Delete it and run again; if NVIDIA republished it, review and bump CUBLAS_PINS.",
            )
        staging = staging_dir(final)
        with zipfile.ZipFile(wheel) as zf:
            for info in zf.infolist():
                if not info.filename.startswith(pin.prefix) or info.is_dir():
                    continue
                rel = Path(info.filename[len(pin.prefix):])
                if rel.is_absolute() or ".." in rel.parts:
                    continue
                dest = staging / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(dest, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
        lib = staging / "lib"
        for versioned in sorted(lib.glob("lib*.so.*")):
            plain = lib / versioned.name.split(".so.")[0]
            link = plain.with_name(plain.name + ".so")
            if not link.exists():
                link.symlink_to(versioned.name)  # what the linker looks for (-lcublas)
        (staging / "PROVENANCE.json").write_text(
            json.dumps({"requirement": pin.requirement, "wheel": pin.filename, "sha256": got}, indent=2, sort_keys=True)
            + "\n",
            encoding="utf-8",
        )
        publish_dir(staging, final)
        wheel.unlink(missing_ok=True)  # 420 MB; PROVENANCE.json keeps its name and sha256
    return final


_STUB_DECL = re.compile(r"\bCUresult\s+(cu[A-Za-z0-9_]+)\s*\(")


def driver_api_symbols(include_dir: Path, cc: str) -> list[str]:
    """Every driver API function ``cuda.h`` declares, under its real symbol name (the header maps
    e.g. ``cuMemAlloc`` to ``cuMemAlloc_v2`` with macros, so it is read through the preprocessor)."""
    res = _run.run(
        [cc, "-E", "-P", "-x", "c", f"-I{include_dir}", str(include_dir / "cuda.h")],
        error=BuildError,
        what="cc -E cuda.h",
        hint="The toolkit's cuda.h should preprocess with the host C compiler.",
        echo=False,
    )
    return sorted(set(_STUB_DECL.findall(res.stdout)))


def _provision_stub(tk: Toolkit) -> Path:
    """A link-time ``libcuda.so`` (soname ``libcuda.so.1``) that defines every driver API function
    of the toolkit's ``cuda.h`` as a dummy, like NVIDIA's ``stubs/libcuda.so``: the linker needs the
    definitions to record ``NEEDED libcuda.so.1`` (with ``--as-needed``, a symbol-less stub is dropped
    and the plugin would then fail to load with "undefined symbol: cuMemCreate")."""
    final = _stub_dir()
    marker = final / "STUB.json"
    try:
        current = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        current = None
    if current and current.get("toolkit") == tk.version and (final / "libcuda.so").exists():
        return final
    with provision_lock():
        cc = _run.which("cc") or _run.which("gcc")
        if cc is None:
            raise BuildError("no C compiler to build the libcuda.so link stub.", hint="Install gcc (build-essential).")
        symbols = driver_api_symbols(tk.include_dir, cc)
        if not symbols:
            raise BuildError(f"found no driver API declarations in {tk.include_dir / 'cuda.h'}.", hint="Check the CUDA toolkit.")
        staging = staging_dir(final)
        src = staging / "libcuda-stub.c"
        lines = [
            "/* Link-time stand-in for the NVIDIA driver library (soname libcuda.so.1), generated by",
            f" * locara-build from CUDA {tk.version}'s cuda.h. Never shipped and never run: at run time the",
            " * real driver's libcuda.so.1 provides these functions. */",
            *(f"int {name}(void) {{ return 999; }}" for name in symbols),  # 999: CUDA_ERROR_UNKNOWN
        ]
        src.write_text("\n".join(lines) + "\n", encoding="utf-8")
        _run.run(
            [cc, "-shared", "-fPIC", "-nostdlib", "-Wl,-soname,libcuda.so.1", "-o", str(staging / "libcuda.so"), str(src)],
            error=BuildError,
            what="cc (libcuda.so stub)",
        )
        (staging / "STUB.json").write_text(
            json.dumps({"toolkit": tk.version, "symbols": len(symbols)}, indent=2) + "\n", encoding="utf-8"
        )
        if final.exists():
            shutil.rmtree(final)
        publish_dir(staging, final)
    return final


def prepare() -> Toolkit:
    """Provision what :func:`cmake_defines` promised (idempotent, cached)."""
    tk = find()
    if tk is None:
        raise BuildError(
            "no CUDA toolkit: nvcc was not found (CUDACXX, CUDAToolkit_ROOT, CUDA_PATH, PATH, /usr/local/cuda).",
            hint="Install the CUDA toolkit >= 13.0 (or NVIDIA's PyPI wheels nvidia-cuda-nvcc + nvidia-cuda-runtime) "
            "and put nvcc on PATH.",
        )
    if tk.cublas_lib is None:
        pin = CUBLAS_PINS.get(tk.major)
        if pin is None:
            raise BuildError(
                f"the CUDA {tk.version} toolkit at {tk.root} has no cuBLAS, and locara-build pins cuBLAS "
                f"only for CUDA {', '.join(map(str, sorted(CUBLAS_PINS)))}.",
                hint="Install the toolkit's cuBLAS (libcublas-dev) or add a pin to CUBLAS_PINS.",
            )
        _provision_cublas(pin)
    if tk.driver_lib is None:
        _provision_stub(tk)
    return tk


def runtime_dirs(toolkit: Toolkit | None = None) -> list[Path]:
    """Where the bundled runtime libraries (``ship.runtime``) are found on this host."""
    tk = toolkit or find()
    if tk is None:
        return []
    dirs = [tk.lib_dir]
    if tk.cublas_lib is not None:
        dirs.append(tk.cublas_lib)
    elif tk.major in CUBLAS_PINS:
        dirs.append(_cublas_dir(CUBLAS_PINS[tk.major]) / "lib")
    return dirs


def findings() -> list[Finding]:
    tk = find()
    if tk is None:
        return [Finding(name="nvcc", ok=False, detail="missing: install the CUDA toolkit >= 13.0 to build CUDA recipes")]
    out = [
        Finding(
            name="nvcc",
            ok=True,
            version=tk.version,
            path=str(tk.nvcc),
            detail=f"targets compute {', '.join(map(str, tk.archs))}; binaries need driver >= {MIN_DRIVER.get(tk.major, '?')}",
            extra={"archs": list(tk.archs), "root": str(tk.root)},
        )
    ]
    if tk.cublas_lib is not None:
        out.append(Finding(name="cublas", ok=True, path=str(tk.cublas_lib), detail="in the toolkit"))
    elif tk.major in CUBLAS_PINS:
        pin = CUBLAS_PINS[tk.major]
        base = _cublas_dir(pin)
        ready = (base / "lib" / "libcublas.so").exists()
        out.append(
            Finding(
                name="cublas (provisioned)",
                ok=True,
                version=pin.version,
                path=str(base),
                detail=("provisioned from PyPI" if ready else f"not in the toolkit; `build` fetches {pin.requirement} from PyPI"),
            )
        )
    else:
        out.append(Finding(name="cublas", ok=False, detail=f"not in the CUDA {tk.version} toolkit and no pin for it"))
    out.append(
        Finding(
            name="libcuda (link)",
            ok=True,
            path=str(tk.driver_lib or _stub_dir() / "libcuda.so"),
            detail="driver/toolkit stub" if tk.driver_lib else "no driver here: a link-only stub is built (never shipped)",
        )
    )
    return out
