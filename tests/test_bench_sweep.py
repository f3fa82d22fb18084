from __future__ import annotations

import time

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from surgery.tools.onnxruntime import run_jobs

from surgery.bench import (
    BatchRefused,
    Measure,
    batch_shapes,
    effective_batch,
    parse_batches,
    plan_batch,
    static_batch,
    sweep_one,
    time_calls,
)
from surgery.errors import UsageError
from surgery.parity import model_inputs
from surgery.records import PerfRecord


def conv_model(batch: int | str = 1, hw: int | str = 4) -> onnx.ModelProto:
    w = numpy_helper.from_array(np.ones((2, 3, 1, 1), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"])], "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, hw, hw])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 2, hw, hw])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def pinned_reshape_model() -> onnx.ModelProto:
    """Static batch 1 with a Reshape whose constant target shape pins the batch: batch 2 cannot run."""
    shape = numpy_helper.from_array(np.array([1, 48], np.int64), "shape")
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["y"])], "pinned",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 48])], [shape])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


FAST = Measure(warmup=1, iterations=15)


def test_dynamic_batch_runs_as_is():
    plan = plan_batch(conv_model("N"), 8)
    assert plan.reshaped_from is None and plan.shapes == {"x": (8, 3, 4, 4)}


def test_static_batch_is_reshaped_with_fix_shapes():
    model = conv_model(1)
    plan = plan_batch(model, 16)
    assert plan.reshaped_from == 1
    assert plan.shapes == {"x": (16, 3, 4, 4)}
    assert static_batch(plan.model) == 16
    assert static_batch(model) == 1  # the input model is left alone
    assert "fix_shapes batch=16" in plan.notes[0]


def test_static_batch_refused_without_reshape():
    with pytest.raises(BatchRefused, match=r"static batch \(x:1\).*--no-reshape"):
        plan_batch(conv_model(1), 16, reshape=False)
    assert plan_batch(conv_model(1), 1, reshape=False).reshaped_from is None


def test_scalar_inputs_have_no_batch_axis():
    graph = helper.make_graph([helper.make_node("Neg", ["x"], ["y"])], "s",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    with pytest.raises(BatchRefused, match="no batch axis"):
        plan_batch(model, 4)
    assert plan_batch(model, 1).shapes == {"x": ()}


def test_batch_shapes_need_sizes_for_dynamic_axes():
    specs = model_inputs(conv_model("N", "H"))
    with pytest.raises(UsageError, match=r"dynamic axis 2 .*--input-shapes x:4x3xNxN"):
        batch_shapes(specs, 4)
    assert batch_shapes(specs, 4, {"x": (1, 3, 8, 8)}) == {"x": (4, 3, 8, 8)}
    with pytest.raises(UsageError, match="not an input"):
        batch_shapes(specs, 4, {"y": (1, 3, 8, 8)})
    with pytest.raises(UsageError, match="rank 4"):
        batch_shapes(specs, 4, {"x": (1, 3)})


def test_effective_batch_reads_the_inputs_not_a_reduced_output():
    x = np.zeros((4, 3))
    assert effective_batch({"x": x}) == 4
    assert effective_batch({"x": x}, [np.zeros((1, 3))]) == 4  # ReduceSum over the batch: still batch 4
    side = {"x": x, "table": np.zeros((10, 2))}
    assert effective_batch(side, [np.zeros((4, 7))]) == 4  # outputs settle which input axis is the batch
    assert effective_batch({"s": np.float32(1)}) == 1


def test_static_model_asked_for_batch_4_runs_and_counts_batch_4():
    records = sweep_one(conv_model(1), run_jobs, target="ort-cpu", batches=[1, 4], measure=FAST)
    one, four = records
    assert one.ok and four.ok
    assert (one.effective_batch, four.effective_batch) == (1, 4)
    assert four.extra["reshaped_from"] == 1 and four.extra["input_shapes"] == {"x": [4, 3, 4, 4]}
    assert four.throughput == pytest.approx(4 * 1000 / four.stats["mean"])
    assert "ran_digest" in four.extra and "reshaped_from" not in one.extra


def test_refused_batch_is_a_row_and_the_sweep_goes_on():
    records = sweep_one(conv_model(1), run_jobs, target="ort-cpu", batches=[4, 1], measure=FAST, reshape=False)
    assert not records[0].ok and records[0].extra["refused"] and records[0].batch == 4
    assert "--no-reshape" in records[0].error
    assert records[1].ok and records[1].effective_batch == 1


def test_batch_that_fails_at_run_time_is_a_row_naming_the_pinned_reshape():
    records = sweep_one(pinned_reshape_model(), run_jobs, target="ort-cpu", batches=[1, 2, 1], measure=FAST)
    assert [r.ok for r in records] == [True, False, True]
    assert "constant target shape" in records[1].error
    assert records[1].throughput is None and records[1].latencies_ms == []


def test_a_runner_that_raises_fails_only_its_batch():
    def runner(jobs, measure, on_progress=None):
        if jobs[0].feed["x"].shape[0] == 8:
            raise MemoryError("cannot allocate 1 TiB")
        return [PerfRecord(target="", batch=0, effective_batch=j.feed["x"].shape[0], latencies_ms=[1.0, 1.0],
                           iterations=2) for j in jobs]

    records = sweep_one(conv_model("N"), runner, target="fake", batches=[1, 8, 2], measure=FAST)
    assert [r.ok for r in records] == [True, False, True]
    assert records[1].error == "MemoryError: cannot allocate 1 TiB"
    assert [r.target for r in records] == ["fake"] * 3 and [r.batch for r in records] == [1, 8, 2]


def test_bad_input_shapes_are_a_usage_error_before_any_batch():
    with pytest.raises(UsageError, match="dynamic axis"):
        sweep_one(conv_model("N", "H"), run_jobs, target="ort-cpu", batches=[1], measure=FAST)


def test_time_calls_counts_and_reports_progress(monkeypatch):
    calls = []
    seen: list[float] = []
    out = time_calls(lambda: calls.append(1), iterations=7, on_progress=seen.append, report_every=0)
    assert len(out) == len(calls) == 7 and all(x >= 0 for x in out) and seen[-1] == 1.0
    timed = time_calls(lambda: None, seconds=0.0, min_iterations=5)
    assert 5 <= len(timed) <= 8  # whole chunks of 1, 2, 4 calls
    clock = iter(range(0, 1000, 3))  # a fake clock: every read is 3 s after the last
    monkeypatch.setattr(time, "perf_counter", lambda: float(next(clock)))
    assert time_calls(lambda: None, iterations=4) == [3000.0] * 4


def test_measure_validates_and_splits_rounds():
    m = Measure(iterations=10, rounds=3)
    assert [m.per_round(r)[0] for r in range(3)] == [4, 3, 3]
    assert Measure(min_time=1.0, rounds=4).per_round(0) == (None, 0.25)
    with pytest.raises(UsageError):
        Measure(iterations=0)
    with pytest.raises(UsageError):
        Measure(iterations=None, min_time=None)


def test_parse_batches():
    assert parse_batches("1,4, 8") == [1, 4, 8]
    for bad in ("0", "1,x", "4,4", ""):
        with pytest.raises(UsageError):
            parse_batches(bad)
