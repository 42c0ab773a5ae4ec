"""The patch queue: apply the series to the locked commit, check it against any ref, refresh it.

* :func:`prepare_tree` (``patches apply``) makes ``WorkDir.source_tree`` a git checkout of the
  locked upstream commit plus one commit per patch (``git am -3``, fixed committer identity,
  ``--committer-date-is-author-date``: the patched HEAD sha is a function of the inputs). The tree
  path never changes and is updated in place (git rewrites only files that differ, so ninja and
  ccache redo only what changed). The stamp is cleared first and written last. On a conflict the
  tree is put back exactly as it was (HEAD, branch, stamp) and :class:`PatchError` (exit 4) names
  the patch, files, hunks and the commands to resolve and refresh.
* :func:`check_series` (``patches check``) tries the series against any upstream ref in a scratch
  index (no working tree, nothing touched): per patch ``clean`` / ``3-way`` / ``upstream`` /
  ``FAILED``. ``3-way`` follows what ``git am -3`` does: build the patch's pre-image from its blob
  ids and merge (renames included); ``upstream`` means that merge changes nothing: upstream
  already carries the change and the patch can be dropped.
* :func:`refresh` (``patches refresh``) regenerates ``patches/`` from the commits on top of the
  locked commit in the tree: byte-stable (same commits, same bytes).
"""

from __future__ import annotations

import contextlib
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from locara_build.core import log
from locara_build.core.errors import PatchError, SourceError
from locara_build.core.filelock import file_lock
from locara_build.core.run import Result
from locara_build.core.workdir import Project, WorkDir
from locara_build.upstream.gitutil import IDENTITY, Scratch, git, is_ancestor, shallow_commits
from locara_build.upstream.lock import Lock, atomic_write_bytes, read_lock
from locara_build.upstream.series import PatchFile, read_series, series_hash
from locara_build.upstream.sourcetree import Stamp, clear_stamp, read_stamp, write_stamp

__all__ = [
    "BRANCH",
    "FORMAT_PATCH_ARGS",
    "Hunk",
    "FileConflict",
    "Outcome",
    "PatchResult",
    "CheckReport",
    "ApplyResult",
    "RefreshResult",
    "apply_patch",
    "apply_series",
    "diagnose",
    "patch_meta",
    "format_commit",
    "check_series",
    "check_patch_paths",
    "upstream_symlinks",
    "prepare_tree",
    "refresh",
]

#: The branch in the source tree that carries upstream + one commit per patch.
BRANCH = "locara/patched"

#: How patches are written (refresh, bisect --write): stable bytes, no sha or version noise.
FORMAT_PATCH_ARGS = ("--zero-commit", "--no-signature", "--no-numbered", "--full-index", "--no-renames")


# --- parsing patches ----------------------------------------------------------------------


@dataclass(frozen=True)
class Hunk:
    file: str
    number: int  # 1-based within the file
    header: str  # "@@ -1,5 +1,90 @@"
    reason: str = ""

    def __str__(self) -> str:
        text = f"{self.file}: hunk #{self.number} ({self.header})"
        return f"{text}: {self.reason}" if self.reason else text

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "hunk": self.number, "header": self.header, "reason": self.reason}


@dataclass(frozen=True)
class _Section:
    path: str
    header: list[str]
    hunks: list[list[str]]


_HUNK_RE = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


def _sections(text: str) -> list[_Section]:
    """Split a git patch into per-file sections with their hunks (line counts from the @@ headers)."""
    lines = text.splitlines(keepends=True)
    out: list[_Section] = []
    i = 0
    while i < len(lines):
        if not lines[i].startswith("diff --git "):
            i += 1
            continue
        header = [lines[i]]
        m = re.match(r"^diff --git a/(.*) b/(.*)$", lines[i].rstrip("\n"))
        path = m[2] if m else lines[i].split()[-1]
        i += 1
        while i < len(lines) and not lines[i].startswith(("@@ ", "diff --git ")):
            line = lines[i]
            if line.startswith("+++ b/"):
                path = line[6:].rstrip("\n")
            elif line.startswith("--- a/") and path == "/dev/null":
                path = line[6:].rstrip("\n")
            header.append(line)
            i += 1
        hunks: list[list[str]] = []
        while i < len(lines) and lines[i].startswith("@@ "):
            hm = _HUNK_RE.match(lines[i])
            hunk = [lines[i]]
            i += 1
            if not hm:
                break
            old = int(hm[2]) if hm[2] is not None else 1
            new = int(hm[4]) if hm[4] is not None else 1
            while i < len(lines) and (old > 0 or new > 0):
                line = lines[i]
                hunk.append(line)
                i += 1
                if line.startswith("\\"):
                    continue
                tag = line[:1]
                if tag in (" ", "\n"):
                    old -= 1
                    new -= 1
                elif tag == "-":
                    old -= 1
                elif tag == "+":
                    new -= 1
            while i < len(lines) and lines[i].startswith("\\"):
                hunk.append(lines[i])
                i += 1
            hunks.append(hunk)
        out.append(_Section(path, header, hunks))
    return out


