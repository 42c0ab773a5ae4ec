"""Recipes: TOML data -> validated, frozen :class:`Recipe` objects.

Two stages, as in rattler-build: the TOML is parsed and checked key by key (unknown key ->
error with "did you mean", wrong type -> file, key, expected type), layers are merged, and
only then are ``{{ variable }}`` references inside *string values* substituted. Recipe strings
are data, not code: there is no template engine (no attributes, filters, calls or statements;
:mod:`locara_build.build.recipevalues`), and every value that becomes a path, argv element, CMake entry
or environment variable is checked against a strict pattern. The text of a recipe is never templated.

Layers, lowest first (tables merge key by key, everything else replaces)::

    recipes/defaults.toml  (top level)
    defaults.toml [os.<os>]  ->  [backend.<backend>]  ->  [flavour.<flavour>]
    the recipe it ``extends`` (recursively)  ->  the recipe file itself

Recipe files are ``recipes/*.toml`` except ``defaults.toml`` and ``models.toml``.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from locara_build.build import backends, hostdetect, platforms
from locara_build.build.cmakevalue import CMakeValue
from locara_build.build.recipevalues import (
    NAME,
    BadValue,
    check_document,
    check_recipe_values,
    shown,
    substitute,
)
from locara_build.core.errors import RecipeError
from locara_build.core.workdir import Project

__all__ = ["Recipe", "ShipSpec", "SmokeSpec", "load_recipes", "load_recipe_file", "RESERVED_FILES", "SCHEMA"]

RESERVED_FILES = frozenset({"defaults.toml", "models.toml"})
FLAVOURS = ("release", "ci", "dev")
SIGNING_KINDS = ("none", "authenticode", "macos")
ARCHIVES = ("tar.gz", "zip")
NAME_RE = NAME  # use with fullmatch (`$` lets a trailing newline through)
#: A recipe file larger than this is refused before parsing (tomllib needs ~15 s for 50 MB).
MAX_RECIPE_BYTES = 1 << 20
MAX_EXTENDS = 16  # recipes in one `extends` chain

# --- schema -------------------------------------------------------------------------------------
# field -> (type tag, help). Type tags: str, int, number, bool, list[str], table[str], table[scalar],
# or a nested dict schema.

SHIP_SCHEMA: dict[str, Any] = {
    "binaries": ("list[str]", "executables from the build's bin/ dir (without .exe)"),
    "libraries": ("list[str]", "glob patterns of shared libraries / backend plugins in bin/ (or lib/)"),
    "runtime": ("list[str]", "runtime libraries to bundle from the toolchain (e.g. libcudart.so.*)"),
    "ui": ("list[str]", "web UIs in ui/: completion (ours, at /) and/or chat (upstream's, built with npm, at /chat.html)"),
}
SMOKE_SCHEMA: dict[str, Any] = {
    "args": ("list[str]", "extra llama-server arguments for the smoke test (e.g. -ngl 99)"),
    "env": ("table[str]", "extra environment for the server under test"),
    "expect": ("list[str]", "regexes that must appear in the server log (e.g. the GPU device used)"),
    "emulator": ("list[str]", "command prefix to run the binary (e.g. ['wine'])"),
    "timeout": ("number", "seconds to wait for /health"),
    "n_predict": ("int", "tokens requested from /completion"),
    "skip": ("str", "reason the server cannot run on a build host at all; empty = run"),
    "device": (
        "str",
        "hardware the backend's kernels need (nvidia-gpu); without it the smoke runs on the CPU backends "
        "the build ships and `expect` is not checked",
    ),
}
SCHEMA: dict[str, Any] = {
    "name": ("str", "recipe name (defaults to the file name)"),
    "description": ("str", "one line for people"),
    "extends": ("str", "name of a recipe whose values this one starts from"),
    "os": ("str", "target OS: linux | windows | macos"),
    "arch": ("str", "target architecture: x86_64 | arm64"),
    "backend": ("str", "cpu | cuda | vulkan | metal | rocm | universal (every backend as a plugin)"),
    "flavour": ("str", "release (shipped) | ci | dev (fast variants for tests)"),
    "runner": ("str", "CI runner label for this recipe's job"),
    "targets": ("list[str]", "CMake targets to build (only what ships)"),
    "toolchain": ("str", "CMake toolchain file, relative to the project root"),
    "requires": ("list[str]", "extra toolchain requirements for doctor (e.g. 'zig', 'nvcc>=12.4')"),
    "signing": ("str", "none | authenticode | macos (detached minisign signatures always)"),
    "archive": ("str", "tar.gz | zip"),
    "cmake": ("table[scalar]", "CMake cache entries"),
    "env": ("table[str]", "environment for configure and build"),
    "requirements": ("table[str]", "what the artifact needs at run time, copied into release.json"),
    "ship": SHIP_SCHEMA,
    "smoke": SMOKE_SCHEMA,
}
DEFAULTS_EXTRA = {"os": "table", "backend": "table", "flavour": "table"}


@dataclass(frozen=True, kw_only=True)
class ShipSpec:
    binaries: tuple[str, ...]
    libraries: tuple[str, ...]
    runtime: tuple[str, ...]
    ui: tuple[str, ...] = ("completion",)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"binaries": list(self.binaries), "libraries": list(self.libraries), "runtime": list(self.runtime)}
        if self.ui != ("completion",):  # the default stays out, so existing recipes keep their hash
            out["ui"] = list(self.ui)
        return out


@dataclass(frozen=True, kw_only=True)
class SmokeSpec:
    args: tuple[str, ...]
    env: Mapping[str, str]
    expect: tuple[str, ...]
    emulator: tuple[str, ...]
    timeout: float
    n_predict: int
    skip: str
    device: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "args": list(self.args),
            "env": dict(sorted(self.env.items())),
            "expect": list(self.expect),
            "emulator": list(self.emulator),
            "timeout": self.timeout,
            "n_predict": self.n_predict,
            "skip": self.skip,
            "device": self.device,
        }


@dataclass(frozen=True, kw_only=True)
class Recipe:
    name: str
    path: Path
    description: str
    os: str
    arch: str
    backend: str
    flavour: str
    runner: str
    targets: tuple[str, ...]
    toolchain: str | None
    requires: tuple[str, ...]
    signing: str
    archive: str
    cmake: Mapping[str, CMakeValue]
    env: Mapping[str, str]
    requirements: Mapping[str, str]
    ship: ShipSpec
    smoke: SmokeSpec

    @property
    def is_release(self) -> bool:
        return self.flavour == "release"

    @property
    def exe_suffix(self) -> str:
        return platforms.get(self.os).exe_suffix

    def to_dict(self) -> dict[str, Any]:
        """Canonical, path-independent form (what ``recipe_hash`` covers)."""
        return {
            "name": self.name,
            "file": f"recipes/{self.path.name}",
            "description": self.description,
            "os": self.os,
            "arch": self.arch,
            "backend": self.backend,
            "flavour": self.flavour,
            "runner": self.runner,
            "targets": list(self.targets),
            "toolchain": self.toolchain,
            "requires": list(self.requires),
            "signing": self.signing,
            "archive": self.archive,
            "cmake": dict(sorted(self.cmake.items())),
            "env": dict(sorted(self.env.items())),
            "requirements": dict(sorted(self.requirements.items())),
            "ship": self.ship.to_dict(),
            "smoke": self.smoke.to_dict(),
        }

    @property
    def recipe_hash(self) -> str:
        blob = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()


# --- parsing helpers ----------------------------------------------------------------------------


def _line_of(text: str, dotted: str) -> int | None:
    """Best-effort line number of ``a.b.key`` in TOML text (tables and inline keys)."""
    *tables, key = dotted.split(".")
    want_table = ".".join(tables)
    current = ""
    key_re = re.compile(rf'^\s*"?{re.escape(key)}"?\s*=')
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        header = re.match(r"^\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$", stripped)
        if header:
            current = header.group(1).replace('"', "").replace(" ", "")
            if current == dotted:
                return number
            continue
        if current == want_table and key_re.match(line):
            return number
        # dotted or inline forms: `ship.binaries = ...`, `smoke = { env = ... }`
        if tables and current == "" and re.match(rf"^\s*{re.escape(tables[0])}\s*[.=]", line):
            if key in line:
                return number
    return None


class _Ctx:
    def __init__(self, path: Path, text: str):
        self.path = path
        self.text = text

    def where(self, dotted: str) -> str:
        line = _line_of(self.text, dotted)
        return f"{self.path}:{line}" if line else str(self.path)

    def bad(self, exc: BadValue) -> RecipeError:
        return self.fail(exc.key, exc.message, exc.hint)

    def fail(self, dotted: str, message: str, hint: str) -> RecipeError:
        return RecipeError(
            f"{self.where(dotted)}: {message}",
            hint=hint,
            details={"file": str(self.path), "key": dotted, "line": _line_of(self.text, dotted)},
        )


def _read_toml(path: Path) -> tuple[dict[str, Any], str]:
    try:
        if not path.is_file():
            raise RecipeError(f"{path}: not a regular file.", hint="Recipes are plain TOML files: replace it with one.")
        size = path.stat().st_size
        if size > MAX_RECIPE_BYTES:
            raise RecipeError(
                f"{path}: recipe file is {size} bytes (at most {MAX_RECIPE_BYTES}).",
                hint="A recipe is a few dozen lines of TOML: check what wrote this file (or restore it from git).",
                details={"file": str(path)},
            )
        data = path.read_bytes()
    except OSError as exc:
        raise RecipeError(f"{path}: cannot read recipe file: {exc.strerror}.", hint="Check the path.") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise RecipeError(
            f"{path}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}).",
            hint="Recipes are UTF-8 TOML: re-save the file as UTF-8 (or restore it from git).",
            details={"file": str(path), "line": line},
        ) from None
    if not text.strip():
        raise RecipeError(
            f"{path}: recipe file is empty.",
            hint="Give it at least os, arch and backend (see docs/recipes.md), or delete it.",
        )
    try:
        parsed = tomllib.loads(text)
    except RecursionError:  # tomllib recurses per nesting level: `x = [[[[...` exhausts the stack
        raise RecipeError(
            f"{path}: invalid TOML: arrays or inline tables nested too deeply.",
            hint="Recipes are flat tables: nothing in them nests more than 3 levels.",
            details={"file": str(path)},
        ) from None
    except tomllib.TOMLDecodeError as exc:
        # Python < 3.14 has no exc.lineno; the message ends "(at line N, column M)"
        found = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        line = getattr(exc, "lineno", None) or (int(found[1]) if found else None)
        raise RecipeError(
            f"{path}{f':{line}' if line else ''}: invalid TOML: {exc}.",
            hint="Fix the syntax at that line (strings need quotes, tables [name], arrays [a, b]).",
            details={"file": str(path), "line": line},
        ) from None
    try:
        check_document(parsed)
    except BadValue as exc:
        raise _Ctx(path, text).bad(exc) from None
    return parsed, text


_TYPE_NAMES = {
    "str": "a string",
    "int": "an integer",
    "number": "a number",
    "bool": "true or false",
    "list[str]": "an array of strings",
    "table[str]": "a table of strings",
    "table[scalar]": "a table of strings, integers or booleans",
    "table": "a table",
}


def _type_ok(tag: str, value: Any) -> bool:
    if tag == "str":
        return isinstance(value, str)
    if tag == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if tag == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if tag == "bool":
        return isinstance(value, bool)
    if tag == "list[str]":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if tag == "table[str]":
        return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
    if tag == "table[scalar]":
        return isinstance(value, dict) and all(isinstance(v, str | int | bool) for v in value.values())
    if tag == "table":
        return isinstance(value, dict)
    raise AssertionError(tag)


def _describe(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "an array"}.get(
        type(value), "a table" if isinstance(value, dict) else type(value).__name__
    )


def _check(data: Mapping[str, Any], schema: Mapping[str, Any], ctx: _Ctx, prefix: str = "") -> None:
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        spec = schema.get(key)
        if spec is None:
            close = difflib.get_close_matches(key, list(schema), n=1, cutoff=0.6)
            suggestion = f" Did you mean `{prefix}{close[0]}`?" if close else ""
            valid = ", ".join(sorted(schema))
            raise ctx.fail(
                dotted,
                f"unknown key `{dotted}`.{suggestion}",
                f"Valid keys{' in [' + prefix.rstrip('.') + ']' if prefix else ''}: {valid}.",
            )
        if isinstance(spec, dict):
            if not isinstance(value, dict):
                raise ctx.fail(dotted, f"`{dotted}` must be a table, not {_describe(value)}.", f"Write it as [{dotted}].")
            _check(value, spec, ctx, prefix=f"{dotted}.")
            continue
        tag, help_text = spec
        if tag.startswith("table[") and isinstance(value, dict):
            entry_tag = "str" if tag == "table[str]" else "scalar"
            for sub, sub_value in value.items():
                ok = isinstance(sub_value, str) if entry_tag == "str" else isinstance(sub_value, str | int | bool)
                if not ok:
                    want = "a string" if entry_tag == "str" else "a string, integer or boolean"
                    raise ctx.fail(
                        f"{dotted}.{sub}",
                        f"`{dotted}.{sub}` must be {want}, not {_describe(sub_value)} ({shown(sub_value)}).",
                        f"`{dotted}`: {help_text}.",
                    )
        if not _type_ok(tag, value):
            raise ctx.fail(
                dotted,
                f"`{dotted}` must be {_TYPE_NAMES[tag]}, not {_describe(value)} ({shown(value)}).",
                f"`{dotted}`: {help_text}.",
            )


def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _choice(ctx: _Ctx, key: str, value: Any, allowed: tuple[str, ...] | list[str], what: str) -> None:
    if value in allowed:
        return
    close = difflib.get_close_matches(str(value), list(allowed), n=1, cutoff=0.5)
    suggestion = f" Did you mean `{close[0]}`?" if close else ""
    raise ctx.fail(key, f"unknown {what} `{shown(value)}`.{suggestion}", f"`{key}` must be one of: {', '.join(allowed)}.")


# --- {{ variable }} substitution --------------------------------------------------------------


def _render(value: Any, variables: Mapping[str, str], ctx: _Ctx, dotted: str) -> Any:
    try:
        if isinstance(value, str):
            return substitute(value, variables, dotted)
    except BadValue as exc:
        raise ctx.bad(exc) from None
    if isinstance(value, list):
        return [_render(v, variables, ctx, dotted) for v in value]
    if isinstance(value, dict):
        return {k: _render(v, variables, ctx, f"{dotted}.{k}") for k, v in value.items()}
    return value


# --- loading --------------------------------------------------------------------------------


def _recipe_files(project: Project) -> list[Path]:
    if not project.recipes_dir.is_dir():
        raise RecipeError(f"{project.recipes_dir}: no recipes directory.", hint="Create recipes/*.toml.")
    files = sorted(p for p in project.recipes_dir.glob("*.toml") if p.name not in RESERVED_FILES)
    for path in [*files, project.defaults_path]:
        _inside_project(project, path)
    return files


def _inside_project(project: Project, path: Path) -> None:
    """A recipe that is a symlink leading out of the project (to /proc/self/environ, another checkout's
    files) is refused: recipes are the project's own files."""
    if path.is_symlink() and not path.resolve().is_relative_to(project.root.resolve()):
        raise RecipeError(
            f"{path}: a symlink to {path.resolve()}, outside the project.",
            hint="Recipes are the project's own files: replace the link with the file itself (or delete it).",
            details={"file": str(path)},
        )


