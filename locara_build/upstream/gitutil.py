"""Git plumbing shared by ``sync``, the patch queue and bisect; every call goes through :func:`locara_build.core.run.run`.

* :func:`git` runs one git command with a clean environment: no inherited ``GIT_DIR`` /
  ``GIT_INDEX_FILE`` / identity variables, ``LC_ALL=C`` (messages we parse), no terminal prompts.
  ``isolated=True`` also ignores the user's global and system git config, so patch formatting,
  ``git am`` and merges give the same bytes and shas on every machine.
* :class:`Scratch` is an index-only workspace over a repository: a private index file and a private
  object directory (the repository's objects are borrowed read-only as an alternate). Trees,
  commits and merges made there never touch the repository or any working tree, and vanish with it.
* :func:`network_env` / :func:`network_timeout`: low-speed limits and an overall timeout so a hanging
  upstream fails instead of waiting forever.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from locara_build.core.errors import LocaraError, SourceError
from locara_build.core.run import Result, run

__all__ = [
    "IDENTITY",
    "git",
    "rev_parse",
    "commit_exists",
    "is_ancestor",
    "is_shallow",
    "shallow_commits",
    "network_env",
    "network_timeout",
    "Scratch",
    "CommitInfo",
    "commit_info",
]

#: Committer identity of every commit locara-build makes (patched trees, rebased patches).
IDENTITY = ("locara-build", "locara-build@localhost")

_UNSET = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
    "GIT_CEILING_DIRECTORIES",
    "GIT_AUTHOR_NAME",
    "GIT_AUTHOR_EMAIL",
    "GIT_AUTHOR_DATE",
    "GIT_COMMITTER_NAME",
    "GIT_COMMITTER_EMAIL",
    "GIT_COMMITTER_DATE",
    "GIT_EDITOR",
    "GIT_SEQUENCE_EDITOR",
)


def git(
    *args: str | os.PathLike[str],
    cwd: Path | None = None,
    git_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
    isolated: bool = True,
    check: bool = True,
    error: type[LocaraError] = SourceError,
    what: str | None = None,
    hint: str | None = None,
    timeout: float | None = 600,
    input: str | bytes | None = None,
    binary: bool = False,
) -> Result:
    """Run ``git [--git-dir DIR] ARGS``. ``isolated``: ignore global/system config (reproducible output)."""
    argv: list[str] = ["git"]
    if git_dir is not None:
        argv += ["--git-dir", str(git_dir)]
    argv += [str(a) for a in args]
    full_env = {"LC_ALL": "C", "LANGUAGE": "C", "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "", "GIT_EDITOR": ":"}
    if isolated:
        full_env.update({"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull})
    full_env.update(env or {})
    unset = [k for k in _UNSET if k not in full_env]
    return run(
        argv,
        cwd=cwd,
        env=full_env,
        unset_env=unset,
        check=check,
        error=error,
        what=what or f"git {args[0] if args else ''}".strip(),
        hint=hint,
        timeout=timeout,
        input=input,
        binary=binary,
    )


def rev_parse(repo: Path, rev: str, *, bare: bool = True) -> str | None:
    """Full sha of ``rev`` peeled to a commit, or None when it does not name one."""
    kw = {"git_dir": repo} if bare else {"cwd": repo}
    res = git("rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}", check=False, **kw)  # type: ignore[arg-type]
    out = res.stdout.strip()
    return out if res.ok and re.fullmatch(r"[0-9a-f]{40}", out) else None


def commit_exists(repo: Path, sha: str) -> bool:
    return git("cat-file", "-e", f"{sha}^{{commit}}", git_dir=repo, check=False).ok


def is_ancestor(repo: Path, older: str, newer: str) -> bool:
    return git("merge-base", "--is-ancestor", older, newer, git_dir=repo, check=False).returncode == 0


def shallow_commits(repo: Path) -> set[str]:
    """Commits whose parents this (shallow) repository does not have."""
    path = repo / "shallow"
    if not path.exists():
        return set()
    return {line.strip() for line in path.read_text().splitlines() if line.strip()}


def is_shallow(repo: Path) -> bool:
    return bool(shallow_commits(repo))


@dataclass(frozen=True)
class CommitInfo:
    sha: str
    subject: str
    author: str
    author_date: str  # ISO 8601 as git prints it (%aI)
    commit_date_utc: str  # ISO 8601 UTC, "Z" suffix
    commit_time: int  # unix seconds (committer date)

    @property
    def pr(self) -> int | None:
        """The upstream PR number when the subject ends with ``(#NNNN)`` (GitHub squash merges)."""
        m = re.search(r"\(#(\d+)\)\s*$", self.subject)
        return int(m[1]) if m else None

    def to_dict(self) -> dict[str, object]:
        return {
            "sha": self.sha,
            "short": self.sha[:10],
            "subject": self.subject,
            "author": self.author,
            "author_date": self.author_date,
            "commit_date": self.commit_date_utc,
            "pr": self.pr,
        }


def commit_info(repo: Path, rev: str) -> CommitInfo:
    from datetime import UTC, datetime

    res = git("show", "-s", "--format=%H%x00%s%x00%an <%ae>%x00%aI%x00%ct", rev, "--", git_dir=repo)
    sha, subject, author, adate, ctime = res.stdout.rstrip("\n").split("\x00")
    when = datetime.fromtimestamp(int(ctime), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return CommitInfo(sha, subject, author, adate, when, int(ctime))


# --- network ------------------------------------------------------------------------------


def network_timeout() -> float:
    """Overall limit for one fetch (seconds): ``$LOCARA_FETCH_TIMEOUT``, default 1800."""
    return float(os.environ.get("LOCARA_FETCH_TIMEOUT", "1800"))


def network_env() -> dict[str, str]:
    """Abort transfers slower than 1 KB/s for ``$LOCARA_NET_TIMEOUT`` seconds (default 60); never prompt."""
    stall = os.environ.get("LOCARA_NET_TIMEOUT", "60")
    env = {
        "GIT_HTTP_LOW_SPEED_LIMIT": "1000",
        "GIT_HTTP_LOW_SPEED_TIME": stall,
        "GIT_TERMINAL_PROMPT": "0",
    }
    if "GIT_SSH_COMMAND" not in os.environ:
        env["GIT_SSH_COMMAND"] = f"ssh -o BatchMode=yes -o ConnectTimeout={stall} -o ServerAliveInterval=15"
    return env


# --- scratch workspace --------------------------------------------------------------------


class Scratch:
    """Index-only work over ``repo`` (a git dir): private index + object dir; the repo stays untouched.

    Use as a context manager. ``self.git(...)`` runs git against the repo with the scratch's
    index and objects; objects written (trees, commits, merge results) live only in the scratch.
    """

    def __init__(self, repo: Path, *, error: type[LocaraError] = SourceError):
        self.repo = Path(repo)
        self.error = error
        self.dir = Path(tempfile.mkdtemp(prefix="locara-scratch-"))
        (self.dir / "objects").mkdir()
        self.index = self.dir / "index"
        objects = (self.repo / "objects").resolve()
        alternates = [str(objects)]
        extra = objects / "info" / "alternates"
        if extra.exists():  # the repo's own alternates are not followed through an alternate: list them
            for line in extra.read_text().splitlines():
                if line.strip() and not line.startswith("#"):
                    alternates.append(str((objects / line.strip()).resolve()))
        self._alternates = os.pathsep.join(alternates)
        self._counter = 0

    def __enter__(self) -> Scratch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def env(self, index: Path | None = None, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = {
            "GIT_OBJECT_DIRECTORY": str(self.dir / "objects"),
            "GIT_ALTERNATE_OBJECT_DIRECTORIES": self._alternates,
            "GIT_INDEX_FILE": str(index or self.index),
            "GIT_AUTHOR_NAME": IDENTITY[0],
            "GIT_AUTHOR_EMAIL": IDENTITY[1],
            "GIT_COMMITTER_NAME": IDENTITY[0],
            "GIT_COMMITTER_EMAIL": IDENTITY[1],
            "GIT_AUTHOR_DATE": "1970-01-01T00:00:00Z",
            "GIT_COMMITTER_DATE": "1970-01-01T00:00:00Z",
        }
        env.update(extra or {})
        return env

    def git(
        self,
        *args: str | os.PathLike[str],
        index: Path | None = None,
        env: Mapping[str, str] | None = None,
        check: bool = True,
        input: str | None = None,
    ) -> Result:
        return git(*args, git_dir=self.repo, env=self.env(index, env), check=check, error=self.error, input=input)

    def temp_path(self, stem: str) -> Path:
        self._counter += 1
        return self.dir / f"{stem}-{self._counter}"

    def tree_of(self, rev: str) -> str:
        return self.git("rev-parse", "--verify", f"{rev}^{{tree}}").stdout.strip()

    def read_tree(self, treeish: str, index: Path | None = None) -> None:
        self.git("read-tree", treeish, index=index)

    def write_tree(self, index: Path | None = None) -> str:
        return self.git("write-tree", index=index).stdout.strip()

    def commit_tree(
        self,
        tree: str,
        parents: Sequence[str] = (),
        message: str = "locara-build scratch\n",
        author: tuple[str, str, str] | None = None,
    ) -> str:
        """A commit object (in the scratch). ``author``: (name, email, date); the committer date follows it."""
        extra: dict[str, str] = {}
        if author is not None:
            extra = {
                "GIT_AUTHOR_NAME": author[0],
                "GIT_AUTHOR_EMAIL": author[1],
                "GIT_AUTHOR_DATE": author[2],
                "GIT_COMMITTER_DATE": author[2],
            }
        args: list[str] = ["commit-tree", tree]
        for p in parents:
            args += ["-p", p]
        msg = self.temp_path("msg")
        msg.write_text(message, encoding="utf-8")
        args += ["-F", str(msg)]
        return self.git(*args, env=extra).stdout.strip()

    def changed_paths(self, a: str, b: str) -> list[str]:
        out = self.git("diff-tree", "-r", "--name-only", "--no-renames", a, b).stdout
        return [line for line in out.splitlines() if line]
