"""The stage protocol and the one driver (locara_build.pipeline.stages): order, reuse, which recipes run."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from support.pipeline import REPO, stand_in_project

from locara_build.build.plan import make_plan
from locara_build.core.errors import BuildError, ConfigError
from locara_build.core.workdir import Project, WorkDir
from locara_build.pipeline import stages
from locara_build.pipeline.records import BuildRecord, PackageRecord


class Recording:
    """A stage whose finished work is a flag; every call is logged (the driver's logic alone)."""

    def __init__(self, name: str, log: list[str], *, finished: bool = False, fail: bool = False) -> None:
        self.name, self.log, self.finished, self.fail = name, log, finished, fail

    def done(self, plan: Any, rp: Any) -> str | None:
        self.log.append(f"done?{self.name}")
        return f"{self.name}-record" if self.finished else None

    def run(self, plan: Any, rp: Any, work: Any, opts: Any) -> str:
        self.log.append(f"run:{self.name}")
        if self.fail:
            raise BuildError(f"{self.name} broke")
        self.finished = True
        return f"{self.name}-new"


def test_driver_runs_in_order_reuses_finished_work_and_names_the_failing_stage() -> None:
    calls: list[str] = []
    a, b, c = Recording("a", calls, finished=True), Recording("b", calls), Recording("c", calls)
    out = stages.drive(None, None, None, stages.StageOptions(), stages=(a, b, c))  # type: ignore[arg-type]
    assert calls == ["done?a", "done?b", "run:b", "done?c", "run:c"]
    assert out.stages == {"a": "reused", "b": "done", "c": "done"}
    assert out.records == {"a": "a-record", "b": "b-new", "c": "c-new"}
    calls.clear()
    out = stages.drive(None, None, None, stages.StageOptions(), stages=(a, b, c), reuse=False)  # type: ignore[arg-type]
    assert calls == ["run:a", "run:b", "run:c"] and set(out.stages.values()) == {"done"}
    calls.clear()
    broken = stages.Driven()
    with pytest.raises(BuildError, match="y broke"):
        stages.drive(None, None, None, stages.StageOptions(),  # type: ignore[arg-type]
                     stages=(Recording("x", calls), Recording("y", calls, fail=True), Recording("z", calls)), into=broken)
    assert calls == ["done?x", "run:x", "done?y", "run:y"]  # z never ran
    assert broken.stage == "y" and broken.stages == {"x": "done"} and broken.seconds >= 0


def test_one_selection_rule_for_every_command(tmp_path: Path) -> None:
    work = WorkDir(tmp_path / "work")
    every = make_plan(Project(REPO), work)
    sel = stages.select(every, stages.BUILD, named=None)
    skipped = dict(sel.skipped)
    assert "macos-arm64-metal" in skipped and "macos binaries cannot be built on a linux host" in skipped["macos-arm64-metal"]
    assert "linux-x86_64-cpu" in {rp.name for rp in sel.recipes}
    assert {rp.name for rp in sel.recipes} | set(skipped) == {rp.name for rp in every.recipes}
    # named: exactly the named recipes, whatever this host can do (the stage then says why not, exit 5)
    named = make_plan(Project(REPO), work, ["macos-arm64-metal"])
    assert [rp.name for rp in stages.select(named, stages.BUILD, named=["macos-arm64-metal"]).recipes] == ["macos-arm64-metal"]
    # later stages without names: the recipes built in this work dir; none here -> exit 2 with the next step
    for stage in (stages.SMOKE, stages.PACKAGE):
        sel = stages.select(every, stage, named=None)
        assert sel.recipes == () and len(sel.skipped) == len(every.recipes)
        with pytest.raises(ConfigError) as err:
            stages.require(sel, stage)
        assert err.value.exit_code == 2 and f"nothing to {stage.name}" in err.value.message
        assert "locara-build build" in (err.value.hint or "")


def test_real_stages_report_their_finished_work(tmp_path: Path) -> None:
    s = stand_in_project(tmp_path)
    tree = s.work / "src" / "llama.cpp"
    (tree / "LICENSE").write_text("MIT License\n\nCopyright (c) the tiny authors\n")
    shutil.copyfile(REPO / "recipes" / "models.toml", s.project / "recipes" / "models.toml")
    plan = make_plan(Project(s.project), WorkDir(s.work), ["tiny"])
    rp = plan.recipes[0]
    opts = stages.StageOptions()
    assert stages.BUILD.done(plan, rp) is None and stages.PACKAGE.done(plan, rp) is None
    first = stages.drive(plan, rp, WorkDir(s.work), opts, stages=(stages.BUILD,))
    assert first.stages == {"build": "done"}
    record = stages.BUILD.done(plan, rp)
    assert isinstance(record, BuildRecord) and record.build_key == rp.build_key
    again = stages.drive(plan, rp, WorkDir(s.work), opts, stages=(stages.BUILD, stages.PACKAGE))
    assert again.stages == {"build": "reused", "package": "done"}
    pkg = stages.PACKAGE.done(plan, rp)
    assert isinstance(pkg, PackageRecord) and pkg.smoke == {"status": "not run"}
    assert pkg.sbom is not None and pkg.sbom.file == rp.artifact.file + ".cdx.json"  # written beside the archive
    import tarfile

    dist = plan.work_dir / "dist" / str(plan.version)
    with tarfile.open(dist / rp.artifact.file) as tf:
        member = tf.extractfile(f"{rp.artifact.name}/sbom.cdx.json")
        assert member is not None and member.read() == (dist / pkg.sbom.file).read_bytes()
    assert (pkg.build_started_at, pkg.build_finished_at) == (record.started_at, record.finished_at)
    assert stages.drive(plan, rp, WorkDir(s.work), opts, stages=(stages.BUILD, stages.PACKAGE)).stages == {
        "build": "reused", "package": "reused"}
    # an archive changed after packaging is not reused: packaged again
    artifact = plan.work_dir / "dist" / str(plan.version) / rp.artifact.file
    with open(artifact, "ab") as fh:
        fh.write(b"x")
    assert stages.PACKAGE.done(plan, rp) is None
    assert stages.SMOKE.done(plan, rp) is None  # never smoke-tested