def _load_defaults(project: Project) -> tuple[dict[str, Any], _Ctx | None]:
    path = project.defaults_path
    if not path.exists():
        return {}, None
    data, text = _read_toml(path)
    ctx = _Ctx(path, text)
    schema = {**SCHEMA, **{k: ("table", f"[{k}.<name>] partial recipe") for k in DEFAULTS_EXTRA}}
    _check(data, schema, ctx)
    for layer in DEFAULTS_EXTRA:
        for sub, table in data.get(layer, {}).items():
            if not isinstance(table, dict):
                raise ctx.fail(f"{layer}.{sub}", f"`{layer}.{sub}` must be a table.", f"Write [{layer}.{sub}].")
            _check(table, SCHEMA, ctx, prefix=f"{layer}.{sub}.")
    return data, ctx


def load_recipe_file(path: Path) -> tuple[dict[str, Any], _Ctx]:
    data, text = _read_toml(path)
    ctx = _Ctx(path, text)
    _check(data, SCHEMA, ctx)
    return data, ctx


def load_recipes(project: Project, names: list[str] | None = None) -> dict[str, Recipe]:
    """Load, merge, render and validate every recipe; return those asked for (all when ``names`` is None)."""
    defaults, _ = _load_defaults(project)
    raw: dict[str, tuple[dict[str, Any], _Ctx]] = {}
    for path in _recipe_files(project):
        data, ctx = load_recipe_file(path)
        name = data.get("name", path.stem)
        if not NAME_RE.fullmatch(name):
            raise ctx.fail(
                "name",
                f"recipe name `{shown(name)}` is not valid.",
                "Use lower-case letters, digits, '.', '_', '-' (at most 64, starting with a letter or digit): "
                "the name becomes directory names and CI job names.",
            )
        extends = data.get("extends")
        if extends is not None and not NAME_RE.fullmatch(extends):
            raise ctx.fail("extends", f"`extends` = `{shown(extends)}` is not a recipe name.",
                           "`extends` names another recipe (its file name without .toml), never a path.")
        if name in raw:
            other = raw[name][1].path
            raise ctx.fail(
                "name",
                f"duplicate recipe name `{name}` (also defined by {other}).",
                "Give each recipe a unique name (the file name, unless `name` says otherwise).",
            )
        raw[name] = (data, ctx)

    recipes: dict[str, Recipe] = {}
    for name in _parents_first(raw):  # a bad inherited value is reported in the file that has it
        recipes[name] = _resolve(name, raw, defaults, project)
    recipes = {name: recipes[name] for name in raw}

    if names is None:
        return recipes
    picked: dict[str, Recipe] = {}
    for want in names:
        if want not in recipes:
            close = difflib.get_close_matches(want, list(recipes), n=1, cutoff=0.5)
            suggestion = f" Did you mean `{close[0]}`?" if close else ""
            raise RecipeError(
                f"no recipe named `{want}` in {project.recipes_dir}.{suggestion}",
                hint=f"Known recipes: {', '.join(sorted(recipes))}.",
            )
        picked[want] = recipes[want]
    return picked


