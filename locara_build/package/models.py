"""Model manifests and the content-addressed model store.

* ``recipes/models.toml`` (data, strictly checked) lists the models an artifact recommends: id,
  file name, sha256, size, urls, license, recommended server args. Each package carries the same
  list as ``models/manifest.json``; :func:`load_manifest` reads either form.
* The store (``<store>/sha256/<hex>``; ``--store`` > ``$LOCARA_MODEL_STORE`` > ``<work>/models``)
  holds verified blobs named by their sha256, so every version of every artifact shares one copy.
  A blob is only ever created by renaming a file whose size and sha256 were verified
  (:mod:`locara_build.core.httpfetch`); a download that fails verification is deleted and never used.
  ``<hex>.json`` beside a blob says what it is (informational: the name is the identity).
* Downloads resume (``<hex>.part`` + Range/If-Range, only from the URL that sent its bytes), try
  each URL in order, and hold a lock file so two fetches of one model never write the same partial
  file. URLs are recorded and printed without credentials or query values (``httpfetch.redact_url``).
"""

from __future__ import annotations

import contextlib
import difflib
import json
import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from locara_build.core import httpfetch, log
from locara_build.core.digest import sha256_file
from locara_build.core.errors import ConfigError, NetworkError, VerifyError
from locara_build.core.filelock import file_lock
from locara_build.core.redact import redact_urls, url_has_credentials
from locara_build.upstream.lock import atomic_write_bytes

__all__ = [
    "Model",
    "ModelManifest",
    "MANIFEST_SCHEMA",
    "load_manifest",
    "load_models_toml",
    "parse_manifest",
    "adhoc_model",
    "blob_path",
    "store_has",
    "fetch_model",
    "list_store",
    "verify_store",
]

MANIFEST_SCHEMA = 1
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
ID_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
# What the launchers (run.sh / run.cmd / run.command) embed is checked against these strict patterns
# (always with re.fullmatch: `$` would let a trailing newline through) when a manifest is loaded and
# again when the launchers are rendered; the launchers quote every value all the same (issue 19.2).
LAUNCHER_PATTERNS: dict[str, tuple[re.Pattern[str], str]] = {
    "id": (re.compile(r"[a-z0-9][a-z0-9._-]{0,127}"), "lower-case ASCII letters, digits, '.', '_' and '-' (at most 128)"),
    "sha256": (re.compile(r"[0-9a-f]{64}"), "64 lower-case hex digits"),
    "file": (
        re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,199}(?: [A-Za-z0-9._+-]{1,199}){0,8}(?<![.])"),
        "ASCII letters, digits, '.', '_', '-', '+' and single spaces, starting with a letter or digit, not ending in '.'",
    ),
    "urls": (
        re.compile(r"(?:https?|file)://[A-Za-z0-9._~:/?#\[\]@!$&'()*+,;=-]*(?:%[0-9A-Fa-f]{2}[A-Za-z0-9._~:/?#\[\]@!$&'()*+,;=-]*)*"),
        "an http(s):// or file:// URL of RFC 3986 characters only (percent-encode spaces, quotes, non-ASCII: %20, %22, ...)",
    ),
    "args": (re.compile(r"[ !#-~]{1,1000}"), "printable ASCII without double quotes (one argument per array item)"),
    "license": (re.compile(r"[A-Za-z0-9][A-Za-z0-9.+:() -]{0,199}"), "an SPDX license id or expression (e.g. Apache-2.0)"),
}
MAX_MODEL_SIZE = 1 << 50  # 1 PiB: sizes stay exact in every shell's arithmetic


def launcher_problem(key: str, value: object) -> str | None:
    """Why ``value`` (of model field ``key``) may not be written into a launcher; None when it may."""
    if key == "size":
        ok = isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_MODEL_SIZE
        return None if ok else f"`size` must be a whole number of bytes between 1 and {MAX_MODEL_SIZE}, not {value!r}"
    pattern, rule = LAUNCHER_PATTERNS[key]
    if not isinstance(value, str) or not pattern.fullmatch(value):
        shown = "a URL" if key == "urls" else repr(value)  # a URL may carry credentials: never echoed
        return f"`{key}` value {shown} is not allowed: {rule}"
    return None

