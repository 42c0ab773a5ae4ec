"""What a recipe value may contain: recipe strings are data, never code.

* :func:`substitute` replaces ``{{ variable }}`` (the documented recipe variables, nothing else)
  without a template engine: no attribute access, no filters, no calls, no statements, so a recipe
  cannot reach Python internals (``{{ lipsum.__globals__ ... }}``), the environment, or hide a
  value from redaction (``|reverse``). Anything else between ``{{ }}``, and every ``{% %}`` /
  ``{# #}``, is an error naming the expression.
* :func:`check_document` walks a parsed TOML document before anything else looks at it: nesting
  depth, string length, control / bidirectional-override / line-separator characters in values and
  keys (a newline in a CMake value rewrites CMakeCache.txt lines; a U+202E in a name shows one
  string and is another).
* The patterns below are what each identifier-like field may look like. Values that become file
  names, paths, argv elements, CMake ``-D`` entries or environment variables are checked against them
  with ``re.fullmatch`` (``$`` would let a trailing newline through).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

__all__ = [
    "BadValue",
    "MAX_DEPTH",
    "MAX_STRING",
    "check_document",
    "check_recipe_values",
    "substitute",
    "shown",
]

MAX_DEPTH = 8  # tables/arrays inside one another (recipes need 3)
MAX_STRING = 4096  # characters in one string value or key
MAX_ENTRIES = 1024  # entries in one table or array

#: Characters no recipe string may hold: C0/C1 controls (tab excepted), DEL, line/paragraph
#: separators, and the bidirectional overrides/isolates/marks that make text display as something
#: it is not ("Trojan Source", CVE-2021-42574).
_FORBIDDEN = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]")

NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
RUNNER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
TARGET = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,99}")
FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,99}")
GLOB = re.compile(r"[A-Za-z0-9_*?\[][A-Za-z0-9_.*?+\[\]!-]{0,99}")
TOOLCHAIN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*(/[A-Za-z0-9_][A-Za-z0-9_.+-]*)*")
CMAKE_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.+-]{0,127}")
ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
REQ_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
REQUIRE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}\s*(?:(?:[<>=!~]=?|===)\s*[A-Za-z0-9_.*+!-]+\s*,?\s*)*")
EMULATOR = re.compile(r"wine|wine64|box64|qemu-[a-z0-9_]+(?:-static)?")

#: Environment variables a recipe may not set for the build or the server under test: they make
#: every child process load or run code of their choosing (the loader's and shells' hooks; which
#: program a name runs: PATH; the compiler, its launcher or the programs gcc runs: CC/CXX/CUDACXX/
#: HIPCXX, CCACHE_PREFIX/CCACHE_COMPILER, COMPILER_PATH/GCC_EXEC_PREFIX; the CMake settings CMake
#: reads from the environment: CMAKE_*, e.g. CMAKE_TOOLCHAIN_FILE, CMAKE_C_COMPILER_LAUNCHER;
#: wine's loader and DLL overrides: WINE* but WINEDEBUG, its log switch; qemu-user's QEMU_*), or
#: they are our credentials. Compilers and launchers belong in the reviewed toolchain file.
ENV_DENIED = re.compile(
    r"LD_[A-Z_]*|DYLD_[A-Z_]*|BASH_ENV|ENV|SHELLOPTS|BASHOPTS|PS4|PROMPT_COMMAND|IFS|PYTHON(STARTUP|PATH|HOME|INSPECT)|"
    r"PERL5OPT|PERL5LIB|RUBYOPT|NODE_OPTIONS|GIT_.*|LOCARA_.*|GITHUB_TOKEN|.*(TOKEN|PASSWORD|SECRET).*|"
    r"PATH|CC|CXX|CUDACXX|HIPCXX|OBJC|OBJCXX|FC|ASM[A-Z_]*|CCACHE_(PREFIX|COMPILER|COMPILERCHECK|PATH)|COMPILER_PATH|"
    r"GCC_EXEC_PREFIX|CMAKE_.*|WINE(?!DEBUG\Z)[A-Z_]*|QEMU_.*",
    re.I,
)

#: CMake entries that run a program for every compile/link or include CMake code from a path: a
#: recipe sets those only through ``toolchain`` (a file inside the project, reviewed with it).
CMAKE_CODE_KEYS = re.compile(
    r"CMAKE_(TOOLCHAIN_FILE|PROJECT_(\w+_)?INCLUDE(_BEFORE)?|USER_MAKE_RULES_OVERRIDE(_\w+)?|\w+_(COMPILER|LINKER)_LAUNCHER|"
    r"\w+_CLANG_TIDY|\w+_CPPLINT|\w+_CPPCHECK|\w+_INCLUDE_WHAT_YOU_USE|\w+_LINK_WHAT_YOU_USE|MODULE_PATH|PREFIX_PATH)",
    re.I,
)
#: A quantified group that holds a quantifier (`(a+)+`, `(.*)*`, `(x|y+){2,}`): catastrophic
#: backtracking against a long server log.
NESTED_QUANTIFIER = re.compile(r"\((?:[^()\\]|\\.)*[+*}](?:[^()\\]|\\.)*\)[+*{]")

#: llama-server options the smoke harness owns (it binds 127.0.0.1 on a port it picked, serves our
#: UI, loads the tiny model) or that write files / reach the network: `--host 0.0.0.0 --path /`
#: in a recipe would serve the build host's files to the network during the smoke test.
SMOKE_OWNED_ARGS = re.compile(
    r"(--host|--port|--path|-m|--model|-mu|--model-url|-hf|-hfr|--hf-repo|-hff|--hf-file|-hft|--hf-token|--log-file|"
    r"--slot-save-path|--api-key-file|--ssl-key-file|--ssl-cert-file|--lora|--lora-scaled|--control-vector|-md|--model-draft)"
    r"(=.*)?"
)

_VARIABLE = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*")


class BadValue(Exception):
    """A value that breaks a rule: ``key`` (dotted) and a message; the loader adds file and line."""

    def __init__(self, key: str, message: str, hint: str):
        super().__init__(message)
        self.key, self.message, self.hint = key, message, hint


def shown(value: Any, limit: int = 80) -> str:
    """A short, printable picture of a hostile value for an error message (never the whole thing)."""
    text = value if isinstance(value, str) else type(value).__name__ if isinstance(value, dict | list) else repr(value)
    text = text.encode("unicode_escape").decode("ascii") if isinstance(text, str) else str(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --- substitution ------------------------------------------------------------------------------


def substitute(value: str, variables: Mapping[str, str], dotted: str) -> str:
    """``{{ name }}`` -> its value; anything else that looks like a template is :class:`BadValue`."""
    if "{" not in value:
        return value
    out: list[str] = []
    i = 0
    while True:
        start = min((p for p in (value.find("{{", i), value.find("{%", i), value.find("{#", i)) if p >= 0), default=-1)
        if start < 0:
            out.append(value[i:])
            return "".join(out)
        out.append(value[i:start])
        opener = value[start : start + 2]
        closer = {"{{": "}}", "{%": "%}", "{#": "#}"}[opener]
        end = value.find(closer, start + 2)
        if end < 0:
            raise BadValue(
                dotted,
                f"bad template in `{dotted}`: `{shown(value[start:], 40)}` is not closed (unexpected end of template).",
                "Recipe strings take only `{{ variable }}` (Jinja syntax: {{ variable }}), closed on the same string.",
            )
        expr = value[start : end + 2]
        if opener != "{{":
            kind = "statement" if opener == "{%" else "comment"
            raise BadValue(
                dotted,
                f"bad template in `{dotted}`: `{shown(expr)}` is a template {kind}; recipe strings are data, not templates.",
                f"Only `{{{{ variable }}}}` is substituted (Jinja syntax: {{{{ variable }}}}). Variables: {', '.join(sorted(variables))}.",
            )
        inner = value[start + 2 : end]
        m = _VARIABLE.fullmatch(inner)
        if m is None:
            raise BadValue(
                dotted,
                f"template in `{dotted}` uses `{shown(expr)}`: only a bare recipe variable is allowed "
                "(no attributes, indexes, filters, calls or operators).",
                f"Write `{{{{ name }}}}` with one of the variables available in recipe strings: {', '.join(sorted(variables))}.",
            )
        name = m[1]
        if name not in variables:
            raise BadValue(
                dotted,
                f"template in `{dotted}` uses an undefined variable: '{name}' is undefined (in `{shown(expr)}`).",
                f"Variables available in recipe strings: {', '.join(sorted(variables))}.",
            )
        out.append(variables[name])
        i = end + 2


# --- the document as parsed ------------------------------------------------------------------------


def check_document(data: Mapping[str, Any]) -> None:
    """Depth, size and characters of every key and string in a parsed TOML document (iterative:
    a hostile document cannot exhaust the stack here)."""
    stack: list[tuple[str, Any, int]] = [("", data, 1)]
    while stack:
        dotted, value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > MAX_DEPTH:
                raise BadValue(dotted, f"`{dotted}` is nested {depth} levels deep (at most {MAX_DEPTH}).",
                               "Recipes are flat tables of strings, numbers, booleans and arrays of strings.")
            if len(value) > MAX_ENTRIES:
                raise BadValue(dotted or "(top level)", f"`{dotted or 'the file'}` has {len(value)} entries (at most {MAX_ENTRIES}).",
                               "A recipe this large is not a recipe: check what generated it.")
            items = value.items() if isinstance(value, dict) else ((f"[{n}]", v) for n, v in enumerate(value))
            for key, sub in items:
                if isinstance(value, dict):
                    _check_text(f"{dotted}.{key}" if dotted else key, key, what="key")
                    sub_key = f"{dotted}.{key}" if dotted else key
                else:
                    sub_key = f"{dotted}{key}"
                stack.append((sub_key, sub, depth + 1))
        elif isinstance(value, str):
            _check_text(dotted, value, what="value")
        elif isinstance(value, float) and not math.isfinite(value):
            raise BadValue(dotted, f"`{dotted}` is {value!r}: recipes take finite numbers only.", "Write a plain number.")


def _check_text(dotted: str, text: str, *, what: str) -> None:
    if len(text) > MAX_STRING:
        raise BadValue(dotted, f"the {what} of `{shown(dotted, 60)}` is {len(text)} characters long (at most {MAX_STRING}).",
                       "Shorten it: recipe strings are names, flags and one-line descriptions.")
    bad = _FORBIDDEN.search(text)
    if bad:
        char = bad[0]
        name = {"\n": "a newline", "\r": "a carriage return", "\x00": "a NUL byte"}.get(char, f"U+{ord(char):04X}")
        raise BadValue(
            dotted,
            f"the {what} of `{shown(dotted, 60)}` contains {name} (in {shown(text)}): control, line-separator and "
            "bidirectional-override characters are not allowed in recipes.",
            "Write it on one line with visible characters only (a newline would start a new CMake cache line or "
            "shell command; a bidi override makes a name display as something it is not).",
        )


# --- field rules (on the merged, substituted recipe) -----------------------------------------------


def _pattern(dotted: str, value: str, pattern: re.Pattern[str], what: str) -> None:
    if not pattern.fullmatch(value):
        raise BadValue(dotted, f"`{dotted}` value {shown(value)!s} is not {what}.", f"`{dotted}` must match `{pattern.pattern}`.")


def _each(dotted: str, values: Any, check: Callable[[str, str], None]) -> None:
    for n, v in enumerate(values or ()):
        check(f"{dotted}[{n}]", v)


def check_recipe_values(merged: Mapping[str, Any]) -> None:
    """The rules for values that become paths, argv, CMake entries and environment variables."""
    runner = merged.get("runner", "")
    if runner:
        _pattern("runner", runner, RUNNER, "a CI runner label")
    _each("targets", merged.get("targets"), lambda k, v: _pattern(k, v, TARGET, "a CMake target name"))
    toolchain = merged.get("toolchain")
    if toolchain is not None and (not TOOLCHAIN.fullmatch(toolchain) or any(p in (".", "..") for p in toolchain.split("/"))):
        raise BadValue("toolchain", f"`toolchain` {shown(toolchain)} is not a relative path inside the project.",
                       "Give a path like recipes/toolchains/NAME.cmake (no '..', no absolute path).")
    _each("requires", merged.get("requires"), lambda k, v: _pattern(k, v, REQUIRE, "a requirement like `nvcc>=12.4`"))
    for key, value in (merged.get("cmake") or {}).items():
        _pattern(f"cmake.{key}", key, CMAKE_KEY, "a CMake variable name")
        if CMAKE_CODE_KEYS.fullmatch(key):
            raise BadValue(
                f"cmake.{key}",
                f"`cmake.{key}` runs a program or includes CMake code from a path: a recipe cannot set it in [cmake].",
                "Put such settings in the recipe's `toolchain` file (inside the project, reviewed with it).",
            )
        if isinstance(value, str) and ";" in value and any(part.lstrip().startswith("-") for part in value.split(";")):
            raise BadValue(
                f"cmake.{key}",
                f"`cmake.{key}` = {shown(value)}: a `;` list whose items start with `-` would turn into extra "
                "command-line options (e.g. `-D...`) wherever CMake expands the list.",
                "Give each CMake variable its own entry in [cmake]; flags go space-separated into one string.",
            )
    for table in ("env", "smoke.env"):
        source = merged.get("env") if table == "env" else (merged.get("smoke") or {}).get("env")
        for key in source or {}:
            if not ENV_KEY.fullmatch(key):
                raise BadValue(f"{table}.{key}", f"`{table}` key {shown(key)} is not an environment variable name.",
                               "Use letters, digits and '_' (not starting with a digit).")
            if ENV_DENIED.fullmatch(key):
                raise BadValue(
                    f"{table}.{key}",
                    f"`{table}.{key}` may not be set by a recipe: it would make every child process load or run other "
                    "code, or it names a credential.",
                    "Configure the build through [cmake] entries and the toolchain file; credentials come from the "
                    "environment of the run (docs/signing.md), never from a recipe.",
                )
    for key, value in (merged.get("requirements") or {}).items():
        _pattern(f"requirements.{key}", key, REQ_KEY, "a requirement name (letters, digits, '.', '_', '-')")
        if key == "min_cuda_driver":  # `install --backend auto` compares it with nvidia-smi's version
            _pattern(f"requirements.{key}", value, re.compile(r"\d{1,4}(\.\d{1,4}){0,3}"), "a driver version like 580.65.06")
    ship = merged.get("ship") or {}
    _each("ship.binaries", ship.get("binaries"), lambda k, v: _pattern(k, v, FILE_NAME, "a plain file name"))
    for field in ("libraries", "runtime"):
        def glob_rule(k: str, v: str, field: str = field) -> None:
            _pattern(k, v, GLOB, f"a file-name pattern (ship.{field} matches names in one directory)")
            if "**" in v:
                raise BadValue(k, f"`{k}` {shown(v)} uses `**`: ship.{field} matches names in one directory.", "Use `*`.")

        _each(f"ship.{field}", ship.get(field), glob_rule)
    smoke = merged.get("smoke") or {}
    for n, arg in enumerate(smoke.get("args") or ()):
        if SMOKE_OWNED_ARGS.fullmatch(arg):
            raise BadValue(f"smoke.args[{n}]", f"`smoke.args[{n}]` {shown(arg)} is set by the smoke test itself, or reads or "
                           "writes files or the network (it would override `--host 127.0.0.1`, the port, the model or the UI).",
                           "Give only options about how the server runs (e.g. -ngl 99, -c 2048, --threads 2).")
    for n, pattern in enumerate(smoke.get("expect") or ()):
        if len(pattern) > 500 or NESTED_QUANTIFIER.search(pattern):
            raise BadValue(f"smoke.expect[{n}]", f"`smoke.expect[{n}]` {shown(pattern)} is longer than 500 characters or "
                           "repeats a group that itself repeats (catastrophic backtracking on a long log).",
                           "Write a plain pattern, e.g. 'using device CUDA0 \\(' or 'offloaded (\\d+)/\\1 layers'.")
    emulator = smoke.get("emulator") or []
    if emulator:
        _pattern("smoke.emulator[0]", emulator[0], EMULATOR, "an emulator locara-build knows (wine, wine64, box64, qemu-ARCH)")
    timeout = smoke.get("timeout")
    if timeout is not None and not 0 < timeout <= 86400:
        raise BadValue("smoke.timeout", f"`smoke.timeout` = {timeout!r}: seconds must be more than 0 and at most 86400.",
                       "Give the seconds to wait for /health, e.g. 120.")
    n_predict = smoke.get("n_predict")
    if n_predict is not None and not 1 <= n_predict <= 4096:
        raise BadValue("smoke.n_predict", f"`smoke.n_predict` = {n_predict!r}: between 1 and 4096 tokens.",
                       "The smoke test asks for a few tokens (default 16); -1 would mean unbounded.")
