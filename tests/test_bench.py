from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from surgery.passes.fix_shapes import reshape_batch
from surgery.tools import onnxruntime as ort_tool
from surgery.tools.onnxruntime import run_jobs

from surgery.bench import BatchRefused, BenchModel, plan_batch, static_batch, sweep
from surgery.errors import UsageError
from surgery.records import PerfRecord
from surgery.targets.measure import Measure


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


def sweep_one(model, runner, **kwargs):
    kwargs.setdefault("reshaper", reshape_batch)
    return sweep([BenchModel(model)], runner, **kwargs)[0]


def test_dynamic_batch_runs_as_is():
    plan = plan_batch(conv_model("N"), 8)
    assert plan.reshaped_from is None and plan.shapes == {"x": (8, 3, 4, 4)}


def test_static_batch_is_reshaped_with_fix_shapes():
    model = conv_model(1)
    plan = plan_batch(model, 16, reshaper=reshape_batch)
    assert plan.reshaped_from == 1
    assert plan.shapes == {"x": (16, 3, 4, 4)}
    assert static_batch(plan.model) == 16
    assert static_batch(model) == 1  # the input model is left alone
    assert "fix_shapes batch=16" in plan.notes[0]


def test_static_batch_refused_without_reshape():
    with pytest.raises(BatchRefused, match=r"static batch \(x:1\).*--no-reshape"):
        plan_batch(conv_model(1), 16)
    assert plan_batch(conv_model(1), 1).reshaped_from is None


def test_scalar_inputs_have_no_batch_axis():
    graph = helper.make_graph([helper.make_node("Neg", ["x"], ["y"])], "s",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    with pytest.raises(BatchRefused, match="no batch axis"):
        plan_batch(model, 4)
    assert plan_batch(model, 1).shapes == {"x": ()}


def test_static_model_asked_for_batch_4_runs_and_counts_batch_4():
    records = sweep_one(conv_model(1), run_jobs, target="ort-cpu", batches=[1, 4], measure=FAST)
    one, four = records
    assert one.ok and four.ok
    assert (one.effective_batch, four.effective_batch) == (1, 4)
    assert four.extra["reshaped_from"] == 1 and four.extra["input_shapes"] == {"x": [4, 3, 4, 4]}
    assert four.throughput == pytest.approx(4 * 1000 / four.stats["mean"])
    assert "ran_digest" in four.extra and "reshaped_from" not in one.extra


def test_refused_batch_is_a_row_and_the_sweep_goes_on():
    records = sweep_one(conv_model(1), run_jobs, target="ort-cpu", batches=[4, 1], measure=FAST, reshaper=None)
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




def test_models_swept_together_share_one_pairing_id_per_batch():
    a, b = sweep([BenchModel(conv_model("N"), label="a"), BenchModel(conv_model("N"), label="b")], run_jobs,
                 target="ort-cpu", batches=[1, 2], measure=Measure(warmup=1, iterations=12))
    assert [r.paired_with for r in a] == [r.paired_with for r in b]
    assert a[0].paired_with != a[1].paired_with and a[0].paired_with.endswith("/0")
    assert (a[0].pairing["index"], b[0].pairing["index"], a[0].pairing["size"]) == (0, 1, 2)
    assert a[0].rounds == b[0].rounds and sum(a[0].rounds) == 12
    alone = sweep_one(conv_model("N"), run_jobs, target="ort-cpu", batches=[1], measure=FAST)
    assert alone[0].pairing is None and alone[0].rounds
    # alone or together, the threads do not spin (onnxruntime's default otherwise), and together they may not
    assert a[0].settings["spinning"] is False and b[0].settings["spinning"] is False
    assert alone[0].settings["spinning"] is False
    spinning = ort_tool.OrtOptions(spinning=True)
    with pytest.raises(UsageError, match="one model at a time"):
        sweep([BenchModel(conv_model("N"), spinning, label="a"), BenchModel(conv_model("N"), spinning, label="b")],
              run_jobs, target="ort-cpu", batches=[1], measure=FAST)
    alone = sweep([BenchModel(conv_model("N"), spinning)], run_jobs, target="ort-cpu", batches=[1], measure=FAST)[0]
    assert alone[0].settings["spinning"] is True