# key -> (type tag, required, help)
MODEL_KEYS: dict[str, tuple[str, bool, str]] = {
    "id": ("str", True, "short unique name used on the command line (lower case, digits, . _ -)"),
    "name": ("str", False, "human-readable name"),
    "description": ("str", False, "one line for people"),
    "file": ("str", True, "the file name users know it by (e.g. Qwen2.5-0.5B-Instruct-Q4_K_M.gguf)"),
    "sha256": ("str", True, "sha256 of the file: 64 lower-case hex digits"),
    "size": ("int", True, "exact size in bytes"),
    "urls": ("list[str]", True, "where to download it, tried in order (https:// or file://)"),
    "license": ("str", True, "SPDX license id of the weights (e.g. Apache-2.0)"),
    "license_url": ("str", False, "where the license text is"),
    "homepage": ("str", False, "the model card"),
    "args": ("list[str]", False, "llama-server arguments recommended for this model (e.g. ['-c', '4096'])"),
}
TOP_KEYS: dict[str, tuple[str, bool, str]] = {
    "schema": ("int", False, "manifest format version"),
    "default": ("str", False, "id of the model the launchers use when none is given"),
    "model": ("list[table]", True, "the models: one [[model]] table each"),
    "models": ("list[table]", False, "(JSON manifests) the models"),
    "store": ("table", False, "(JSON manifests) how launchers find the store"),
}


@dataclass(frozen=True)
class Model:
    id: str
    file: str
    sha256: str
    size: int
    urls: tuple[str, ...]
    license: str
    name: str = ""
    description: str = ""
    license_url: str = ""
    homepage: str = ""
    args: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return self.name or self.id

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "file": self.file,
            "sha256": self.sha256,
            "size": self.size,
            "urls": list(self.urls),
            "license": self.license,
            "license_url": self.license_url,
            "homepage": self.homepage,
            "args": list(self.args),
        }
        return {k: v for k, v in out.items() if v not in ("", [])}


@dataclass(frozen=True)
class ModelManifest:
    models: tuple[Model, ...]
    default: str | None
    source: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def get(self, model_id: str) -> Model:
        for m in self.models:
            if m.id == model_id:
                return m
        close = difflib.get_close_matches(model_id, [m.id for m in self.models], n=1, cutoff=0.5)
        suggestion = f" Did you mean `{close[0]}`?" if close else ""
        where = f" in {self.source}" if self.source else ""
        raise ConfigError(
            f"no model `{model_id}`{where}.{suggestion}",
            hint=f"Known models: {', '.join(m.id for m in self.models) or '(none)'}; `locara-build models list` shows them.",
        )

    @property
    def default_model(self) -> Model | None:
        return self.get(self.default) if self.default else None

    def to_json(self) -> str:
        doc = {
            "schema": MANIFEST_SCHEMA,
            "default": self.default,
            "models": [m.to_dict() for m in self.models],
            "store": {
                "layout": "sha256/<sha256>",
                "env": "LOCARA_MODEL_STORE",
                "fetch": "locara-build models fetch [ID] --manifest models/manifest.json",
            },
        }
        return json.dumps(doc, indent=2, sort_keys=True) + "\n"


# --- loading ------------------------------------------------------------------------------


def _line_of(text: str, key: str, index: int | None) -> int | None:
    """Best-effort line of ``key`` in the ``index``-th ``[[model]]`` table (or the top level)."""
    block = -1
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith("[[model]]"):
            block += 1
            if key == "[[model]]" and (index is None or block == index):
                return number
            continue
        if stripped.startswith("["):
            block = 10**9  # some other table
            continue
        in_scope = (index is None and block == -1) or (index is not None and block == index)
        if in_scope and re.match(rf'^\s*"?{re.escape(key)}"?\s*=', line):
            return number
    return None


def _type_ok(tag: str, value: Any) -> bool:
    if tag == "str":
        return isinstance(value, str)
    if tag == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if tag == "list[str]":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if tag == "list[table]":
        return isinstance(value, list) and all(isinstance(v, dict) for v in value)
    if tag == "table":
        return isinstance(value, dict)
    raise AssertionError(tag)


