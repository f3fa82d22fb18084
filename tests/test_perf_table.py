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


def recipe(name: str = "toy") -> Recipe:
    return Recipe(name=name, summary="", upstream="", module="", inputs=(), outputs=(), params=0,
                  published=Published(throughput={"310": {1: 100.0, 4: 300.0}, "T4": {1: 250.0}},
                                      per_card={"310": 4}))


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
    assert lines[0].startswith("| batch | before fps | before p50 ms | before p99 ms | before ms/sample | after fps |")
    assert lines[0].endswith("| 310 fps/card (guide) | 310 ms/sample (guide) | T4 fps/device (guide) "
                             "| T4 ms/sample (guide) |")
    assert lines[1].startswith("| ---: |") and "| --- |" in lines[1]
    assert len([x for x in lines if x.startswith("| ")]) == 2 + 3
    assert "failed [1]" in lines[3]
    assert "[1] other, batch 4: MemoryError: out of memory" in text
    # the 310 card's 100 fps is four devices at 25: 40 ms per sample on one; T4 250 fps: 4 ms
    assert "| 100.0 | 40.000 | 250.0 | 4.000 |" in lines[2] and lines[4].endswith("| — | — | — | — |")
    assert "not measured here" in text and "per card of 4 devices" in text


def test_csv_has_raw_numbers_and_full_errors():
    rows = list(csv.DictReader(io.StringIO(diff_csv(compare(sources(), reference=recipe())))))
    assert [r["batch"] for r in rows] == ["1", "4", "8"]
    assert float(rows[0]["after_speedup"]) == pytest.approx(2.0, rel=0.05)
    assert float(rows[0]["after_ci_low"]) < float(rows[0]["after_speedup"]) < float(rows[0]["after_ci_high"])
    assert rows[0]["after_verdict"] == "faster" and rows[0]["other_verdict"] == "slower"
    assert rows[1]["other_error"].startswith("MemoryError: out of memory")
    assert rows[2]["before_error"] == "missing"
    assert rows[0]["ref_310_fps"] == "100" and rows[2]["ref_T4_fps"] == ""
    assert rows[0]["ref_310_per"] == "card" and rows[0]["ref_T4_per"] == "device"
    assert float(rows[0]["ref_310_ms_per_sample"]) == pytest.approx(40.0)
    assert float(rows[1]["before_ms_per_sample"]) == pytest.approx(1.0, rel=0.05)  # 4 ms a call of batch 4
    assert rows[0]["after_paired"] == "no"
    assert "," not in rows[0]["before_throughput"]  # no thousands separators


def test_json_dict_and_rich_table():
    diff = compare(sources(), reference=recipe())
    data = diff.to_dict()
    assert data["labels"] == ["before", "after", "other"] and data["reference"]["devices"] == ["310", "T4"]
    assert data["reference"]["published"] is True and data["reference"]["per_card"] == {"310": 4}
    first = data["rows"][0]["cells"]
    assert first[1]["speedup"]["verdict"] == "faster" and first[0]["p50_ms"] == pytest.approx(2.0, rel=0.05)
    assert data["rows"][2]["cells"][0]["present"] is False
    console = Console(record=True, width=500)
    console.print(diff_rich(diff))
    text = console.export_text()
    assert "after vs before (95% CI)" in text and "faster" in text and "failed [1]" in text


def test_bench_table_rows_and_failed_footnotes():
    records = [rec(1, 2.0), rec(4, 0, error="InvalidArgument: bad shape")]
    headers, rows, notes = bench_grid(records, recipe())
    assert headers[:4] == ["batch", "ran", "samples/s", "mean"]
    assert headers[-5:] == ["ms/sample", "310 fps/card (guide)", "310 ms/sample (guide)", "T4 fps/device (guide)",
                            "T4 ms/sample (guide)"]
    assert rows[0][0] == "1" and rows[0][-4:] == ["100.0", "40.000", "250.0", "4.000"]
    assert rows[1][2] == "failed [1]" and notes[0] == "[1] batch 4: InvalidArgument: bad shape"
    assert "not measured here" in notes[1]
    assert "[1] batch 4" in bench_markdown(records)
    console = Console(record=True, width=200)
    console.print(bench_rich(records, title="toy"))
    assert "toy (latency in ms)" in console.export_text()


def paired_pair(ms_a: float, ms_b: float, *, batch: int = 1, group: str = "g/0") -> tuple[PerfRecord, PerfRecord]:
    """Two records of one rotation: 20 rounds of 10 calls each, sharing a pairing id."""
    out = []
    for index, ms in enumerate((ms_a, ms_b)):
        r = rec(batch, ms, n=200, seed=10 + index)
        r.rounds, r.pairing = [10] * 20, {"id": group, "index": index, "size": 2}
        out.append(r)
    return out[0], out[1]


