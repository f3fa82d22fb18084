from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from rich.console import Console

from surgery.perf_table import (
    NA,
    bench_grid,
    bench_markdown,
    bench_rich,
    compare,
    diff_csv,
    diff_grid,
    diff_markdown,
    diff_rich,
)
from surgery.recipe import Published, Recipe
from surgery.records import PerfRecord
from surgery.targets.measure import finish_record


def rec(batch: int, ms: float, *, target: str = "ort-cpu", n: int = 200, seed: int = 0, ran: int | None = None,
        error: str | None = None) -> PerfRecord:
    if error:
        return PerfRecord(target=target, batch=batch, error=error)
    rng = np.random.default_rng(seed)
    lat = (ms * (1 + 0.02 * rng.standard_normal(n))).tolist()
    return finish_record(PerfRecord(target=target, batch=batch, effective_batch=ran or batch, latencies_ms=lat,
                                    iterations=n))


def recipe() -> Recipe:
    return Recipe(name="toy", summary="", upstream="", module="", inputs=(), outputs=(), params=0,
                  published=Published(throughput={"310": {1: 100.0, 4: 300.0}, "T4": {1: 250.0}}))


def sources():
    a = [rec(1, 2.0, seed=1), rec(4, 4.0, seed=2)]
    b = [rec(1, 1.0, seed=3), rec(4, 4.0, seed=4), rec(8, 6.0, seed=5)]
    c = [rec(1, 3.0, seed=6), rec(4, 0, error="MemoryError: out of memory\nat line 2")]
    return [("before", a), ("after", b), ("other", c)]


def test_rows_line_up_by_batch_with_ratio_interval_and_verdict():
    diff = compare(sources())
    assert [r.batch for r in diff.rows] == [1, 4, 8] and not diff.by_target
    one, four, eight = diff.rows
    assert one.cells[1].ratio.ratio == pytest.approx(2.0, rel=0.05) and one.cells[1].verdict == "faster"
    assert one.cells[2].verdict == "slower"
    assert four.cells[1].verdict == "no significant change"
    assert four.cells[2].record.error and four.cells[2].ratio is None
    assert eight.cells[0].record is None and eight.cells[1].ratio is None


def test_ratio_uses_the_batch_each_side_ran():
    a = [rec(4, 2.0, ran=1)]  # asked 4, a static batch-1 model ran 1
    b = [rec(4, 2.0)]
    cell = compare([("a", a), ("b", b)]).rows[0].cells[1]
    assert cell.ratio.ratio == pytest.approx(4.0, rel=0.05)
    _, rows, _ = diff_grid(compare([("a", a), ("b", b)]))
    assert "(ran batch 1)" in rows[0][1]


def test_records_with_several_targets_are_keyed_by_target_and_batch():
    a = [rec(1, 2.0), rec(1, 1.0, target="ort-cuda")]
    b = [rec(1, 2.0, seed=9)]
    diff = compare([("a", a), ("b", b)])
    assert diff.by_target
    assert [(r.target, r.batch) for r in diff.rows] == [("ort-cpu", 1), ("ort-cuda", 1)]
    assert diff.rows[1].cells[1].record is None
    headers, _, _ = diff_grid(diff)
    assert headers[:2] == ["target", "batch"]


def test_single_target_records_on_different_targets_compare_with_targets_in_headers():
    diff = compare([("cpu", [rec(1, 2.0)]), ("cuda", [rec(1, 0.5, target="ort-cuda")])])
    assert not diff.by_target and diff.rows[0].cells[1].verdict == "faster"
    headers, _, _ = diff_grid(diff)
    assert "cpu (ort-cpu) fps" in headers and "cuda (ort-cuda) fps" in headers


def test_records_without_samples_give_a_plain_ratio():
    a = PerfRecord(target="ais-bench", batch=1, effective_batch=1, throughput=100.0)
    b = PerfRecord(target="ais-bench", batch=1, effective_batch=1, throughput=150.0)
    cell = compare([("a", [a]), ("b", [b])]).rows[0].cells[1]
    assert cell.ratio is None and cell.plain_ratio == pytest.approx(1.5) and cell.verdict == NA


def test_markdown_has_headers_alignment_and_error_footnotes():
    text = diff_markdown(compare(sources(), reference=recipe()))
    lines = text.splitlines()
    assert lines[0].startswith("| batch | before fps | before p50 ms | before p99 ms | after fps |")
    assert lines[0].endswith("| 310 fps | T4 fps |")
    assert lines[1].startswith("| ---: |") and "| --- |" in lines[1]
    assert len([x for x in lines if x.startswith("| ")]) == 2 + 3
    assert "failed [1]" in lines[3]
    assert "[1] other, batch 4: MemoryError: out of memory" in text
    assert "| 100.0 | 250.0 |" in lines[2] and lines[4].endswith("| — | — |")


def test_csv_has_raw_numbers_and_full_errors():
    rows = list(csv.DictReader(io.StringIO(diff_csv(compare(sources(), reference=recipe())))))
    assert [r["batch"] for r in rows] == ["1", "4", "8"]
    assert float(rows[0]["after_speedup"]) == pytest.approx(2.0, rel=0.05)
    assert float(rows[0]["after_ci_low"]) < float(rows[0]["after_speedup"]) < float(rows[0]["after_ci_high"])
    assert rows[0]["after_verdict"] == "faster" and rows[0]["other_verdict"] == "slower"
    assert rows[1]["other_error"].startswith("MemoryError: out of memory")
    assert rows[2]["before_error"] == "missing"
    assert rows[0]["ref_310_fps"] == "100" and rows[2]["ref_T4_fps"] == ""
    assert "," not in rows[0]["before_throughput"]  # no thousands separators


def test_json_dict_and_rich_table():
    diff = compare(sources(), reference=recipe())
    data = diff.to_dict()
    assert data["labels"] == ["before", "after", "other"] and data["reference"]["devices"] == ["310", "T4"]
    first = data["rows"][0]["cells"]
    assert first[1]["speedup"]["verdict"] == "faster" and first[0]["p50_ms"] == pytest.approx(2.0, rel=0.05)
    assert data["rows"][2]["cells"][0]["present"] is False
    console = Console(record=True, width=300)
    console.print(diff_rich(diff))
    text = console.export_text()
    assert "after vs before (95% CI)" in text and "faster" in text and "failed [1]" in text


def test_bench_table_rows_and_failed_footnotes():
    records = [rec(1, 2.0), rec(4, 0, error="InvalidArgument: bad shape")]
    headers, rows, notes = bench_grid(records, recipe())
    assert headers[:4] == ["batch", "ran", "samples/s", "mean"] and headers[-2:] == ["310 fps", "T4 fps"]
    assert rows[0][0] == "1" and rows[0][-2:] == ["100.0", "250.0"]
    assert rows[1][2] == "failed [1]" and notes == ["[1] batch 4: InvalidArgument: bad shape"]
    assert "[1] batch 4" in bench_markdown(records)
    console = Console(record=True, width=200)
    console.print(bench_rich(records, title="toy"))
    assert "toy (latency in ms)" in console.export_text()