_TYPE_NAMES = {
    "str": "a string",
    "int": "an integer",
    "list[str]": "an array of strings",
    "list[table]": "an array of tables",
    "table": "a table",
}


class _Ctx:
    def __init__(self, path: Path | None, text: str):
        self.path = path
        self.text = text

    def fail(self, key: str, index: int | None, message: str, hint: str) -> ConfigError:
        name = str(self.path) if self.path else "<manifest>"
        line = _line_of(self.text, key, index) if self.text else None
        where = f"{name}:{line}" if line else name
        scope = f"model #{index + 1}: " if index is not None else ""
        return ConfigError(
            f"{where}: {scope}{message}",
            hint=hint,
            details={"file": name, "line": line, "key": key, "model_index": index},
        )


def _check_keys(data: dict[str, Any], schema: dict[str, tuple[str, bool, str]], ctx: _Ctx, index: int | None) -> None:
    for key, value in data.items():
        if key not in schema:
            close = difflib.get_close_matches(key, list(schema), n=1, cutoff=0.6)
            suggestion = f" Did you mean `{close[0]}`?" if close else ""
            raise ctx.fail(key, index, f"unknown key `{key}`.{suggestion}", f"Valid keys: {', '.join(sorted(schema))}.")
        tag, _, help_text = schema[key]
        if not _type_ok(tag, value):
            raise ctx.fail(key, index, f"`{key}` must be {_TYPE_NAMES[tag]}, not {value!r}.", f"`{key}`: {help_text}.")


def _model(data: dict[str, Any], ctx: _Ctx, index: int) -> Model:
    _check_keys(data, MODEL_KEYS, ctx, index)
    for key, (_, required, help_text) in MODEL_KEYS.items():
        if required and key not in data:
            raise ctx.fail("[[model]]", index, f"missing required key `{key}`.", f"Add `{key} = ...` ({help_text}).")
    mid = data["id"]
    if not ID_RE.fullmatch(mid):
        raise ctx.fail("id", index, f"model id `{mid}` is not valid.", "Use lower-case letters, digits, '.', '_' and '-'.")
    sha = data["sha256"]
    if not SHA256_RE.fullmatch(sha):
        raise ctx.fail(
            "sha256",
            index,
            f"`sha256` of `{mid}` must be 64 lower-case hex digits, not {sha!r}.",
            "Copy the SHA256 shown on the file's Hugging Face page (Git LFS details) or run `sha256sum FILE`.",
        )
    if data["size"] <= 0:
        raise ctx.fail("size", index, f"`size` of `{mid}` must be a positive number of bytes.", "Use the exact size in bytes.")
    file_name = data["file"]
    if "/" in file_name or "\\" in file_name or file_name in ("", ".", ".."):
        raise ctx.fail("file", index, f"`file` of `{mid}` must be a plain file name, not {file_name!r}.", "No directories.")
    if not data["urls"]:
        raise ctx.fail("urls", index, f"`urls` of `{mid}` is empty.", "Give at least one https:// URL.")
    for url in data["urls"]:
        scheme = urlparse(url).scheme
        if scheme not in ("https", "http", "file"):
            raise ctx.fail("urls", index, f"`{url}` is not an http(s):// or file:// URL.", "Give full URLs.")
        if url_has_credentials(url):  # the manifest ships, signed, inside every package
            raise ctx.fail("urls", index, f"`{redact_urls(url)}` carries credentials (user:password@ or a token "
                           "parameter): the manifest is published in every package.",
                           "List a public URL; private mirrors take their credentials from the user's side, never the manifest.")
    for key in ("id", "sha256", "file", "size", "license", "urls", "args"):
        values = data.get(key, []) if key in ("urls", "args") else [data[key]]
        for value in values:
            problem = launcher_problem(key, value)
            if problem:
                raise ctx.fail(
                    key,
                    index,
                    f"model `{mid}`: {problem}. The launchers (run.sh / run.cmd) embed this value, so it is held to a strict pattern.",
                    "Fix that value in the manifest (docs/models.md lists what each field may contain).",
                )
    return Model(
        id=mid,
        file=file_name,
        sha256=sha,
        size=data["size"],
        urls=tuple(data["urls"]),
        license=data["license"],
        name=data.get("name", ""),
        description=data.get("description", ""),
        license_url=data.get("license_url", ""),
        homepage=data.get("homepage", ""),
        args=tuple(data.get("args", ())),
    )


