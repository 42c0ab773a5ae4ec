"""The plan is a pure function of its inputs: the same project, lock and work dir give byte-identical
`plan --json`, in one process and across processes; a change of input changes exactly what it should."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.pipeline import UPSTREAM, UPSTREAM_COMMIT

from locara_build.build.plan import make_plan
from locara_build.core.workdir import Project, WorkDir
from locara_build.upstream.lock import Lock, write_lock

LOCK = Lock(
    source=UPSTREAM,
    ref="latest",
    channel="build",
    commit=UPSTREAM_COMMIT,
    tag="",
    commit_date="2026-10-01T02:11:48Z",
    synced_at="2026-10-02T09:00:00Z",
)


@pytest.fixture
def locked(project: Path) -> Path:
    write_lock(Project(project).lock_path, LOCK)
    return project


def _plan_json(cli, project: Path, work: Path, *args: str) -> str:
    res = cli("--project", str(project), "--work-dir", str(work), "plan", *args, "--json")
    assert res.returncode == 0, res.stderr
    return res.stdout


@pytest.mark.parametrize("args", [(), ("-r", "linux-x86_64-cpu-ci"), ("-r", "windows-x86_64-cpu", "-r", "linux-x86_64-cpu")])
def test_plan_json_is_byte_identical_twice_and_across_processes(cli, locked: Path, work_dir: Path, args: tuple[str, ...]) -> None:
    names = [a for a in args if a != "-r"] or None
    in_process_1 = make_plan(Project(locked), WorkDir(work_dir), names).to_json()
    in_process_2 = make_plan(Project(locked), WorkDir(work_dir), names).to_json()
    assert in_process_1 == in_process_2
    first = _plan_json(cli, locked, work_dir, *args)
    second = _plan_json(cli, locked, work_dir, *args)
    assert first == second
    assert json.loads(first) == json.loads(in_process_1)
    # `plan --json` is the canonical form: sorted keys, two-space indent
    assert first == json.dumps(json.loads(first), indent=2, sort_keys=True) + "\n"


def test_plan_ignores_when_it_was_synced(cli, locked: Path, work_dir: Path) -> None:
    before = _plan_json(cli, locked, work_dir)
    write_lock(Project(locked).lock_path, Lock(**{**LOCK.to_dict(), "synced_at": "2027-01-01T00:00:00Z"}))
    assert _plan_json(cli, locked, work_dir) == before


def test_plan_changes_with_its_inputs(cli, locked: Path, work_dir: Path) -> None:
    base = json.loads(_plan_json(cli, locked, work_dir, "-r", "linux-x86_64-cpu-ci"))
    rp = base["recipes"][0]
    assert rp["env"]["SOURCE_DATE_EPOCH"] == str(base["source_date_epoch"]) == "1790820708"
    assert "-DLLAMA_BUILD_COMMIT=0c1e570" in rp["configure_args"]
    assert rp["output_dir"] == str(work_dir.resolve() / "builds" / "linux-x86_64-cpu-ci" / rp["build_key"])

    # a recipe change: new recipe hash, new build key, new output dir, the new flag in the args
    recipe = locked / "recipes" / "linux-x86_64-cpu-ci.toml"
    recipe.write_text(recipe.read_text() + "GGML_AVX512 = true\n")
    changed = json.loads(_plan_json(cli, locked, work_dir, "-r", "linux-x86_64-cpu-ci"))["recipes"][0]
    assert changed["build_key"] != rp["build_key"] and changed["recipe_hash"] != rp["recipe_hash"]
    assert sorted(set(changed["configure_args"]) - set(rp["configure_args"])) == ["-DGGML_AVX512=ON"]

    # a tag on the same commit: the build number in the binary changes, so does the key
    write_lock(Project(locked).lock_path, Lock(**{**LOCK.to_dict(), "tag": "b7000"}))
    tagged = json.loads(_plan_json(cli, locked, work_dir, "-r", "linux-x86_64-cpu-ci"))["recipes"][0]
    assert "-DLLAMA_BUILD_NUMBER=7000" in tagged["configure_args"]
    assert tagged["build_key"] != changed["build_key"]


def test_build_key_follows_what_is_compiled_not_smoke_settings(locked: Path, work_dir: Path) -> None:
    project, work = Project(locked), WorkDir(work_dir)
    recipe = locked / "recipes" / "linux-x86_64-cpu-ci.toml"
    before = make_plan(project, work, ["linux-x86_64-cpu-ci"]).recipes[0]

    recipe.write_text(recipe.read_text() + "\n[smoke]\nn_predict = 8\n")
    smoke_only = make_plan(project, work, ["linux-x86_64-cpu-ci"]).recipes[0]
    assert smoke_only.build_key == before.build_key  # no rebuild for a smoke-test setting
    assert smoke_only.recipe.recipe_hash != before.recipe.recipe_hash  # but the recipe's identity changed

    recipe.write_text(recipe.read_text().replace("GGML_AVX2 = true", "GGML_AVX2 = false"))
    flags = make_plan(project, work, ["linux-x86_64-cpu-ci"]).recipes[0]
    assert flags.build_key != before.build_key
    assert flags.output_dir != before.output_dir
