"""The plan: recipes + lock + patch series -> one frozen, JSON-serialisable description of the run.

Every stage (build, smoke, package, release, CI rendering) consumes a :class:`Plan` and nothing
else decides what to do. ``locara-build plan --json`` prints it; the same inputs give
byte-identical JSON (no timestamps, sorted keys, stable paths).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from locara_build import PRODUCT, __version__
from locara_build.build import provision
from locara_build.build.cmake_args import build_info_entries, configure_args
from locara_build.build.recipe import Recipe, load_recipes
from locara_build.core.errors import ConfigError
from locara_build.core.version import Version, make_version
from locara_build.core.workdir import Project, WorkDir
from locara_build.pipeline.records import BuildRecord
from locara_build.upstream.lock import Lock, read_lock
from locara_build.upstream.series import PatchFile, read_series, series_hash

__all__ = ["Plan", "RecipePlan", "Artifact", "make_plan", "PLAN_SCHEMA", "artifact_basename"]

PLAN_SCHEMA = 1


@dataclass(frozen=True, kw_only=True)
class Artifact:
    name: str  # folder name inside the archive and stem of the file
    file: str  # archive file name
    format: str  # tar.gz | zip

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "file": self.file, "format": self.format}


@dataclass(frozen=True, kw_only=True)
class RecipePlan:
    recipe: Recipe
    build_key: str
    cmake_dir: Path
    output_dir: Path
    configure_args: tuple[str, ...]
    toolchain: Path | None
    env: dict[str, str]
    artifact: Artifact

    @property
    def name(self) -> str:
        return self.recipe.name

    def to_dict(self) -> dict[str, Any]:
        r = self.recipe
        return {
            "name": r.name,
            "description": r.description,
            "os": r.os,
            "arch": r.arch,
            "backend": r.backend,
            "flavour": r.flavour,
            "runner": r.runner,
            "recipe_file": f"recipes/{r.path.name}",
            "recipe_hash": r.recipe_hash,
            "build_key": self.build_key,
            "cmake_dir": str(self.cmake_dir),
            "output_dir": str(self.output_dir),
            "configure_args": list(self.configure_args),
            "targets": list(r.targets),
            "toolchain": str(self.toolchain) if self.toolchain else None,
            "requires": list(r.requires),
            "env": dict(sorted(self.env.items())),
            "ship": r.ship.to_dict(),
            "smoke": r.smoke.to_dict(),
            "signing": r.signing,
            "requirements": dict(sorted(r.requirements.items())),
            "artifact": self.artifact.to_dict(),
        }


@dataclass(frozen=True, kw_only=True)
class Plan:
    project_root: Path
    work_dir: Path
    lock: Lock
    version: Version
    source_dir: Path
    patches: tuple[PatchFile, ...]
    patch_set_hash: str
    recipes: tuple[RecipePlan, ...]
    tool_version: str = __version__
    all_recipes: tuple[str, ...] = field(default=())

    @property
    def source_date_epoch(self) -> int:
        return self.lock.source_date_epoch

    def recipe(self, name: str) -> RecipePlan:
        for rp in self.recipes:
            if rp.name == name:
                return rp
        raise ConfigError(f"recipe `{name}` is not in this plan.", hint=f"Planned: {', '.join(self.names)}.")

    @property
    def names(self) -> list[str]:
        return [rp.name for rp in self.recipes]

    @property
    def inputs_hash(self) -> str:
        """What a release is a function of: upstream commit, patches, recipes, tool version."""
        blob = json.dumps(
            {
                "commit": self.lock.commit,
                "patches": self.patch_set_hash,
                "recipes": {rp.name: rp.recipe.recipe_hash for rp in self.recipes},
                "tool": self.tool_version,
            },
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": PLAN_SCHEMA,
            "product": PRODUCT,
            "tool_version": self.tool_version,
            "project_root": str(self.project_root),
            "work_dir": str(self.work_dir),
            "version": str(self.version),
            "source_date_epoch": self.source_date_epoch,
            "upstream": {k: v for k, v in self.lock.to_dict().items() if k != "synced_at"},
            "source_dir": str(self.source_dir),
            "patches": {"hash": self.patch_set_hash, "series": [p.to_dict() for p in self.patches]},
            "inputs_hash": self.inputs_hash,
            "recipes": [rp.to_dict() for rp in self.recipes],
            "ci": {
                "matrix": {
                    "include": [
                        {"recipe": rp.name, "runner": rp.recipe.runner, "os": rp.recipe.os, "backend": rp.recipe.backend}
                        for rp in self.recipes
                    ]
                }
            },
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"


def artifact_basename(version: Version | str, recipe: Recipe) -> str:
    base = f"{PRODUCT}-{version}-{recipe.os}-{recipe.arch}-{recipe.backend}"
    return base if recipe.is_release else f"{base}-{recipe.flavour}"


def _build_key(lock: Lock, patch_hash: str, recipe: Recipe, toolchain: Path | None, configure: list[str], env: dict[str, str]) -> str:
    """What the compiled outputs are a function of: upstream, patches, the exact configure argv
    (recipe cache entries + platform/backend/host toolchain entries), build env, targets, what is
    staged, and the toolchain file with its wrappers. Smoke settings, descriptions and run-time
    requirements do not force a rebuild."""
    h = hashlib.sha256()
    blob = {
        "commit": lock.commit,
        "tag": lock.tag,  # LLAMA_BUILD_NUMBER comes from it (cmake_args.build_info_entries)
        "patches": patch_hash,
        "configure": configure,
        "env": dict(sorted(env.items())),
        "targets": list(recipe.targets),
        "ship": recipe.ship.to_dict(),
        "record": BuildRecord.SCHEMA,  # a new build.json shape is a new output dir; old ones stay intact
    }
    h.update(json.dumps(blob, sort_keys=True).encode())
    if toolchain is not None:
        h.update(toolchain.read_bytes())
        for wrapper in sorted((toolchain.parent).rglob("*")):
            if wrapper.is_file():
                h.update(wrapper.name.encode() + wrapper.read_bytes())
    return h.hexdigest()[:16]


def _placeless(text: str, places: dict[str, str]) -> str:
    for path, tag in sorted(places.items(), key=lambda kv: -len(kv[0])):
        text = text.replace(path, tag)
    return text


def make_plan(
    project: Project,
    work: WorkDir,
    recipe_names: list[str] | None = None,
    *,
    lock: Lock | None = None,
) -> Plan:
    """Plan ``recipe_names`` (default: every release-flavour recipe) at the locked commit."""
    lock = lock or read_lock(project.lock_path)
    recipes = load_recipes(project)
    if recipe_names:
        selected = [r for r in load_recipes(project, recipe_names).values()]
    else:
        selected = [r for r in recipes.values() if r.is_release]
    patches = read_series(project)
    patch_hash = series_hash(patches)
    version = make_version(lock.commit_date, lock.tag, lock.commit, lock.revision)
    source_dir = work.source_tree
    plans = []
    for recipe in selected:
        toolchain = (project.root / recipe.toolchain).resolve() if recipe.toolchain else None
        cmake_dir = work.cmake_dir(recipe.name)
        env = dict(recipe.env)
        env.update(provision.plan_env(recipe))  # e.g. LOCARA_ZIG for the Windows cross toolchain
        env["SOURCE_DATE_EPOCH"] = str(lock.source_date_epoch)
        configure = configure_args(
            recipe,
            source_dir,
            cmake_dir,
            toolchain,
            # host toolchain entries, e.g. -DVulkan_INCLUDE_DIR of provisioned headers
            {**build_info_entries(lock.known_commit or "unknown", lock.tag), **provision.plan_cmake_defines(recipe)},
        )
        # the key must not depend on where the work dir / checkout live (no compiled byte does:
        # -ffile-prefix-map), or the same inputs give other BUILDINFO/SBOM bytes on every machine
        places = {str(work.root): "<work>", str(project.root): "<project>"}
        key = _build_key(lock, patch_hash, recipe, toolchain, [_placeless(a, places) for a in configure],
                         {k: _placeless(v, places) for k, v in env.items()})
        base = artifact_basename(version, recipe)
        fmt = recipe.archive
        plans.append(
            RecipePlan(
                recipe=recipe,
                build_key=key,
                cmake_dir=cmake_dir,
                output_dir=work.build_output(recipe.name, key),
                configure_args=tuple(configure),
                toolchain=toolchain,
                env=env,
                artifact=Artifact(name=base, file=f"{base}.{fmt}", format=fmt),
            )
        )
    return Plan(
        project_root=project.root,
        work_dir=work.root,
        lock=lock,
        version=version,
        source_dir=source_dir,
        patches=tuple(patches),
        patch_set_hash=patch_hash,
        recipes=tuple(sorted(plans, key=lambda p: p.name)),
        all_recipes=tuple(sorted(recipes)),
    )