def parse_manifest(data: dict[str, Any], *, path: Path | None = None, text: str = "") -> ModelManifest:
    """Validate a parsed models.toml (``[[model]]``) or manifest.json (``models``) document."""
    ctx = _Ctx(path, text)
    _check_keys(data, TOP_KEYS, ctx, None)
    schema = data.get("schema", MANIFEST_SCHEMA)
    if schema != MANIFEST_SCHEMA:
        raise ctx.fail("schema", None, f"manifest schema {schema} is not supported (this tool reads {MANIFEST_SCHEMA}).", "Update locara-build.")
    raw = data.get("model", data.get("models"))
    if raw is None:
        raise ctx.fail("[[model]]", None, "no models listed.", "Add one [[model]] table per model.")
    models = [_model(m, ctx, i) for i, m in enumerate(raw)]
    seen: dict[str, int] = {}
    for i, m in enumerate(models):
        if m.id in seen:
            raise ctx.fail("id", i, f"model id `{m.id}` is used twice (also model #{seen[m.id] + 1}).", "Give each model a unique id.")
        seen[m.id] = i
    default = data.get("default")
    if default is not None and default not in seen:
        close = difflib.get_close_matches(default, list(seen), n=1, cutoff=0.5)
        suggestion = f" Did you mean `{close[0]}`?" if close else ""
        raise ctx.fail("default", None, f"`default` names unknown model `{default}`.{suggestion}", f"Known: {', '.join(seen)}.")
    return ModelManifest(models=tuple(models), default=default, source=path)


def load_models_toml(path: Path) -> ModelManifest:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the model list: {exc.strerror}.", hint="Check the path.") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}.", hint="Fix the syntax at that line.") from None
    return parse_manifest(data, path=path, text=text)


def load_manifest(path: Path) -> ModelManifest:
    """A ``models.toml`` or a package's ``models/manifest.json``."""
    if path.suffix == ".toml":
        return load_models_toml(path)
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the model manifest: {exc.strerror}.", hint="Check the path.") from None
    except RecursionError:
        raise ConfigError(f"{path}: JSON nested too deeply.", hint="Use a package's models/manifest.json or a models.toml.") from None
    except ValueError as exc:
        raise ConfigError(f"{path}: not valid JSON: {exc}.", hint="Use a package's models/manifest.json or a models.toml.") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a model manifest is a JSON object.", hint="Use a package's models/manifest.json.")
    return parse_manifest(data, path=path)


def adhoc_model(url: str, sha256: str, size: int | None, model_id: str | None = None) -> Model:
    """A model given on the command line (``--url --sha256 [--size]``)."""
    sha = sha256.strip().lower()
    if not SHA256_RE.match(sha):
        raise ConfigError(f"--sha256 {sha256!r} is not 64 hex digits.", hint="Pass the file's full sha256.")
    scheme = urlparse(url).scheme
    if scheme not in ("https", "http", "file", ""):
        raise ConfigError(f"--url {httpfetch.redact_url(url)!r} is not an http(s):// or file:// URL.", hint="Give a full URL or a path.")
    httpfetch.register_url_secrets(url)
    name = unquote(Path(urlparse(url).path).name) or "model.gguf"
    mid = model_id or re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("-.") or "model"
    return Model(id=mid, file=name, sha256=sha, size=size if size is not None else -1, urls=(url,), license="NOASSERTION")


# --- the store ----------------------------------------------------------------------------


def blob_path(store: Path, sha256: str) -> Path:
    return store / "sha256" / sha256.lower()


