"""bench/run.py's helpers compute what docs/performance.md says they do (no timing assertions:
the benchmarks themselves are run by hand, never as a pass/fail test)."""

from __future__ import annotations

import importlib.util
import io
import sys
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_run", REPO / "bench" / "run.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_run"] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


def test_summary_medians_and_ratios(bench) -> None:
    s = bench.summarize([2.0, 4.0, 3.0, 100.0, 3.5], [1.0, 2.0, 2.0, 2.0, 1.0])
    assert s["a_median"] == 3.5 and s["b_median"] == 2.0
    assert s["ratio"] == pytest.approx(1.75)
    assert s["pair_ratio_median"] == pytest.approx(2.0)  # 2, 2, 1.5, 50, 3.5
    assert s["runs"] == 5 and s["a_spread"] == [2.0, 100.0]
    assert bench.goal_met(1.04, "<=", 1.05) is True
    assert bench.goal_met(0.94, ">=", 0.95) is False
    assert bench.goal_met(None, "<=", 1.0) is None


def test_interleaving_alternates_the_order(bench) -> None:
    seen: list[str] = []
    a = bench.Side("A", "a", lambda i: seen.append("A") or 1.0)
    b = bench.Side("B", "b", lambda i: seen.append("B") or 2.0)
    bench.interleaved(a, b, 4, quiet=True)
    assert seen == ["A", "B", "B", "A", "A", "B", "B", "A"]
    assert a.samples == [1.0] * 4 and b.samples == [2.0] * 4 and len(a.loads) == 4


def test_ccache_stats_log_counts(bench, tmp_path: Path) -> None:
    log = tmp_path / "stats"
    log.write_text("direct_cache_hit\npreprocessed_cache_hit\ncache_miss\ndirect_cache_hit\ncalled_for_link\n")
    assert bench.stats_log_counts(log) == {"hits": 3, "misses": 1, "hit_rate": 0.75}
    assert bench.stats_log_counts(tmp_path / "absent") == {"hits": 0, "misses": 0, "hit_rate": None}


def test_preprocess_argv_drops_outputs_and_depfiles(bench) -> None:
    argv = ["/usr/bin/c++", "-DX=1", "-I/src", "-O3", "-MD", "-MT", "a.o", "-MF", "a.o.d", "-o", "a.o", "-c", "/src/a.cpp"]
    assert bench.preprocess_argv(argv) == ["/usr/bin/c++", "-DX=1", "-I/src", "-O3", "/src/a.cpp", "-E"]


def test_compare_preprocessed_counts_the_floor(bench) -> None:
    old = {"a.o": "1", "b.o": "2", "gone.o": "3"}
    new = {"a.o": "1", "b.o": "changed", "new.o": "4", "c.o": "5"}
    c = bench.compare_preprocessed(old, {**new, "c.o": "5"})
    assert c["tus"] == 4 and c["changed"] == 1 and c["added"] == 2 and c["removed"] == 1
    assert c["must_recompile_share"] == 0.75
    assert c["changed_list"] == ["b.o"]


def test_unpacked_size_counts_regular_files(bench, tmp_path: Path) -> None:
    archive = tmp_path / "x.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        for name, size in (("top/bin/a", 10), ("top/bin/b", 5)):
            info = tarfile.TarInfo(name)
            info.size = size
            tf.addfile(info, io.BytesIO(b"x" * size))
        link = tarfile.TarInfo("top/bin/c")
        link.type, link.linkname = tarfile.SYMTYPE, "a"
        tf.addfile(link)
    assert bench.unpacked_size(archive) == 15


def test_table_row_names_goal_and_command(bench) -> None:
    a = bench.Side("ours", "locara-build build", lambda i: 0.0, [10.0, 11.0, 12.0])
    b = bench.Side("by hand", "cmake ...", lambda i: 0.0, [10.0, 10.0, 10.0])
    r = bench.pair_result(a, b, title="orchestration", unit="s", goal=("<=", 1.05), reproduce="python bench/run.py x")
    assert r["ratio"] == pytest.approx(1.1) and r["met"] is False
    row = bench.row_markdown(r)
    assert "1.100x" in row and "A/B <= 1.05x" in row and "**no**" in row and "`python bench/run.py x`" in row
    absolute = bench.pair_result(a, b, title="noop", unit="s", goal=("<", 3.0), reproduce="r", measure="a")
    assert absolute["met"] is False and "A < 3 s" in bench.row_markdown(absolute)


def test_append_adds_pairs_of_the_same_measurement_only(bench) -> None:
    def result(a: list[float], b: list[float], port: int, date: str) -> dict:
        sa = bench.Side("A", f"tool --from http://127.0.0.1:{port}", lambda i: 0.0, samples=a, loads=[1.0] * len(a))
        sb = bench.Side("B", "by hand", lambda i: 0.0, samples=b, loads=[1.0] * len(b))
        r = bench.pair_result(sa, sb, title="t", unit="s", goal=("<=", 1.05), reproduce=f"x --runs {len(a)}")
        return {"name": "t", "date": date, **r, "batches": [{"date": date, "runs": len(a), "commit": "c"}]}

    old = result([10.0, 12.0, 11.0], [10.0, 10.0, 10.0], 1111, "d1")
    merged = bench._appended(old, result([13.0, 9.0], [10.0, 10.0], 2222, "d2"))
    assert merged["a"]["samples"] == [10.0, 12.0, 11.0, 13.0, 9.0]
    assert merged["runs"] == 5 and merged["a_median"] == 11.0 and merged["ratio"] == pytest.approx(1.1)
    assert merged["met"] is False and merged["reproduce"] == "x --runs 5"
    assert [b["date"] for b in merged["batches"]] == ["d1", "d2"]
    other = result([1.0], [1.0], 1111, "d3")
    other["title"] = "another measurement"
    with pytest.raises(SystemExit, match="different measurement"):
        bench._appended(old, other)