def patch_files(text: str) -> list[str]:
    return [s.path for s in _sections(text)]


# --- what a patch may touch ---------------------------------------------------------------

_C_ESCAPES = {"a": "\a", "b": "\b", "t": "\t", "n": "\n", "v": "\v", "f": "\f", "r": "\r", '"': '"', "\\": "\\"}
_SYMLINK_MODE = "120000"
#: Characters HFS+ ignores in names (git's is_hfs_dotgit): `.g\u200cit` is `.git` on a Mac.
_HFS_IGNORABLE = re.compile("[\u200c-\u200f\u202a-\u202e\u206a-\u206f\ufeff]")


def _unquote(name: str) -> str:
    """A path as git writes it: C-quoted (``"a/\\303\\251"``) when it holds unusual bytes."""
    name = name.strip()
    if not (len(name) >= 2 and name[0] == '"' and name[-1] == '"'):
        return name
    body, out, i = name[1:-1], bytearray(), 0
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if nxt in "01234567" and re.match(r"[0-7]{3}", body[i + 1 : i + 4]):
                out.append(int(body[i + 1 : i + 4], 8))
                i += 4
                continue
            out += _C_ESCAPES.get(nxt, nxt).encode()
            i += 2
            continue
        out += c.encode("utf-8", "surrogateescape")
        i += 1
    return out.decode("utf-8", "surrogateescape")


def _strip_prefix(name: str) -> str:
    """``a/x`` / ``b/x`` -> ``x`` (git's -p1); ``/dev/null`` stays."""
    if name == "/dev/null":
        return name
    return name[2:] if name[:2] in ("a/", "b/") else name


def _is_dotgit(part: str) -> bool:
    """``.git`` as git, NTFS (``.GIT.``, ``.git ``, ``GIT~1``, ``.git::$INDEX_ALLOCATION``) and HFS+ see it."""
    plain = _HFS_IGNORABLE.sub("", part).split(":", 1)[0].rstrip(". ").lower()
    return plain == ".git" or plain == "git~1"


def _path_problem(path: str) -> str | None:
    if not path:
        return "an empty path"
    if path.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", path):
        return "an absolute path"
    parts = re.split(r"[/\\]", path)
    if ".." in parts:
        return "a `..` component"
    if any(_is_dotgit(p) for p in parts):
        return "git's own directory (.git)"
    if "\x00" in path:
        return "a NUL byte"
    return None


@dataclass(frozen=True)
class _Touch:
    path: str
    mode: str = ""  # the new mode, when the patch sets one
    target: str | None = None  # a symlink's new target


def _touched(text: str) -> list[_Touch]:
    """Every path a patch names (git headers, ---/+++ lines, renames/copies, traditional diffs), with
    symlink targets. Hunk bodies are skipped by their line counts, so a removed line that starts
    with "-- " is never taken for a header."""
    # git splits on "\n" only: str.splitlines() would also split on \f, \x1c, \x85, U+2028 inside a
    # hunk line, shift the line counts and let a header after the hunk slip by unread
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    touches: list[_Touch] = []
    i = 0
    mode = ""
    current = ""
    while i < len(lines):
        line = lines[i]
        if line.startswith("diff --git "):
            mode, current = "", ""
            rest = line[len("diff --git "):]
            m = re.match(r'^("(?:[^"\\]|\\.)*"|\S+) ("(?:[^"\\]|\\.)*"|\S+)$', rest)
            names = [m[1], m[2]] if m else rest.split(" ")
            for n in names:
                current = _strip_prefix(_unquote(n))
                touches.append(_Touch(current))
        elif line.startswith(("--- ", "+++ ")):
            name = _unquote(line[4:].split("\t", 1)[0])
            if name != "/dev/null":
                current = _strip_prefix(name)
                touches.append(_Touch(current, mode))
        elif line.startswith(("rename from ", "rename to ", "copy from ", "copy to ")):
            current = _unquote(line.split(" ", 2)[2])
            touches.append(_Touch(current, mode))
        elif line.startswith(("new file mode ", "new mode ")):
            mode = line.split()[-1]
        elif line.startswith("index ") and len(line.split()) == 3:
            mode = line.split()[2]
        elif line.startswith("GIT binary patch") and mode == _SYMLINK_MODE and current:
            touches.append(_Touch(current, mode, "\n(a binary literal)"))  # a target we cannot read: refused
        elif line.startswith("@@ "):
            hm = _HUNK_RE.match(line)
            i += 1
            if not hm:
                continue
            old = int(hm[2]) if hm[2] is not None else 1
            new = int(hm[4]) if hm[4] is not None else 1
            added: list[str] = []
            while i < len(lines) and (old > 0 or new > 0):
                body = lines[i]
                tag = body[:1]
                if tag not in (" ", "", "-", "+", "\\"):
                    break  # not a hunk line: git ends the hunk here too, so the line is read as a header
                i += 1
                if tag == "\\":
                    continue
                if tag in (" ", ""):
                    old, new = old - 1, new - 1
                elif tag == "-":
                    old -= 1
                elif tag == "+":
                    new -= 1
                    added.append(body[1:])
            if mode == _SYMLINK_MODE and current:
                touches.append(_Touch(current, mode, "\n".join(added)))
            continue
        i += 1
    return touches


