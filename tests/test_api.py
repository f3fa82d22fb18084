"""The public API's entry points hand the built-in registries to the core."""

from __future__ import annotations

import onnx
from graph_builders import parse

import surgery


def _model(tmp_path):
    m = parse("""
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[1, 3, 8, 8] x) => (float[1, 3, 16, 16] y) {
            s = Constant <value = float[4] {1.0, 1.0, 2.0, 2.0}> ()
            y = Resize <mode = "linear"> (x, , s)
        }
    """)
    path = tmp_path / "m.onnx"
    onnx.save(m, path)
    return path


def test_run_model_runs_the_whole_loop_with_the_builtin_targets(tmp_path):
    result = surgery.run_model(_model(tmp_path), passes=["resize_nearest"], runs_root=str(tmp_path / "runs"),
                               batches=(1,), precision=0.5, max_time=0.5)
    assert result.ok and result.report.is_file()
    assert [p.decision for p in result.passes] == ["kept"]
    assert {r.extra["side"] for r in result.record.perf} == {"before", "after"}


def test_builtin_targets_is_the_clis_table():
    from surgery.cli import _targets

    assert set(surgery.builtin_targets()) == set(_targets.targets()) >= {"ort-cpu", "atc", "ais-bench", "trtexec"}


def test_evaluation_of_a_plain_model_is_refused_before_any_work(tmp_path):
    import pytest

    with pytest.raises(surgery.UsageError, match="not a zoo model"):
        surgery.run_model(_model(tmp_path), passes=["resize_nearest"], runs_root=str(tmp_path / "runs"), generate=2)
    assert not (tmp_path / "runs").exists()
