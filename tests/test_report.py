"""report.html: self-contained, every section present, plots drawn, no script errors in Chromium."""

from __future__ import annotations

import re

from browser import body_attributes, needs_chromium

from surgery.report import SECTIONS, MetricRow, PassRow, PerfRow, ReportData, render


def sample_report() -> ReportData:
    data = ReportData(title="unetpp: before vs after <recipe>", model="unetpp", target="ort-cpu",
                      status="PASSED | 1/1 passes kept", created="2026-12-01T00:00:00+00:00")
    for b in (1, 4):
        data.perf.append(PerfRow(batch=b, before_fps=100.0 * b, after_fps=110.0 * b, ratio=1.1, low=1.05, high=1.15,
                                 verdict="faster", published={"310P": 90.0 if b == 1 else None},
                                 before_ms=[10.0, 11.0, 10.5] * 10, after_ms=[9.0, 9.5, 9.2] * 10))
    data.perf.append(PerfRow(batch=8, before_error="out of memory", after_fps=800.0, verdict="not compared"))
    data.passes.append(PassRow("resize_nearest", False, {"Resize": 4}, 0.012, "verified", "max abs 0.1",
                               "mask IoU vs before 0.97", "kept"))
    data.passes.append(PassRow("simplify", True, {}, 0.2, "failed: output 'y' changed", decision="reverted",
                               why="not verified"))
    data.op_counts_before, data.op_counts_after = {"Resize": 4, "Conv": 30}, {"Resize": 4, "Conv": 29}
    data.metrics = [MetricRow("iou", 0.81, 0.80, {"310P": 0.83})]
    data.provenance = {"onnx": "1.23.2", "before digest": "ab" * 32}
    data.commands = ["atc --model=x.onnx --framework=5"]
    return data


def test_page_is_self_contained_and_escaped():
    page = render(sample_report())
    assert page.startswith("<!DOCTYPE html>")
    assert "&lt;recipe&gt;" in page and "<recipe>" not in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # nothing fetched at view time
    assert page.count("<svg") == 3 and "(published)" in page and "no reference" in page
    assert "out of memory" in page and "reverted" in page
    for key in SECTIONS:
        assert f'data-section="{key}"' in page


def test_empty_run_still_renders_every_section():
    page = render(ReportData(title="t", model="m", target="ort-cpu", status="FAILED | x", created="now"))
    assert all(f'data-section="{k}"' in page for k in SECTIONS) and "<svg" not in page


@needs_chromium
def test_renders_in_chromium_with_plots_and_no_errors(tmp_path):
    path = tmp_path / "report.html"
    path.write_text(render(sample_report()), encoding="utf-8")
    attrs = body_attributes(path)
    assert attrs["rendered"] == "yes", attrs
    assert attrs["sections"] == str(len(SECTIONS)) and attrs["missing"] == ""
    assert attrs["plots"] == "3" and attrs["drawn"] == "3"
    assert attrs["errors"] == ""


@needs_chromium
def test_a_script_error_is_caught_by_the_check(tmp_path):
    path = tmp_path / "broken.html"
    path.write_text(render(sample_report()).replace("</body>", "<script>undefinedFunction()</script></body>"))
    assert "undefinedFunction" in body_attributes(path)["errors"]
