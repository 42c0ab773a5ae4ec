"""``smoke``: start a built llama-server on 127.0.0.1 and prove it works.

Two runs per recipe, each with a tiny random-weight model (:mod:`locara_build.smoke.tinymodel`):

1. **With arguments**: ``[emulator...] bin/llama-server -m MODEL --host 127.0.0.1 --port P --path UI
   [smoke.args]``. Checks: ``/health`` becomes ``ok`` within ``smoke.timeout``; ``/completion``
   returns exactly ``n_predict`` tokens; ``/v1/chat/completions`` answers in OpenAI's shape;
   ``/`` serves the UI's ``index.html``; every ``smoke.expect`` regex matches the server log.
2. **With no arguments at all**: ``bin/`` is copied to a temporary dir and a ``llama-server.args``
   written beside it (``-m ./models/<model>``, host, port, ``...``), as in a package. The server
   must pick model and port from that file (our args patch) and answer ``/completion``. The
   immutable build output is never modified.

A recipe whose backend needs hardware (``smoke.device = "nvidia-gpu"``) is smoke-tested on it when
this host has one: every layer offloaded, ``smoke.expect`` proving from the log that it was used.
Without one, a build that loads its backends as plugins (``GGML_BACKEND_DL``) is smoke-tested all the
same on the CPU backends it ships (the CUDA plugin cannot load without the driver, and llama.cpp
falls back to the CPU): the shipped binary, its libraries, the args file and the UI are proven; the
GPU kernels are not, ``expect`` is not checked, and the record says so (``coverage = "cpu-fallback"``,
carried into release.json and the release notes). A build with the backend linked in cannot start
without the driver and is skipped with that reason. An artifact with several GPU plugins
(``universal``) passes on the device(s) its server log names (``using device``); the record says
``coverage = "partial"`` and names each plugin that did not run.

The server is always stopped, also on failure. A server that never gets healthy fails with exit 6
after the timeout and the tail of its log; a port already taken fails with a clear error.
Results (tokens/s ...) go to ``smoke.json`` in the build output dir, the one file added after the
build. The building blocks (:func:`smoke_server`, :func:`smoke_args_file`, :func:`server`) work on
any ``bin/`` dir, e.g. an unpacked package.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path, PureWindowsPath
from typing import Any

import requests

from locara_build.build import platforms, provision
from locara_build.build.build import is_built, read_build_record
from locara_build.build.plan import Plan, RecipePlan
from locara_build.build.recipe import Recipe
from locara_build.core import log
from locara_build.core.errors import SmokeError
from locara_build.core.run import Process, spawn
from locara_build.core.workdir import WorkDir
from locara_build.pipeline import records
from locara_build.pipeline.records import SmokeRecord
from locara_build.smoke.smokeplan import (
    SMOKE_RECORD,
    device_plan,
    not_exercised,
    read_smoke_record,
    smoke_key,
)
from locara_build.smoke.tinymodel import VOCAB_RELPATH, tiny_model

__all__ = [
    "SMOKE_RECORD",
    "SmokeOptions",
    "SmokeRecord",
    "SmokeResult",
    "Server",
    "default_ui_dir",
    "free_port",
    "server",
    "smoke_server",
    "smoke_args_file",
    "smoke_recipe",
    "write_args_file",
    "smoke_key",
    "smoke_summary",
    "ran_on",
    "device_plan",
    "read_smoke_record",
]

PROMPT = "Once upon a time"
ARGS_FILE = "llama-server.args"


@dataclass(frozen=True)
class SmokeOptions:
    n_predict: int = 16
    timeout: float = 120.0  # seconds until /health must say ok
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    emulator: tuple[str, ...] = ()
    expect: tuple[str, ...] = ()
    ui_dir: Path | None = None  # served with --path; / must return its index.html
    port: int | None = None  # None: a free port
    ctx_size: int = 1024

    @classmethod
    def from_recipe(cls, recipe: Recipe, **overrides: Any) -> SmokeOptions:
        s = recipe.smoke
        base = cls(
            n_predict=s.n_predict,
            timeout=s.timeout,
            args=tuple(s.args),
            # host hooks first (e.g. a private WINEPREFIX for wine), the recipe's smoke.env wins
            env={**provision.smoke_env(recipe), **s.env},
            # the recipe's, else the host's (qemu-aarch64-static for arm64 on x86-64); before it what
            # the host needs around it (xvfb-run for a Vulkan .exe under wine without a display)
            emulator=(*provision.smoke_wrapper(recipe), *(tuple(s.emulator) or provision.smoke_emulator(recipe))),
            expect=tuple(s.expect),
        )
        return replace(base, **{k: v for k, v in overrides.items() if v is not None})


def default_ui_dir() -> Path | None:
    """``locara_build/resources/ui`` when it holds an ``index.html`` (the UI packages ship)."""
    ui = Path(str(resources.files("locara_build") / "resources" / "ui"))
    return ui if (ui / "index.html").is_file() else None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_free(port: int) -> bool:
    """Whether llama-server could listen on ``port``. Like every server, it sets SO_REUSEADDR, so a
    port left in TIME_WAIT by an earlier run is free; one somebody listens on still fails to bind."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _port_taken_error(port: int, label: str, log_path: Path | None) -> SmokeError:
    where = f" Server log: {log_path}." if log_path else ""
    return SmokeError(
        f"{label}: port {port} on 127.0.0.1 is already in use by another process, so llama-server cannot listen there.{where}",
        hint="Stop whatever listens there (`ss -ltnp | grep :PORT`) or pass another --port (default: a free port).",
        details={"port": port},
    )


