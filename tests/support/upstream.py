"""Local llama.cpp upstreams for tests: the REAL 0.3.36 tree, committed into a fresh repo, plus commits and tags.

* :func:`base_repo` — a bare repo whose single root commit holds the tree of upstream 0c1e570 (the
  llama.cpp vendored by llama-cpp-python 0.3.36). Built once and cached in the test cache (a few
  seconds the first time: the objects come straight from the sdist's git metadata).
* :class:`Upstream` — a cheap copy of it (``git clone --bare --shared``) that a test grows with
  commits, merges, tags and branches through git plumbing (no checkout of the 3,666 files).
* :func:`cli` — the real ``locara-build`` in a child process with ``--project`` / ``--work-dir``.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import tempfile
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


class Upstream:
    """A bare upstream repository a test can grow: ``commit``, ``merge``, ``tag``, ``branch``."""

    def __init__(self, path: Path):
        self.path = path
        self._clock = 0

    @classmethod
    def create(cls, dest: Path) -> Upstream:
        git("clone", "-q", "--bare", "--shared", str(base_repo()), str(dest))
        return cls(dest)

    def git(self, *args: str, env: dict[str, str] | None = None, input: str | None = None) -> str:
        return git(*args, cwd=self.path, env=env, input=input)

    def rev(self, ref: str) -> str:
        return self.git("rev-parse", f"{ref}^{{commit}}").strip()

    def read(self, path: str, rev: str = "master") -> str:
        return self.git("show", f"{rev}:{path}")

    def _dates(self) -> dict[str, str]:
        self._clock += 1  # one hour apart from 2026-10-02T00:00:00Z: dates (and shas) are deterministic
        stamp = f"@{1790899200 + 3600 * self._clock} +0000"
        return {"GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp,
                "GIT_AUTHOR_NAME": "upstream dev", "GIT_AUTHOR_EMAIL": "dev@example.invalid",
                "GIT_COMMITTER_NAME": "upstream dev", "GIT_COMMITTER_EMAIL": "dev@example.invalid"}

    def commit(self, message: str, changes: dict[str, str | None] | None = None, *, parent: str = "master",
               parents: list[str] | None = None, branch: str | None = "master", renames: dict[str, str] | None = None) -> str:
        """A commit on ``parent`` changing ``changes`` (path -> text, None = delete); moves ``branch``."""
        with tempfile.TemporaryDirectory() as tmp:
            env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
            base = self.rev(parent)
            self.git("read-tree", base, env=env)
            lines = []
            for old, new in (renames or {}).items():
                blob = self.git("rev-parse", f"{base}:{old}").strip()
                lines.append(f"0 {'0' * 40}\t{old}\n100644 {blob}\t{new}\n")
            for path, text in (changes or {}).items():
                if text is None:
                    lines.append(f"0 {'0' * 40}\t{path}\n")
                else:
                    blob = self.git("hash-object", "-w", "--stdin", input=text).strip()
                    lines.append(f"100644 {blob}\t{path}\n")
            if lines:
                self.git("update-index", "--index-info", env=env, input="".join(lines))
            tree = self.git("write-tree", env=env).strip()
        args = ["commit-tree", tree]
        for p in parents or [base]:
            args += ["-p", self.rev(p)]
        args += ["-m", message]
        sha = self.git(*args, env=self._dates()).strip()
        if branch:
            self.git("update-ref", f"refs/heads/{branch}", sha)
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
               local_first: dict[str, str] | None = None, number: int = 1) -> tuple[str, bytes]:
    """A ``git format-patch`` file for ``changes`` made on ``base`` (``local_first``: an unpublished
    commit before it, so the patch's pre-image blobs exist nowhere upstream)."""
    with tempfile.TemporaryDirectory() as tmp:
        side = Upstream(Path(tmp) / "side.git")
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
