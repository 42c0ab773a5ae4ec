"""End to end on real llama.cpp: sync (PyPI sdist) -> patches apply -> build -> smoke -> a no-op
rebuild in < 10 s. The pipeline runs once per session (tests/support/pipeline.py, fixture
`llama_pipeline` in conftest.py) so packaging and release tests can reuse the same build."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from support.pipeline import UPSTREAM_COMMIT, Pipeline

# the session pipeline's cold build (empty ccache) takes ~8 min on 2 cores: beyond the default 900 s with sync
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(3600)]


def test_sync_apply_build_smoke_then_noop_rebuild(llama_pipeline: Pipeline) -> None:
    p = llama_pipeline
    lock = (p.project / "recipes" / "upstream.lock").read_text()
    assert UPSTREAM_COMMIT in lock

    # the build: only the shipped files, every one hashed, no build path inside any of them
    out = p.output_dir
    record = p.build_record
    assert record["upstream"]["commit"] == UPSTREAM_COMMIT
    assert record["build_key"] == out.name and record["recipe"] == p.recipe
    names = sorted(f.name for f in p.bin_dir.iterdir())
    assert "llama-server" in names and "libllama.so" in names and "libggml-cpu.so" in names
    assert not [n for n in names if n.startswith(("llama-cli", "llama-bench", "llama-quantize"))]
    files = {f["path"]: f for f in record["files"]}
    assert set(files) == {f"bin/{n}" for n in names}
    assert record["path_leaks"] == []
    for f in p.bin_dir.iterdir():
        if not f.is_symlink():
            assert str(p.work).encode() not in f.read_bytes(), f  # strings | grep <work dir>
    assert record["toolchain"]["cmake"]["origin"].startswith("pinned PyPI wheel")  # it configured llama.cpp
    assert record["configure"]["env"]["SOURCE_DATE_EPOCH"] == "1790820708"
    assert record["ccache"]["enabled"] is True
    print(f"\nbuild: {p.seconds['build']:.0f}s, ccache {record['ccache']}, durations {record['durations']}")

    # the binary is what the plan says: upstream's commit as build info, $ORIGIN rpath
    version = subprocess.run([str(p.bin_dir / "llama-server"), "--version"], capture_output=True, text=True,
                             timeout=60, env={**os.environ, "LD_LIBRARY_PATH": ""})
    assert "commit 0c1e570" in version.stdout + version.stderr

    # smoke: real server, exact token count, OpenAI shape, the UI, and the args file (no CLI args)
    smoke = p.smoke_record
    assert smoke["status"] == "passed" and smoke["build_key"] == out.name
    assert smoke["server"]["completion"]["tokens"] == 16
    assert smoke["server"]["completion"]["tokens_per_second"] > 0
    assert smoke["server"]["chat"]["completion_tokens"] > 0
    assert smoke["args_file"]["completion"]["tokens"] == 16
    print(f"smoke: {smoke['server']['completion']['tokens_per_second']} tokens/s")

    # a second build with nothing changed: seconds, and nothing touched
    before = (out / "build.json").read_bytes()
    start = time.monotonic()
    res = p.cli("build", "-r", p.recipe, "--json")
    took = time.monotonic() - start
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["builds"][0]["status"] == "up-to-date"
    assert took < 10, took
    assert (out / "build.json").read_bytes() == before
    print(f"no-op rebuild: {took:.2f}s; pipeline steps: {p.seconds}")
    assert sorted(x.name for x in Path(out).iterdir()) == ["bin", "build.json", "smoke.json"]