# --- the server ---------------------------------------------------------------------------


@dataclass
class Server:
    process: Process
    port: int
    log_path: Path
    healthy_after: float
    session: requests.Session

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""


@contextlib.contextmanager
def server(
    argv: Sequence[str],
    *,
    port: int,
    log_path: Path,
    timeout: float,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    label: str = "llama-server",
) -> Iterator[Server]:
    """Start ``argv`` (which must listen on ``port``), wait for ``/health``, yield, always stop it."""
    if not _port_free(port):
        raise _port_taken_error(port, label, None)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.write_bytes(b"")
    start = time.monotonic()
    proc = spawn(list(argv), env=env, cwd=cwd, log_path=log_path, error=SmokeError)
    session = requests.Session()
    session.trust_env = False  # never through a proxy: this is 127.0.0.1
    try:
        healthy_after = _wait_healthy(proc, session, port, log_path, timeout, label, start)
        yield Server(proc, port, log_path, healthy_after, session)
    finally:
        proc.stop(grace=10)
        session.close()


def _wait_healthy(
    proc: Process, session: requests.Session, port: int, log_path: Path, timeout: float, label: str, start: float
) -> float:
    url = f"http://127.0.0.1:{port}/health"
    last = "no answer yet"
    while True:
        rc = proc.poll()
        if rc is not None:
            text = log_path.read_text(encoding="utf-8", errors="replace") if log_path.exists() else ""
            if re.search(r"couldn't bind|address already in use", text, re.I):
                raise _port_taken_error(port, label, log_path)
            raise SmokeError(
                f"{label} exited with status {rc} before becoming healthy. Server log: {log_path}.\n"
                f"Last lines:\n{proc.log_tail(30)}",
                hint="Read the log: a missing shared library or backend plugin in bin/, a model it cannot load, "
                "or an unknown argument in smoke.args.",
                details={"exit_status": rc, "log": str(log_path)},
            )
        elsewhere = _listening_elsewhere(log_path, port)
        if elsewhere is not None:
            raise SmokeError(
                f"{label} listens on port {elsewhere}, not on {port} as it was told. Server log: {log_path}.\n"
                f"Last lines:\n{proc.log_tail(30)}",
                hint="It ignored the port it was given: check the arguments (or llama-server.args) it read.",
                details={"port": port, "listening": elsewhere, "log": str(log_path)},
            )
        try:
            resp = session.get(url, timeout=2)
            if resp.status_code == 200:
                return time.monotonic() - start
            last = f"HTTP {resp.status_code}: {resp.text[:200].strip()}"
        except requests.RequestException as exc:
            last = type(exc).__name__
        if time.monotonic() - start > timeout:
            raise SmokeError(
                f"{label} did not become healthy within {timeout:g}s (last /health: {last}). "
                f"Server log: {log_path}.\nLast lines:\n{proc.log_tail(30)}",
                hint="Read the log; if the machine is just slow (an emulator, a GPU compiling pipelines), "
                "raise smoke.timeout in the recipe or pass --timeout.",
                details={"timeout": timeout, "log": str(log_path)},
            )
        time.sleep(0.2)