def _link_escapes(link: str, target: str) -> bool:
    """Does a symlink at ``link`` (relative to the tree) pointing at ``target`` lead outside the tree?"""
    if not target or target.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", target) or "\n" in target:
        return True
    depth = len(re.split(r"[/\\]", link)) - 1  # directories above the link, inside the tree
    for part in re.split(r"[/\\]", target):
        if part == "..":
            depth -= 1
            if depth < 0:
                return True
        elif part not in ("", "."):
            if _is_dotgit(part):
                return True
            depth += 1
    return False


def upstream_symlinks(repo: Path, commit: str) -> frozenset[str]:
    """Paths that are symlinks in ``commit`` (a patch must not write through them)."""
    out = git("ls-tree", "-r", "-z", "--full-tree", commit, git_dir=repo, error=PatchError).stdout
    links = set()
    for entry in out.split("\0"):
        meta, _, path = entry.partition("\t")
        if meta.startswith(_SYMLINK_MODE + " "):
            links.add(path)
    return frozenset(links)


def check_patch_paths(patches: Sequence[PatchFile], upstream_links: frozenset[str] = frozenset()) -> None:
    """Refuse (exit 4) a series whose patches write outside the source tree, before git sees them:
    absolute paths, ``..``, ``.git/`` (hooks would run on the next ``git am``), symlinks that lead
    out of the tree, and writes through a symlink (one the series or upstream created)."""
    links = set(upstream_links)
    for p in patches:
        text = p.path.read_text(encoding="utf-8", errors="surrogateescape")
        for touch in _touched(text):
            problem = _path_problem(touch.path)
            if problem is None and touch.target is not None and _link_escapes(touch.path, touch.target):
                problem = f"a symlink to {touch.target!r}, outside the tree"
            if problem is None:
                parts = re.split(r"[/\\]", touch.path)
                through = next(("/".join(parts[:n]) for n in range(1, len(parts)) if "/".join(parts[:n]) in links), None)
                if through:
                    problem = f"a path through the symlink {through}"
            if problem:
                raise PatchError(
                    f"patch {p.name} writes outside the source tree: {touch.path!r} ({problem}).",
                    hint=(f"A patch may only change files inside llama.cpp's tree. Remove {p.name} from "
                          f"{p.path.parent / 'series'} or regenerate it from real commits (`locara-build patches refresh`); "
                          "nothing was applied."),
                    details={"patch": p.name, "path": touch.path, "reason": problem},
                )
            if touch.mode == _SYMLINK_MODE:
                links.add(touch.path)


@dataclass(frozen=True)
class PatchMeta:
    author: str
    email: str
    date: str
    subject: str
    message: str  # full commit message as git am would record it

    @property
    def ident(self) -> tuple[str, str, str]:
        return (self.author, self.email, self.date)


def patch_meta(scratch: Scratch, patch: Path) -> PatchMeta:
    """Author, date and message of a format-patch file, parsed by ``git mailinfo`` like ``git am`` does."""
    msg = scratch.temp_path("mailinfo-msg")
    body = scratch.temp_path("mailinfo-patch")
    res = scratch.git("mailinfo", str(msg), str(body), input=patch.read_text(encoding="utf-8", errors="surrogateescape"))
    info: dict[str, str] = {}
    for line in res.stdout.splitlines():
        key, _, value = line.partition(": ")
        info[key] = value
    subject = info.get("Subject", "").strip()
    text = msg.read_text(encoding="utf-8", errors="surrogateescape").strip("\n")
    message = subject + "\n" + (f"\n{text}\n" if text else "")
    return PatchMeta(info.get("Author", ""), info.get("Email", ""), info.get("Date", ""), subject, message)


# --- applying in a scratch index ----------------------------------------------------------


@dataclass(frozen=True)
class FileConflict:
    file: str
    hunks: list[Hunk] = field(default_factory=list)
    reason: str = ""

    def __str__(self) -> str:
        if self.hunks:
            return "; ".join(str(h) for h in self.hunks)
        return f"{self.file}: {self.reason}" if self.reason else self.file

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "reason": self.reason, "hunks": [h.to_dict() for h in self.hunks]}


