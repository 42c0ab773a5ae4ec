"""Attacks on recipes: a recipe string is data, never code, and every hostile value is exit 2.

Written as an outsider with write access to a recipe file (a pull request, a compromised fork)
would try it: template injection into Python internals (`lipsum.__globals__`, `cycler`,
`self.__init__`), reading the environment, filters that would walk secrets past redaction, template
statements that loop forever; values that turn into paths (`../`, absolute, symlinks out), argv
options (`--clean-first` as a target), extra CMake cache lines (newline, `;-D...`), environment
hooks (`LD_PRELOAD`); unicode that displays as something else (U+202E, Cyrillic look-alikes); types
that are not what the schema says (NaN, -1, arrays for strings); documents that are huge, nested
10,000 deep, or `extends` chains that are cycles, paths or 20 long.

Each one: exit 2 (RecipeError), a message naming the file (and line where the key is written) and
the offending key or expression, no traceback, and nothing executed (marker files stay absent).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from support.faults import REPO, error_of, hint_of, run_cli

from locara_build.build.recipe import load_recipes
from locara_build.core.errors import RecipeError
from locara_build.core.workdir import Project

BASE = 'os = "linux"\narch = "x86_64"\nbackend = "cpu"\nflavour = "dev"\n'


def _project(root: Path, files: dict[str, str | bytes]) -> Path:
    project = root / "project"
    (project / "recipes" / "toolchains").mkdir(parents=True, exist_ok=True)
    shutil.copy2(REPO / "recipes" / "defaults.toml", project / "recipes" / "defaults.toml")
    shutil.copy2(REPO / "recipes" / "upstream.lock", project / "recipes" / "upstream.lock")
    for name, data in files.items():
        path = project / "recipes" / name
        path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return project


def _refused(tmp_path: Path, files: dict[str, str | bytes]) -> RecipeError:
    project = _project(tmp_path, files)
    with pytest.raises(RecipeError) as info:
        load_recipes(Project(project))
    exc = info.value
    assert exc.exit_code == 2 and exc.message and exc.hint
    return exc


# --- template injection: through the real CLI ------------------------------------------------------

INJECTIONS = {
    # ran `id` during `plan` before: Jinja's global `lipsum` exposes its module's globals
    "lipsum-popen": "{{ lipsum.__globals__['os'].popen('touch MARKER').read() }}",
    "cycler-popen": "{{ cycler.__init__.__globals__.os.popen('touch MARKER').read() }}",
    "joiner-import": "{{ joiner.__init__.__globals__.__builtins__.__import__('os').system('touch MARKER') }}",
    "self-import": "{{ self.__init__.__globals__.__builtins__.__import__('os').system('touch MARKER') }}",
    "namespace-class": "{{ namespace.__class__.__mro__[1].__subclasses__() }}",
    # os.environ was readable; with a filter the secret got past the redactor
    "environ-reverse": "{{ lipsum.__globals__.os.environ.GITHUB_TOKEN|reverse }}",
    "hex-filter": "{{ '%x'|format(name|length) }}",
    "filter-on-variable": "{{ name|upper }}",
    "method-call": "{{ os.upper() }}",
    "index": "{{ name[0] }}",
    "arithmetic": "{{ 9**9**9 }}",
    "string-literal": "{{ 'x' * 100000000 }}",
    "statement-loop": "{% for i in range(100000000) %}x{% endfor %}",
    "statement-set": "{% set x = lipsum %}",
    "comment": "{# hidden #}",
    "unclosed": "{{ os ",
    "undefined": "{{ GITHUB_TOKEN }}",
}


@pytest.mark.parametrize("case", sorted(INJECTIONS))
def test_template_injection_is_refused_and_runs_nothing(case: str, tmp_path: Path) -> None:
    expr = INJECTIONS[case]
    marker = tmp_path / "MARKER"
    toml_value = expr.replace("\\", "\\\\").replace('"', '\\"')
    project = _project(tmp_path, {"evil.toml": BASE + f'description = "{toml_value}"\n'})
    res = run_cli("--project", str(project), "--work-dir", str(tmp_path / "work"), "plan", "--json",
                  env={"GITHUB_TOKEN": "ghs_SENTINELrecipetoken42"}, timeout=120)
    assert res.returncode == 2, res.stderr[-2000:]
    err = error_of(res.stderr)
    assert "evil.toml:5" in err and "`description`" in err, err
    # the offending expression is named (as much of it as fits)
    assert expr[:20].strip() in err or case == "unclosed", err
    assert "Traceback" not in res.stderr and "ghs_SENTINEL" not in res.stdout + res.stderr
    assert "ghs_SENTINEL"[::-1] not in res.stdout + res.stderr
    assert res.stdout == ""
    assert not marker.exists() and not (Path.cwd() / "MARKER").exists()
    assert "variable" in hint_of(res.stderr).lower()


def test_documented_variables_still_substitute(tmp_path: Path) -> None:
    project = _project(tmp_path, {"ok.toml": BASE + 'description = "{{ name }}{{exe}} {{  os  }}-{{ arch }} ({{ backend }}, {{ flavour }}) }} {"\n'
                                               '[cmake]\nLLAMA_X = "{{ os }}"\n[smoke]\nargs = ["--alias", "{{ name }}"]\n'})
    recipe = load_recipes(Project(project))["ok"]
    assert recipe.description == "ok linux-x86_64 (cpu, dev) }} {"
    assert recipe.cmake["LLAMA_X"] == "linux" and recipe.smoke.args == ("--alias", "ok")


@pytest.mark.parametrize(("where", "text", "key"), [
    ("cmake", '[cmake]\nGGML_X = "{{ lipsum }}"\n', "cmake.GGML_X"),
    ("smoke.args", '[smoke]\nargs = ["-m", "{{ cycler.__init__ }}"]\n', "smoke.args"),
    ("env", '[env]\nCC = "{{ range(10) }}"\n', "env.CC"),
])
def test_injection_is_refused_in_every_string_field(where: str, text: str, key: str, tmp_path: Path) -> None:
    exc = _refused(tmp_path, {"evil.toml": BASE + text})
    assert f"`{key}`" in exc.message and "evil.toml" in exc.message, exc.message


def test_injection_in_defaults_is_refused(tmp_path: Path) -> None:
    project = _project(tmp_path, {"ok.toml": BASE})
    defaults = project / "recipes" / "defaults.toml"
    defaults.write_text(defaults.read_text() + '\n[os.linux.env]\nEVIL = "{{ lipsum.__globals__ }}"\n')
    with pytest.raises(RecipeError) as info:
        load_recipes(Project(project))
    assert "env.EVIL" in info.value.message and "lipsum" in info.value.message


# --- hostile values ---------------------------------------------------------------------------------

HOSTILE = {
    # name -> (recipe text appended to BASE (or replacing it), phrase the message must contain)
    "name-trailing-newline": ('name = "evil\\n"\n', "newline"),
    "name-bidi-override": ('name = "cpu\\u202egpu"\n', "U+202E"),
    "name-cyrillic-lookalike": ('name = "\u0441pu"\n', "not valid"),
    "name-path": ('name = "../../etc"\n', "not valid"),
    "name-too-long": (f'name = "{"a" * 65}"\n', "not valid"),
    "name-not-string": ("name = 5\n", "`name` must be a string"),
    "description-ansi-escape": ('description = "\\u001b]8;;https://evil\\u0007click\\u001b]8;;\\u0007"\n', "U+001B"),
    "description-nul": ('description = "a\\u0000b"\n', "NUL"),
    "description-datetime": ("description = 1979-05-27T07:32:00Z\n", "must be a string"),
    "runner-yaml-injection": ('runner = "ubuntu-22.04\\n    steps: [run: id]"\n', "newline"),
    "runner-actions-expression": ('runner = "${{ secrets.GITHUB_TOKEN }}"\n', "runner"),
    "target-option": ('targets = ["llama-server", "--clean-first"]\n', "targets[1]"),
    "target-string-not-list": ('targets = "llama-server"\n', "must be an array of strings"),
    "binary-dotdot": ('[ship]\nbinaries = ["../../../../etc/passwd"]\n', "ship.binaries[0]"),
    "binary-absolute": ('[ship]\nbinaries = ["/etc/shadow"]\n', "ship.binaries[0]"),
    "library-glob-dotdot": ('[ship]\nlibraries = ["../*"]\n', "ship.libraries[0]"),
    "library-glob-recursive": ('[ship]\nlibraries = ["**"]\n', "ship.libraries[0]"),
    "runtime-absolute": ('[ship]\nruntime = ["/usr/lib/*"]\n', "ship.runtime[0]"),
    "toolchain-absolute": ('toolchain = "/etc/passwd"\n', "toolchain"),
    "toolchain-dotdot": ('toolchain = "recipes/../../outside.cmake"\n', "toolchain"),
    "cmake-key-equals": ('[cmake]\n"GGML_NATIVE=ON -DX" = "1"\n', "cmake.GGML_NATIVE=ON -DX"),
    "cmake-key-type": ('[cmake]\n"CMAKE_TOOLCHAIN_FILE:FILEPATH" = "/tmp/x"\n', "not a CMake variable name"),
    "cmake-key-dash": ('[cmake]\n"-DEVIL" = "1"\n', "not a CMake variable name"),
    "cmake-value-newline": ('[cmake]\nLLAMA_X = "a\\nCMAKE_C_COMPILER_LAUNCHER:STRING=/tmp/evil"\n', "newline"),
    "cmake-value-cr": ('[cmake]\nLLAMA_X = "a\\rB:STRING=c"\n', "carriage return"),
    "cmake-value-semicolon-D": ('[cmake]\nCMAKE_CUDA_ARCHITECTURES = "75;-DGGML_NATIVE=ON"\n', "`;` list"),
    "cmake-value-float": ("[cmake]\nLLAMA_X = 1.5\n", "must be a string, integer or boolean"),
    "cmake-value-table": ("[cmake.LLAMA_X]\nY = 1\n", "must be a string, integer or boolean"),
    "cmake-compiler-launcher": ('[cmake]\nCMAKE_C_COMPILER_LAUNCHER = "/tmp/evil"\n', "runs a program"),
    "cmake-project-include": ('[cmake]\nCMAKE_PROJECT_INCLUDE = "/tmp/evil.cmake"\n', "includes CMake code"),
    "cmake-toolchain-via-cache": ('[cmake]\nCMAKE_TOOLCHAIN_FILE = "/tmp/evil.cmake"\n', "cmake.CMAKE_TOOLCHAIN_FILE"),
    "expect-redos": ("[smoke]\nexpect = ['(a+)+$']\n", "catastrophic backtracking"),
    "env-ld-preload": ('[env]\nLD_PRELOAD = "/tmp/evil.so"\n', "env.LD_PRELOAD"),
    "env-bash-env": ('[env]\nBASH_ENV = "/tmp/evil.sh"\n', "env.BASH_ENV"),
    "env-credential": ('[env]\nGITHUB_TOKEN = "ghs_x"\n', "credential"),
    "env-path": ('[env]\nPATH = "/tmp/evil:/usr/bin"\n', "env.PATH"),
    "env-path-lowercase": ('[env]\npath = "/tmp/evil"\n', "env.path"),
    "env-compiler": ('[env]\nCXX = "/tmp/evil-c++"\n', "env.CXX"),
    "env-ccache-prefix": ('[env]\nCCACHE_PREFIX = "/tmp/evil"\n', "env.CCACHE_PREFIX"),
    "env-gcc-programs": ('[env]\nCOMPILER_PATH = "/tmp/evil"\n', "env.COMPILER_PATH"),
    "env-cmake-launcher": ('[env]\nCMAKE_CXX_COMPILER_LAUNCHER = "/tmp/evil"\n', "env.CMAKE_CXX_COMPILER_LAUNCHER"),
    "env-cmake-toolchain": ('[env]\nCMAKE_TOOLCHAIN_FILE = "/tmp/evil.cmake"\n', "env.CMAKE_TOOLCHAIN_FILE"),
    "smoke-env-wine-loader": ('[smoke.env]\nWINELOADER = "/tmp/evil"\n', "smoke.env.WINELOADER"),
    "smoke-env-wine-dll-overrides": ('[smoke.env]\nWINEDLLOVERRIDES = "ggml-cpu=n"\n', "smoke.env.WINEDLLOVERRIDES"),
    "env-key-equals": ('[env]\n"A=B" = "c"\n', "not an environment variable name"),
    "smoke-env-ld-audit": ('[smoke.env]\nLD_AUDIT = "/tmp/evil.so"\n', "smoke.env.LD_AUDIT"),
    "smoke-args-host": ('[smoke]\nargs = ["--host", "0.0.0.0", "--path", "/"]\n', "smoke.args[0]"),
    "smoke-args-path-equals": ('[smoke]\nargs = ["--path=/"]\n', "smoke.args[0]"),
    "smoke-args-log-file": ('[smoke]\nargs = ["-ngl", "99", "--log-file", "/etc/cron.d/x"]\n', "smoke.args[2]"),
    "smoke-args-newline": ('[smoke]\nargs = ["-c\\n--host\\n0.0.0.0"]\n', "newline"),
    "emulator-shell": ('[smoke]\nemulator = ["sh", "-c", "id"]\n', "smoke.emulator[0]"),
    "timeout-nan": ("[smoke]\ntimeout = nan\n", "finite"),
    "timeout-inf": ("[smoke]\ntimeout = inf\n", "finite"),
    "timeout-negative": ("[smoke]\ntimeout = -1\n", "smoke.timeout"),
    "n-predict-unbounded": ("[smoke]\nn_predict = -1\n", "smoke.n_predict"),
    "requires-url": ('requires = ["evil @ https://evil.example/x.whl"]\n', "requires[0]"),
    "min-cuda-driver-not-a-version": ('[requirements]\nmin_cuda_driver = "latest; rm -rf ~"\n', "driver version"),
    "requirements-key-newline": ('[requirements]\n"a\\nb" = "x"\n', "newline"),
    "extends-path": ('extends = "../../../etc/passwd"\n', "not a recipe name"),
    "extends-not-string": ('extends = ["a"]\n', "must be a string"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_values_are_refused_naming_file_and_key(case: str, tmp_path: Path) -> None:
    text, phrase = HOSTILE[case]
    exc = _refused(tmp_path, {"evil.toml": BASE + text})
    assert "evil.toml" in exc.message, exc.message
    assert phrase in exc.message, (phrase, exc.message)
    assert len(exc.message) < 1200  # a hostile value is quoted short, never whole


def test_toolchain_symlink_out_of_the_project_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside.cmake"
    outside.write_text("message(FATAL_ERROR owned)\n")
    project = _project(tmp_path, {"evil.toml": BASE + 'toolchain = "recipes/toolchains/x.cmake"\n'})
    os.symlink(outside, project / "recipes" / "toolchains" / "x.cmake")
    with pytest.raises(RecipeError) as info:
        load_recipes(Project(project))
    assert "leads outside the project" in info.value.message and "evil.toml:5" in info.value.message


def test_extends_cycles_self_and_long_chains(tmp_path: Path) -> None:
    exc = _refused(tmp_path / "self", {"a.toml": 'extends = "a"\n' + BASE})
    assert "cycle" in exc.message and "a -> a" in exc.message
    exc = _refused(tmp_path / "pair", {"a.toml": 'extends = "b"\n' + BASE, "b.toml": 'extends = "a"\n' + BASE})
    assert "cycle" in exc.message
    chain = {f"r{n:02}.toml": f'extends = "r{n + 1:02}"\n' for n in range(20)} | {"r20.toml": BASE}
    exc = _refused(tmp_path / "chain", chain)  # type: ignore[arg-type]
    assert "chains more than 16" in exc.message


@pytest.mark.parametrize("target", ["/proc/self/environ", "/etc/passwd", "outside.toml"])
def test_a_recipe_symlinked_out_of_the_project_is_refused(target: str, tmp_path: Path) -> None:
    project = _project(tmp_path, {"ok.toml": BASE})
    (tmp_path / "outside.toml").write_text(BASE)
    os.symlink(target if target.startswith("/") else tmp_path / target, project / "recipes" / "evil.toml")
    with pytest.raises(RecipeError, match="outside the project") as info:
        load_recipes(Project(project))
    assert "evil.toml" in info.value.message and "PATH=" not in info.value.message


def test_a_recipe_that_is_a_fifo_or_directory_is_refused(tmp_path: Path) -> None:
    project = _project(tmp_path, {"ok.toml": BASE})
    (project / "recipes" / "dir.toml").mkdir()
    with pytest.raises(RecipeError, match="not a regular file"):
        load_recipes(Project(project))
    (project / "recipes" / "dir.toml").rmdir()
    os.mkfifo(project / "recipes" / "fifo.toml")  # a read would block forever
    with pytest.raises(RecipeError, match="not a regular file"):
        load_recipes(Project(project))


# --- documents that attack the parser: through the real CLI ------------------------------------------

DOCUMENTS = {
    "nested-10000-arrays": (BASE + "x = " + "[" * 10000 + "]" * 10000 + "\n", "nested too deeply"),
    "nested-inline-tables": (BASE + "x = " + "{a = " * 3000 + "1" + "}" * 3000 + "\n", "nested too deeply"),
    "dotted-table-200-deep": (BASE + "[cmake." + ".".join(["a"] * 200) + "]\nb = 1\n", "nested"),
    "huge-2MiB": (BASE + 'description = "' + "x" * (2 << 20) + '"\n', "at most 1048576"),
    "long-string-8k": (BASE + 'description = "' + "x" * 8192 + '"\n', "at most 4096"),
    "many-cmake-entries": (BASE + "[cmake]\n" + "".join(f"X{n} = 1\n" for n in range(2000)), "at most 1024"),
}


@pytest.mark.parametrize("case", sorted(DOCUMENTS))
def test_parser_attacks_are_exit_2_without_traceback(case: str, tmp_path: Path) -> None:
    text, phrase = DOCUMENTS[case]
    project = _project(tmp_path, {"evil.toml": text})
    res = run_cli("--project", str(project), "--work-dir", str(tmp_path / "work"), "plan", timeout=120)
    assert res.returncode == 2, res.stderr[-2000:]
    err = error_of(res.stderr)
    assert "evil.toml" in err and phrase in err, err
    assert "Traceback" not in res.stderr and "RecursionError" not in res.stderr
    assert len(res.stderr) < 5000  # the hostile document is not echoed back