_LISTENING_RE = re.compile(r"listening on https?://[^\s:/]+:(\d+)")


def _listening_elsewhere(log_path: Path, port: int) -> int | None:
    """The port the server says it listens on, when that is not ``port``."""
    try:
        text = log_path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for m in _LISTENING_RE.finditer(text):
        if int(m.group(1)) != port:
            return int(m.group(1))
    return None


# --- checks -------------------------------------------------------------------------------


def _post(srv: Server, path: str, body: dict[str, Any], label: str, timeout: float) -> dict[str, Any]:
    try:
        resp = srv.session.post(srv.url + path, json=body, timeout=timeout)
    except requests.RequestException as exc:
        raise SmokeError(f"{label}: POST {path} failed: {exc}. Server log: {srv.log_path}.",
                         hint="Read the server log.") from None
    if resp.status_code != 200:
        raise SmokeError(
            f"{label}: POST {path} answered HTTP {resp.status_code}: {resp.text[:300]}. Server log: {srv.log_path}.",
            hint="Read the server log.",
        )
    try:
        data = resp.json()
    except ValueError:
        raise SmokeError(f"{label}: POST {path} did not answer JSON: {resp.text[:200]!r}.", hint="Read the server log.") from None
    if not isinstance(data, dict):
        raise SmokeError(f"{label}: POST {path} answered {type(data).__name__}, not an object.", hint="Read the server log.")
    return data


def check_completion(srv: Server, n_predict: int, label: str, timeout: float = 120) -> dict[str, Any]:
    data = _post(
        srv,
        "/completion",
        {"prompt": PROMPT, "n_predict": n_predict, "ignore_eos": True, "seed": 42, "cache_prompt": False},
        label,
        timeout,
    )
    got = data.get("tokens_predicted")
    if got != n_predict or not isinstance(data.get("content"), str):
        raise SmokeError(
            f"{label}: /completion asked for {n_predict} tokens and got {got!r} "
            f"(content: {str(data.get('content'))[:80]!r}). Server log: {srv.log_path}.",
            hint="The server generates but not as asked: check ignore_eos / n_predict handling in this upstream version.",
        )
    timings = data.get("timings")
    if not isinstance(timings, dict):
        timings = {}
    prompt_n = timings.get("prompt_n")
    return {
        "tokens": got,
        "prompt_tokens": prompt_n if isinstance(prompt_n, int) and not isinstance(prompt_n, bool) else None,
        "tokens_per_second": _round(timings.get("predicted_per_second")),
        "prompt_tokens_per_second": _round(timings.get("prompt_per_second")),
    }


def check_chat(srv: Server, n_predict: int, label: str, timeout: float = 120) -> dict[str, Any]:
    data = _post(
        srv,
        "/v1/chat/completions",
        {
            "model": "tiny",
            "messages": [
                {"role": "system", "content": "You are a smoke test."},
                {"role": "user", "content": "Say hello."},
            ],
            "max_tokens": n_predict,
            "seed": 42,
        },
        label,
        timeout,
    )
    problems: list[str] = []
    if data.get("object") != "chat.completion":
        problems.append(f"object is {data.get('object')!r}, not 'chat.completion'")
    if not isinstance(data.get("id"), str) or not isinstance(data.get("created"), int):
        problems.append("id/created missing")
    choices = data.get("choices")
    message: dict[str, Any] = {}
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        problems.append("no choices[0]")
    else:
        message = choices[0].get("message") or {}
        if message.get("role") != "assistant" or not isinstance(message.get("content"), str):
            problems.append(f"choices[0].message is {str(message)[:120]}")
        if choices[0].get("finish_reason") not in ("stop", "length"):
            problems.append(f"finish_reason {choices[0].get('finish_reason')!r}")
    usage = data.get("usage") or {}
    if not all(isinstance(usage.get(k), int) for k in ("prompt_tokens", "completion_tokens", "total_tokens")):
        problems.append(f"usage is {usage}")
    if problems:
        raise SmokeError(
            f"{label}: /v1/chat/completions does not answer in OpenAI's shape: {'; '.join(problems)}. "
            f"Server log: {srv.log_path}.",
            hint="OpenAI-compatible clients would break: compare with upstream's tools/server/README.md.",
        )
    return {
        "finish_reason": choices[0].get("finish_reason"),
        "completion_tokens": usage["completion_tokens"],
        "prompt_tokens": usage["prompt_tokens"],
    }


