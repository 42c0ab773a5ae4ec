"""Fault injection for the fault suite (tests/test_faults_*.py).

* :func:`standin_env` — a whole pipeline in seconds: a local git "upstream" (a bare
  :class:`support.upstream.Upstream`) holding a tiny CMake project in place of llama.cpp (its
  ``llama-server`` is a real ELF that execs a small Python HTTP server speaking the endpoints the
  smoke stage checks), tagged ``b100``; a project with a ``tiny`` recipe, recipes/models.toml and
  a one-patch series made against it; a minisign key. ``sync``,
  ``patches``, ``build``, ``smoke``, ``package``, ``release``, ``publish`` and ``weekly`` all run
  for real on it.
* :func:`start_cli` / :class:`Running` — the real CLI in its own process group, optionally paused at
  a *fault point*: ``LOCARA_TEST_FAILPOINT=module:attr[@N]`` makes ``tests/support/failpoint.py``
  wrap that function so that its N-th call prints ``FAILPOINT <name>`` on stderr and waits (until
  a release file appears). A test waits for the marker, then sends a real signal (SIGINT to the
  process group, SIGTERM, SIGKILL) — so the signal lands inside the stage it is meant for, every
  time, however fast or slow the machine is.
* :func:`disk_limit` — a small tmpfs mounted over a directory (root); where mounting is refused,
  a per-process ``RLIMIT_FSIZE`` (writes fail with EFBIG, as Python ignores SIGXFSZ) instead.
* :class:`GitHubStandIn` — the few GitHub Releases endpoints publish uses, on 127.0.0.1; an upload
  whose body arrives short (the client died) is kept as a broken ``starter`` asset, as GitHub does.
* :func:`tree_state`, :func:`snapshot` — byte-exact pictures of the state a fault must not touch.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import resource
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from support.cli import cli_env
from support.cli import run_cli as _run_cli
from support.fakeserver import SERVER_PY
from support.github import GitHubStandIn, GitHubState  # noqa: F401 (the fault suite's tests import them from here)
from support.upstream import Clock, Upstream, git
from support.upstream import make_patch as _make_patch

REPO = Path(__file__).resolve().parents[2]
TESTS = REPO / "tests"
FAILPOINT = Path(__file__).with_name("failpoint.py")
RECIPE = "tiny"
TAG = "b100"

# --- the stand-in llama-server: support/fakeserver.py (SERVER_PY), built into a C program below ---


MAIN_C = """\
/* Stand-in for llama.cpp's llama-server: exec Python with the embedded HTTP server. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include "standin.h"

static const char *banner = "locara stand-in server";

int main(int argc, char **argv) {
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n < 0) { perror("readlink"); return 1; }
    exe[n] = 0;
    char **args = calloc((size_t)argc + 4, sizeof *args);
    args[0] = (char *)STANDIN_PYTHON;
    args[1] = "-c";
    args[2] = (char *)STANDIN_SERVER;
    args[3] = exe;
    for (int i = 1; i < argc; i++) args[3 + i] = argv[i];
    (void)banner;
    execv(STANDIN_PYTHON, args);
    perror("execv");
    return 127;
}
"""

CMAKELISTS = """\
cmake_minimum_required(VERSION 3.14)
project(standin C)
set(CMAKE_RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bin)
option(GGML_CCACHE "use ccache if available (as ggml does)" ON)
if(GGML_CCACHE)
  find_program(CCACHE_FOUND ccache)
  if(CCACHE_FOUND)
    set_property(GLOBAL PROPERTY RULE_LAUNCH_COMPILE "${CCACHE_FOUND}")
  endif()
endif()
# A step that takes 10 s when $STANDIN_SLOW is set in the build's environment (slow.started marks
# its start): room to kill a build mid-compile. Its output is always the same.
add_custom_command(OUTPUT ${CMAKE_BINARY_DIR}/slow.h
  COMMAND ${CMAKE_COMMAND} -E touch ${CMAKE_BINARY_DIR}/slow.started
  COMMAND sh -c "test -z $STANDIN_SLOW || sleep 10"
  COMMAND ${CMAKE_COMMAND} -E copy ${CMAKE_CURRENT_SOURCE_DIR}/slow.h.in ${CMAKE_BINARY_DIR}/slow.h
  DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/slow.h.in
  COMMENT "Generating slow.h"
  VERBATIM)
add_executable(llama-server main.c ${CMAKE_BINARY_DIR}/slow.h)
target_include_directories(llama-server PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
"""

RECIPE_TOML = """\
description = "fault-suite stand-in for llama.cpp: a tiny CMake project"
os = "linux"
arch = "x86_64"
backend = "cpu"
flavour = "dev"
targets = ["llama-server"]

[ship]
binaries = ["llama-server"]
libraries = []

[smoke]
timeout = 20
n_predict = 4
"""

MAIN_LINE = 'static const char *banner = "locara stand-in server";\n'
PATCHED_LINE = 'static const char *banner = "locara stand-in server (patched)";\n'


def _c_bytes(data: bytes) -> str:
    body = ",".join(str(b) for b in data)
    return "{" + body + ",0}"


def standin_header() -> str:
    from locara_build.core.redact import SECRET_ENV

    py = sys.executable.replace("\\", "\\\\").replace('"', '\\"')
    server = f"SECRET_ENV = {list(SECRET_ENV)!r}\n" + SERVER_PY
    return (
        f'#define STANDIN_PYTHON "{py}"\n'
        f"static const char STANDIN_SERVER[] = {_c_bytes(server.encode())};\n"
    )


#: Appended to the stand-in's CMakeLists.txt by a hostile upstream commit: every credential the
#: build can see goes into the build log and into the shipped binary.
HOSTILE_CMAKE = """
foreach(v LOCARA_MINISIGN_KEY LOCARA_MINISIGN_PASSWORD LOCARA_AUTHENTICODE_P12 LOCARA_AUTHENTICODE_PASSWORD
          LOCARA_NOTARY_KEY GITHUB_TOKEN LOCARA_GITHUB_TOKEN)
  message(STATUS "hostile: ${v}=$ENV{${v}}")
  string(APPEND LEAK "${v}=$ENV{${v}};")
endforeach()
string(REPLACE "\\n" " " LEAK "${LEAK}")
string(REPLACE "\\"" "'" LEAK "${LEAK}")
file(WRITE ${CMAKE_BINARY_DIR}/leak.h "const char *locara_leak = \\"${LEAK}\\";\\n")
target_include_directories(llama-server PRIVATE ${CMAKE_BINARY_DIR})
target_compile_definitions(llama-server PRIVATE HOSTILE=1)
"""
HOSTILE_MAIN = """
#ifdef HOSTILE
#include "leak.h"
const char *locara_leak_kept(void) { return locara_leak; }
#endif
"""


def tiny_vocab(path: Path) -> None:
    """A tokenizer-only GGUF (llama/SPM style, 64 tokens): what tinymodel reads from an upstream tree."""
    from gguf import GGUFWriter, TokenType

    path.parent.mkdir(parents=True, exist_ok=True)
    tokens = [b"<unk>", b"<s>", b"</s>"] + [f"\u2581t{i}".encode() for i in range(61)]
    w = GGUFWriter(str(path), "llama")
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores([0.0] * len(tokens))
    w.add_token_types([TokenType.UNKNOWN, TokenType.CONTROL, TokenType.CONTROL] + [TokenType.NORMAL] * 61)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


# --- the stand-in upstream --------------------------------------------------------------------

#: The stand-in's commits: one day apart from 2026-10-01T00:00:00Z, the n-th counted from the commits
#: already in the repo (versions, dated by the commit, go up as upstream's do; a copy continues).
STANDIN_CLOCK = Clock(epoch=1790812800, step=86400, from_repo=True, name="upstream", email="upstream@example.invalid")
#: The stand-in's patches: all made by "upstream" on 2026-10-01T00:00:00Z.
PATCH_CLOCK = Clock(epoch=1790812800, step=0, name="upstream", email="upstream@example.invalid")


def make_upstream(root: Path) -> Upstream:
    """``root/upstream.git``: the stand-in project in one root commit, tagged :data:`TAG`."""
    with tempfile.TemporaryDirectory() as tmp:
        vocab = Path(tmp) / "vocab.gguf"
        tiny_vocab(vocab)
        return Upstream.from_files(root / "upstream.git", {
            "CMakeLists.txt": CMAKELISTS,
            "main.c": MAIN_C,
            "standin.h": standin_header(),
            "slow.h.in": "#define SLOW 1\n",
            "LICENSE": "MIT License\n\nCopyright (c) the stand-in authors\n",
            "README.md": "stand-in\n",
            "models/ggml-vocab-llama-spm.gguf": vocab.read_bytes(),
        }, message="stand-in llama.cpp", tag=TAG, clock=STANDIN_CLOCK)


def make_patch(up: Upstream, dest: Path, *, old: str = MAIN_LINE, new: str = PATCHED_LINE,
               subject: str = "stand-in: mark the banner as patched") -> str:
    """A ``git format-patch`` file changing main.c at the upstream's HEAD; returns its file name."""
    text = up.read("main.c")
    assert old in text
    name, data = _make_patch(up, "master", subject, {"main.c": text.replace(old, new)},
                             body="Not upstreamable: test fixture.", clock=PATCH_CLOCK)
    dest.mkdir(parents=True, exist_ok=True)
    (dest / name).write_bytes(data)
    return name


@dataclass
class StandInEnv:
    root: Path
    up: Upstream
    project: Path
    work: Path
    key_file: Path  # unencrypted minisign secret key
    pub: Path
    patch_name: str
    env: dict[str, str] = field(default_factory=dict)

    @property
    def lock(self) -> Path:
        return self.project / "recipes" / "upstream.lock"

    @property
    def tree(self) -> Path:
        return self.work / "src" / "llama.cpp"

    @property
    def stamp(self) -> Path:
        return self.work / "src" / "llama.cpp.json"

    def base(self) -> list[str]:
        return ["--project", str(self.project), "--work-dir", str(self.work)]

    def cli(self, *args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return run_cli(*self.base(), *args, env={**self.env, **(env or {})}, timeout=timeout)

    def start(self, *args: str, env: dict[str, str] | None = None, failpoint: str | None = None,
              preexec: Callable[[], None] | None = None) -> Running:
        return start_cli(*self.base(), *args, env={**self.env, **(env or {})}, failpoint=failpoint, preexec=preexec)

    def weekly_args(self, *extra: str) -> list[str]:
        return ["weekly", "-r", RECIPE, "--key", str(self.key_file), *extra]

    def weekly_from_scratch(self, *extra: str) -> list[str]:
        """weekly naming the upstream (as on a first run, before any lock exists)."""
        return self.weekly_args("--upstream", str(self.up.path), *extra)

    def plan(self) -> dict[str, Any]:
        res = self.cli("plan", "-r", RECIPE, "--json")
        assert res.returncode == 0, res.stderr
        return json.loads(res.stdout)

    def recipe_plan(self) -> dict[str, Any]:
        return self.plan()["recipes"][0]


def standin_env(root: Path, *, ccache: Path | None = None) -> StandInEnv:
    """Upstream + project + key (nothing synced yet)."""
    from support.release_kit import make_keys

    root.mkdir(parents=True, exist_ok=True)
    up = make_upstream(root)
    project = root / "project"
    (project / "recipes").mkdir(parents=True)
    shutil.copy2(REPO / "recipes" / "defaults.toml", project / "recipes" / "defaults.toml")
    shutil.copy2(REPO / "recipes" / "models.toml", project / "recipes" / "models.toml")
    (project / "recipes" / f"{RECIPE}.toml").write_text(RECIPE_TOML)
    name = make_patch(up, project / "patches")
    (project / "patches" / "series").write_text(f"{name}\n")
    keys = make_keys(root / "keys")
    work = root / "work"
    work.mkdir()
    env = {"CCACHE_DIR": str(ccache or (root / "ccache"))}
    return StandInEnv(root, up, project, work, keys.key_file, keys.pub, name, env)


def clone_env(src: StandInEnv, root: Path) -> StandInEnv:
    """A copy of ``src`` (project, work dir, upstream) under ``root``: a test may break it freely.
    Paths inside the work dir (the tree's `upstream` remote, the mirror's origin) are repointed."""
    root.mkdir(parents=True, exist_ok=True)
    for name in ("upstream.git", "project", "work", "keys"):
        if (src.root / name).exists():
            shutil.copytree(src.root / name, root / name, symlinks=True)
    up = Upstream(root / "upstream.git", src.up.clock)
    env = StandInEnv(root, up, root / "project", root / "work", root / "keys" / src.key_file.name,
                     root / "keys" / src.pub.name, src.patch_name, dict(src.env))
    lock = env.lock
    if lock.exists():
        lock.write_text(lock.read_text().replace(str(src.up.path), str(up.path)))
    for mirror in (env.work / "mirrors").glob("*.git") if (env.work / "mirrors").is_dir() else ():
        shutil.rmtree(mirror)  # its name derives from the upstream path: sync recreates it from the copy
    if (env.tree / ".git").exists():
        git("remote", "remove", "upstream", cwd=env.tree)
    # build outputs and records name absolute paths of the old work dir: start those stages afresh
    for name in ("builds", "cmake", "dist", "releases", "logs", "reports", "state", "tmp", "smoke"):
        shutil.rmtree(env.work / name, ignore_errors=True)
    return env


# --- running the CLI -------------------------------------------------------------------------


_env = cli_env  # the fault harness's children get the one runner's environment (support/cli.py)


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 300,
            preexec: Callable[[], None] | None = None) -> subprocess.CompletedProcess[str]:
    return _run_cli(*args, env=env, timeout=timeout, preexec=preexec)


class Running:
    """A CLI process in its own process group; stderr is collected in the background."""

    def __init__(self, proc: subprocess.Popen[bytes], release: Path):
        self.proc = proc
        self.release_file = release
        self._err = bytearray()
        self._out = bytearray()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._pump, args=(proc.stderr, self._err), daemon=True),
                         threading.Thread(target=self._pump, args=(proc.stdout, self._out), daemon=True)]
        for t in self._threads:
            t.start()

    def _pump(self, stream: Any, buf: bytearray) -> None:
        while True:
            ready, _, _ = select.select([stream], [], [], 0.5)
            if ready:
                chunk = os.read(stream.fileno(), 65536)
                if not chunk:
                    return
                with self._lock:
                    buf.extend(chunk)
            elif self.proc.poll() is not None:
                chunk = os.read(stream.fileno(), 65536) if select.select([stream], [], [], 0)[0] else b""
                if not chunk:
                    return
                with self._lock:
                    buf.extend(chunk)

    @property
    def stderr(self) -> str:
        with self._lock:
            return self._err.decode("utf-8", "replace")

    @property
    def stdout(self) -> str:
        with self._lock:
            return self._out.decode("utf-8", "replace")

    def wait_for(self, pattern: str, timeout: float = 120) -> re.Match[str]:
        rx = re.compile(pattern, re.M)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = rx.search(self.stderr)
            if m:
                return m
            if self.proc.poll() is not None:
                time.sleep(0.3)  # let the pump drain
                m = rx.search(self.stderr)
                if m:
                    return m
                self.kill()
                raise AssertionError(f"exited {self.proc.returncode} before /{pattern}/:\n{self.stderr[-4000:]}")
            time.sleep(0.05)
        self.kill()
        raise AssertionError(f"no /{pattern}/ within {timeout}s:\n{self.stderr[-4000:]}")

    def wait_for_file(self, path: Path, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if path.exists():
                return
            if self.proc.poll() is not None:
                self.kill()
                raise AssertionError(f"exited {self.proc.returncode} before {path} appeared:\n{self.stderr[-4000:]}")
            time.sleep(0.05)
        self.kill()
        raise AssertionError(f"{path} did not appear within {timeout}s:\n{self.stderr[-4000:]}")

    def signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)

    def signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, sig)

    def resume(self) -> None:
        """Let a process paused at its fault point go on."""
        self.release_file.touch()

    def wait(self, timeout: float = 120) -> int:
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"still running after {timeout}s:\n{self.stderr[-4000:]}") from None
        self._close()
        return rc

    def _close(self) -> None:
        for t in self._threads:
            t.join(5)
        for stream in (self.proc.stdout, self.proc.stderr):
            with contextlib.suppress(Exception):
                stream.close()  # type: ignore[union-attr]

    def kill(self) -> None:
        """Stop it (idempotent; only this process group, which the test started)."""
        if self.proc.poll() is None:
            self.signal_group(signal.SIGKILL)
        with contextlib.suppress(Exception):
            self.proc.wait(10)
        self._close()


def start_cli(*args: str, env: dict[str, str] | None = None, failpoint: str | None = None,
              preexec: Callable[[], None] | None = None) -> Running:
    """The real CLI (via tests/support/failpoint.py, which only adds the fault point) in a new session."""
    release = Path(tempfile.mkdtemp(prefix="locara-failpoint-")) / "release"
    full = _env(env)
    if failpoint:
        full["LOCARA_TEST_FAILPOINT"] = failpoint
        full["LOCARA_TEST_FAILPOINT_RELEASE"] = str(release)

    def setup() -> None:
        os.setsid()
        # As in a terminal session: a suite started in the background by a non-interactive shell
        # (`cmd &`) inherits SIGINT/SIGQUIT ignored, and Python then installs no KeyboardInterrupt
        # handler, so a Ctrl-C test would measure how the suite was launched, not the tool.
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGQUIT, signal.SIG_DFL)
        if preexec:
            preexec()

    proc = subprocess.Popen([sys.executable, str(FAILPOINT), *args], env=full, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=setup)
    return Running(proc, release)


def processes_running(needle: str | Path) -> list[int]:
    """PIDs whose command line mentions ``needle``."""
    raw = str(needle).encode()
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid():
            try:
                if raw in (proc / "cmdline").read_bytes():
                    pids.append(int(proc.name))
            except OSError:
                pass
    return pids


def wait_gone(needle: str | Path, timeout: float = 15) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = processes_running(needle)
        if not left:
            return []
        time.sleep(0.1)
    return processes_running(needle)


# --- state pictures ----------------------------------------------------------------------------


def snapshot(root: Path) -> dict[str, str]:
    """Every path under ``root`` -> kind + content hash / link target (mtimes ignored)."""
    snap: dict[str, str] = {}
    if not root.exists():
        return snap
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in sorted(dirnames + filenames):
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            if p.is_symlink():
                snap[rel] = "link:" + os.readlink(p)
            elif p.is_dir():
                snap[rel] = "dir"
            else:
                snap[rel] = f"file:{oct(p.stat().st_mode & 0o7777)}:" + hashlib.sha256(p.read_bytes()).hexdigest()
    return snap


def tree_state(tree: Path) -> dict[str, Any]:
    """The patched source tree as a build sees it: HEAD, branch, status, stamp, no git op in progress."""
    stamp = tree.with_name(tree.name + ".json")
    return {
        "head": git("rev-parse", "HEAD", cwd=tree).strip(),
        "branch": git("symbolic-ref", "-q", "--short", "HEAD", cwd=tree).strip(),
        "status": git("status", "--porcelain", cwd=tree),
        "stamp": stamp.read_bytes() if stamp.exists() else None,
        "in_progress": sorted(p for p in ("rebase-apply", "rebase-merge", "MERGE_HEAD") if (tree / ".git" / p).exists()),
        "main.c": (tree / "main.c").read_bytes(),
    }


def hint_of(stderr: str) -> str:
    """The `next:` line(s) of an error report."""
    m = re.search(r"^next: (.*(?:\n(?!error:).*)*)", stderr, re.M)
    assert m, f"no `next:` line in:\n{stderr[-3000:]}"
    return m.group(1)


def error_of(stderr: str) -> str:
    m = re.search(r"^error: (.*(?:\n(?!next:).*)*)", stderr, re.M)
    assert m, f"no `error:` line in:\n{stderr[-3000:]}"
    return m.group(1)


# --- a full disk -------------------------------------------------------------------------------


@dataclass
class DiskLimit:
    path: Path
    kind: str  # "tmpfs" | "rlimit"
    size: int

    def preexec(self) -> None:
        """For the CLI process: the per-file size cap (rlimit fallback only)."""
        if self.kind == "rlimit":
            resource.setrlimit(resource.RLIMIT_FSIZE, (self.size, self.size))

    def squeeze(self, pid: int, leave: int = 4096) -> None:
        """Now, while process ``pid`` is paused: the disk full (about ``leave`` bytes left), or, in
        rlimit mode, that process unable to write a file past ``leave`` bytes."""
        if self.kind == "tmpfs":
            fill(self.path, leave)
        else:
            resource.prlimit(pid, resource.RLIMIT_FSIZE, (leave, leave))

    def relax(self) -> None:
        """Space again (the ballast removed; an rlimit dies with its process)."""
        (self.path / ".ballast").unlink(missing_ok=True)

    def resize(self, size: int) -> None:
        """Free space: a bigger tmpfs (contents kept), or a higher cap."""
        self.size = size
        if self.kind == "tmpfs":
            subprocess.run(["mount", "-o", f"remount,size={size}", str(self.path)], check=True, capture_output=True)


def _can_mount() -> bool:
    if os.environ.get("LOCARA_TEST_NO_MOUNT"):  # exercise the rlimit fallback where mounting works
        return False
    return hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("mount") is not None


@contextlib.contextmanager
def disk_limit(path: Path, size: int) -> Iterator[DiskLimit]:
    """``path`` (created, empty) on a ``size``-byte tmpfs when this process may mount one; else
    the caller applies :meth:`DiskLimit.preexec` (RLIMIT_FSIZE) to the process under test."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = False
    if _can_mount():
        res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "locara-fault-tmpfs", str(path)],
                             capture_output=True, text=True)
        mounted = res.returncode == 0
    try:
        yield DiskLimit(path, "tmpfs" if mounted else "rlimit", size)
    finally:
        if mounted:
            for _ in range(20):
                if subprocess.run(["umount", str(path)], capture_output=True).returncode == 0:
                    break
                time.sleep(0.2)
            else:
                subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(path: Path, leave: int) -> Path:
    """Fill the file system under ``path`` until about ``leave`` bytes are free."""
    st = os.statvfs(path)
    free = st.f_bavail * st.f_frsize
    ballast = path / ".ballast"
    with open(ballast, "wb") as fh:
        with contextlib.suppress(OSError):
            fh.write(b"\0" * max(0, free - leave))
    return ballast


# --- the GitHub Releases stand-in: support/github.py ------------------------------------------


# --- a server that accepts and never answers ---------------------------------------------------


@contextlib.contextmanager
def silent_server() -> Iterator[int]:
    """A TCP port on 127.0.0.1 that accepts connections and never sends a byte."""
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    port = server.getsockname()[1]
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                held.append(conn)
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        stop.set()
        thread.join()
        for c in held:
            c.close()
        server.close()


def closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kill_pids(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def prepared_env(root: Path, *, build: bool = False, release: bool = False) -> StandInEnv:
    """:func:`standin_env` + ``sync`` + ``patches apply`` (+ a finished ``weekly`` release when
    ``release``, + ``build`` when ``build``)."""
    env = standin_env(root)
    res = env.cli("sync", "--upstream", str(env.up.path))
    assert res.returncode == 0, res.stderr
    res = env.cli("patches", "apply")
    assert res.returncode == 0, res.stderr
    if build:
        res = env.cli("build", "-r", RECIPE)
        assert res.returncode == 0, res.stderr
    if release:
        res = env.cli(*env.weekly_args())
        assert res.returncode == 0, res.stderr
    return env
