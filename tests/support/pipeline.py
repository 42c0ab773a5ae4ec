"""Build pipelines for tests.

* :func:`llama_pipeline` — the REAL one, once per pytest session (the ``llama_pipeline`` fixture in
  conftest.py): ``sync --upstream pypi:llama-cpp-python==0.3.36`` -> ``patches apply`` ->
  ``build -r linux-x86_64-cpu-ci`` -> ``smoke -r linux-x86_64-cpu-ci`` in a temporary work dir, with
  a private copy of the project (sync writes its lock) and the shared compiler cache
  (``$CCACHE_DIR``, else the test cache's). Packaging / release tests reuse its build output.
* :func:`stand_in_project` — a tiny CMake project standing in for llama.cpp (seconds to build):
  a lock, a git "source tree" with a stamp, and a ``tiny`` recipe, for build/smoke failure tests.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

from support.cli import run_cli
from support.llama import sdist_tarball, test_cache

REPO = Path(__file__).resolve().parents[2]
UPSTREAM = "pypi:llama-cpp-python==0.3.36"
UPSTREAM_COMMIT = "0c1e57098bba43ac29e6e3b677cdceebdd22334f"
CI_RECIPE = "linux-x86_64-cpu-ci"


def cli(*args: str, project: Path, work: Path, env: dict[str, str] | None = None,
        timeout: float = 3600) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, project=project, work=work, env=env, timeout=timeout)


def copy_project(dest: Path) -> Path:
    """A private copy of the repo's project files (recipes/, patches/, ci/), without a lock."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("recipes", "patches", "ci"):
        if (REPO / name).exists():
            shutil.copytree(REPO / name, dest / name, dirs_exist_ok=True)
    (dest / "recipes" / "upstream.lock").unlink(missing_ok=True)
    return dest


def shared_ccache_dir() -> Path:
    env = os.environ.get("CCACHE_DIR")
    path = Path(env) if env else test_cache() / "ccache"
    path.mkdir(parents=True, exist_ok=True)
    return path


# --- the real pipeline --------------------------------------------------------------------


@dataclass
class Pipeline:
    project: Path
    work: Path
    recipe: str
    env: dict[str, str]
    seconds: dict[str, float] = field(default_factory=dict)
    outputs: dict[str, subprocess.CompletedProcess[str]] = field(default_factory=dict)
    plan: dict = field(default_factory=dict)

    def cli(self, *args: str, timeout: float = 3600) -> subprocess.CompletedProcess[str]:
        return cli(*args, project=self.project, work=self.work, env=self.env, timeout=timeout)

    @property
    def recipe_plan(self) -> dict:
        return next(r for r in self.plan["recipes"] if r["name"] == self.recipe)

    @property
    def output_dir(self) -> Path:
        """The immutable build output: bin/ + build.json (+ smoke.json)."""
        return Path(self.recipe_plan["output_dir"])

    @property
    def bin_dir(self) -> Path:
        return self.output_dir / "bin"

    @property
    def build_record(self) -> dict:
        return json.loads((self.output_dir / "build.json").read_text())

    @property
    def smoke_record(self) -> dict:
        return json.loads((self.output_dir / "smoke.json").read_text())


class PipelineError(AssertionError):
    pass


def _step(p: Pipeline, name: str, *args: str, timeout: float = 3600) -> None:
    start = time.monotonic()
    res = p.cli(*args, timeout=timeout)
    p.seconds[name] = time.monotonic() - start
    p.outputs[name] = res
    if res.returncode != 0:
        raise PipelineError(
            f"`locara-build {' '.join(args)}` exited {res.returncode} after {p.seconds[name]:.0f}s\n"
            f"--- stderr (tail) ---\n{res.stderr[-6000:]}"
        )


def llama_pipeline(root: Path, recipe: str = CI_RECIPE) -> Pipeline:
    """sync -> patches apply -> build -> smoke for ``recipe`` in a fresh work dir under ``root``."""
    project = copy_project(root / "project")
    work = root / "work"
    work.mkdir(parents=True, exist_ok=True)
    # the sdist comes from the test cache (downloaded once, like pip would) rather than PyPI each session
    sdists = sdist_tarball(UPSTREAM.split("==", 1)[1]).parent
    env = {"CCACHE_DIR": str(shared_ccache_dir()), "LOCARA_PYPI_SDISTS": str(sdists)}
    p = Pipeline(project=project, work=work, recipe=recipe, env=env)
    _step(p, "sync", "sync", "--upstream", UPSTREAM, timeout=1800)
    _step(p, "patches apply", "patches", "apply", timeout=600)
    plan = p.cli("plan", "-r", recipe, "--json")
    if plan.returncode != 0:
        raise PipelineError(f"plan failed:\n{plan.stderr[-4000:]}")
    p.plan = json.loads(plan.stdout)
    _step(p, "build", "build", "-r", recipe, timeout=3600)
    _step(p, "smoke", "smoke", "-r", recipe, timeout=900)
    return p


# --- a stand-in source tree ---------------------------------------------------------------

FAKE_COMMIT = "c0ffee" + "0" * 34
FAKE_DATE = "2026-10-01T02:11:48Z"