def store_has(store: Path, model: Model) -> Path | None:
    """The blob for ``model`` if present with the right size (blobs are verified before they appear)."""
    path = blob_path(store, model.sha256)
    try:
        st = path.stat()
    except OSError:
        return None
    if model.size >= 0 and st.st_size != model.size:
        return None
    return path


@dataclass(frozen=True)
class FetchOutcome:
    model: Model
    path: Path
    downloaded: bool  # False: it was already in the store
    url: str | None
    resumed_from: int


def fetch_model(
    model: Model,
    store: Path,
    *,
    progress: httpfetch.Progress | None = None,
    fetch: Callable[..., httpfetch.FetchResult] = httpfetch.fetch,
) -> FetchOutcome:
    """Make ``model`` present in ``store``: verified, atomically renamed, resumable."""
    present = store_has(store, model)
    if present:
        return FetchOutcome(model, present, False, None, 0)
    dest = blob_path(store, model.sha256)
    failures: list[str] = []
    verify_failed = False
    lock = dest.with_name(dest.name + ".lock")
    with file_lock(lock, on_wait=lambda: log.info(f"waiting for another download of {lock.stem} to finish")):
        present = store_has(store, model)  # another process may have finished it meanwhile
        if present:
            return FetchOutcome(model, present, False, None, 0)
        for url in model.urls:
            shown = httpfetch.redact_url(url)
            try:
                result = fetch(url, dest, sha256=model.sha256, size=model.size if model.size >= 0 else None, progress=progress)
            except VerifyError as exc:
                verify_failed = True
                failures.append(f"{shown}: {exc.message}")
                log.warn(f"{model.id}: {exc.message}")
                continue
            except NetworkError as exc:
                failures.append(f"{shown}: {exc.message}")
                log.warn(f"{model.id}: {exc.message}")
                continue
            meta = {
                "id": model.id,
                "file": model.file,
                "sha256": result.sha256,
                "size": result.size,
                "url": shown,
                "license": model.license,
            }
            atomic_write_bytes(dest.with_name(dest.name + ".json"), (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode())
            return FetchOutcome(model, result.path, True, shown, result.resumed_from)
    detail = "\n".join(f"  - {f}" for f in failures)
    if verify_failed:
        raise VerifyError(
            f"{model.id} ({model.file}): no URL gave a file matching sha256 {model.sha256}; nothing was stored.\n{detail}",
            hint="A mirror serves a different or tampered file. Check the manifest's sha256, or give another --url.",
            details={"model": model.id, "failures": failures},
        )
    raise NetworkError(
        f"{model.id} ({model.file}): download failed from every URL.\n{detail}",
        hint="Check the network and run the same command again: the download resumes where it stopped.",
        details={"model": model.id, "failures": failures},
    )


@dataclass(frozen=True)
class StoredBlob:
    sha256: str
    path: Path
    size: int
    meta: dict[str, Any]


def list_store(store: Path) -> list[StoredBlob]:
    root = store / "sha256"
    if not root.is_dir():
        return []
    out = []
    for path in sorted(root.iterdir()):
        if not SHA256_RE.match(path.name) or not path.is_file():
            continue
        meta: dict[str, Any] = {}
        side = path.with_name(path.name + ".json")
        if side.is_file():
            with contextlib.suppress(ValueError, OSError):
                loaded = json.loads(side.read_text("utf-8"))
                meta = loaded if isinstance(loaded, dict) else {}
        out.append(StoredBlob(path.name, path, path.stat().st_size, meta))
    return out


def verify_store(store: Path, *, remove: bool = True) -> tuple[list[StoredBlob], list[StoredBlob]]:
    """Re-hash every blob; (good, bad). Bad blobs (content != name) are deleted when ``remove``."""
    good, bad = [], []
    for blob in list_store(store):
        if sha256_file(blob.path) == blob.sha256:
            good.append(blob)
        else:
            bad.append(blob)
            if remove:
                blob.path.unlink(missing_ok=True)
                blob.path.with_name(blob.path.name + ".json").unlink(missing_ok=True)
    return good, bad


def default_store_env() -> str | None:
    return os.environ.get("LOCARA_MODEL_STORE")
