"""The per-recipe stages behind one protocol, and the one driver that owns their order, their reuse
and which recipes a command runs.

    build    -> BuildRecord   (build.json: done when the keyed output dir is complete)
    smoke    -> SmokeRecord   (smoke.json: done when it is of this build, these smoke settings and
                               this device situation, and passed or was skipped by rule)
    package  -> PackageRecord (<artifact>.json: done when its archive is intact, of this build, and
                               carries the current smoke result)

``weekly`` drives all three for every recipe this host can build (:func:`drive`); ``build``,
``smoke`` and ``package`` run one stage over :func:`select`'s recipes. Nothing else decides reuse
or selection (cibuildwheel's one driver; GoReleaser's pipes with ``Skip``/``Run``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from locara_build.core.digest import sha256_file
from locara_build.core.errors import ConfigError
from locara_build.pipeline import records
from locara_build.pipeline.records import BuildRecord, PackageRecord, SmokeRecord

if TYPE_CHECKING:
    from locara_build.build.plan import Plan, RecipePlan
    from locara_build.build.toolchain import Tool
    from locara_build.core.workdir import WorkDir
    from locara_build.package.models import ModelManifest

__all__ = ["Stage", "StageOptions", "STAGES", "BUILD", "SMOKE", "PACKAGE", "Selection", "select", "require", "drive"]


@dataclass(frozen=True)
class StageOptions:
    """What a command passes its stages (each stage reads the part it needs)."""

    tools: Mapping[str, Tool] | None = None
    jobs: int | None = None
    model: Path | None = None
    ui_dir: Path | None = None
    port: int | None = None
    timeout: float | None = None
    models: ModelManifest | None = None
    out_dir: Path | None = None
    debug: bool = True
    require_signing: bool = False


class Stage(Protocol):
    name: str

    def done(self, plan: Plan, rp: RecipePlan) -> Any | None:
        """The record of this stage's finished, still valid work for ``rp``; None: run it."""
        ...

    def run(self, plan: Plan, rp: RecipePlan, work: WorkDir, opts: StageOptions) -> Any:
        """Do the work and return its record (raises a LocaraError with the stage's exit code)."""
        ...


class _Build:
    name = "build"

    def done(self, plan: Plan, rp: RecipePlan) -> BuildRecord | None:
        from locara_build.build.build import is_built, read_build_record

        return read_build_record(rp.output_dir) if is_built(rp.output_dir) else None

    def run(self, plan: Plan, rp: RecipePlan, work: WorkDir, opts: StageOptions) -> Any:
        from locara_build.build.build import build_recipe

        return build_recipe(plan, rp, work, tools=opts.tools, jobs=opts.jobs)


class _Smoke:
    name = "smoke"

    def done(self, plan: Plan, rp: RecipePlan) -> SmokeRecord | None:
        from locara_build.build.build import is_built
        from locara_build.smoke.smokeplan import valid_smoke_record

        rec = valid_smoke_record(rp)
        ok = rec is not None and rec.status in ("passed", "skipped") and is_built(rp.output_dir)
        return rec if ok else None

    def run(self, plan: Plan, rp: RecipePlan, work: WorkDir, opts: StageOptions) -> Any:
        from locara_build.smoke.smoke import smoke_recipe

        return smoke_recipe(plan, rp, work, model=opts.model, ui_dir=opts.ui_dir, port=opts.port, timeout=opts.timeout)


class _Package:
    name = "package"

    def done(self, plan: Plan, rp: RecipePlan) -> PackageRecord | None:
        from locara_build.core import log
        from locara_build.package.package import smoke_of

        dist = plan.work_dir / "dist" / str(plan.version)
        artifact = dist / rp.artifact.file
        record_path = PackageRecord.path(dist, rp.artifact.file)
        if not record_path.is_file() or not artifact.is_file():
            return None
        try:
            rec = records.read(PackageRecord, record_path)
        except records.RecordError as exc:
            log.warn(f"{exc.message} Packaging {rp.name} again.")
            return None
        if rec.build_key != rp.build_key:
            return None
        if artifact.stat().st_size != rec.size or sha256_file(artifact) != rec.sha256:
            return None
        return rec if rec.smoke == smoke_of(rp) else None  # a newer smoke result: record it

    def run(self, plan: Plan, rp: RecipePlan, work: WorkDir, opts: StageOptions) -> Any:
        from locara_build.package.package import package

        return package(plan, rp, out_dir=opts.out_dir, models=opts.models, debug=opts.debug,
                       require_signing=opts.require_signing)