def check_ui(srv: Server, ui_dir: Path | None, label: str) -> dict[str, Any]:
    try:
        resp = srv.session.get(srv.url + "/", timeout=30)
    except requests.RequestException as exc:
        raise SmokeError(f"{label}: GET / failed: {exc}.", hint="Read the server log.") from None
    if ui_dir is None:
        return {"checked": False, "status": resp.status_code}
    index = (ui_dir / "index.html").read_bytes()
    if resp.status_code != 200 or resp.content != index:
        raise SmokeError(
            f"{label}: GET / answered HTTP {resp.status_code} ({len(resp.content)} bytes), not {ui_dir / 'index.html'} "
            f"({len(index)} bytes). Server log: {srv.log_path}.",
            hint="The server must serve the UI given with --path.",
        )
    return {"checked": True, "status": 200, "bytes": len(index), "content_type": resp.headers.get("content-type")}


def check_expect(srv: Server, patterns: Sequence[str], label: str) -> list[str]:
    text = srv.log_text()
    missing = [p for p in patterns if not re.search(p, text, re.M)]
    if missing:
        raise SmokeError(
            f"{label}: the server log does not match smoke.expect {missing}. Server log: {srv.log_path}.",
            hint="The server ran, but not the way the recipe expects (e.g. not on the GPU backend).",
        )
    return list(patterns)


def _round(value: Any) -> float | None:
    return round(float(value), 2) if isinstance(value, int | float) else None


# --- the two runs -------------------------------------------------------------------------


def _exe(bin_dir: Path, exe: str) -> Path:
    path = bin_dir / exe
    if not path.is_file():
        raise SmokeError(f"{path} does not exist.", hint="Build first: `locara-build build`.")
    return path


def _env(options: SmokeOptions) -> dict[str, str]:
    return {k: v for k, v in options.env.items()}


def smoke_server(
    bin_dir: Path,
    model: Path,
    *,
    options: SmokeOptions,
    log_path: Path,
    exe: str = "llama-server",
    label: str = "llama-server",
) -> dict[str, Any]:
    """Run 1: start ``bin_dir/exe`` with arguments and check every endpoint."""
    port = options.port if options.port is not None else free_port()
    argv = [
        *options.emulator,
        str(_exe(bin_dir, exe)),
        "-m", str(model),
        "--host", "127.0.0.1",
        "--port", str(port),
        "-c", str(options.ctx_size),
    ]
    if options.ui_dir is not None:
        argv += ["--path", str(options.ui_dir)]
    argv += list(options.args)
    with server(argv, port=port, log_path=log_path, timeout=options.timeout, env=_env(options), label=label) as srv:
        result = {
            "port": port,
            "argv": argv,
            "healthy_after_s": round(srv.healthy_after, 2),
            # the first request may wait for a GPU backend to compile its pipelines (lavapipe: minutes on
            # a loaded host): it gets the recipe's smoke.timeout when that is longer than the default
            "completion": check_completion(srv, options.n_predict, label, timeout=max(120.0, options.timeout)),
            "chat": check_chat(srv, options.n_predict, label, timeout=max(120.0, options.timeout)),
            "ui": check_ui(srv, options.ui_dir, label),
        }
        result["expect"] = check_expect(srv, options.expect, label)
    result["log"] = str(log_path)
    return result


