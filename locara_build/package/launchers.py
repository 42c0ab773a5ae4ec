"""What sits at the top of an artifact besides bin/: ``llama-server.args``, the launchers, README.txt.

* ``llama-server.args`` (llamafile's ``.args`` convention, read by our patched llama-server from
  the executable's directory or its parent): one argument per line; ``./``/``../`` paths are
  relative to the file; the ``...`` line is where command-line arguments go, and since it is the
  last line, command-line arguments win (llama.cpp's parser keeps the last value).
* ``run.sh`` / ``run.cmd`` (templates in ``resources/launchers/``; ``run.command`` on macOS, for a
  double-click in Finder): pick the model — ``-m FILE``, ``$LOCARA_MODEL``, or the manifest's
  default model from the content-addressed store, which they download (curl/wget, curl.exe),
  resume and verify (size + sha256) themselves on the first run, with no Python — then start the
  server, print its URL and open a browser once ``/health`` answers. ``--https`` serves over TLS
  with a local CA made once (or the appliance's own ``certs/``). The store path mirrors
  :mod:`locara_build.core.workdir`: ``$LOCARA_MODEL_STORE`` > ``$LOCARA_WORK_DIR/models`` > the per-user
  cache dir + ``/models``; the layout is :func:`locara_build.package.models.blob_path`'s.
* ``README.txt``: what to double-click, where models go, ports, HTTPS, API key — per platform.

Every value a launcher embeds comes from the model manifest and is held twice (issue 19.2): it
must match :data:`locara_build.package.models.LAUNCHER_PATTERNS` (checked at manifest load and again here)
and it is quoted for the shell that reads it (``shlex.quote`` for sh; for cmd.exe always inside
double quotes, delayed expansion off, and ``"``, ``%``, CR/LF refused outright: wine's cmd.exe
expands ``%`` again inside an expanded value, so even a doubled ``%%`` is not safe there).
"""

from __future__ import annotations

import re
import shlex
from importlib import resources

import jinja2

from locara_build.core.errors import ConfigError
from locara_build.package.models import Model, launcher_problem

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "args_file", "render_launchers", "ARGS_FILE", "README_FILE", "CHAT_PATH"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
ARGS_FILE = "llama-server.args"
README_FILE = "README.txt"
CHAT_PATH = "chat.html"  # where upstream's chat UI is served (ui/chat.html), when the package ships it

# platformdirs.user_cache_dir("locara-build", appauthor=False) + "/models", spelled for sh.
_DEFAULT_STORE_SH = {
    "linux": ('"${XDG_CACHE_HOME:-$HOME/.cache}/locara-build/models"', "$XDG_CACHE_HOME/locara-build/models (~/.cache/...)"),
    "macos": ('"$HOME/Library/Caches/locara-build/models"', "~/Library/Caches/locara-build/models"),
}
_STORE_DOC = {
    "linux": "~/.cache/locara-build/models (or $XDG_CACHE_HOME/locara-build/models)",
    "macos": "~/Library/Caches/locara-build/models",
    "windows": "%LOCALAPPDATA%\\locara-build\\Cache\\models",
}


def args_file(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, ui_dir: str = "./ui") -> bytes:
    """Default arguments: listen on loopback only, serve the completion UI from ui/."""
    lines = [
        "# Default arguments of bin/llama-server, one per line (read by the server itself).",
        "# ./ paths are relative to this file. Command-line arguments go where `...` is, so they win:",
        "#   ./run.sh --port 9090",
        "--host", host, "--port", str(port), "--path", ui_dir, "...",
    ]
    return ("\n".join(lines) + "\n").encode()


def _sh(value: object) -> str:
    text = str(value)
    if "\x00" in text:
        raise ConfigError(f"{text!r} cannot be written into run.sh (NUL byte).", hint="Fix the model manifest.")
    return shlex.quote(text)


