"""Property tests (hypothesis) for the recipe loader.

* Arbitrary TOML-ish documents (schema keys and strangers, every TOML value type, nested tables,
  Jinja-looking strings, `extends` to anything) and arbitrary bytes as recipe files: loading
  either succeeds or raises RecipeError (exit 2) — never another exception (a crash is exit 1).
* Valid recipes round-trip: what is written is what is loaded, and writing a loaded recipe back
  out loads to the same recipe (same recipe_hash).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from locara_build.build.recipe import SCHEMA, load_recipes
from locara_build.build.recipevalues import ENV_DENIED, SMOKE_OWNED_ARGS
from locara_build.core.errors import RecipeError
from locara_build.core.workdir import Project

KEYS = list(SCHEMA) + ["colour", "cmake.X", "ship", "smoke", "", "os.linux", "backend"]
names = st.from_regex(r"[a-z0-9][a-z0-9._-]{0,10}", fullmatch=True).filter(lambda n: n not in ("defaults", "models"))

scalar = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["{{ os }}", "{{ nope }}", "{% if %}", "{{ os ", "{{ 1/0 }}", "{# c #}", "{{ name }}-{{ exe }}",
                     "linux", "windows", "macos", "x86_64", "arm64", "cpu", "cuda", "vulkan", "metal", "release", "ci",
                     "dev", "zip", "tar.gz", "none", "authenticode", "(unclosed", "recipes/toolchains/x.cmake"]),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.booleans(),
)
value = st.recursive(
    scalar,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), children, max_size=4)),
    max_leaves=12,
)
documents = st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), value, max_size=8)


def _load(files: dict[str, bytes]) -> dict[str, Any] | None:
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        (project / "recipes").mkdir()
        for name, data in files.items():
            (project / "recipes" / name).write_bytes(data)
        try:
            return {n: r.to_dict() for n, r in load_recipes(Project(project)).items()}
        except RecipeError as exc:
            assert exc.exit_code == 2 and exc.message and exc.hint, exc
            return None


def _toml(doc: dict[str, Any]) -> bytes | None:
    try:
        return tomli_w.dumps(doc).encode()
    except (TypeError, ValueError):
        return None


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(names, documents, min_size=1, max_size=3), st.booleans())
def test_arbitrary_documents_load_or_raise_recipe_error(docs: dict[str, dict[str, Any]], with_defaults: bool) -> None:
    files = {}
    for name, doc in docs.items():
        data = _toml(doc)
        if data is not None:
            files[f"{name}.toml"] = data
    if with_defaults and files:
        files["defaults.toml"] = files.pop(next(iter(files)))
    _load(files)  # asserts: nothing but RecipeError


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_arbitrary_bytes_load_or_raise_recipe_error(data: bytes) -> None:
    _load({"r.toml": data})
    _load({"defaults.toml": data, "r.toml": b'os = "linux"\narch = "x86_64"\nbackend = "cpu"\n'})


# --- valid recipes round-trip --------------------------------------------------------------------

COMBOS = [("linux", "x86_64", "cpu"), ("linux", "x86_64", "vulkan"), ("linux", "x86_64", "cuda"),
          ("windows", "x86_64", "cpu"), ("macos", "arm64", "metal"), ("linux", "arm64", "cpu")]
# recipe strings hold no control, line-separator or bidi characters (locara_build/build/recipevalues.py)
plain = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"),
                                       blacklist_characters="{}\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
                                                            "\u2066\u2067\u2068\u2069\ufeff"), max_size=20)
label = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,15}", fullmatch=True)
no_dash_list = plain.filter(lambda v: ";" not in v)
cmake_name = st.from_regex(r"[A-Z][A-Z0-9_]{0,12}", fullmatch=True)
cmake_value = st.one_of(no_dash_list, st.booleans(), st.integers(min_value=-(2**31), max_value=2**31))
globs = st.lists(st.from_regex(r"[a-z*][a-z0-9.*_-]{0,10}", fullmatch=True).filter(lambda g: "**" not in g), max_size=3)


@st.composite
def valid_recipe(draw: st.DrawFn) -> dict[str, Any]:
    os_, arch, backend = draw(st.sampled_from(COMBOS))
    doc: dict[str, Any] = {"os": os_, "arch": arch, "backend": backend,
                           "flavour": draw(st.sampled_from(["release", "ci", "dev"])),
                           "description": draw(plain), "runner": draw(label),
                           "targets": draw(st.lists(st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True), min_size=1, max_size=3)),
                           "requires": draw(st.lists(st.sampled_from(["zig", "nvcc>=12.4", "openssl>=3", "glslc"]), max_size=2,
                                                     unique=True)),
                           "signing": draw(st.sampled_from(["none", "authenticode", "macos"])),
                           "archive": draw(st.sampled_from(["tar.gz", "zip"])),
                           "cmake": draw(st.dictionaries(cmake_name, cmake_value, max_size=5)),
                           "env": draw(st.dictionaries(cmake_name.filter(lambda k: not ENV_DENIED.fullmatch(k)), plain, max_size=3)),
                           "requirements": draw(st.dictionaries(st.from_regex(r"[a-z]{1,8}", fullmatch=True), plain, max_size=2)),
                           "ship": {"binaries": draw(st.lists(st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True), max_size=2)),
                                    "libraries": draw(globs), "runtime": draw(globs)},
                           "smoke": {"args": draw(st.lists(plain.filter(lambda a: not SMOKE_OWNED_ARGS.fullmatch(a)), max_size=3)), "env": draw(st.dictionaries(cmake_name.filter(lambda k: not ENV_DENIED.fullmatch(k)), plain, max_size=2)),
                                     "expect": draw(st.lists(st.sampled_from(["ready", r"device \d+", "CPU"]), max_size=2)),
                                     "emulator": draw(st.sampled_from([[], ["wine"], ["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu"]])),
                                     "timeout": draw(st.floats(min_value=0.5, max_value=1e4)),
                                     "n_predict": draw(st.integers(min_value=1, max_value=4096)), "skip": draw(plain),
                                     "device": draw(st.sampled_from(["", "nvidia-gpu"]))}}
    return doc


def _written_back(loaded: dict[str, Any]) -> dict[str, Any]:
    """A loaded recipe as a recipe file again (what to_dict adds is dropped; None toolchain left out)."""
    return {k: v for k, v in loaded.items() if k not in ("name", "file", "toolchain")}


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_recipe(), names)
def test_valid_recipes_round_trip(doc: dict[str, Any], name: str) -> None:
    loaded = _load({f"{name}.toml": tomli_w.dumps(doc).encode()})
    assert loaded is not None, doc
    got = loaded[name]
    assert got["name"] == name and got["file"] == f"recipes/{name}.toml"
    for key, want in doc.items():
        assert got[key] == want, (key, got[key], want)
    again = _load({f"{name}.toml": tomli_w.dumps(_written_back(got)).encode()})
    assert again is not None and again[name] == got
