"""`package` on a real (tiny) CMake build: what ships, and the failures a broken build output must cause.

The stand-in project (tests/support/pipeline.py) builds in seconds: `llama-server` linked against
`libtiny.so.1`, with the platform's `$ORIGIN` runpath, through the real `build` stage.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from support.pipeline import REPO, StandIn, stand_in_project

from locara_build.build.plan import make_plan
from locara_build.core.errors import BuildError
from locara_build.core.workdir import Project, WorkDir
from locara_build.package.package import package

PLUGIN = """\
add_library(ggml-tinyplug MODULE plug.c)
set_target_properties(ggml-tinyplug PROPERTIES PREFIX "lib")
target_link_libraries(ggml-tinyplug tiny)
"""


def _prepare(tmp_path: Path, recipe_text: str | None = None, plugin: bool = False) -> StandIn:
    s = stand_in_project(tmp_path, **({"recipe_text": recipe_text} if recipe_text else {}))
    tree = s.work / "src" / "llama.cpp"
    (tree / "LICENSE").write_text("MIT License\n\nCopyright (c) the tiny authors\n")
    if plugin:
        (tree / "plug.c").write_text("const char *tiny_where(void);\nconst char *plug(void) { return tiny_where(); }\n")
        with open(tree / "CMakeLists.txt", "a") as fh:
            fh.write(PLUGIN)
    shutil.copyfile(REPO / "recipes" / "models.toml", s.project / "recipes" / "models.toml")
    return s


def _build(s: StandIn) -> None:
    r = s.cli("build", "-r", s.recipe)
    assert r.returncode == 0, r.stderr


def _package(s: StandIn, out: Path):  # noqa: ANN202
    plan = make_plan(Project(s.project), WorkDir(s.work), [s.recipe])
    return package(plan, plan.recipe(s.recipe), out_dir=out)


def test_ships_what_is_loaded_and_nothing_else(tmp_path: Path) -> None:
    from support.pipeline import TINY_RECIPE

    recipe = TINY_RECIPE.replace('libraries = ["libtiny*.so*"]', 'libraries = ["libtiny*.so*", "libggml-*.so"]').replace(
        'targets = ["llama-server"]', 'targets = ["llama-server", "ggml-tinyplug"]'
    )
    s = _prepare(tmp_path, recipe_text=recipe, plugin=True)
    _build(s)
    result = _package(s, tmp_path / "dist")
    with tarfile.open(result.artifact) as tar:
        names = sorted(n.split("/", 1)[1] for n in tar.getnames() if "/bin/" in n)
    # the executable, the library it needs under its soname (not the dev symlinks), and the
    # dlopen()ed plugin that nothing links against; `not-shipped` is not in ship.binaries
    assert names == ["bin/libggml-tinyplug.so", "bin/libtiny.so.1", "bin/llama-server"]
    assert result.requirements["system_libraries"] == {"libc.so.6": "glibc"}
    assert result.requirements["glibc"].startswith(">= 2.")
    record = json.loads(result.record_path.read_text())
    assert {f["path"]: f["mode"] for f in record["files"] if f["path"].startswith("bin/")} == {
        "bin/libggml-tinyplug.so": "0644",
        "bin/libtiny.so.1": "0644",
        "bin/llama-server": "0755",
    }
    # it runs from the unpacked tree with no build dir on any search path
    tar_dest = tmp_path / "u"
    with tarfile.open(result.artifact) as tar:
        tar.extractall(tar_dest, filter="data")
    exe = next(tar_dest.glob("*/bin/llama-server"))
    out = subprocess.run([str(exe)], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}, timeout=30)
    assert out.returncode == 0, out.stderr
    where = out.stdout.split()
    assert [Path(w).name for w in where] == ["main.c", "tiny.c"]
    assert not any(str(s.work) in w or w.startswith("/") for w in where), f"build paths leaked: {where}"


def test_a_needed_library_missing_from_the_build_output_fails(tmp_path: Path) -> None:
    from support.pipeline import TINY_RECIPE

    s = _prepare(tmp_path, recipe_text=TINY_RECIPE.replace('libraries = ["libtiny*.so*"]', 'libraries = ["libnothing*.so"]'))
    _build(s)  # the build copies only ship.libraries: libtiny.so.1 stays behind
    with pytest.raises(BuildError) as err:
        _package(s, tmp_path / "dist")
    assert "needs `libtiny.so.1`, which is neither in the build output's bin/ nor a library every linux system provides" in err.value.message
    assert "ship.libraries" in (err.value.hint or "")
    assert not list((tmp_path / "dist").glob("*.tar.gz"))


def test_an_absolute_runpath_fails(tmp_path: Path) -> None:
    from support.pipeline import TINY_RECIPE

    s = _prepare(tmp_path, recipe_text=TINY_RECIPE.replace("TINY_SLOW = false", 'TINY_SLOW = false\nCMAKE_INSTALL_RPATH = "/opt/build-host/lib"'))
    _build(s)
    with pytest.raises(BuildError, match="absolute runpath"):
        _package(s, tmp_path / "dist")


def test_a_runpath_without_origin_fails(tmp_path: Path) -> None:
    from support.pipeline import TINY_RECIPE

    s = _prepare(tmp_path, recipe_text=TINY_RECIPE.replace("TINY_SLOW = false", 'TINY_SLOW = false\nCMAKE_INSTALL_RPATH = "lib"'))
    _build(s)
    with pytest.raises(BuildError, match=r"needs `libtiny.so.1` from its own directory, but its runpath \(lib\)"):
        _package(s, tmp_path / "dist")


def test_no_build_yet_says_what_to_run(tmp_path: Path) -> None:
    s = _prepare(tmp_path)
    with pytest.raises(BuildError) as err:
        _package(s, tmp_path / "dist")
    assert "has no finished build" in err.value.message and "locara-build build --recipe tiny" in (err.value.hint or "")
    r = s.cli("package", "-r", "tiny")
    assert r.returncode == 5 and "locara-build build --recipe tiny" in r.stderr
