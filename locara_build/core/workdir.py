"""Where things live: the project (recipes/, patches/, ci/) and the work directory (caches, trees, outputs).

Work dir: ``--work-dir`` > ``$LOCARA_WORK_DIR`` > the per-user cache dir (platformdirs), e.g.
``~/.cache/locara-build``. Layout (paths are stable on purpose: ccache and ninja reuse work across
upstream bumps only when compile lines and paths do not change)::

    mirrors/<slug>.git          bare mirror of an upstream git source (fetched, never re-cloned)
    pypi/<name>-<version>/      unpacked sdists for ``pypi:`` sources
    src/llama.cpp/              THE patched source tree (a git worktree; one at a time)
    cmake/<recipe>/             CMake/ninja build tree per recipe (scratch, incremental)
    builds/<recipe>/<key>/      finished builds, immutable, keyed by recipe+upstream+patches
    dist/<version>/             packaged artifacts
    releases/<version>/         release folders (release.json, SHA256SUMS, signatures)
    models/                     content-addressed model store (sha256/<hex>)
    ccache/                     compiler cache (unless $CCACHE_DIR is set)
    logs/                       full logs of builds and servers
    state/                      weekly run state and the work-dir lock
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from locara_build.core.errors import ConfigError

__all__ = ["Project", "WorkDir", "find_project", "resolve_work_dir"]


@dataclass(frozen=True)
class Project:
    root: Path

    @property
    def recipes_dir(self) -> Path:
        return self.root / "recipes"

    @property
    def patches_dir(self) -> Path:
        return self.root / "patches"

    @property
    def ci_dir(self) -> Path:
        return self.root / "ci"

    @property
    def lock_path(self) -> Path:
        return self.recipes_dir / "upstream.lock"

    @property
    def models_path(self) -> Path:
        return self.recipes_dir / "models.toml"

    @property
    def defaults_path(self) -> Path:
        return self.recipes_dir / "defaults.toml"


def find_project(start: Path | None = None) -> Project:
    """The nearest directory at or above ``start`` holding ``recipes/`` (``$LOCARA_PROJECT`` wins)."""
    env = os.environ.get("LOCARA_PROJECT")
    if env and start is None:
        start = Path(env)
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "recipes").is_dir():
            return Project(candidate)
    raise ConfigError(
        f"no locara-build project found at or above {here}: no `recipes/` directory.",
        hint="Run inside a locara-build checkout or pass --project DIR.",
    )


def resolve_work_dir(flag: Path | None = None) -> WorkDir:
    if flag is not None:
        root = flag
    elif os.environ.get("LOCARA_WORK_DIR"):
        root = Path(os.environ["LOCARA_WORK_DIR"])
    else:
        root = Path(platformdirs.user_cache_dir("locara-build", appauthor=False))
    return WorkDir(root.expanduser().resolve())


@dataclass(frozen=True)
class WorkDir:
    root: Path

    def _dir(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    @property
    def mirrors(self) -> Path:
        return self._dir("mirrors")

    @property
    def pypi(self) -> Path:
        return self._dir("pypi")

    @property
    def source_tree(self) -> Path:
        return self._dir("src", "llama.cpp")

    def cmake_dir(self, recipe: str) -> Path:
        return self._dir("cmake", recipe)

    def build_output(self, recipe: str, key: str) -> Path:
        return self._dir("builds", recipe, key)

    def dist(self, version: str) -> Path:
        return self._dir("dist", version)

    def release(self, version: str) -> Path:
        return self._dir("releases", version)

    @property
    def models(self) -> Path:
        env = os.environ.get("LOCARA_MODEL_STORE")
        return Path(env).expanduser().resolve() if env else self._dir("models")

    @property
    def ccache(self) -> Path:
        env = os.environ.get("CCACHE_DIR")
        return Path(env) if env else self._dir("ccache")

    @property
    def logs(self) -> Path:
        return self._dir("logs")

    @property
    def state(self) -> Path:
        return self._dir("state")

    def ensure(self, path: Path) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        return path
