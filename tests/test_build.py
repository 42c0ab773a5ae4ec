"""The build stage on a tiny real CMake project standing in for llama.cpp (real cmake, ninja,
compiler and ccache; seconds per build): configure only when needed, only the recipe's targets,
atomic keyed output, build.json, no-op rebuilds, failures (exit 5) and SIGKILL recovery."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
from support.pipeline import StandIn, stand_in_project


@pytest.fixture
def tiny(tmp_path: Path) -> StandIn:
    return stand_in_project(tmp_path)


def _env(tmp_path: Path) -> dict[str, str]:
    return {"CCACHE_DIR": str(tmp_path / "ccache")}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_build_stages_only_shipped_files_with_a_record(tiny: StandIn, tmp_path: Path) -> None:
    plan = tiny.plan()
    res = tiny.cli("build", "-r", "tiny", "--json", env=_env(tmp_path))
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)["builds"][0]
    assert summary["status"] == "built"
    out = Path(plan["output_dir"])
    assert Path(summary["output_dir"]) == out
    assert out.parent.name == "tiny" and out.name == plan["build_key"]

    # bin/: the binary + the library matching ship.libraries, its symlinks kept; nothing else
    names = sorted(p.name for p in (out / "bin").iterdir())
    assert names == ["libtiny.so", "libtiny.so.1", "libtiny.so.1.2.3", "llama-server"]
    assert os.readlink(out / "bin" / "libtiny.so.1") == "libtiny.so.1.2.3"
    # only the recipe's targets were built
    cmake_bin = Path(plan["cmake_dir"]) / "bin"
    assert (cmake_bin / "llama-server").exists() and not (cmake_bin / "not-shipped").exists()
    # the staged binary runs
    run = subprocess.run([str(out / "bin" / "llama-server")], capture_output=True, text=True, check=True)
    assert "main.c" in run.stdout

    record = json.loads((out / "build.json").read_text())
    assert record["recipe"] == "tiny" and record["build_key"] == plan["build_key"]
    # the build's real start and end (provenance's startedOn/finishedOn come from here)
    started, finished = (datetime.fromisoformat(record[k].replace("Z", "+00:00")) for k in ("started_at", "finished_at"))
    assert started <= finished and (finished - started).total_seconds() >= record["durations"]["total"] - 2
    assert record["configure"]["args"][: len(plan["configure_args"])] == plan["configure_args"]
    assert record["configure"]["ran"] is True
    assert record["source_date_epoch"] == int(record["configure"]["env"]["SOURCE_DATE_EPOCH"])
    assert record["toolchain"]["cmake"]["version"] and record["toolchain"]["ninja"]["version"]
    assert record["toolchain"]["compiler"]["c"]["id"] in ("GNU", "Clang")
    assert record["toolchain"]["compiler"]["c"]["version"]
    assert set(record["durations"]) >= {"configure", "build", "stage", "total"}
    assert record["ccache"]["enabled"] is True
    assert record["ccache"]["hits"] + record["ccache"]["misses"] >= 2
    files = {f["path"]: f for f in record["files"]}
    assert set(files) == {f"bin/{n}" for n in names}
    assert files["bin/llama-server"]["sha256"] == _sha(out / "bin" / "llama-server")
    assert files["bin/libtiny.so.1"]["link"] == "libtiny.so.1.2.3"
    assert record["path_leaks"] == []
    assert Path(record["log"]).is_file() and str(tiny.work / "logs") in record["log"]
    # build paths do not leak into the binaries (strings | grep <work dir>)
    for f in (out / "bin").iterdir():
        if not f.is_symlink():
            assert str(tiny.work).encode() not in f.read_bytes(), f
    # no temporary staging dirs left behind
    assert [p.name for p in out.parent.iterdir()] == [out.name]


def test_second_build_is_a_fast_noop(tiny: StandIn, tmp_path: Path) -> None:
    assert tiny.cli("build", "-r", "tiny", env=_env(tmp_path)).returncode == 0
    out = Path(tiny.plan()["output_dir"])
    before = (out / "build.json").read_bytes()
    start = time.monotonic()
    res = tiny.cli("build", "-r", "tiny", "--json", env=_env(tmp_path))
    took = time.monotonic() - start
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["builds"][0]["status"] == "up-to-date"
    assert took < 10, took
    assert (out / "build.json").read_bytes() == before


def test_configure_runs_only_when_the_configuration_changes(tiny: StandIn, tmp_path: Path) -> None:
    assert tiny.cli("build", "-r", "tiny", env=_env(tmp_path)).returncode == 0
    first = Path(tiny.plan()["output_dir"])
    # A new output key (recipe change) with the same CMake args would not reconfigure; a changed
    # cache entry does, and the new output lives beside the old one.
    tiny.set_cmake("TINY_SLOW", True)
    res = tiny.cli("build", "-r", "tiny", env=_env(tmp_path))
    assert res.returncode == 0, res.stderr
    second = Path(tiny.plan()["output_dir"])
    assert second != first and (first / "build.json").is_file()
    record = json.loads((second / "build.json").read_text())
    assert record["configure"]["ran"] is True
    assert "-DTINY_SLOW=ON" in record["configure"]["args"]
    # back to the first configuration: its output exists, so nothing runs at all
    tiny.set_cmake("TINY_SLOW", False)
    res = tiny.cli("build", "-r", "tiny", "--json", env=_env(tmp_path))
    assert json.loads(res.stdout)["builds"][0]["status"] == "up-to-date"


def test_compile_error_exits_5_with_tail_and_log_and_keeps_previous_output(tiny: StandIn, tmp_path: Path) -> None:
    assert tiny.cli("build", "-r", "tiny", env=_env(tmp_path)).returncode == 0
    good = Path(tiny.plan()["output_dir"])
    good_files = {p.name: (p.is_symlink(), p.read_bytes()) for p in (good / "bin").iterdir()}
    good_record = (good / "build.json").read_bytes()

    tiny.set_cmake("TINY_BREAK", True)
    bad = Path(tiny.plan()["output_dir"])
    res = tiny.cli("build", "-r", "tiny", env=_env(tmp_path))
    assert res.returncode == 5, res.stderr
    err = res.stderr
    assert "build of recipe `tiny` failed" in err
    assert "FAILED:" in err and "broken.c" in err  # the failing edge and the compiler's error
    assert "this" in err and "error" in err
    log_path = next(line.split("Full log: ", 1)[1].split(".log", 1)[0] + ".log" for line in err.splitlines() if "Full log: " in line)
    assert Path(log_path).is_file() and "broken.c" in Path(log_path).read_text()
    assert Path(log_path).parent == tiny.work / "logs"
    # no output for the failed key, the previous good one untouched, no staging debris
    assert not bad.exists()
    assert {p.name: (p.is_symlink(), p.read_bytes()) for p in (good / "bin").iterdir()} == good_files
    assert (good / "build.json").read_bytes() == good_record
    assert sorted(p.name for p in good.parent.iterdir()) == [good.name]


def test_configure_error_exits_5_and_configures_again_next_time(tiny: StandIn, tmp_path: Path) -> None:
    tiny.set_cmake("TINY_CONFIGURE_FAIL", True)
    res = tiny.cli("build", "-r", "tiny", env=_env(tmp_path))
    assert res.returncode == 5, res.stderr
    assert "CMake configure of recipe `tiny` failed" in res.stderr
    assert "CMake Error" in res.stderr and "configure refused" in res.stderr
    cmake_dir = Path(tiny.plan()["cmake_dir"])
    assert not (cmake_dir / "locara-configure.json").exists()
    tiny.set_cmake("TINY_CONFIGURE_FAIL", False)
    res = tiny.cli("build", "-r", "tiny", env=_env(tmp_path))
    assert res.returncode == 0, res.stderr
    assert json.loads((cmake_dir / "locara-configure.json").read_text())["args"][0] == "-S"


def test_build_refuses_an_unprepared_tree(tiny: StandIn, tmp_path: Path) -> None:
    (tiny.work / "src" / "llama.cpp.json").unlink()
    res = tiny.cli("build", "-r", "tiny", env=_env(tmp_path))
    assert res.returncode == 3, res.stderr
    assert "patches apply" in res.stderr


def test_build_refuses_a_host_without_the_toolchain(tmp_path: Path) -> None:
    from support.pipeline import TINY_RECIPE

    tiny = stand_in_project(tmp_path, recipe_text=TINY_RECIPE.replace('flavour = "dev"', 'flavour = "dev"\nrequires = ["nvcc>=99.0"]'))
    res = tiny.cli("build", "-r", "tiny", env=_env(tmp_path))
    assert res.returncode == 5, res.stderr
    assert "cannot be built on this host" in res.stderr and "does not satisfy >=99.0" in res.stderr
    assert "CUDA toolkit" in res.stderr  # the fix


def test_sigkill_mid_build_then_rerun_finishes(tiny: StandIn, tmp_path: Path) -> None:
    tiny.set_cmake("TINY_SLOW", True)  # a 10 s build step to kill it in
    plan = tiny.plan()
    out = Path(plan["output_dir"])
    env = dict(os.environ, **_env(tmp_path))
    proc = subprocess.Popen(
        [sys.executable, "-m", "locara_build", "--project", str(tiny.project), "--work-dir", str(tiny.work),
         "build", "-r", "tiny"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    started = Path(plan["cmake_dir"]) / "slow.started"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if started.exists():
            break
        time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("the build never reached the slow step")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    # cmake/ninja run in their own process group: killing locara-build leaves them orphaned
    pid_file = Path(plan["cmake_dir"]) / "locara-build.pid"
    orphan = int(pid_file.read_text().split()[0]) if pid_file.exists() else None
    orphan_alive = orphan is not None and Path(f"/proc/{orphan}").exists()

    res = tiny.cli("build", "-r", "tiny", env=_env(tmp_path))
    assert res.returncode == 0, res.stderr
    if orphan_alive:  # the re-run stopped it before touching the build dir
        assert "was interrupted" in res.stderr
        try:
            still = str(tiny.work) in Path(f"/proc/{orphan}/cmdline").read_text(errors="replace")
        except OSError:
            still = False
        assert not still
    assert (out / "build.json").is_file()
    run = subprocess.run([str(out / "bin" / "llama-server")], capture_output=True, text=True, check=True)
    assert "main.c" in run.stdout
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # no staging debris
    assert not (Path(plan["cmake_dir"]) / "locara-build.pid").exists()
