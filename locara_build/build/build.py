"""``build``: configure + compile a recipe's targets, stage ``bin/`` into its immutable output dir.

For each planned recipe:

1. ``RecipePlan.output_dir`` (keyed by recipe, upstream commit and patch set) already holds a
   ``build.json``: nothing to do (a no-op rebuild takes well under a second).
2. The prepared source tree must match the plan (:func:`locara_build.upstream.sourcetree.require_tree`)
   and the host must have the recipe's toolchain (:mod:`locara_build.build.doctor`).
3. CMake configure runs only when the build dir's recorded configuration (argv + environment)
   differs from what the plan and this host's setup ask for; then ``cmake --fresh``.
4. ``cmake --build --target <only the recipe's targets>`` with ninja; a progress bar follows
   ninja's ``[n/N]``; the full output goes to ``<work>/logs/build-<recipe>-<time>.log``; ccache
   (when present) gets ``CCACHE_DIR``/``CCACHE_BASEDIR``/``CCACHE_NOHASHDIR`` and a per-build
   stats log from which the hit rate is computed.
5. The shipped binaries and the libraries/plugins matching ``ship.libraries`` are copied into a
   temporary sibling dir with ``build.json`` (versions, argv, durations, hit rate, sha256 of every
   file), which is then renamed to the output dir: it exists complete or not at all.

A build killed (even with SIGKILL) leaves no output dir and a build dir ninja can resume; its
orphaned cmake/ninja, if still running, is stopped by the next run before it starts.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from locara_build.build import doctor, platforms, provision, toolchain
from locara_build.build.cmakevalue import render_define
from locara_build.build.plan import Plan, RecipePlan
from locara_build.build.toolchain import HostSetup, Tool
from locara_build.core import log
from locara_build.core.digest import sha256_file
from locara_build.core.errors import BuildError, BusyError
from locara_build.core.filelock import file_lock
from locara_build.core.run import follow, format_cmd, stop_orphan
from locara_build.core.workdir import WorkDir
from locara_build.pipeline import records
from locara_build.pipeline.records import BuildRecord
from locara_build.upstream.lock import atomic_write_bytes
from locara_build.upstream.sourcetree import require_tree

__all__ = [
    "BUILD_RECORD",
    "BuildResult",
    "build_recipe",
    "is_built",
    "read_build_record",
    "scan_path_leaks",
]

BUILD_RECORD = BuildRecord.FILE
BUILD_SCHEMA = BuildRecord.SCHEMA
CONFIGURE_STAMP = "locara-configure.json"
PID_FILE = "locara-build.pid"
_PROGRESS_RE = re.compile(r"^\[(\d+)/(\d+)\]")


@dataclass(frozen=True)
class BuildResult:
    recipe: str
    output_dir: Path
    status: str  # "built" | "up-to-date"
    seconds: float
    record: BuildRecord

    def to_dict(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe,
            "status": self.status,
            "seconds": round(self.seconds, 3),
            "output_dir": str(self.output_dir),
            "build_key": self.record.build_key,
            "ccache_hit_rate": self.record.ccache.get("hit_rate"),
            "log": self.record.log,
        }


def is_built(output_dir: Path) -> bool:
    """A build output exists only complete: its ``build.json`` is written before the atomic rename."""
    return (output_dir / BUILD_RECORD).is_file() and (output_dir / "bin").is_dir()


def read_build_record(output_dir: Path) -> BuildRecord:
    """The record of the finished build in ``output_dir`` (strict: records.read)."""
    return records.read(BuildRecord, BuildRecord.path(output_dir))


def build_recipe(
    plan: Plan,
    rp: RecipePlan,
    work: WorkDir,
    *,
    tools: Mapping[str, Tool] | None = None,
    jobs: int | None = None,
) -> BuildResult:
    start = time.monotonic()
    if is_built(rp.output_dir):
        return BuildResult(rp.name, rp.output_dir, "up-to-date", time.monotonic() - start, read_build_record(rp.output_dir))

    require_tree(plan.source_dir, plan.lock.commit, plan.patch_set_hash)
    if tools is None:
        needed = {toolchain.parse_requirement(r).name for r in doctor.build_requirements(rp.recipe, platforms.host_os())}
        tools = toolchain.probe_all(sorted(needed | {"ccache"}))
    tools = dict(tools)
    report = doctor.check_recipe(rp.recipe, tools)
    if not report.build.ok:
        raise BuildError(
            f"recipe `{rp.name}` cannot be built on this host: {report.build.why()}.",
            hint=f"{report.build.how()} (`locara-build doctor` lists every tool).",
        )
    setup = provision.host_setup(rp.recipe, tools)
    provision.prepare(rp.recipe)  # provision what the plan points at (Vulkan headers, cuBLAS; cached)

    with _recipe_lock(work, rp.name):
        if is_built(rp.output_dir):  # another run finished it while we waited
            return BuildResult(rp.name, rp.output_dir, "up-to-date", time.monotonic() - start, read_build_record(rp.output_dir))
        return _Builder(plan, rp, work, tools, setup, jobs).run(start)


# --- the work -------------------------------------------------------------------------------


class _Builder:
    def __init__(
        self, plan: Plan, rp: RecipePlan, work: WorkDir, tools: Mapping[str, Tool], setup: HostSetup, jobs: int | None
    ):
        self.plan, self.rp, self.work, self.tools, self.setup, self.jobs = plan, rp, work, tools, setup, jobs
        self.cmake = str(tools["cmake"].path)
        self.ninja = str(tools["ninja"].path)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        logs = work.ensure(work.logs)
        self.log_path = logs / f"build-{rp.name}-{stamp}-{os.getpid()}.log"
        self.stats_path = logs / f"build-{rp.name}-{stamp}-{os.getpid()}.ccache-stats"
        self.durations: dict[str, float] = {}
        self.started_at = _utc_now()
        self.ccache_on = bool(tools.get("ccache") and tools["ccache"].found) and rp.recipe.cmake.get("GGML_CCACHE", True) is not False

    # environment -------------------------------------------------------------------------

    def configure_env(self) -> dict[str, str]:
        return {**self.rp.env, **self.setup.env}

    def build_env(self) -> dict[str, str]:
        env = {**self.configure_env(), "NINJA_STATUS": "[%f/%t] "}
        if self.ccache_on:
            env.update(ccache_env(self.work.ensure(self.work.ccache), self.work.root, self.stats_path))
        return env

    def configure_argv(self) -> list[str]:
        planned = {a[2:].split("=", 1)[0] for a in self.rp.configure_args if a.startswith("-D")}
        host = [render_define(k, v) for k, v in sorted(self.setup.defines.items()) if k not in planned]
        return [*self.rp.configure_args, f"-DCMAKE_MAKE_PROGRAM={self.ninja}", *host]

    # steps -------------------------------------------------------------------------------

    def run(self, start: float) -> BuildResult:
        rp = self.rp
        cmake_dir = self.work.ensure(rp.cmake_dir)
        _stop_orphan(cmake_dir)
        log.info(f"building {rp.name} ({rp.build_key}); log: {self.log_path}")
        self._link_latest_log()
        configured = self.configure(cmake_dir)
        self.compile(cmake_dir)
        t = time.monotonic()
        record = self.stage(configured, t)
        seconds = time.monotonic() - start
        return BuildResult(rp.name, rp.output_dir, "built", seconds, record)

    def configure(self, cmake_dir: Path) -> bool:
        stamp_path = cmake_dir / CONFIGURE_STAMP
        argv = self.configure_argv()
        wanted = {
            "cmake": self.cmake,
            "cmake_version": self.tools["cmake"].version,
            "args": argv,
            "env": dict(sorted(self.configure_env().items())),
        }
        try:
            current = json.loads(stamp_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            current = None
        if current == wanted and (cmake_dir / "CMakeCache.txt").is_file() and (cmake_dir / "build.ninja").is_file():
            log.detail(f"{self.rp.name}: CMake configuration unchanged; not reconfiguring")
            self.durations["configure"] = 0.0
            return False
        stamp_path.unlink(missing_ok=True)  # a configure killed half-way must run again
        fresh = ["--fresh"] if (cmake_dir / "CMakeCache.txt").exists() else []
        t = time.monotonic()
        with log.step(f"configure {self.rp.name}"):
            self._logged([self.cmake, *fresh, *argv], self.configure_env(), cmake_dir, "CMake configure", None)
        self.durations["configure"] = time.monotonic() - t
        atomic_write_bytes(stamp_path, (json.dumps(wanted, indent=2, sort_keys=True) + "\n").encode())
        return True

    def compile(self, cmake_dir: Path) -> None:
        argv = [self.cmake, "--build", str(cmake_dir), "--target", *self.rp.recipe.targets]
        if self.jobs:
            argv += ["--parallel", str(self.jobs)]
        t = time.monotonic()
        with log.step(f"build {self.rp.name}: {' '.join(self.rp.recipe.targets)}"), _NinjaProgress(self.rp.name) as progress:
            self._logged(argv, self.build_env(), cmake_dir, "build", progress.line)
            self.edges = (progress.done, progress.total)
        self.durations["build"] = time.monotonic() - t

    def _logged(
        self, argv: list[str], env: dict[str, str], cmake_dir: Path, what: str, on_line: Callable[[str], None] | None
    ) -> None:
        with open(self.log_path, "a", encoding="utf-8") as fh:
            fh.write(f"+ {format_cmd(argv)}\n")
        tail: deque[str] = deque(maxlen=400)

        def line(text: str) -> None:
            tail.append(text)
            if on_line:
                on_line(text)

        rc = follow(argv, env=env, log_path=self.log_path, pid_file=cmake_dir / PID_FILE, on_line=line, error=BuildError)
        if rc != 0:
            raise self._failure(what, rc, list(tail))

    def _failure(self, what: str, rc: int, lines: list[str]) -> BuildError:
        markers = ("FAILED:",) if what == "build" else ("CMake Error",)
        first = next((i for i, text in enumerate(lines) if text.startswith(markers)), None)
        if what == "build":  # the last failing edge is the most relevant one
            first = next((i for i in range(len(lines) - 1, -1, -1) if lines[i].startswith("FAILED:")), first)
        shown = lines[first : first + 40] if first is not None else lines[-25:]
        status = f"signal {-rc}" if rc < 0 else f"exit status {rc}"
        failed = ""
        if first is not None and what == "build":
            failed = ": " + lines[first].removeprefix("FAILED:").strip()
        previous = [p.name for p in self.rp.output_dir.parent.glob("*") if is_built(p)] if self.rp.output_dir.parent.is_dir() else []
        kept = (f" Earlier builds of this recipe are untouched: {', '.join(sorted(previous))}." if previous else "")
        return BuildError(
            f"{what} of recipe `{self.rp.name}` failed ({status}){failed}. Full log: {self.log_path}.\n"
            "Last lines:\n" + "\n".join(shown),
            hint=(
                "Fix the error above (after an upstream bump it is usually a patch that needs "
                f"updating: `locara-build patches check`), then run `locara-build build -r {self.rp.name}` "
                "again; finished objects are reused." + kept
            ),
            details={"recipe": self.rp.name, "log": str(self.log_path), "exit_status": rc},
        )

    def _link_latest_log(self) -> None:
        link = self.log_path.with_name(f"build-{self.rp.name}.latest.log")
        with contextlib.suppress(OSError):
            tmp = link.with_name(link.name + f".{os.getpid()}")
            tmp.unlink(missing_ok=True)
            os.symlink(self.log_path.name, tmp)
            os.replace(tmp, link)

    # staging -----------------------------------------------------------------------------

    def stage(self, configured: bool, started: float) -> BuildRecord:
        rp, recipe = self.rp, self.rp.recipe
        out = rp.output_dir
        parent = self.work.ensure(out.parent)
        for stale in parent.glob(f".{rp.build_key}.partial-*"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp = parent / f".{rp.build_key}.partial-{os.getpid()}"
        bin_dir = tmp / "bin"
        bin_dir.mkdir(parents=True)
        built_bin = rp.cmake_dir / "bin"
        exe = recipe.exe_suffix
        for name in recipe.ship.binaries:
            src = built_bin / f"{name}{exe}"
            if not src.is_file():
                raise BuildError(
                    f"recipe `{rp.name}` built, but {src} (from ship.binaries) does not exist. Log: {self.log_path}.",
                    hint=f"Check `targets` and `ship.binaries` in {recipe.path}.",
                )
            shutil.copy2(src, bin_dir / src.name)
        for pattern in recipe.ship.libraries:
            for src in sorted([*built_bin.glob(pattern), *(rp.cmake_dir / "lib").glob(pattern)]):
                _copy_preserving_links(src, bin_dir / src.name)
        for pattern in recipe.ship.runtime:
            matches = [p for d in self.setup.runtime_dirs for p in sorted(Path(d).glob(pattern))]
            if not matches:
                raise BuildError(
                    f"recipe `{rp.name}`: ship.runtime pattern `{pattern}` matched nothing in "
                    f"{', '.join(self.setup.runtime_dirs) or '(no runtime dirs for this backend)'}.",
                    hint=f"Install the runtime (`locara-build doctor`) or fix `ship.runtime` in {recipe.path}.",
                )
            for src in matches:
                _copy_preserving_links(src, bin_dir / src.name)

        files = _file_records(tmp)
        needles = {str(self.plan.work_dir), str(rp.cmake_dir), str(self.plan.source_dir)}
        leaks = scan_path_leaks(tmp, needles)
        if leaks:
            log.warn(
                f"{rp.name}: build paths found inside staged files: "
                + ", ".join(f"{leak['file']} ({leak['path']})" for leak in leaks)
            )
        self.durations["stage"] = time.monotonic() - started
        record = self._record(configured, files, leaks)
        records.write(record, BuildRecord.path(tmp))
        try:
            os.rename(tmp, out)
        except OSError:
            if is_built(out):  # completed concurrently: keep the first one
                shutil.rmtree(tmp, ignore_errors=True)
                return read_build_record(out)
            raise
        with contextlib.suppress(OSError):
            fd = os.open(parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        return record

    def _record(self, configured: bool, files: list[dict[str, Any]], leaks: list[dict[str, str]]) -> BuildRecord:
        rp, plan, recipe = self.rp, self.plan, self.rp.recipe
        ccache = _ccache_stats(self.stats_path) if self.ccache_on else {"enabled": False}
        self.stats_path.unlink(missing_ok=True)
        total = sum(self.durations.values())
        done, edges = getattr(self, "edges", (0, 0))
        return records.from_dict(BuildRecord, {
            "schema": BuildRecord.SCHEMA,
            "recipe": rp.name,
            "recipe_file": f"recipes/{recipe.path.name}",
            "recipe_hash": recipe.recipe_hash,
            "build_key": rp.build_key,
            "os": recipe.os,
            "arch": recipe.arch,
            "backend": recipe.backend,
            "flavour": recipe.flavour,
            "version": str(plan.version),
            "upstream": {
                "source": plan.lock.source,
                "commit": plan.lock.commit,
                "tag": plan.lock.tag,
                "commit_date": plan.lock.commit_date,
            },
            "patches": {"hash": plan.patch_set_hash, "series": [p.to_dict() for p in plan.patches]},
            "source_date_epoch": plan.source_date_epoch,
            "targets": list(recipe.targets),
            "configure": {"args": self.configure_argv(), "ran": configured, "env": dict(sorted(self.configure_env().items()))},
            "toolchain": {
                "cmake": {"path": self.cmake, "version": self.tools["cmake"].version, "origin": self.tools["cmake"].detail},
                "ninja": {"path": self.ninja, "version": self.tools["ninja"].version},
                "compiler": _compilers(rp.cmake_dir),
                "ccache": {"version": self.tools["ccache"].version} if self.ccache_on else None,
                "host_setup": list(self.setup.notes),
            },
            "ccache": ccache,
            "ninja": {"edges_run": done, "edges_total": edges},
            "durations": {k: round(v, 3) for k, v in sorted(self.durations.items())} | {"total": round(total, 3)},
            "files": files,
            "path_leaks": leaks,
            "log": str(self.log_path),
            "host": {"os": platforms.host_os(), "arch": platforms.host_arch()},
            "started_at": self.started_at,
            "finished_at": _utc_now(),
        }, where=f"build record of {rp.name}")


# --- helpers --------------------------------------------------------------------------------


def _utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _NinjaProgress:
    """A rich progress bar on a terminal; a line every 10 % elsewhere (CI logs)."""

    def __init__(self, name: str):
        self.name = name
        self.done = 0
        self.total = 0
        self._bar: Any = None
        self._task: Any = None
        self._last_decile = -1

    def __enter__(self) -> _NinjaProgress:
        if log.console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(
                TextColumn("    {task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=log.console,
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task(self.name, total=None)
        return self

    def line(self, text: str) -> None:
        m = _PROGRESS_RE.match(text)
        if not m:
            return
        self.done, self.total = int(m.group(1)), int(m.group(2))
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done, total=self.total)
        elif self.total:
            decile = self.done * 10 // self.total
            if decile != self._last_decile:
                self._last_decile = decile
                log.info(f"    [{self.done}/{self.total}] {self.name}")

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()


def _stop_orphan(cmake_dir: Path) -> None:
    """Stop a cmake/ninja left running by a killed earlier run of this recipe (same build dir)."""

    def say(pid: int) -> None:
        log.warn(f"an earlier build of {cmake_dir.name} was interrupted and its process group {pid} still runs: stopping it")

    stop_orphan(cmake_dir / PID_FILE, marker=str(cmake_dir), on_found=say)


@contextlib.contextmanager
def _recipe_lock(work: WorkDir, name: str) -> Iterator[None]:
    path = work.ensure(work.state) / f"build-{name}.lock"

    def busy(holder: str) -> BusyError:
        return BusyError(
            f"another locara-build ({holder}) is building recipe `{name}` in {work.root} (lock: {path}).",
            hint="Wait for it to finish (or stop it), then run the command again.",
        )

    with file_lock(path, busy=busy, record_holder=True):
        yield


def _copy_preserving_links(src: Path, dest: Path) -> None:
    if dest.exists() or dest.is_symlink():
        return
    if src.is_symlink():
        target = os.readlink(src)
        if "/" not in target and "\\" not in target:  # libfoo.so -> libfoo.so.0: keep the link
            os.symlink(target, dest)
            return
    shutil.copy2(src, dest, follow_symlinks=True)


def _file_records(root: Path) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            found.append({"path": rel, "link": os.readlink(path)})
        elif path.is_file():
            found.append(
                {"path": rel, "size": path.stat().st_size, "sha256": sha256_file(path), "mode": f"{path.stat().st_mode & 0o777:04o}"}
            )
    return found


def scan_path_leaks(root: Path, needles: set[str]) -> list[dict[str, str]]:
    """Files under ``root`` containing any of ``needles`` (absolute build paths), like
    ``strings FILE | grep PATH``."""
    encoded = sorted({n.encode() for n in needles if n}, key=len, reverse=True)
    leaks: list[dict[str, str]] = []
    for path in sorted(root.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        data = path.read_bytes()
        for needle in encoded:
            if needle in data:
                leaks.append({"file": path.relative_to(root).as_posix(), "path": needle.decode()})
                break
    return leaks


#: Device compilers (nvcc, hipcc) get the reproducibility maps as one opaque host-compiler option
#: (``-Xcompiler=-ffile-prefix-map=<cmake dir>=build ...``, cmake_args.prefix_map_flags), which
#: ccache hashes verbatim, path and all: two recipes of one work dir (linux-x86_64-cuda and
#: linux-x86_64-all compile the same CUDA objects) never shared a CUDA object. Every build maps its
#: own dirs to the same names (``llama.cpp``, ``build``), so the objects do not depend on the option's
#: paths and ccache may leave it out of the hash (gcc's own ``-ffile-prefix-map`` ccache already
#: understands). ccache >= 4.6 (`ignore_options`); older versions ignore the variable.
CCACHE_IGNORE_OPTIONS = "-Xcompiler=-ffile-prefix-map=*"


def ccache_env(cache_dir: Path, base_dir: Path, stats_log: Path) -> dict[str, str]:
    """ccache's settings for one build: the work dir's cache, paths under the work dir hashed
    relative to it (so two recipes, or two work dirs, share objects), this build's own stats log."""
    return {
        "CCACHE_DIR": str(cache_dir),
        "CCACHE_BASEDIR": str(base_dir),
        "CCACHE_NOHASHDIR": "1",
        "CCACHE_STATSLOG": str(stats_log),
        "CCACHE_IGNOREOPTIONS": CCACHE_IGNORE_OPTIONS,
    }