def write_args_file(path: Path, lines: Sequence[str]) -> None:
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")


def smoke_args_file(
    bin_dir: Path,
    model: Path,
    *,
    options: SmokeOptions,
    log_path: Path,
    scratch: Path,
    exe: str = "llama-server",
    label: str = "llama-server",
) -> dict[str, Any]:
    """Run 2: a copy of ``bin_dir`` under ``scratch`` with ``llama-server.args`` beside it (a package's
    layout) and the model under ``./models/``; the server starts with no arguments at all."""
    _exe(bin_dir, exe)
    port = options.port if options.port is not None else free_port()
    root = Path(tempfile.mkdtemp(prefix="args-", dir=scratch))
    try:
        shutil.copytree(bin_dir, root / "bin", symlinks=True)
        (root / "models").mkdir()
        local_model = root / "models" / model.name
        try:
            os.link(model, local_model)
        except OSError:
            shutil.copy2(model, local_model)
        lines = [
            "-m", f"./models/{model.name}",
            "--host", "127.0.0.1",
            "--port", str(port),
            "-c", str(options.ctx_size),
            *options.args,
            "...",
        ]
        write_args_file(root / ARGS_FILE, lines)
        argv = [*options.emulator, str(root / "bin" / exe)]
        try:
            with server(argv, port=port, log_path=log_path, timeout=options.timeout, env=_env(options),
                        cwd=scratch, label=f"{label} (no arguments, {ARGS_FILE})") as srv:
                completion = check_completion(srv, options.n_predict, label, timeout=max(120.0, options.timeout))
                model_path = None
                with contextlib.suppress(requests.RequestException, ValueError):
                    props = srv.session.get(srv.url + "/props", timeout=30).json()
                    reported = props.get("model_path") if isinstance(props, dict) else None
                    model_path = None if reported is None else str(reported)
                # PureWindowsPath splits on / and \: a .exe under wine reports Z:\...\models\x.gguf
                if model_path is not None and PureWindowsPath(str(model_path)).name != model.name:
                    raise SmokeError(
                        f"{label}: started from {ARGS_FILE}, the server loaded {model_path}, not ./models/{model.name}.",
                        hint="`./x` lines in llama-server.args must resolve relative to the args file (the args patch).",
                    )
        except SmokeError as exc:
            exc.message += (
                f"\n(The server was started with NO arguments; model and port come from {ARGS_FILE} beside "
                "bin/. If it never read that file, the args patch is missing from the source tree: "
                "`locara-build patches apply`.)"
            )
            raise
        return {
            "port": port,
            "args_file": lines,
            "model_path": model_path,
            "completion": completion,
            "log": str(log_path),
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)


# --- recipes ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SmokeResult:
    recipe: str
    status: str  # passed | skipped
    seconds: float
    smoke: SmokeRecord
    """The record written to ``smoke.json``."""

    def to_dict(self) -> dict[str, Any]:
        rec = self.smoke
        return {
            "recipe": self.recipe,
            "status": self.status,
            "coverage": rec.coverage,
            "ran_on": rec.ran_on,
            "seconds": round(self.seconds, 2),
            "tokens_per_second": rec.server.completion.tokens_per_second if rec.server else None,
            "reason": rec.reason,
            "output_dir": rec.output_dir,
        }


_USING_DEVICE = re.compile(r"using device (\S+) \(([^()\n]*(?:\([^()\n]*\))?[^()\n]*)\)")


def ran_on(log_text: str) -> str:
    """The device the server computed on, from its own log: the first ``using device X (name)``
    (libllama logs it at ``-lv 4`` when layers go to a GPU backend), else the CPU."""
    m = _USING_DEVICE.search(log_text)
    return f"{m[1]} ({m[2]})" if m else "CPU"


def smoke_summary(record: SmokeRecord | None) -> dict[str, str]:
    """The part of a smoke record that release.json and the release notes carry (no timings: they
    vary run to run)."""
    if record is None:
        return {"status": "not run"}
    out = {"status": record.status or "not run"}
    for key, value in (("coverage", record.coverage), ("ran_on", record.ran_on), ("reason", record.reason)):
        if value:
            out[key] = value
    return out


