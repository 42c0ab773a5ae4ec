"""The strict recipe loader: every recipe in the repo loads, and bad recipes fail precisely (exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from locara_build.build.recipe import load_recipes
from locara_build.core.errors import RecipeError
from locara_build.core.workdir import Project

REPO = Path(__file__).resolve().parent.parent


def test_repo_recipes_load() -> None:
    recipes = load_recipes(Project(REPO))
    assert {
        "linux-x86_64-cpu",
        "linux-x86_64-cpu-ci",
        "linux-x86_64-vulkan",
        "linux-x86_64-cuda",
        "macos-arm64-metal",
        "windows-x86_64-cpu",
    } <= set(recipes)
    ci = recipes["linux-x86_64-cpu-ci"]
    assert ci.flavour == "ci" and not ci.is_release
    assert ci.cmake["GGML_CPU_ALL_VARIANTS"] is False
    # inherited from linux-x86_64-cpu through `extends`
    assert ci.cmake["GGML_BACKEND_DL"] is True
    # inherited from defaults.toml
    assert ci.cmake["LLAMA_USE_PREBUILT_UI"] is False
    assert ci.runner == "ubuntu-22.04"
    assert recipes["windows-x86_64-cpu"].archive == "zip"
    assert recipes["windows-x86_64-cpu"].signing == "authenticode"
    assert recipes["macos-arm64-metal"].signing == "macos"


def _project(tmp_path: Path, body: str, name: str = "bad.toml") -> Project:
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / name).write_text(body)
    return Project(tmp_path)


@pytest.mark.parametrize(
    ("body", "needles"),
    [
        ('os = "linux"\narch = "x86_64"\nbackend = "cpu"\nbakend = "x"\n', ["bad.toml:4", "`bakend`", "Did you mean `backend`"]),
        ('os = "linux"\narch = "x86_64"\nbackend = "cpu"\n[cmake]\nA = 1.5\n', ["bad.toml:5", "`cmake.A`", "not a number"]),
        ('os = "linux"\narch = "x86_64"\nbackend = "cpu"\ntargets = "llama-server"\n', ["bad.toml:4", "an array of strings"]),
        ('os = "linux"\narch = "x86_64"\nbackend = "cuda "\n', ["bad.toml:3", "unknown backend", "Did you mean `cuda`"]),
        ('arch = "x86_64"\nbackend = "cpu"\n', ["missing required key `os`"]),
        ('os = "linux"\narch = "x86_64"\nbackend = "cpu"\ndescription = "{{ nme }}"\n', ["bad.toml:4", "undefined variable", "'nme' is undefined"]),
        ("", ["is empty"]),
        ('os = "linux"\narch = \n', ["invalid TOML", "line 2"]),
        ('os = "linux"\narch = "x86_64"\nbackend = "metal"\n', ["backend `metal` cannot target linux"]),
        ('os = "linux"\narch = "x86_64"\nbackend = "cpu"\n[smoke]\ntimout = 3\n', ["bad.toml:5", "Did you mean `smoke.timeout`"]),
        ('os = "linux"\narch = "x86_64"\nbackend = "cpu"\nextends = "nope"\n', ["unknown recipe `nope`"]),
        ('os = "linux"\narch = "x86_64"\nbackend = "cpu"\ntoolchain = "missing.cmake"\n', ["toolchain file `missing.cmake` does not exist"]),
    ],
)
def test_bad_recipe_is_reported_precisely(tmp_path: Path, body: str, needles: list[str]) -> None:
    with pytest.raises(RecipeError) as info:
        load_recipes(_project(tmp_path, body))
    text = str(info.value)
    assert info.value.exit_code == 2
    assert info.value.hint
    for needle in needles:
        assert needle in text, (needle, text)


def test_duplicate_names(tmp_path: Path) -> None:
    project = _project(tmp_path, 'name = "same"\nos = "linux"\narch = "x86_64"\nbackend = "cpu"\n', "a.toml")
    (tmp_path / "recipes" / "b.toml").write_text('name = "same"\nos = "linux"\narch = "x86_64"\nbackend = "cpu"\n')
    with pytest.raises(RecipeError, match="duplicate recipe name `same`"):
        load_recipes(project)


def test_jinja_renders_inside_values_only(tmp_path: Path) -> None:
    project = _project(tmp_path, 'os = "linux"\narch = "x86_64"\nbackend = "cpu"\ndescription = "{{ backend }} for {{ os }}-{{ arch }}"\n', "x.toml")
    assert load_recipes(project)["x"].description == "cpu for linux-x86_64"
