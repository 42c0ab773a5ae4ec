"""``doctor``, ``build``, ``smoke``: the host's toolchains, real CMake builds, the server smoke test."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from locara_build.cli.app import JsonOpt, RecipeOpt, app, output, state
from locara_build.core import log
from locara_build.core.errors import ConfigError

# The stage modules (and plan/recipe, which pull in jinja2) are imported inside the commands:
# `locara-build build` with nothing to do must stay fast, and other commands need none of them.

RecipesAllOpt = Annotated[
    list[str] | None,
    typer.Option("--recipe", "-r", help="Recipe name (repeatable). Default: every recipe."),
]


@app.command("doctor")
def doctor_cmd(
    recipe: RecipesAllOpt = None,
    check: Annotated[bool, typer.Option("--check", help="Exit 2 if a listed recipe cannot be built here.")] = False,
    json_: JsonOpt = False,
) -> None:
    """Detect toolchains (with versions) and list which recipes this host can build, and why not the others."""
    from locara_build.build.doctor import doctor as run_doctor
    from locara_build.build.recipe import load_recipes

    st = state()
    recipes = load_recipes(st.project, recipe)
    report = run_doctor(recipes.values())
    if not output(json_, report.to_dict()):
        log.info(f"host: {report.host_os}-{report.host_arch}")
        rows = [
            (t.name, "yes" if t.found else "no", t.version or "", t.path or "", t.detail if t.found else f"{t.detail} -> {t.fix}")
            for t in report.tools.values()
        ]
        log.summary("toolchains", ["tool", "found", "version", "path", "detail / fix"], rows)
        rrows = []
        for r in report.recipes:
            why = r.build.why() if not r.build.ok else (r.smoke.why() if not r.smoke.ok else "; ".join(r.smoke.notes))
            fix = r.build.how() if not r.build.ok else (r.smoke.how() if not r.smoke.ok else "")
            smoke_mark = "cpu only" if r.smoke.ok and r.smoke.notes else _mark(r.smoke.ok)
            rrows.append(
                (r.name, _mark(r.build.ok), smoke_mark, _mark(r.sign.ok) if r.sign.requirements else "-", why, fix)
            )
        log.summary("recipes on this host", ["recipe", "build", "smoke", "sign", "why not", "fix"], rrows)
    if check:
        blocked = [r for r in report.recipes if not r.build.ok]
        if blocked:
            raise ConfigError(
                "not buildable on this host: " + "; ".join(f"{r.name} ({r.build.why()})" for r in blocked) + ".",
                hint="; ".join(dict.fromkeys(r.build.how() for r in blocked)),
            )


def _mark(ok: bool) -> str:
    return "yes" if ok else "no"


@app.command("build")
def build_cmd(
    recipe: RecipeOpt = None,
    jobs: Annotated[int | None, typer.Option("--jobs", "-j", help="Parallel compile jobs (default: ninja's).")] = None,
    json_: JsonOpt = False,
) -> None:
    """Configure and build each recipe's targets (only those) into its immutable, keyed output dir."""
    from locara_build.build.plan import make_plan
    from locara_build.pipeline import stages

    st = state()
    plan = make_plan(st.project, st.work, recipe)
    selected = stages.require(stages.select(plan, stages.BUILD, named=recipe), stages.BUILD)
    opts = stages.StageOptions(jobs=jobs)
    results = [stages.BUILD.run(plan, rp, st.work, opts) for rp in selected]
    if output(json_, {"ok": True, "builds": [r.to_dict() for r in results]}):
        return
    rows = []
    for r in results:
        ccache = r.record.ccache
        rate = ccache.get("hit_rate")
        hits = f"{rate:.0%} ({ccache.get('hits')}/{ccache.get('hits', 0) + ccache.get('misses', 0)})" if rate is not None else "-"
        rows.append((r.recipe, r.status, f"{r.seconds:.1f}s", hits if r.status == "built" else "-", str(r.output_dir)))
    log.summary("build", ["recipe", "status", "took", "ccache hits", "output"], rows)


@app.command("smoke")
def smoke_cmd(
    recipe: RecipeOpt = None,
    model: Annotated[Path | None, typer.Option("--model", help="GGUF model to serve (default: the tiny generated one).")] = None,
    ui: Annotated[
        Path | None, typer.Option("--ui", help="UI dir served with --path (default: locara_build/resources/ui).")
    ] = None,
    port: Annotated[int | None, typer.Option("--port", help="Port on 127.0.0.1 (default: a free one).")] = None,
    timeout: Annotated[float | None, typer.Option("--timeout", help="Seconds to wait for /health (default: the recipe's).")] = None,
    json_: JsonOpt = False,
) -> None:
    """Start each built llama-server on 127.0.0.1 with a tiny model and check its endpoints (and its args file)."""
    from locara_build.build.plan import make_plan
    from locara_build.pipeline import stages
    from locara_build.smoke.smoke import default_ui_dir

    st = state()
    plan = make_plan(st.project, st.work, recipe)
    ui_dir = ui.resolve() if ui else default_ui_dir()
    if ui is not None and not (ui_dir / "index.html").is_file():
        raise ConfigError(f"--ui {ui}: no index.html there.", hint="Point --ui at a directory holding index.html.")
    if ui_dir is None:
        log.warn("no UI to serve yet (locara_build/resources/ui/index.html is missing): `/` is not checked")
    selected = stages.require(stages.select(plan, stages.SMOKE, named=recipe), stages.SMOKE)
    opts = stages.StageOptions(model=model.resolve() if model else None, ui_dir=ui_dir, port=port, timeout=timeout)
    results = [stages.SMOKE.run(plan, rp, st.work, opts) for rp in selected]
    if output(json_, {"ok": True, "smoke": [r.to_dict() for r in results]}):
        return
    rows = [
        (r.recipe, r.status, f"{r.seconds:.1f}s", str(r.to_dict()["tokens_per_second"] or "-"), r.smoke.reason or "")
        for r in results
    ]
    log.summary("smoke", ["recipe", "status", "took", "tokens/s", "note"], rows)