@dataclass(frozen=True)
class Outcome:
    status: str  # clean | 3-way | upstream (already applied there) | FAILED
    tree: str | None  # the tree with the patch applied (None when FAILED)
    conflict_files: list[str] = field(default_factory=list)
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.status != "FAILED"


def _merge_tree(scratch: Scratch, ours: str, theirs: str) -> tuple[str | None, list[str], str]:
    """``git merge-tree --write-tree``: (result tree or None, conflicted paths, messages)."""
    res = scratch.git("merge-tree", "--write-tree", "--name-only", ours, theirs, check=False)
    if res.returncode not in (0, 1):
        version = git("--version", check=False).stdout.strip()
        raise PatchError(
            f"git merge-tree --write-tree failed ({version}): {res.stderr.strip()}",
            hint="Three-way checks need git >= 2.38 (`git merge-tree --write-tree`): install a newer git.",
        )
    lines = res.stdout.split("\n")
    tree = lines[0].strip()
    if res.returncode == 0:
        return tree, [], ""
    files: list[str] = []
    rest = lines[1:]
    while rest and rest[0].strip():
        if rest[0].strip() not in files:
            files.append(rest[0].strip())
        rest = rest[1:]
    return None, files, "\n".join(r for r in rest if r.strip())


def apply_patch(scratch: Scratch, tree: str, patch: Path) -> Outcome:
    """Apply ``patch`` to ``tree`` the way ``git am -3`` would, without a working tree.

    First a straight ``git apply`` (``clean``); else the three-way fallback ``git am`` uses: the
    pre-image built from the patch's blob ids (``--build-fake-ancestor``), the patch applied to it,
    and a merge of that with ``tree`` (``3-way``, renames followed); else ``FAILED``.
    """
    check_patch_paths([PatchFile(patch.name, patch, "", "")])
    idx = scratch.temp_path("index")
    scratch.read_tree(tree, idx)
    straight = scratch.git("apply", "--cached", str(patch), index=idx, check=False)
    if straight.ok:
        return Outcome("clean", scratch.write_tree(idx))
    fake = scratch.temp_path("fake-ancestor")
    built = scratch.git("apply", f"--build-fake-ancestor={fake}", str(patch), index=fake, check=False)
    # (git writes full blob ids into the fake index unchecked: write-tree is what proves they exist)
    base_res = scratch.git("write-tree", index=fake, check=False) if built.ok and fake.exists() else None
    if base_res is None or not base_res.ok:
        return Outcome(
            "FAILED", None, [], (straight.stderr.strip() + "\nno 3-way merge possible: the patch's pre-image blobs "
                                 "(its `index` lines) are not in this repository").strip()
        )
    base = base_res.stdout.strip()
    theirs_applied = scratch.git("apply", "--cached", str(patch), index=fake, check=False)
    if not theirs_applied.ok:
        return Outcome("FAILED", None, [], theirs_applied.stderr.strip())
    theirs = scratch.write_tree(fake)
    c_base = scratch.commit_tree(base)
    c_ours = scratch.commit_tree(tree, [c_base])
    c_theirs = scratch.commit_tree(theirs, [c_base])
    merged, files, messages = _merge_tree(scratch, c_ours, c_theirs)
    if merged is None:
        return Outcome("FAILED", None, files, messages or straight.stderr.strip())
    if merged == tree:  # the merge changes nothing: upstream already has this change
        return Outcome("upstream", merged, [], "already applied upstream: drop this patch")
    return Outcome("3-way", merged)


def apply_series(scratch: Scratch, tree: str, patches: list[PatchFile]) -> tuple[str, list[Outcome]]:
    """Apply ``patches`` in order, skipping those that fail; return the final tree and every outcome."""
    outcomes = []
    for p in patches:
        out = apply_patch(scratch, tree, p.path)
        outcomes.append(out)
        if out.tree:
            tree = out.tree
    return tree, outcomes


def diagnose(scratch: Scratch, tree: str, patch: Path, conflict_files: Sequence[str] = ()) -> list[FileConflict]:
    """Which files and hunks of ``patch`` do not apply to ``tree``: each hunk checked on its own."""
    text = patch.read_text(encoding="utf-8", errors="surrogateescape")
    existing = set(scratch.git("ls-tree", "-r", "--name-only", tree).stdout.splitlines())
    result: list[FileConflict] = []
    for sec in _sections(text):
        header_text = "".join(sec.header)
        creates = "\nnew file mode" in "\n" + header_text or "--- /dev/null" in header_text
        old_path = re.match(r"^diff --git a/(.*) b/", sec.header[0])
        old = old_path[1] if old_path else sec.path
        if not creates and old not in existing:
            result.append(FileConflict(sec.path, [], "does not exist upstream (deleted or renamed)"))
            continue
        if creates and sec.path in existing:
            result.append(FileConflict(sec.path, [], "already exists upstream"))
            continue
        failed: list[Hunk] = []
        for n, hunk in enumerate(sec.hunks, start=1):
            mini = scratch.temp_path("hunk")
            mini.write_text(header_text + "".join(hunk), encoding="utf-8", errors="surrogateescape")
            idx = scratch.temp_path("index")
            scratch.read_tree(tree, idx)
            res = scratch.git("apply", "--cached", "--check", "--recount", str(mini), index=idx, check=False)
            if not res.ok:
                m = _HUNK_RE.match(hunk[0])
                failed.append(Hunk(sec.path, n, m[0] if m else hunk[0].strip(), "context does not match upstream"))
        if failed:
            result.append(FileConflict(sec.path, failed))
        elif sec.path in conflict_files:
            result.append(FileConflict(sec.path, [], "conflicts in the 3-way merge"))
    if not result:
        for f in conflict_files:
            result.append(FileConflict(f, [], "conflicts in the 3-way merge"))
    return result