def test_records_measured_together_get_the_paired_interval_and_others_are_marked_unpaired():
    a, b = paired_pair(2.0, 1.9)
    loose = rec(1, 1.9, seed=3)
    diff = compare([("a", [a]), ("b", [b]), ("loose", [loose])])
    together, apart = diff.rows[0].cells[1].ratio, diff.rows[0].cells[2].ratio
    assert together.paired and together.verdict == "faster"
    assert not apart.paired and apart.verdict == "no significant change"  # 5 % is inside ±10 % default noise
    _, rows, notes = diff_grid(diff)
    assert rows[0][-2].endswith("unpaired") and not rows[0][-4].endswith("unpaired")
    assert any(n.startswith("unpaired: measured apart") and "not calibrated" in n for n in notes)


def test_unpaired_cells_use_the_noisier_hosts_calibration():
    from surgery.noise import HostNoise

    a, b = rec(1, 2.0, seed=1), rec(1, 1.8, seed=2)
    quiet, loud = HostNoise(0.005, "calibrated", True), HostNoise(0.2, "calibrated", True)
    assert compare([("a", [a]), ("b", [b])], noise=[quiet, quiet]).rows[0].cells[1].verdict == "faster"
    widened = compare([("a", [a]), ("b", [b])], noise=[quiet, loud]).rows[0].cells[1].ratio
    assert widened.verdict == "no significant change" and widened.run_noise == 0.2


def test_a_reference_from_another_zoo_model_is_refused_unless_asked():
    from surgery.errors import UnknownNameError, UsageError
    from surgery.perf_table import pick_reference

    recipes = {"toy": recipe("toy"), "other": recipe("other")}
    assert pick_reference(recipes, None, ["toy", "toy"]).name == "toy"
    assert pick_reference(recipes, None, [None]) is None and pick_reference(recipes, None, ["toy", "other"]) is None
    assert pick_reference(recipes, "other", [None]).name == "other"  # a plain file: the user says what it is
    with pytest.raises(UsageError, match=r"records are of zoo model toy.*--reference-any"):
        pick_reference(recipes, "other", ["toy"])
    assert pick_reference(recipes, "other", ["toy"], allow_other=True).name == "other"
    with pytest.raises(UnknownNameError):
        pick_reference(recipes, "nope", [])


def test_bench_table_marks_a_batch_that_stopped_short_of_the_goal():
    done, short = rec(1, 2.0), rec(4, 4.0)
    done.stop, done.half_width = "precision", 0.015
    short.stop, short.half_width = "max-time", 0.031
    headers, rows, notes = bench_grid([done, short], goal=0.02)
    col = headers.index("±")
    assert rows[0][col] == "±1.5%" and rows[1][col] == "±3.1%*"
    assert notes == ["* stopped at --max-time short of the ±2% goal"]


def test_imported_per_call_latency_is_shown_per_sample_beside_the_guides_figures():
    from surgery.perf_table import ms_per_sample

    # the legacy benchmark tool: ave_latency 2.5 ms per sample at batch 4 → a call of 10 ms, mean only
    imported = PerfRecord(target="benchmark", batch=4, effective_batch=4, stats={"mean": 10.0}, throughput=400.0)
    assert ms_per_sample(imported) == pytest.approx(2.5)
    _, rows, _ = bench_grid([imported], recipe())
    assert rows[0][-5:] == ["2.500", "300.0", "13.333", "—", "—"]


def test_a_change_inside_the_minimum_effect_is_no_change_and_the_table_says_why():
    a, b = paired_pair(2.0, 2.0 / 1.03)  # 3 % faster: the interval excludes 1 but not 1 + 5 %
    called = compare([("a", [a]), ("b", [b])], min_effect=0.0)
    assert called.rows[0].cells[1].ratio.low > 1 and called.rows[0].cells[1].verdict == "faster"
    assert compare([("a", [a]), ("b", [b])]).to_dict()["min_effect"] == 0.01  # the default
    diff = compare([("a", [a]), ("b", [b])], min_effect=0.05)
    assert diff.rows[0].cells[1].verdict == "no significant change"
    _, rows, notes = diff_grid(diff)
    assert rows[0][-1] == "no significant change (< min effect)"
    assert any(n.startswith("(< min effect): the interval excludes 1 but not 1 ± 5%") for n in notes)
    _, rows, notes = diff_grid(called)
    assert rows[0][-1] == "faster" and not any("min effect" in n for n in notes)