def smoke_model(plan: Plan, work: WorkDir) -> Path:
    return tiny_model(plan.source_dir / VOCAB_RELPATH, work.root / "smoke" / "models")


def smoke_recipe(
    plan: Plan,
    rp: RecipePlan,
    work: WorkDir,
    *,
    model: Path | None = None,
    ui_dir: Path | None = None,
    port: int | None = None,
    timeout: float | None = None,
) -> SmokeResult:
    start = time.monotonic()
    recipe = rp.recipe
    label = f"llama-server of `{rp.name}`"
    if not is_built(rp.output_dir):
        raise SmokeError(
            f"recipe `{rp.name}` has no finished build at {rp.output_dir}.",
            hint=f"Run `locara-build build -r {rp.name}` first.",
        )
    build_record = read_build_record(rp.output_dir)
    record: dict[str, Any] = {
        "schema": SmokeRecord.SCHEMA,
        "recipe": rp.name,
        "build_key": rp.build_key,
        "output_dir": str(rp.output_dir),
        "host": {"os": platforms.host_os(), "arch": platforms.host_arch()},
    }
    device, coverage, note = device_plan(recipe)
    record["smoke_key"] = smoke_key(recipe, device)
    if recipe.smoke.device:
        record["device"] = {"needs": recipe.smoke.device, "found": device}
    if coverage == "skip":
        log.warn(f"{rp.name}: smoke test skipped: {note}")
        record.update(status="skipped", reason=note)
        return SmokeResult(rp.name, "skipped", time.monotonic() - start, _write_record(rp, record))

    model = model or smoke_model(plan, work)
    options = SmokeOptions.from_recipe(recipe, ui_dir=ui_dir or default_ui_dir(), port=port, timeout=timeout)
    if coverage == "cpu-fallback":
        log.warn(f"{rp.name}: {note}")
        options = replace(options, expect=())  # the patterns name the device that is not here
    exe = "llama-server" + recipe.exe_suffix
    bin_dir = rp.output_dir / "bin"
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    logs = work.ensure(work.logs)
    scratch = work.ensure(work.root / "tmp")
    with log.step(f"smoke {rp.name}"):
        first = smoke_server(bin_dir, model, options=options, exe=exe, label=label,
                             log_path=logs / f"smoke-{rp.name}-{stamp}.log")
        log.info(
            f"    {first['completion']['tokens']} tokens at {first['completion']['tokens_per_second']} tokens/s; "
            f"chat ok; UI {'ok' if first['ui']['checked'] else 'not checked (no UI dir)'}"
        )
        second = smoke_args_file(bin_dir, model, options=options, exe=exe, label=label, scratch=scratch,
                                 log_path=logs / f"smoke-{rp.name}-{stamp}-args.log")
        log.info(f"    started with no arguments from {ARGS_FILE}: ok")
    server_log = _read_text(Path(first["log"]))
    device_used = ran_on(server_log)
    every_device = tuple(m[0] for m in _USING_DEVICE.findall(server_log))  # a split over CUDA0 + Vulkan0
    if coverage == "full" and (untested := not_exercised(recipe, device_used, every_device)):
        log.warn(f"{rp.name}: {untested}")
        coverage, note = "partial", untested
    record.update(
        status="passed",
        coverage=coverage,
        ran_on=device_used,
        reason=note or None,
        version=build_record.version,
        model={"file": model.name, "size": model.stat().st_size},
        server=first,
        args_file=second,
        seconds=round(time.monotonic() - start, 2),
        finished_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    return SmokeResult(rp.name, "passed", time.monotonic() - start, _write_record(rp, record))


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _write_record(rp: RecipePlan, record: Mapping[str, Any]) -> SmokeRecord:
    """``smoke.json`` through the one writer (what the reader would refuse is never written)."""
    smoke = records.from_dict(SmokeRecord, dict(record), where=f"smoke record of {rp.name}")
    records.write(smoke, SmokeRecord.path(rp.output_dir))
    return smoke