def format_commit(scratch: Scratch, commit: str, number: int) -> tuple[str, bytes]:
    """``git format-patch`` of one commit (as :func:`refresh` writes it): (file name, bytes)."""
    out = scratch.temp_path("format-patch")
    out.mkdir()
    scratch.git("format-patch", *FORMAT_PATCH_ARGS, f"--start-number={number}", "-o", str(out), "-1", commit)
    files = sorted(out.iterdir())
    return files[0].name, files[0].read_bytes()


# --- check --------------------------------------------------------------------------------


@dataclass
class PatchResult:
    patch: PatchFile
    status: str  # clean | 3-way | FAILED
    files: list[str]
    conflicts: list[FileConflict] = field(default_factory=list)
    message: str = ""
    bisect: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "patch": self.patch.name,
            "subject": self.patch.subject,
            "status": self.status,
            "files": self.files,
            "conflicts": [c.to_dict() for c in self.conflicts],
            "message": self.message,
            "bisect": self.bisect,
        }


@dataclass
class CheckReport:
    source: str
    ref: str
    commit: str
    tag: str
    results: list[PatchResult]
    seconds: float = 0.0
    bisect_note: str = ""

    @property
    def ok(self) -> bool:
        return all(r.status != "FAILED" for r in self.results)

    @property
    def failed(self) -> list[PatchResult]:
        return [r for r in self.results if r.status == "FAILED"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "source": self.source,
            "ref": self.ref,
            "commit": self.commit,
            "tag": self.tag,
            "patches": [r.to_dict() for r in self.results],
            "counts": {s: sum(1 for r in self.results if r.status == s) for s in ("clean", "3-way", "upstream", "FAILED")},
            "bisect_note": self.bisect_note,
            "seconds": round(self.seconds, 3),
        }


def check_series(
    project: Project,
    work: WorkDir,
    *,
    ref: str | None = None,
    bisector: Callable[..., Any] | None = None,
    lock: Lock | None = None,
) -> CheckReport:
    """Try the series against ``ref`` (default: the locked commit) in a scratch index; touch nothing.

    With a ``bisector`` (:func:`locara_build.upstream.bisect.find_breaking_commits`, passed in by the caller
    so that bisect, which builds on this module, is not imported by it), the upstream commit that
    broke each FAILED patch is found when the locked commit is an ancestor of the checked one.
    """
    from locara_build.upstream.source import ensure_commit, parse_source, resolve_ref

    start = time.monotonic()
    lock = lock or read_lock(project.lock_path)
    patches = read_series(project)
    if ref is None:
        mirror = ensure_commit(work, lock)
        commit, tag, label = lock.commit, lock.tag, "locked"
    else:
        res = resolve_ref(work, parse_source(lock.source), ref, lock.channel, any_commit=True)
        mirror, commit, tag, label = res.mirror.path, res.commit, res.tag, ref
    results: list[PatchResult] = []
    check_patch_paths(patches, upstream_symlinks(mirror, commit))
    with Scratch(mirror, error=PatchError) as scratch:
        tree = scratch.tree_of(commit)
        for p in patches:
            text = p.path.read_text(encoding="utf-8", errors="surrogateescape")
            out = apply_patch(scratch, tree, p.path)
            pr = PatchResult(p, out.status, patch_files(text), message=out.message)
            if out.ok:
                assert out.tree is not None
                tree = out.tree
            else:
                pr.conflicts = diagnose(scratch, tree, p.path, out.conflict_files)
            results.append(pr)
    report = CheckReport(lock.source, label, commit, tag, results)
    if bisector is not None and report.failed and commit != lock.commit:
        if is_ancestor(mirror, lock.commit, commit) and not (shallow_commits(mirror) & {commit}):
            bis = bisector(
                project, work, from_ref=lock.commit, to_ref=commit, only=[r.patch.name for r in report.failed],
                known_bad=[r.patch.name for r in report.failed], lock=lock,
            )
            for b in bis.breakages:
                for r in report.failed:
                    if r.patch.name == b.patch.name:
                        r.bisect = b.to_dict()
            report.bisect_note = bis.note
        else:
            report.bisect_note = (
                f"not bisected: the locked commit {lock.commit[:12]} is not an ancestor of {commit[:12]} in the mirror"
                " (shallow pypi: history, or another branch)"
            )
    report.seconds = time.monotonic() - start
    return report