def _ccache_stats(stats_log: Path) -> dict[str, Any]:
    """Hits and misses of THIS build, from ccache's per-build stats log (the shared cache's global
    counters would mix in other builds)."""
    hits = misses = 0
    try:
        lines = stats_log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        lines = []
    for text in lines:
        if text in ("direct_cache_hit", "preprocessed_cache_hit"):
            hits += 1
        elif text == "cache_miss":
            misses += 1
    total = hits + misses
    return {
        "enabled": True,
        "hits": hits,
        "misses": misses,
        "hit_rate": round(hits / total, 4) if total else None,
    }


_CMAKE_SET_RE = re.compile(r'^set\((CMAKE_(?:C|CXX)_COMPILER(?:_ID|_VERSION)?)\s+"([^"]*)"\)', re.M)


def _compilers(cmake_dir: Path) -> dict[str, Any]:
    """C/C++ compiler path, id and version as CMake detected them (exact for cross toolchains too)."""
    found: dict[str, Any] = {}
    for lang, fname in (("c", "CMakeCCompiler.cmake"), ("cxx", "CMakeCXXCompiler.cmake")):
        files = sorted((cmake_dir / "CMakeFiles").glob(f"*/{fname}"))
        if not files:
            continue
        values = dict(_CMAKE_SET_RE.findall(files[-1].read_text(encoding="utf-8", errors="replace")))
        prefix = "CMAKE_C_COMPILER" if lang == "c" else "CMAKE_CXX_COMPILER"
        found[lang] = {
            "path": values.get(prefix),
            "id": values.get(f"{prefix}_ID"),
            "version": values.get(f"{prefix}_VERSION"),
        }
    return found
