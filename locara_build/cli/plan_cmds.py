"""``plan``: the frozen plan every stage consumes."""

from __future__ import annotations

from locara_build.cli.app import JsonOpt, RecipeOpt, app, output, state
from locara_build.core import log


@app.command("plan")
def plan_cmd(recipe: RecipeOpt = None, json_: JsonOpt = False) -> None:
    """Show the full, frozen plan: upstream, patches, recipes, CMake args, targets, artifact names."""
    from locara_build.build.plan import make_plan

    st = state()
    plan = make_plan(st.project, st.work, recipe)
    if output(json_, plan.to_dict()):
        return
    lock = plan.lock
    log.info(f"version   {plan.version}")
    if lock.identity == "tree":  # no upstream commit: never show the import commit as one
        log.info(f"upstream  {lock.source}: {lock.describe()}, {lock.commit_date}")
    else:
        log.info(f"upstream  {lock.source} @ {lock.tag or lock.short} ({lock.commit}, {lock.commit_date})")
    log.info(f"patches   {len(plan.patches)} ({plan.patch_set_hash[:12]})")
    rows = [
        (rp.name, rp.recipe.backend, rp.recipe.flavour, rp.build_key, " ".join(rp.recipe.targets), rp.artifact.file)
        for rp in plan.recipes
    ]
    log.summary("plan", ["recipe", "backend", "flavour", "build key", "targets", "artifact"], rows)