# --- the source tree ----------------------------------------------------------------------


def _tree_git(tree: Path, *args: str, check: bool = True) -> Result:
    """git in the source tree, as locara-build's committer (``git am`` and its --abort need an identity)."""
    env = {"GIT_COMMITTER_NAME": IDENTITY[0], "GIT_COMMITTER_EMAIL": IDENTITY[1]}
    return git(*args, cwd=tree, check=check, error=PatchError, env=env)


def _head(tree: Path) -> str | None:
    res = _tree_git(tree, "rev-parse", "--verify", "--quiet", "HEAD^{commit}", check=False)
    return res.stdout.strip() or None


def _symbolic_head(tree: Path) -> str | None:
    res = _tree_git(tree, "symbolic-ref", "--quiet", "--short", "HEAD", check=False)
    return res.stdout.strip() or None


def _in_progress(tree: Path) -> str | None:
    gd = tree / ".git"
    if (gd / "rebase-apply").exists():
        return "a `git am` (or `git rebase`)"
    if (gd / "rebase-merge").exists():
        return "a `git rebase`"
    if (gd / "MERGE_HEAD").exists():
        return "a `git merge`"
    if (gd / "CHERRY_PICK_HEAD").exists():
        return "a `git cherry-pick`"
    return None


def _dirty(tree: Path) -> list[str]:
    out = _tree_git(tree, "status", "--porcelain", "--untracked-files=no").stdout
    return [line[3:] for line in out.splitlines() if line.strip()]


def _ensure_repo(tree: Path, mirror: Path) -> bool:
    """Make ``tree`` a git repository borrowing ``mirror``'s objects. True when created now."""
    created = False
    if not (tree / ".git").is_dir():
        if tree.exists() and any(tree.iterdir()):
            raise SourceError(
                f"{tree} exists but is not a git checkout made by locara-build.",
                hint="Move it away (or delete it), then run `locara-build patches apply` again.",
            )
        tree.mkdir(parents=True, exist_ok=True)
        git("init", "--quiet", str(tree))
        created = True
    alternates = tree / ".git" / "objects" / "info" / "alternates"
    objects = str((mirror / "objects").resolve())
    have = alternates.read_text().splitlines() if alternates.exists() else []
    if objects not in have:
        alternates.parent.mkdir(parents=True, exist_ok=True)
        alternates.write_text("\n".join([objects, *have]) + "\n")
    shallow = shallow_commits(mirror)
    if shallow:
        mine = shallow_commits(tree / ".git")
        if not shallow <= mine:
            (tree / ".git" / "shallow").write_text("".join(f"{s}\n" for s in sorted(shallow | mine)))
    url = git("config", "--get", "remote.upstream.url", cwd=tree, check=False).stdout.strip()
    if url != str(mirror):  # `git fetch upstream` in the tree reaches the lock's mirror
        git("remote", "remove", "upstream", cwd=tree, check=False)
        git("remote", "add", "upstream", str(mirror), cwd=tree)
    return created


@contextlib.contextmanager
def _tree_lock(work: WorkDir) -> Iterator[None]:
    with file_lock(work.source_tree.parent / f".{work.source_tree.name}.lock"):
        yield


@dataclass
class ApplyResult:
    tree: Path
    commit: str
    head: str
    patches: list[str]
    noop: bool
    created: bool
    changed_files: int
    seconds: float
    already_upstream: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": True,
            "already_upstream": self.already_upstream,
            "tree": str(self.tree),
            "commit": self.commit,
            "head": self.head,
            "patches": self.patches,
            "noop": self.noop,
            "created": self.created,
            "changed_files": self.changed_files,
            "seconds": round(self.seconds, 3),
        }


def _resolve_commands(tree: Path, commit: str, patches: list[PatchFile], failing: PatchFile) -> list[str]:
    paths = " ".join(str(p.path) for p in patches)
    return [
        f"cd {tree}",
        f"git checkout -B {BRANCH} {commit}",
        f"git am -3 {paths}",
        f"# git stops at {failing.name}: edit the conflicted files, then",
        "git add <files> && git am --continue",
        "locara-build patches refresh",
        "locara-build patches apply",
    ]


