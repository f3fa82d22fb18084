from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from surgery.tools import onnxruntime as ort_tool

from surgery.cli.main import main


def surgery(*argv: object) -> int:
    return main([str(a) for a in argv])


def write_conv(path: Path, batch: int | str = 1) -> Path:
    w = numpy_helper.from_array(np.ones((2, 3, 1, 1), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"])], "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 2, 4, 4])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


FAST = ("--iterations", 10, "--warmup", 1)


def test_bench_prints_the_table_and_writes_the_record_beside_the_model(tmp_path, capsys):
    model = write_conv(tmp_path / "m.onnx")
    rc = surgery("bench", model, "--batch", "1,4", *FAST)
    out = capsys.readouterr().out
    assert rc == 0
    last = out.strip().splitlines()[-1]
    assert last.startswith("PASSED | 2/2 batch sizes measured on ort-cpu; best ")
    assert "m.onnx on ort-cpu (latency in ms)" in out and "samples/s" in out
    record = json.loads((tmp_path / "m.bench.json").read_text())
    assert record["schema"] == "surgery.record" and record["command"] == "bench" and record["target"] == "ort-cpu"
    assert record["input_model"]["digest"] and record["host"]["cores"] and record["versions"]["onnxruntime"]
    perf = record["perf"]
    assert [p["batch"] for p in perf] == [1, 4] and [p["effective_batch"] for p in perf] == [1, 4]
    assert all(len(p["latencies_ms"]) == 10 and p["stats"]["p99"] > 0 for p in perf)
    assert perf[1]["extra"]["reshaped_from"] == 1
    assert record["tools"]["onnxruntime"]["graph_optimization"] == "all"


def test_bench_json_and_settings(tmp_path, capsys):
    model = write_conv(tmp_path / "m.onnx", batch="N")
    record_path = tmp_path / "r.json"
    rc = surgery("bench", model, "--batch", "2", "--min-time", "0.05", "--threads", 1,
                 "--graph-optimization", "basic", "--record", record_path, "--json")
    data = json.loads(capsys.readouterr().out)
    assert rc == 0 and record_path.is_file()
    perf = data["perf"][0]
    assert perf["effective_batch"] == 2 and perf["iterations"] >= 10
    assert perf["settings"]["intra_op_threads"] == 1 and perf["settings"]["graph_optimization"] == "basic"
    assert "reshaped_from" not in perf["extra"]


def test_refused_batch_is_a_failed_row_and_the_run_passes(tmp_path, capsys):
    model = write_conv(tmp_path / "m.onnx")
    rc = surgery("bench", model, "--batch", "1,16", "--no-reshape", *FAST)
    out = capsys.readouterr().out
    assert rc == 0
    assert "failed [1]" in out and "[1] batch 16: batch 16 refused: the model has a static batch (x:1)" in out
    assert out.strip().splitlines()[-1].startswith("PASSED | 1/2 batch sizes measured on ort-cpu; failed: batch 16")
    record = json.loads((tmp_path / "m.bench.json").read_text())
    assert record["perf"][1]["error"] and record["perf"][1]["throughput"] is None


def test_every_batch_failing_is_a_failure(tmp_path, capsys):
    model = write_conv(tmp_path / "m.onnx")
    rc = surgery("bench", model, "--batch", "4,8", "--no-reshape", *FAST)
    out = capsys.readouterr().out
    assert rc == 1
    assert out.strip().splitlines()[-1].startswith("FAILED | no batch size ran: batch 4 refused")
    assert json.loads((tmp_path / "m.bench.json").read_text())["status"] == "FAILED"


def test_usage_errors_exit_2_with_one_line(tmp_path, capsys):
    model = write_conv(tmp_path / "m.onnx")
    assert surgery("bench", model, "--target", "ort-gpu") == 2
    assert "unknown target 'ort-gpu'" in capsys.readouterr().err
    assert surgery("bench", model, "--batch", "1,x") == 2
    assert "bad batch size 'x'" in capsys.readouterr().err
    assert surgery("bench", tmp_path / "missing.onnx") == 2
    assert "model not found" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        surgery("bench", model, "--iterations", 5, "--min-time", 1)
    assert info.value.code == 2
    assert not (tmp_path / "m.bench.json").exists()


def test_missing_provider_names_it_and_how_to_get_it(tmp_path, capsys):
    if ort_tool.is_available("ort-cuda"):
        pytest.skip("this onnxruntime has CUDAExecutionProvider")
    model = write_conv(tmp_path / "m.onnx")
    assert surgery("bench", model, "--target", "ort-cuda", *FAST) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "CUDAExecutionProvider" in err and "pip install onnxruntime-gpu" in err
