from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from surgery.tools import onnxruntime as ort_tool
from surgery.tools.onnxruntime import OrtOptions

from surgery.bench import Job, Measure
from surgery.errors import ToolNotFoundError, UnknownNameError, UsageError


def relu_model(batch: int | str = "N", width: int = 16) -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, width])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def feed(batch: int, width: int = 16) -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(0).random((batch, width), dtype=np.float32)}


def test_options_are_validated():
    with pytest.raises(UnknownNameError, match="unknown onnxruntime target 'ort-gpu'"):
        OrtOptions(target="ort-gpu")
    with pytest.raises(UsageError, match="intra_op_threads"):
        OrtOptions(intra_op_threads=-1)
    with pytest.raises(UsageError, match="graph optimization 'max'"):
        OrtOptions(graph_optimization="max")
    with pytest.raises(UsageError, match="execution mode"):
        OrtOptions(execution_mode="async")
    assert OrtOptions(intra_op_threads=2).describe() == "intra_op_threads=2"
    assert OrtOptions().describe() == "default session settings"


def test_cpu_is_always_available():
    assert "ort-cpu" in ort_tool.available_targets()
    assert ort_tool.is_available("ort-cpu")
    with pytest.raises(UnknownNameError):
        ort_tool.is_available("tensorrt")


@pytest.mark.parametrize("target, provider", [("ort-cuda", "CUDAExecutionProvider"),
                                              ("ort-trt", "TensorrtExecutionProvider")])
def test_missing_provider_is_one_line_naming_it_and_how_to_get_it(target, provider):
    if ort_tool.is_available(target):
        pytest.skip(f"this onnxruntime has {provider}; the missing-provider message cannot be produced")
    with pytest.raises(ToolNotFoundError) as info:
        ort_tool.make_session(relu_model(), OrtOptions(target=target))
    message = str(info.value)
    assert provider in message and "pip install onnxruntime-gpu" in message
    assert "\n" not in message


def test_session_settings_reach_onnxruntime():
    opts = OrtOptions(intra_op_threads=1, inter_op_threads=2, graph_optimization="basic",
                      execution_mode="parallel")
    session = ort_tool.make_session(relu_model(), opts)
    so = session.get_session_options()
    import onnxruntime as ort

    assert so.intra_op_num_threads == 1 and so.inter_op_num_threads == 2
    assert so.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    assert so.execution_mode == ort.ExecutionMode.ORT_PARALLEL
    assert session.get_providers() == ["CPUExecutionProvider"]


def test_spinning_reaches_the_session_config():
    for spinning, value in ((False, "0"), (True, "1")):
        so = ort_tool.session_options(OrtOptions(spinning=spinning))
        assert so.get_session_config_entry("session.intra_op.allow_spinning") == value


def test_bad_model_bytes_raise_one_line():
    with pytest.raises(RuntimeError, match="onnxruntime cannot load the model"):
        ort_tool.make_session(b"not a model")


def test_bench_records_samples_statistics_and_effective_batch():
    rec = ort_tool.bench(relu_model(), feed(3), measure=Measure(warmup=2, iterations=25))
    assert rec.ok and rec.iterations == 25 and len(rec.latencies_ms) == 25
    assert rec.batch == rec.effective_batch == 3
    assert rec.stats["min"] <= rec.stats["median"] <= rec.stats["p99"] <= rec.stats["max"]
    assert rec.throughput == pytest.approx(3 * 1000 / rec.stats["mean"])
    assert rec.target == "ort-cpu" and rec.target_version == ort_tool.version()
    assert rec.settings["graph_optimization"] == "all" and rec.settings["providers"] == ["CPUExecutionProvider"]
    assert rec.warmup == 2


def test_run_jobs_keeps_going_past_a_failing_job_and_splits_rounds():
    good = Job(source=relu_model().SerializeToString(), options=OrtOptions(), feed=feed(2))
    wrong_shape = Job(source=relu_model(width=16).SerializeToString(), options=OrtOptions(), feed=feed(2, width=5))
    seen: list[float] = []
    records = ort_tool.run_jobs([good, wrong_shape, good], Measure(warmup=1, iterations=10, rounds=3), seen.append)
    assert [r.ok for r in records] == [True, False, True]
    assert "InvalidArgument" in records[1].error or "dimension" in records[1].error.lower()
    assert [r.iterations for r in records] == [10, 0, 10]
    assert seen and seen[-1] == pytest.approx(1.0)
    first, _, last = records
    assert first.rounds == last.rounds == [4, 3, 3] and first.stop == "iterations"
    assert (first.pairing, last.pairing) == ({"index": 0, "size": 2}, {"index": 1, "size": 2})


def test_run_jobs_measures_to_a_precision_goal_and_says_how_it_stopped():
    job = Job(source=relu_model().SerializeToString(), options=OrtOptions(intra_op_threads=1), feed=feed(2))
    rec = ort_tool.run_jobs([job], Measure(warmup=2, precision=0.5, max_time=2.0, round_time=0.002))[0]
    assert rec.ok and rec.stop in ("precision", "max-time") and rec.pairing is None
    assert sum(rec.rounds) == rec.iterations == len(rec.latencies_ms) and len(rec.rounds) >= 6
    assert rec.half_width is not None and rec.warmup == 2


def test_session_candidates_leave_out_the_current_settings():
    cands = ort_tool.session_candidates(OrtOptions(intra_op_threads=1), cores=4)
    assert {"intra_op_threads": 1} not in cands
    assert {"intra_op_threads": 2} in cands and {"intra_op_threads": 4} in cands
    assert {"graph_optimization": "all"} not in cands and {"graph_optimization": "disable"} in cands
    assert {"execution_mode": "parallel"} in cands
    changed = ort_tool.apply_settings(OrtOptions(), {"graph_optimization": "basic"})
    assert changed.graph_optimization == "basic"