def prepare_tree(project: Project, work: WorkDir, *, lock: Lock | None = None) -> ApplyResult:
    """Bring ``work.source_tree`` to the locked commit + the series (idempotent, all-or-nothing)."""
    from locara_build.upstream.source import ensure_commit

    start = time.monotonic()
    lock = lock or read_lock(project.lock_path)
    patches = read_series(project)
    phash = series_hash(patches)
    tree = work.source_tree
    with _tree_lock(work):
        stamp = read_stamp(tree)
        if (
            stamp is not None
            and stamp.commit == lock.commit
            and stamp.patch_set_hash == phash
            and _in_progress(tree) is None
            and _head(tree) == stamp.head
            and not _dirty(tree)
        ):
            return ApplyResult(tree, lock.commit, stamp.head, [p.name for p in patches], True, False, 0, time.monotonic() - start)
        mirror = ensure_commit(work, lock)
        check_patch_paths(patches, upstream_symlinks(mirror, lock.commit))  # before git sees any of them
        created = _ensure_repo(tree, mirror)
        busy = _in_progress(tree)
        if busy:
            raise PatchError(
                f"{busy} is in progress in the source tree {tree}.",
                hint=(f"Finish it (`cd {tree} && git am --continue`, then `locara-build patches refresh`) or drop it "
                      f"(`git -C {tree} am --abort`), then run `locara-build patches apply` again."),
            )
        prev_head = _head(tree)
        dirty = _dirty(tree) if prev_head else []
        if dirty:
            raise PatchError(
                f"the source tree {tree} has uncommitted changes in {len(dirty)} file(s) ({', '.join(dirty[:5])}).",
                hint=(f"Commit them on top of the patches and run `locara-build patches refresh` to keep them, or discard "
                      f"them with `git -C {tree} checkout -- .`; then run `locara-build patches apply` again."),
            )
        prev_branch = _symbolic_head(tree)
        upstream: list[str] = []
        clear_stamp(tree)
        try:
            with log.step(f"patch llama.cpp {lock.tag or lock.short} ({len(patches)} patch(es))"):
                _tree_git(tree, "checkout", "--quiet", "-B", BRANCH, lock.commit)
                for i, p in enumerate(patches):
                    before = _head(tree)
                    res = _tree_git(tree, "am", "-3", "--quiet", "--committer-date-is-author-date", str(p.path),
                                    check=False)
                    if not res.ok:
                        _fail_apply(tree, mirror, lock, patches, i, res.stdout + res.stderr, prev_head, prev_branch, stamp)
                    if _head(tree) == before:  # git am: "No changes -- Patch already applied."
                        upstream.append(p.name)
                        log.warn(f"{p.name} is already applied upstream (it changes nothing): drop it from the series "
                                 "(`locara-build patches refresh` now leaves it out).")
        except BaseException:
            if stamp is not None and read_stamp(tree) is None and _head(tree) == stamp.head:
                write_stamp(tree, stamp)
            raise
        head = _head(tree)
        assert head is not None
        changed = 0
        if prev_head and prev_head != head:
            changed = len(_tree_git(tree, "diff", "--name-only", prev_head, head).stdout.split())
        write_stamp(tree, Stamp(commit=lock.commit, patch_set_hash=phash, head=head))
    return ApplyResult(tree, lock.commit, head, [p.name for p in patches], False, created, changed,
                       time.monotonic() - start, upstream)


_GIT_SAID = re.compile(r"^(CONFLICT \(|error: (patch failed|.*: (does not exist|patch does not apply|already exists))|"
                       r"error: sha1 information is lacking|error: could not build fake ancestor)")


def _fail_apply(
    tree: Path,
    mirror: Path,
    lock: Lock,
    patches: list[PatchFile],
    index: int,
    output: str,
    prev_head: str | None,
    prev_branch: str | None,
    stamp: Stamp | None,
) -> None:
    failing = patches[index]
    base = _head(tree)
    conflicts: list[FileConflict] = []
    with contextlib.suppress(Exception), Scratch(tree / ".git", error=PatchError) as scratch:
        conflicts = diagnose(scratch, scratch.tree_of(base or lock.commit), failing.path,
                             re.findall(r"Merge conflict in (\S+)", output))
    _tree_git(tree, "am", "--abort", check=False)
    if prev_head:
        if prev_branch:
            _tree_git(tree, "checkout", "--quiet", "-B", prev_branch, prev_head)
        else:
            _tree_git(tree, "checkout", "--quiet", "--detach", prev_head)
        if stamp is not None:
            write_stamp(tree, stamp)
        restored = f"The tree {tree} is back at {prev_head[:12]} as before" + (" (stamp kept)." if stamp else ".")
    else:
        restored = f"The new tree {tree} was left at upstream {lock.short} without a stamp."
    said = [line.strip() for line in output.splitlines() if _GIT_SAID.match(line.strip())]
    where = "; ".join(str(c) for c in conflicts) or "; ".join(said) or output.strip()[-500:]
    commands = _resolve_commands(tree, lock.commit, patches, failing)
    git_said = f" (git: {'; '.join(said[:6])})" if said and conflicts else ""
    raise PatchError(
        f"patch {failing.name} does not apply to upstream {lock.tag or lock.short} ({lock.commit[:12]}): {where}{git_said}. "
        f"{restored}",
        hint=(
            "resolve it in the tree, then refresh the series:\n  " + "\n  ".join(commands)
            + "\n(`locara-build patches bisect` names the upstream commit that broke it.)"
        ),
        details={
            "patch": failing.name,
            "commit": lock.commit,
            "conflicts": [c.to_dict() for c in conflicts],
            "commands": commands,
            "restored_head": prev_head,
        },
    )


