"""Local llama.cpp upstreams for tests: the REAL 0.3.36 tree, committed into a fresh repo, plus commits and tags.

* :func:`base_repo` — a bare repo whose single root commit holds the tree of upstream 0c1e570 (the
  llama.cpp vendored by llama-cpp-python 0.3.36). Built once and cached in the test cache (a few
  seconds the first time: the objects come straight from the sdist's git metadata).
* :class:`Upstream` — a cheap copy of it (``git clone --bare --shared``) that a test grows with
  commits, merges, tags and branches through git plumbing (no checkout of the 3,666 files); or
  (:meth:`Upstream.from_files`) a fresh bare repo whose root commit holds given files, as the fault
  suite's tiny stand-in project (support/faults.py). A :class:`Clock` dates its commits.
* :func:`cli` — the real ``locara-build`` in a child process with ``--project`` / ``--work-dir``.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from support.cli import run_cli
from support.llama import test_cache, vendored_gitdir

REPO = Path(__file__).resolve().parents[2]

#: Upstream commits vendored by llama-cpp-python sdists, read from each sdist's submodule gitlink
#: and checked-out HEAD. (0.3.35 vendors 4df29be; 9f0d017 is only origin/master in its git dir.)
PYPI_COMMITS = {
    "0.3.36": "0c1e57098bba43ac29e6e3b677cdceebdd22334f",
    "0.3.35": "4df29be4f4c3673f428170fda944a5b19f743bb8",
}
ARGS_PATCH = "0001-server-read-default-arguments-from-llama-server.args.patch"
MAIN_CPP = "tools/server/main.cpp"
UPSTREAM_MAIN_CPP = "int llama_server(int argc, char ** argv);\n\nint main(int argc, char ** argv) {\n    return llama_server(argc, argv);\n}\n"

_ENV_UNSET = ("GIT_DIR", "GIT_INDEX_FILE", "GIT_WORK_TREE", "GIT_OBJECT_DIRECTORY")


def git(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None, input: str | None = None) -> str:
    full = {k: v for k, v in os.environ.items() if k not in _ENV_UNSET}
    full.update({"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "LC_ALL": "C"})
    full.update(env or {})
    res = subprocess.run(["git", *args], cwd=cwd, env=full, capture_output=True, text=True, input=input)
    if res.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed ({res.returncode}): {res.stderr}")
    return res.stdout


def base_repo() -> Path:
    """The cached bare repo: master = one root commit holding upstream 0c1e570's tree."""
    cache = test_cache() / "upstream"
    cache.mkdir(parents=True, exist_ok=True)
    final = cache / "base-0.3.36.git"
    with open(cache / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (final / "refs" / "heads" / "master").exists() or (final / "packed-refs").exists():
            return final
        work = Path(tempfile.mkdtemp(prefix=".build-", dir=cache))
        try:
            src = work / "src.git"
            git("init", "-q", "--bare", str(src))
            git("fetch", "-q", "--no-tags", "--update-shallow", str(vendored_gitdir("0.3.36")), "+HEAD:refs/heads/vendored", cwd=src)
            tree = git("rev-parse", "vendored^{tree}", cwd=src).strip()
            stamp = {"GIT_AUTHOR_DATE": "2026-10-01T00:00:00Z", "GIT_COMMITTER_DATE": "2026-10-01T00:00:00Z",
                     "GIT_AUTHOR_NAME": "upstream", "GIT_AUTHOR_EMAIL": "upstream@example.invalid",
                     "GIT_COMMITTER_NAME": "upstream", "GIT_COMMITTER_EMAIL": "upstream@example.invalid"}
            root = git("commit-tree", "-m", "import llama.cpp 0c1e570 (tree of llama-cpp-python 0.3.36)", tree,
                       cwd=src, env=stamp).strip()
            git("update-ref", "refs/heads/master", root, cwd=src)
            tmp = work / "base.git"
            git("init", "-q", "--bare", str(tmp))
            git("fetch", "-q", str(src), "master:refs/heads/master", cwd=tmp)
            os.replace(tmp, final)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return final


@dataclass(frozen=True)
class Clock:
    """How an :class:`Upstream` dates and signs its commits: the n-th at ``epoch + step * n``, where
    n counts this instance's commits from 1 or (``from_repo``) the commits already in the repo (so a
    copy of the repo continues the sequence). Deterministic dates, so deterministic shas."""

    epoch: int = 1790899200  # 2026-10-02T00:00:00Z
    step: int = 3600
    from_repo: bool = False
    name: str = "upstream dev"
    email: str = "dev@example.invalid"


#: The real-tree upstreams: one hour apart from 2026-10-02T00:00:00Z, counted per instance.
HOURLY = Clock()


class Upstream:
    """A bare upstream repository a test can grow: ``commit``, ``merge``, ``tag``, ``branch``."""

    def __init__(self, path: Path, clock: Clock = HOURLY):
        self.path = path
        self.clock = clock
        self._made = 0  # commits made by this instance

    @classmethod
    def create(cls, dest: Path) -> Upstream:
        git("clone", "-q", "--bare", "--shared", str(base_repo()), str(dest))
        return cls(dest)

    @classmethod
    def from_files(cls, dest: Path, files: dict[str, str | bytes], *, message: str, tag: str | None = None,
                   clock: Clock = HOURLY) -> Upstream:
        """A fresh bare repo (branch master) whose root commit holds ``files`` (path -> text or bytes)."""
        git("init", "-q", "--bare", "-b", "master", str(dest))
        up = cls(dest, clock)
        up.commit(message, files, parent=None, tag=tag)
        return up

    def git(self, *args: str, env: dict[str, str] | None = None, input: str | None = None) -> str:
        return git(*args, cwd=self.path, env=env, input=input)

    def rev(self, ref: str = "master") -> str:
        return self.git("rev-parse", f"{ref}^{{commit}}").strip()

    def read(self, path: str, rev: str = "master") -> str:
        return self.git("show", f"{rev}:{path}")

    def _dates(self) -> dict[str, str]:
        if self.clock.from_repo:
            n = int(self.git("rev-list", "--count", "--all").strip() or 0)
        else:
            self._made += 1
            n = self._made
        stamp = f"@{self.clock.epoch + self.clock.step * n} +0000"
        who = self.clock
        return {"GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp,
                "GIT_AUTHOR_NAME": who.name, "GIT_AUTHOR_EMAIL": who.email,
                "GIT_COMMITTER_NAME": who.name, "GIT_COMMITTER_EMAIL": who.email}

    def _blob(self, data: str | bytes, tmp: Path) -> str:
        if isinstance(data, str):
            return self.git("hash-object", "-w", "--stdin", input=data).strip()
        f = tmp / "blob"
        f.write_bytes(data)
        return self.git("hash-object", "-w", "--no-filters", str(f)).strip()

    def commit(self, message: str, changes: dict[str, str | bytes | None] | None = None, *, parent: str | None = "master",
               parents: list[str] | None = None, branch: str | None = "master", renames: dict[str, str] | None = None,
               tag: str | None = None) -> str:
        """A commit on ``parent`` (None: a root commit) changing ``changes`` (path -> text or bytes,
        None = delete); moves ``branch``; tags it ``tag`` (lightweight, moved if it exists)."""
        with tempfile.TemporaryDirectory() as tmp:
            env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
            base = self.rev(parent) if parent is not None else None
            if base is not None:
                self.git("read-tree", base, env=env)
            lines = []
            for old, new in (renames or {}).items():
                assert base is not None, "renames need a parent"
                blob = self.git("rev-parse", f"{base}:{old}").strip()
                lines.append(f"0 {'0' * 40}\t{old}\n100644 {blob}\t{new}\n")
            for path, data in (changes or {}).items():
                if data is None:
                    lines.append(f"0 {'0' * 40}\t{path}\n")
                else:
                    lines.append(f"100644 {self._blob(data, Path(tmp))}\t{path}\n")
            if lines:
                self.git("update-index", "--index-info", env=env, input="".join(lines))
            tree = self.git("write-tree", env=env).strip()
        args = ["commit-tree", tree]
        for p in parents or ([base] if base is not None else []):
            args += ["-p", self.rev(p)]
        args += ["-m", message]
        sha = self.git(*args, env=self._dates()).strip()
        if branch:
            self.git("update-ref", f"refs/heads/{branch}", sha)
        if tag:
            self.tag(tag, sha)
        return sha

    def tag(self, name: str, rev: str = "master") -> str:
        sha = self.rev(rev)
        self.git("tag", "-f", name, sha)
        return sha

    def branch(self, name: str, rev: str) -> str:
        sha = self.rev(rev)
        self.git("update-ref", f"refs/heads/{name}", sha)
        return sha


def cli(project: Path, work: Path, *args: str, env: dict[str, str] | None = None,
        timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, project=project, work=work, env=env, timeout=timeout)


def cli_json(project: Path, work: Path, *args: str, env: dict[str, str] | None = None, expect: int = 0) -> dict:
    res = cli(project, work, *args, "--json", env=env)
    assert res.returncode == expect, f"exit {res.returncode} (wanted {expect}):\n{res.stdout}\n{res.stderr}"
    return json.loads(res.stdout)


def new_project(dest: Path, *, series: list[str] | None = None, extra_patches: dict[str, bytes] | None = None) -> Path:
    """A private project: the repo's recipes/ (no lock) and patches/ (optionally another series)."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copytree(REPO / "recipes", dest / "recipes")
    (dest / "recipes" / "upstream.lock").unlink(missing_ok=True)
    shutil.copytree(REPO / "patches", dest / "patches")
    for name, data in (extra_patches or {}).items():
        (dest / "patches" / name).write_bytes(data)
    if series is not None:
        (dest / "patches" / "series").write_text("".join(f"{n}\n" for n in series))
    return dest


def make_patch(upstream: Upstream, base: str, subject: str, changes: dict[str, str], *, body: str = "",
               local_first: dict[str, str] | None = None, number: int = 1, clock: Clock = HOURLY) -> tuple[str, bytes]:
    """A ``git format-patch`` file for ``changes`` made on ``base`` (``local_first``: an unpublished
    commit before it, so the patch's pre-image blobs exist nowhere upstream); ``clock`` dates and
    signs the patch's commit(s)."""
    with tempfile.TemporaryDirectory() as tmp:
        side = Upstream(Path(tmp) / "side.git", clock)
        git("clone", "-q", "--bare", "--shared", str(upstream.path), str(side.path))
        side.git("update-ref", "refs/heads/work", upstream.rev(base))
        if local_first:
            side.commit("local change", local_first, parent="work", branch="work")
        sha = side.commit(subject + (f"\n\n{body}" if body else ""), changes, parent="work", branch="work")
        out = Path(tmp) / "out"
        side.git("format-patch", "-q", "--zero-commit", "--no-signature", "--no-numbered", "--full-index",
                 "--no-renames", f"--start-number={number}", "-o", str(out), "-1", sha)
        f = next(out.iterdir())
        return f.name, f.read_bytes()


def patched_main_cpp() -> str:
    """Upstream 0c1e570's tools/server/main.cpp with the repo's .args patch applied (by git)."""
    from support.llama import vendored_llama

    with tempfile.TemporaryDirectory() as tmp:
        dest = Path(tmp) / MAIN_CPP
        dest.parent.mkdir(parents=True)
        shutil.copy(vendored_llama("0.3.36") / MAIN_CPP, dest)
        git("apply", str(REPO / "patches" / ARGS_PATCH), cwd=Path(tmp))
        return dest.read_text()


def replace_line(text: str, lineno: int, new: str) -> str:
    lines = text.splitlines(keepends=True)
    lines[lineno - 1] = new + "\n"
    return "".join(lines)