def _parents_first(raw: Mapping[str, tuple[dict[str, Any], _Ctx]]) -> list[str]:
    """Recipe names, each after the recipe it ``extends`` (cycles are left to :func:`_flatten`)."""
    order: list[str] = []
    seen: set[str] = set()
    for name in raw:
        chain: list[str] = []
        cur: Any = name
        while isinstance(cur, str) and cur in raw and cur not in seen and cur not in chain:
            chain.append(cur)
            cur = raw[cur][0].get("extends")
        for n in reversed(chain):
            seen.add(n)
            order.append(n)
    return order


def _flatten(name: str, raw: Mapping[str, tuple[dict[str, Any], _Ctx]], seen: tuple[str, ...] = ()) -> dict[str, Any]:
    data, ctx = raw[name]
    if name in seen:
        chain = " -> ".join((*seen, name))
        raise ctx.fail("extends", f"recipes extend each other in a cycle: {chain}.", "Break the cycle.")
    parent = data.get("extends")
    own = {k: v for k, v in data.items() if k not in ("extends", "name")}
    if parent is None:
        return own
    if len(seen) >= MAX_EXTENDS:
        raise ctx.fail("extends", f"`extends` chains more than {MAX_EXTENDS} recipes: {' -> '.join((*seen[:4], '...', name))}.",
                       "Make recipes extend a common base directly.")
    if parent not in raw:
        close = difflib.get_close_matches(parent, list(raw), n=1, cutoff=0.5)
        suggestion = f" Did you mean `{close[0]}`?" if close else ""
        raise ctx.fail("extends", f"`extends` names unknown recipe `{parent}`.{suggestion}", "Name an existing recipe.")
    return _merge(_flatten(parent, raw, (*seen, name)), own)


