"""``package``: finished builds -> the deterministic archives users download (+ records, debug symbols)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from locara_build.cli.app import JsonOpt, RecipeOpt, app, output, state
from locara_build.core import log


def _human(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024  # type: ignore[assignment]
    return str(n)


@app.command("package")
def package_cmd(
    recipe: RecipeOpt = None,
    models: Annotated[
        Path | None,
        typer.Option("--models", help="Model list for models/manifest.json (TOML or JSON). Default: recipes/models.toml."),
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Output folder. Default: <work>/dist/<version>.")] = None,
    debug: Annotated[bool, typer.Option("--debug/--no-debug", help="Also write <artifact>-debug.tar.gz (Linux).")] = True,
    require_signing: Annotated[
        bool, typer.Option("--require-signing", help="Fail (exit 7) instead of shipping unsigned Windows/macOS binaries.")
    ] = False,
    json_: JsonOpt = False,
) -> None:
    """Package each built recipe: bin/ + ui/ + models/manifest.json + launchers + LICENSES + BUILDINFO + SBOM."""
    from locara_build.build.plan import make_plan
    from locara_build.package.models import load_manifest
    from locara_build.pipeline import stages

    st = state()
    plan = make_plan(st.project, st.work, recipe)
    manifest = load_manifest(models.resolve()) if models else None
    selected = stages.require(stages.select(plan, stages.PACKAGE, named=recipe), stages.PACKAGE)
    opts = stages.StageOptions(models=manifest, out_dir=out.resolve() if out else None, debug=debug,
                               require_signing=require_signing)
    results = [stages.PACKAGE.run(plan, rp, st.work, opts) for rp in selected]
    if output(json_, {"ok": True, "version": str(plan.version), "packages": [r.to_dict() for r in results]}):
        return
    rows = [
        (r.recipe, r.artifact.name, _human(r.size), _human(r.unpacked_size), str(len(r.files) + 1), f"{r.seconds:.1f}s", r.sha256[:16])
        for r in results
    ]
    log.summary(f"package {plan.version}", ["recipe", "artifact", "size", "unpacked", "files", "took", "sha256"], rows)
    for r in results:
        log.info(f"{r.artifact}")
        if r.debug_artifact:
            log.info(f"{r.debug_artifact} (debug symbols)")