TINY_RECIPE = """\
description = "test stand-in: a tiny CMake project named like llama.cpp's targets"
os = "linux"
arch = "x86_64"
backend = "cpu"
flavour = "dev"
targets = ["llama-server"]

[cmake]
TINY_BREAK = false
TINY_CONFIGURE_FAIL = false
TINY_SLOW = false

[ship]
binaries = ["llama-server"]
libraries = ["libtiny*.so*"]

[smoke]
timeout = 5
"""

TINY_CMAKE = """\
cmake_minimum_required(VERSION 3.14)
project(tiny C)
set(CMAKE_RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bin)
set(CMAKE_LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bin)
option(TINY_BREAK "add a source file that does not compile" OFF)
option(TINY_SLOW "add a 10-second generated header (slow.started marks its start)" OFF)
option(TINY_CONFIGURE_FAIL "fail at configure time" OFF)
if(TINY_CONFIGURE_FAIL)
  message(FATAL_ERROR "tiny: configure refused (TINY_CONFIGURE_FAIL)")
endif()
option(GGML_CCACHE "use ccache if available (as ggml does)" ON)
if(GGML_CCACHE)
  find_program(CCACHE_FOUND ccache)
  if(CCACHE_FOUND)
    set_property(GLOBAL PROPERTY RULE_LAUNCH_COMPILE "${CCACHE_FOUND}")
  endif()
endif()
add_library(tiny SHARED tiny.c)
set_target_properties(tiny PROPERTIES VERSION 1.2.3 SOVERSION 1)
set(server_sources main.c)
if(TINY_BREAK)
  list(APPEND server_sources broken.c)
endif()
if(TINY_SLOW)
  add_custom_command(OUTPUT ${CMAKE_BINARY_DIR}/slow.h
    COMMAND ${CMAKE_COMMAND} -E touch ${CMAKE_BINARY_DIR}/slow.started
    COMMAND ${CMAKE_COMMAND} -E sleep 10
    COMMAND ${CMAKE_COMMAND} -E echo "#define SLOW 1" > ${CMAKE_BINARY_DIR}/slow.h
    COMMENT "Generating slow.h (slowly)")
  list(APPEND server_sources ${CMAKE_BINARY_DIR}/slow.h)
endif()
add_executable(llama-server ${server_sources})
target_link_libraries(llama-server tiny)
add_executable(not-shipped other.c)
"""

TINY_SOURCES = {
    "tiny.c": 'const char *tiny_where(void) { return __FILE__; }\n',
    "main.c": textwrap.dedent("""\
        #include <stdio.h>
        const char *tiny_where(void);
        int main(void) { printf("%s %s\\n", __FILE__, tiny_where()); return 0; }
        """),
    "broken.c": "int broken(void) { return this does not compile; }\n",
    "other.c": "int main(void) { return 0; }\n",
}


@dataclass
class StandIn:
    project: Path
    work: Path
    recipe: str = "tiny"

    def cli(self, *args: str, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return cli(*args, project=self.project, work=self.work, env=env, timeout=timeout)

    def plan(self) -> dict:
        res = self.cli("plan", "-r", self.recipe, "--json")
        assert res.returncode == 0, res.stderr
        return json.loads(res.stdout)["recipes"][0]

    def set_cmake(self, key: str, value: bool) -> None:
        path = self.project / "recipes" / f"{self.recipe}.toml"
        text = path.read_text()
        old = f"{key} = {'false' if value else 'true'}"
        assert old in text, (old, text)
        path.write_text(text.replace(old, f"{key} = {'true' if value else 'false'}"))


def stand_in_project(root: Path, *, recipe_text: str = TINY_RECIPE) -> StandIn:
    """Project (defaults.toml from the repo + a ``tiny`` recipe + a lock) and a work dir whose
    prepared "source tree" is a tiny CMake project, stamped as the plan expects."""
    from locara_build.core.workdir import Project
    from locara_build.upstream.lock import Lock, write_lock
    from locara_build.upstream.series import read_series, series_hash
    from locara_build.upstream.sourcetree import Stamp, write_stamp

    project = root / "project"
    (project / "recipes").mkdir(parents=True)
    (project / "patches").mkdir()
    shutil.copy2(REPO / "recipes" / "defaults.toml", project / "recipes" / "defaults.toml")
    (project / "recipes" / "tiny.toml").write_text(recipe_text)
    write_lock(
        Project(project).lock_path,
        Lock(source="test:tiny", ref=FAKE_COMMIT, channel="build", commit=FAKE_COMMIT, tag="",
             commit_date=FAKE_DATE, synced_at=FAKE_DATE),
    )
    work = root / "work"
    tree = work / "src" / "llama.cpp"
    tree.mkdir(parents=True)
    (tree / "CMakeLists.txt").write_text(TINY_CMAKE)
    for name, text in TINY_SOURCES.items():
        (tree / name).write_text(text)
    git = ["git", "-C", str(tree)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "tiny"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    write_stamp(tree, Stamp(commit=FAKE_COMMIT, patch_set_hash=series_hash(read_series(Project(project))), head=head))
    return StandIn(project=project, work=work)