def _cmd_value(value: object) -> str:
    """``value`` for use inside double quotes in a batch file (`set "X=..."`, `"..."` arguments)."""
    text = str(value)
    if any(c in text for c in '"%\r\n\x00\x1a') or not text.isprintable():
        raise ConfigError(
            f"{text!r} cannot be written into run.cmd: double quotes, percent signs, line breaks and control characters "
            "cannot be quoted for cmd.exe (a doubled %% is read back as a variable by some cmd.exe implementations, e.g. wine's).",
            hint="Fix that value in the model manifest (a URL: use one without percent-escapes).",
        )
    return text


def _cmd_arg(value: object) -> str:
    return f'"{_cmd_value(value)}"'


def _comment(value: str) -> str:
    """A label for a comment line: single-spaced, only characters no shell treats specially."""
    return re.sub(r"[^A-Za-z0-9 .,_+/-]", "", " ".join(value.split()))[:120]


def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        loader=jinja2.FunctionLoader(lambda name: resources.files("locara_build").joinpath("resources", "launchers", name).read_text("utf-8")),
    )
    env.filters["sh"] = _sh
    env.filters["cmd"] = _cmd_value
    env.filters["cmdarg"] = _cmd_arg
    return env


def check_model(model: Model, *, where: str = "the model manifest") -> None:
    """Refuse (exit 2) a model with a value the launchers may not embed (see LAUNCHER_PATTERNS)."""
    fields: list[tuple[str, object]] = [("id", model.id), ("sha256", model.sha256), ("file", model.file), ("size", model.size),
                                        ("license", model.license)]
    fields += [("urls", u) for u in model.urls] + [("args", a) for a in model.args]
    if not model.urls:
        raise ConfigError(f"{where}: model `{model.id}` has no URL for the launchers to download.", hint="Give at least one https:// URL.")
    for key, value in fields:
        problem = launcher_problem(key, value)
        if problem:
            raise ConfigError(
                f"{where}: model `{model.id}`: {problem}; the launchers would embed it.",
                hint="Fix that value in the model manifest (docs/models.md lists what each field may contain).",
                details={"key": key, "model": model.id},
            )


def render_launchers(
    os_name: str,
    launchers: tuple[str, ...],
    *,
    artifact: str,
    model: Model,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    chat: bool = False,
    check: bool = True,
) -> dict[str, bytes]:
    """``{file name: bytes}``: each launcher the platform uses (run.cmd with CRLF line ends), plus
    ``run.command`` on macOS and ``README.txt``.

    ``check=False`` skips the pattern check (tests use it to prove the quoting alone holds
    against hostile values); packages always check.
    """
    if check:
        check_model(model)
    store_sh, store_doc = _DEFAULT_STORE_SH.get(os_name, _DEFAULT_STORE_SH["linux"])
    context = {
        "artifact": artifact,
        "model_id": model.id,
        "model_label": _comment(model.label),
        "model_sha256": model.sha256,
        "model_file": model.file,
        "model_url": model.urls[0],
        "model_urls": list(model.urls),
        "model_size": model.size,
        "model_license": model.license,
        "model_args": list(model.args),
        "host": host,
        "port": port,
        "chat": chat,
        "default_store_sh": store_sh,
        "default_store_doc": store_doc,
        "store_doc": _STORE_DOC.get(os_name, _STORE_DOC["linux"]),
        "os_name": os_name,
        "launcher": "run.cmd" if "run.cmd" in launchers else "run.sh",
        "readme_label": " ".join(model.label.split()),
        "chat_path": CHAT_PATH,
    }
    names = list(launchers)
    if os_name == "macos" and "run.sh" in names:
        names.append("run.command")
    names.append(README_FILE)
    env = _env()
    out: dict[str, bytes] = {}
    for name in names:
        text = env.get_template(name).render(**context)
        if name.endswith((".cmd", ".txt")) and os_name == "windows":
            text = text.replace("\r\n", "\n").replace("\n", "\r\n")  # cmd.exe mis-parses labels in LF files
        out[name] = text.encode()
    return out
