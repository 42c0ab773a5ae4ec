"""What sits at the top of an artifact besides bin/: ``llama-server.args`` and the launchers.

* ``llama-server.args`` (llamafile's ``.args`` convention, read by our patched llama-server from
  the executable's directory or its parent): one argument per line; ``./``/``../`` paths are
  relative to the file; the ``...`` line is where command-line arguments go, and since it is the
  last line, command-line arguments win (llama.cpp's parser keeps the last value).
* ``run.sh`` / ``run.cmd`` (templates in ``resources/launchers/``): pick the model — ``-m FILE``,
  ``$LOCARA_MODEL``, or the manifest's default model from the content-addressed store — and say
  exactly what to run when there is none. The store path mirrors :mod:`locara_build.workdir`:
  ``$LOCARA_MODEL_STORE`` > ``$LOCARA_WORK_DIR/models`` > the per-user cache dir + ``/models``.
"""

from __future__ import annotations

import shlex
from importlib import resources

import jinja2

from locara_build.errors import ConfigError
from locara_build.models import Model

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "args_file", "render_launchers", "ARGS_FILE"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
ARGS_FILE = "llama-server.args"

# platformdirs.user_cache_dir("locara-build", appauthor=False) + "/models", spelled for sh.
_DEFAULT_STORE_SH = {
    "linux": ('"${XDG_CACHE_HOME:-$HOME/.cache}/locara-build/models"', "$XDG_CACHE_HOME/locara-build/models (~/.cache/...)"),
    "macos": ('"$HOME/Library/Caches/locara-build/models"', "~/Library/Caches/locara-build/models"),
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


def _cmd_value(value: object) -> str:
    text = str(value)
    if any(c in text for c in '"\r\n'):
        raise ConfigError(f"`{text}` cannot be written into run.cmd (quotes or newlines).", hint="Rename the model or its URL.")
    return text.replace("%", "%%")


def _cmd_arg(value: object) -> str:
    text = _cmd_value(value)
    return f'"{text}"' if any(c in text for c in " \t&|<>^(),;=") else text


def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        loader=jinja2.FunctionLoader(lambda name: resources.files("locara_build").joinpath("resources", "launchers", name).read_text("utf-8")),
    )
    env.filters["sh"] = lambda v: shlex.quote(str(v))
    env.filters["cmd"] = _cmd_value
    env.filters["cmdarg"] = _cmd_arg
    return env


def render_launchers(
    os_name: str,
    launchers: tuple[str, ...],
    *,
    artifact: str,
    model: Model,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
) -> dict[str, bytes]:
    """``{file name: bytes}`` for each launcher the platform uses (run.cmd with CRLF line ends)."""
    store_sh, store_doc = _DEFAULT_STORE_SH.get(os_name, _DEFAULT_STORE_SH["linux"])
    context = {
        "artifact": artifact,
        "model_id": model.id,
        "model_label": " ".join(model.label.split()),
        "model_sha256": model.sha256,
        "model_file": model.file,
        "model_url": model.urls[0],
        "model_size": model.size,
        "model_args": list(model.args),
        "host": host,
        "port": port,
        "default_store_sh": store_sh,
        "default_store_doc": store_doc,
    }
    env = _env()
    out: dict[str, bytes] = {}
    for name in launchers:
        text = env.get_template(name).render(**context)
        if name.endswith(".cmd"):
            text = text.replace("\r\n", "\n").replace("\n", "\r\n")  # cmd.exe mis-parses labels in LF files
        out[name] = text.encode()
    return out