BUILD: Stage = _Build()
SMOKE: Stage = _Smoke()
PACKAGE: Stage = _Package()
STAGES: tuple[Stage, ...] = (BUILD, SMOKE, PACKAGE)


# --- which recipes a command runs ------------------------------------------------------------------


@dataclass(frozen=True)
class Selection:
    recipes: tuple[RecipePlan, ...]
    skipped: tuple[tuple[str, str], ...] = ()  # (recipe, why not)


def select(plan: Plan, stage: Stage, *, named: Sequence[str] | None,
           tools: Mapping[str, Tool] | None = None) -> Selection:
    """The one rule: recipes named with --recipe all run (a stage that cannot run says why, with its
    own exit code); without names, ``build`` takes every planned recipe this host can build (doctor)
    and the later stages every planned recipe built here; the others are listed with the reason."""
    if named:
        return Selection(tuple(plan.recipes))  # the plan holds exactly the named recipes
    if stage is BUILD:
        from locara_build.build import doctor, toolchain

        tools = tools if tools is not None else toolchain.probe_all()
        ok: list[RecipePlan] = []
        skipped: list[tuple[str, str]] = []
        for rp in plan.recipes:
            rep = doctor.check_recipe(rp.recipe, tools)
            if rep.build.ok:
                ok.append(rp)
            else:
                skipped.append((rp.name, f"not buildable here: {rep.build.why()} ({rep.build.how()})"))
        return Selection(tuple(ok), tuple(skipped))
    built = [rp for rp in plan.recipes if BUILD.done(plan, rp) is not None]
    return Selection(tuple(built), tuple((rp.name, f"not built here (`locara-build build --recipe {rp.name}`)")
                                         for rp in plan.recipes if rp not in built))


def require(selection: Selection, stage: Stage) -> tuple[RecipePlan, ...]:
    """The selected recipes, after a warning per skipped one; none at all is exit 2."""
    from locara_build.core import log

    for name, why in selection.skipped:
        log.warn(f"skipping {name}: {why}")
    if not selection.recipes:
        if stage is BUILD:
            raise ConfigError("no recipe can be built on this host.", hint="Run `locara-build doctor`.")
        raise ConfigError(
            f"nothing to {stage.name}: no recipe has a finished build in this work dir.",
            hint="Run `locara-build build` first, or name a recipe with --recipe.",
        )
    return selection.recipes


# --- the driver ------------------------------------------------------------------------------------


@dataclass
class Driven:
    """What :func:`drive` did for one recipe: per stage ``done`` / ``reused`` / ``skipped``, the
    last stage's record, and the stage that was running when it stopped."""

    stages: dict[str, str] = field(default_factory=dict)
    records: dict[str, Any] = field(default_factory=dict)
    stage: str = ""
    seconds: float = 0.0


def drive(plan: Plan, rp: RecipePlan, work: WorkDir, opts: StageOptions, *,
          stages: Sequence[Stage] = STAGES, reuse: bool = True,
          progress: Callable[[str, str], None] | None = None, into: Driven | None = None) -> Driven:
    """Run ``stages`` in order for ``rp``, reusing each one's valid finished work (``done``). A stage's
    error propagates (``into.stage`` names the stage that raised it)."""
    out = into if into is not None else Driven()
    start = time.monotonic()
    try:
        for stage in stages:
            out.stage = stage.name
            record = stage.done(plan, rp) if reuse else None
            if record is not None:
                out.stages[stage.name] = "reused"
            else:
                record = stage.run(plan, rp, work, opts)
                status = getattr(record, "status", "")
                out.stages[stage.name] = "skipped" if status == "skipped" else "done"
            out.records[stage.name] = record
            if progress is not None:
                progress(stage.name, out.stages[stage.name])
    finally:
        out.seconds = time.monotonic() - start
    return out