# --- refresh ------------------------------------------------------------------------------


@dataclass
class RefreshResult:
    series: list[str]
    written: list[str]
    removed: list[str]
    unchanged: list[str]
    series_rewritten: bool

    @property
    def changed(self) -> bool:
        return bool(self.written or self.removed or self.series_rewritten)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": True,
            "changed": self.changed,
            "series": self.series,
            "written": self.written,
            "removed": self.removed,
            "unchanged": self.unchanged,
            "series_rewritten": self.series_rewritten,
        }


def _series_text(old: str, names: list[str]) -> str:
    header: list[str] = []
    for line in old.splitlines():
        if line.startswith("#") or not line.strip():
            header.append(line)
        else:
            break
    while header and not header[-1].strip():
        header.pop()
    return "\n".join([*header, *names]) + "\n"


def refresh(project: Project, work: WorkDir, *, lock: Lock | None = None) -> RefreshResult:
    """Regenerate ``patches/`` from the commits on top of the locked commit in the source tree."""
    lock = lock or read_lock(project.lock_path)
    tree = work.source_tree
    if not (tree / ".git").is_dir():
        raise PatchError(f"no source tree at {tree} to refresh from.", hint="Run `locara-build patches apply` first.")
    with _tree_lock(work):
        busy = _in_progress(tree)
        if busy:
            raise PatchError(
                f"{busy} is still in progress in {tree}: refreshing now would lose the patch being resolved.",
                hint=f"Finish it first: `cd {tree} && git add <files> && git am --continue` (or `git am --abort`).",
            )
        dirty = _dirty(tree)
        if dirty:
            raise PatchError(
                f"the source tree {tree} has uncommitted changes ({', '.join(dirty[:5])}): refresh writes patches from commits only.",
                hint=f"Commit them (`git -C {tree} commit -a` or `git commit --amend`), then run `locara-build patches refresh`.",
            )
        head = _head(tree)
        if head is None or not is_ancestor(tree / ".git", lock.commit, head):
            raise PatchError(
                f"HEAD of {tree} ({(head or 'none')[:12]}) is not on top of the locked upstream commit {lock.commit[:12]}.",
                hint=(f"Rebase your patch commits onto it (`git -C {tree} rebase {lock.commit}`) or run "
                      "`locara-build patches apply` to start from the series."),
            )
        merges = _tree_git(tree, "rev-list", "--merges", f"{lock.commit}..{head}").stdout.split()
        if merges:
            raise PatchError(
                f"the patched branch in {tree} contains merge commits ({merges[0][:12]}): a patch series must be linear.",
                hint=f"Linearise it: `git -C {tree} rebase {lock.commit}`, then refresh again.",
            )
        out = Path(tempfile.mkdtemp(prefix="locara-refresh-"))
        try:
            _tree_git(tree, "format-patch", *FORMAT_PATCH_ARGS, "-o", str(out), f"{lock.commit}..{head}")
            generated = sorted(out.iterdir())
            pdir = project.patches_dir
            pdir.mkdir(parents=True, exist_ok=True)
            old_names = [p.name for p in read_series_loose(project)]
            written, unchanged = [], []
            for f in generated:
                dest = pdir / f.name
                data = f.read_bytes()
                if dest.exists() and dest.read_bytes() == data:
                    unchanged.append(f.name)
                else:
                    atomic_write_bytes(dest, data)
                    written.append(f.name)
        finally:
            shutil.rmtree(out, ignore_errors=True)
        names = [f.name for f in generated]
        series_path = pdir / "series"
        old_text = series_path.read_text(encoding="utf-8") if series_path.exists() else ""
        rewritten = False
        if old_names != names or not series_path.exists():
            atomic_write_bytes(series_path, _series_text(old_text, names).encode())
            rewritten = True
        removed = []
        for name in old_names:
            if name not in names and (pdir / name).is_file():
                (pdir / name).unlink()
                removed.append(name)
    return RefreshResult(names, written, removed, unchanged, rewritten)


@dataclass(frozen=True)
class _Listed:
    name: str


def read_series_loose(project: Project) -> list[_Listed]:
    """Names listed in ``patches/series`` (files may be missing: refresh is how one repairs that)."""
    path = project.patches_dir / "series"
    if not path.exists():
        return []
    names = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if line and "/" not in line:
            names.append(_Listed(line))
    return names