def _resolve(
    name: str, raw: Mapping[str, tuple[dict[str, Any], _Ctx]], defaults: Mapping[str, Any], project: Project
) -> Recipe:
    data, ctx = raw[name]
    own = _flatten(name, raw)
    base = {k: v for k, v in defaults.items() if k not in DEFAULTS_EXTRA}
    for field in ("os", "arch", "backend"):
        if field not in own:
            raise ctx.fail(field, f"missing required key `{field}`.", f"Add `{field} = ...` ({SCHEMA[field][1]}).")
    flavour = own.get("flavour", base.get("flavour", "release"))
    _choice(ctx, "os", own["os"], list(platforms.REGISTRY), "os")
    _choice(ctx, "arch", own["arch"], list(platforms.ARCHES), "arch")
    _choice(ctx, "backend", own["backend"], list(backends.REGISTRY), "backend")
    _choice(ctx, "flavour", flavour, FLAVOURS, "flavour")
    merged = base
    for layer, key in (("os", own["os"]), ("backend", own["backend"]), ("flavour", flavour)):
        merged = _merge(merged, defaults.get(layer, {}).get(key, {}))
    merged = _merge(merged, own)

    platform = platforms.get(own["os"])
    backend = backends.get(own["backend"])
    if own["os"] not in backend.supported_os:
        raise ctx.fail(
            "backend",
            f"backend `{own['backend']}` cannot target {own['os']}.",
            f"`{own['backend']}` supports: {', '.join(sorted(backend.supported_os))}.",
        )

    variables = {
        "name": name,
        "os": own["os"],
        "arch": own["arch"],
        "backend": own["backend"],
        "flavour": flavour,
        "exe": platform.exe_suffix,
    }
    merged = {k: _render(v, variables, ctx, k) for k, v in merged.items()}
    try:
        check_recipe_values(merged)
    except BadValue as exc:
        raise ctx.bad(exc) from None

    signing = merged.get("signing", platform.signing)
    archive = merged.get("archive", platform.archive)
    _choice(ctx, "signing", signing, SIGNING_KINDS, "signing kind")
    _choice(ctx, "archive", archive, ARCHIVES, "archive format")
    toolchain = merged.get("toolchain")
    if toolchain is not None and not (project.root / toolchain).is_file():
        raise ctx.fail("toolchain", f"toolchain file `{toolchain}` does not exist.", "Paths are relative to the project root.")
    if toolchain is not None and not (project.root / toolchain).resolve().is_relative_to(project.root.resolve()):
        raise ctx.fail("toolchain", f"toolchain file `{toolchain}` leads outside the project (a symlink to "
                       f"{(project.root / toolchain).resolve()}).", "Keep toolchain files inside the project (recipes/toolchains/).")
    targets = tuple(merged.get("targets", ("llama-server",)))
    if not targets:
        raise ctx.fail("targets", "`targets` is empty: nothing would be built.", "List at least llama-server.")
    for dotted, pattern_list in (("smoke.expect", merged.get("smoke", {}).get("expect", [])),):
        for pattern in pattern_list:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ctx.fail(dotted, f"`{dotted}` has an invalid regex {pattern!r}: {exc}.", "Fix the pattern.") from None

    ship = merged.get("ship", {})
    ui = tuple(ship.get("ui", ("completion",)))
    for item in ui:
        _choice(ctx, "ship.ui", item, ["completion", "chat"], "UI")
    if not ui:
        raise ctx.fail("ship.ui", "`ship.ui` is empty: the package would have no UI.", 'Use ["completion"], ["chat"] or both.')
    smoke = merged.get("smoke", {})
    device = smoke.get("device", "")
    if device:
        _choice(ctx, "smoke.device", device, list(hostdetect.SMOKE_DEVICES), "smoke device")
    return Recipe(
        name=name,
        path=ctx.path,
        description=merged.get("description", f"llama-server, {own['backend']}, {own['os']}-{own['arch']}"),
        os=own["os"],
        arch=own["arch"],
        backend=own["backend"],
        flavour=flavour,
        runner=merged.get("runner", ""),
        targets=targets,
        toolchain=toolchain,
        requires=tuple(merged.get("requires", ())),
        signing=signing,
        archive=archive,
        cmake=dict(merged.get("cmake", {})),
        env=dict(merged.get("env", {})),
        requirements=dict(merged.get("requirements", {})),
        ship=ShipSpec(
            binaries=tuple(ship.get("binaries", ("llama-server",))),
            libraries=tuple(ship.get("libraries", platform.shared_lib_globs)),
            runtime=tuple(ship.get("runtime", ())),
            ui=ui,
        ),
        smoke=SmokeSpec(
            args=tuple(smoke.get("args", ())),
            env=dict(smoke.get("env", {})),
            expect=tuple(smoke.get("expect", ())),
            emulator=tuple(smoke.get("emulator", ())),
            timeout=float(smoke.get("timeout", 120)),
            n_predict=int(smoke.get("n_predict", 16)),
            skip=smoke.get("skip", ""),
            device=device,
        ),
    )
