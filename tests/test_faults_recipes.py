"""Fault suite: malformed recipes and a corrupted lock, through the real CLI.

Every malformed recipe makes `locara-build plan` exit 2 with `error: <file>:<line>: ...` naming the
file that holds the mistake (also when another recipe inherits it through `extends`), a `next:`
line saying what to do, no traceback, and nothing written (lock bytes and work dir unchanged).
A corrupted lock is exit 2 with the way to restore it; a plain `sync` refuses to guess another
upstream, `sync --upstream ...` re-creates it.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.faults import REPO, error_of, hint_of, make_upstream, run_cli, snapshot

from locara_build.upstream.lock import Lock, read_lock, write_lock

BASE = """\
description = "base recipe"
os = "linux"
arch = "x86_64"
backend = "cpu"
flavour = "dev"

[cmake]
GGML_NATIVE = false

[ship]
binaries = ["llama-server"]

[smoke]
timeout = 5
"""
CHILD = 'extends = "base"\ndescription = "child recipe"\n'
LOCK = Lock(source="https://example.invalid/llama.cpp", ref="b1", channel="build", commit="c0ffee" + "0" * 34,
            tag="b1", commit_date="2026-10-01T00:00:00Z", synced_at="2026-10-01T00:00:00Z")


def _project(root: Path) -> Path:
    p = root / "project"
    (p / "recipes" / "toolchains").mkdir(parents=True)
    (p / "patches").mkdir()
    shutil.copy2(REPO / "recipes" / "defaults.toml", p / "recipes" / "defaults.toml")
    (p / "recipes" / "base.toml").write_text(BASE)
    (p / "recipes" / "child.toml").write_text(CHILD)
    write_lock(p / "recipes" / "upstream.lock", LOCK)
    return p


def _edit(name: str, old: str, new: str) -> Callable[[Path], None]:
    def apply(p: Path) -> None:
        path = p / "recipes" / name
        text = path.read_text()
        assert old in text, (old, text)
        path.write_text(text.replace(old, new, 1))

    return apply


def _write(name: str, data: str | bytes) -> Callable[[Path], None]:
    def apply(p: Path) -> None:
        path = p / "recipes" / name
        path.write_bytes(data if isinstance(data, bytes) else data.encode())

    return apply


def _append(name: str, text: str | bytes) -> Callable[[Path], None]:
    def apply(p: Path) -> None:
        with open(p / "recipes" / name, "ab") as fh:
            fh.write(text if isinstance(text, bytes) else text.encode())

    return apply


@dataclass(frozen=True)
class Case:
    mutate: Callable[[Path], None]
    file: str  # the file the error must name
    line: int | None  # the line it must name (None: the mistake is a missing key)
    says: str  # a phrase of the message
    next_says: str  # a phrase of the `next:` line


CASES: dict[str, Case] = {
    "toml-syntax": Case(_append("base.toml", "[cmake\n"), "base.toml", 15, "invalid TOML", "Fix the syntax"),
    "duplicate-key": Case(_edit("base.toml", 'os = "linux"\n', 'os = "linux"\nos = "linux"\n'), "base.toml", 3,
                          "invalid TOML", "Fix the syntax"),
    "unknown-key": Case(_edit("base.toml", "[ship]\n", "[ship]\nbinaires = []\n"), "base.toml", 11,
                        "unknown key `ship.binaires`. Did you mean `ship.binaries`?", "Valid keys in [ship]"),
    "wrong-type": Case(_edit("base.toml", 'arch = "x86_64"', "arch = 64"), "base.toml", 3,
                       "`arch` must be a string, not an integer", "target architecture"),
    "wrong-type-nested": Case(_edit("base.toml", "timeout = 5", 'timeout = "soon"'), "base.toml", 14,
                              "`smoke.timeout` must be a number", "seconds to wait"),
    # child.toml inherits the bad value: the error names base.toml, where it is written
    "unknown-backend": Case(_edit("base.toml", 'backend = "cpu"', 'backend = "cpuu"'), "base.toml", 4,
                            "unknown backend `cpuu`. Did you mean `cpu`?", "must be one of"),
    "backend-os-mismatch": Case(_edit("base.toml", 'backend = "cpu"', 'backend = "metal"'), "base.toml", 4,
                                "backend `metal` cannot target linux", "supports: macos"),
    "missing-field": Case(_edit("base.toml", 'arch = "x86_64"\n', ""), "base.toml", None,
                          "missing required key `arch`", "Add `arch = ...`"),
    "bad-template": Case(_edit("base.toml", '"base recipe"', '"base {{ os "'), "base.toml", 1,
                         "bad template in `description`", "Jinja syntax"),
    "undefined-template-variable": Case(_edit("base.toml", '"base recipe"', '"base {{ nope }}"'), "base.toml", 1,
                                        "undefined variable", "Variables available"),
    "duplicate-names": Case(_write("zz-other.toml", 'name = "base"\n' + BASE), "zz-other.toml", 1,
                            "duplicate recipe name `base`", "unique name"),
    "empty-file": Case(_write("zz-empty.toml", ""), "zz-empty.toml", None, "recipe file is empty", "at least os, arch"),
    "extends-cycle": Case(_edit("base.toml", 'description = "base recipe"\n', 'extends = "child"\n'), "child.toml", 1,
                          "cycle", "Break the cycle"),
    "extends-unknown": Case(_edit("child.toml", 'extends = "base"', 'extends = "bsae"'), "child.toml", 1,
                            "unknown recipe `bsae`. Did you mean `base`?", "existing recipe"),
    "bad-regex": Case(_edit("base.toml", "timeout = 5\n", 'timeout = 5\nexpect = ["(unclosed"]\n'), "base.toml", 15,
                      "invalid regex", "Fix the pattern"),
    "missing-toolchain-file": Case(_edit("base.toml", 'os = "linux"\n', 'os = "linux"\ntoolchain = "recipes/toolchains/nope.cmake"\n'),
                                   "base.toml", 3, "toolchain file `recipes/toolchains/nope.cmake` does not exist",
                                   "relative to the project root"),
    "empty-targets": Case(_edit("base.toml", 'os = "linux"\n', 'os = "linux"\ntargets = []\n'), "base.toml", 3,
                          "`targets` is empty", "llama-server"),
    "not-utf8": Case(_append("base.toml", b'\n# caf\xe9 latin-1\n'), "base.toml", 16, "not UTF-8", "UTF-8"),
    "table-as-array": Case(_write("zz-arr.toml", '[[ship]]\nbinaries = ["x"]\n'), "zz-arr.toml", 1,
                           "`ship` must be a table", "[ship]"),
    "defaults-unknown-key": Case(_edit("defaults.toml", "[smoke]\n", "[smoke]\nretries = 3\n"), "defaults.toml", None,
                                 "unknown key `smoke.retries`", "Valid keys in [smoke]"),
}


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[object, Path, bytes]]:
    """Every case in its own project, the CLI runs in parallel (they are independent processes)."""
    root = tmp_path_factory.mktemp("recipes")

    def one(name: str) -> tuple[object, Path, bytes]:
        project = _project(root / name)
        CASES[name].mutate(project)
        work = root / name / "work"
        work.mkdir()
        lock = (project / "recipes" / "upstream.lock").read_bytes()
        res = run_cli("--project", str(project), "--work-dir", str(work), "plan", timeout=120)
        return res, project, lock

    with ThreadPoolExecutor(4) as pool:
        return dict(zip(CASES, pool.map(one, CASES), strict=True))


@pytest.mark.parametrize("case", list(CASES))
def test_malformed_recipe_exits_2_naming_file_and_line(case: str, outcomes) -> None:
    res, project, lock_before = outcomes[case]
    c = CASES[case]
    assert res.returncode == 2, f"{case}: exit {res.returncode}\n{res.stderr}"
    assert "Traceback" not in res.stderr and "unexpected error" not in res.stderr
    err = error_of(res.stderr)
    where = str(project / "recipes" / c.file) + (f":{c.line}:" if c.line else "")
    assert err.startswith(where), f"{case}: wanted {where!r} at the start of:\n{err}"
    assert c.says in err, f"{case}: {c.says!r} not in:\n{err}"
    assert c.next_says in hint_of(res.stderr)
    assert res.stdout == ""
    # nothing written: the lock byte for byte, an empty work dir
    assert (project / "recipes" / "upstream.lock").read_bytes() == lock_before
    assert snapshot(project / ".." / "work") == {}


def test_at_least_ten_kinds() -> None:
    assert len(CASES) >= 10


def test_corrupted_lock_exits_2_with_the_way_back_and_sync_does_not_guess(tmp_path: Path) -> None:
    up = make_upstream(tmp_path / "up")
    project = _project(tmp_path)
    (project / "recipes" / "child.toml").unlink()
    work = tmp_path / "work"
    lock = project / "recipes" / "upstream.lock"
    base = ("--project", str(project), "--work-dir", str(work))
    res = run_cli(*base, "sync", "--upstream", str(up.path))
    assert res.returncode == 0, res.stderr
    good = lock.read_bytes()

    for garbage in (good[: len(good) // 2] + b"\x00\xff\xfe", b"source = = \n", good.replace(b"commit = ", b"comit = ")):
        lock.write_bytes(garbage)
        res = run_cli(*base, "plan")
        assert res.returncode == 2, res.stderr
        assert str(lock) in error_of(res.stderr) and "Traceback" not in res.stderr
        hint = hint_of(res.stderr)
        assert "git checkout -- upstream.lock" in hint and "locara-build sync --upstream" in hint
        # a plain sync does not know the upstream any more: it refuses rather than guess the default
        res = run_cli(*base, "sync")
        assert res.returncode == 2, res.stderr
        assert "does not know which upstream" in error_of(res.stderr)
        assert "sync --upstream" in hint_of(res.stderr)
        assert lock.read_bytes() == garbage  # the tool never rewrote it

    # restoring it (what the hint says) brings everything back
    lock.write_bytes(good)
    assert run_cli(*base, "plan").returncode == 0
    # or sync with --upstream re-creates it from scratch
    lock.write_bytes(b"\xff garbage")
    res = run_cli(*base, "sync", "--upstream", str(up.path))
    assert res.returncode == 0, res.stderr
    assert "corrupted" in res.stderr
    assert read_lock(lock).commit == up.rev() and read_lock(lock).source == str(up.path)
