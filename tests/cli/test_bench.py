from __future__ import annotations

import csv
import io
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


@pytest.fixture(autouse=True)
def noise_cache(tmp_path, monkeypatch):
    """Calibrations go to a folder of the test's own, never the user's cache."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("SURGERY_CACHE_DIR", str(cache))
    return cache


def test_bench_prints_the_table_and_writes_the_record_beside_the_model(tmp_path, capsys):
    model = write_conv(tmp_path / "m.onnx")
    rc = surgery("bench", model, "--batch", "1,4", *FAST)
    out = capsys.readouterr().out
    assert rc == 0
    last = out.strip().splitlines()[-1]
    assert last.startswith("PASSED | 2/2 batch sizes measured on ort-cpu; best ")
    assert "m.onnx on ort-cpu (latency in ms)" in out and "samples/s" in out
    record = json.loads((tmp_path / "m.ort-cpu.bench.json").read_text())
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
    rc = surgery("bench", model, "--batch", "2", "--min-time", "0.05", "--max-time", "0.5", "--threads", 1,
                 "--graph-optimization", "basic", "--record", record_path, "--json")
    data = json.loads(capsys.readouterr().out)
    assert rc == 0 and record_path.is_file()
    perf = data["perf"][0]
    assert perf["effective_batch"] == 2 and perf["iterations"] >= 10 and perf["stop"] in ("precision", "max-time")
    assert data["extra"]["measure"]["max_time"] == 0.5 and data["extra"]["measure"]["precision"] == 0.02
    assert perf["settings"]["intra_op_threads"] == 1 and perf["settings"]["graph_optimization"] == "basic"
    assert perf["settings"]["spinning"] is False  # the default: alone as together
    assert "reshaped_from" not in perf["extra"]


def test_spinning_is_asked_for_one_model_and_recorded(tmp_path, capsys):
    a, b = write_conv(tmp_path / "a.onnx"), write_conv(tmp_path / "b.onnx")
    assert surgery("bench", a, "--batch", "1", *FAST, "--spinning", "--json") == 0
    assert json.loads(capsys.readouterr().out)["perf"][0]["settings"]["spinning"] is True
    assert surgery("bench", a, b, "--batch", "1", *FAST, "--spinning") == 2
    err = capsys.readouterr().err
    assert "--spinning measures one model at a time" in err and err.count("\n") == 1
    assert not (tmp_path / "b.ort-cpu.bench.json").exists()
    assert surgery("bench", a, "--target", "trtexec", "--spinning", "--dry-run") == 2
    assert "--spinning is not an option of bench on target trtexec" in capsys.readouterr().err


def test_refused_batch_is_a_failed_row_and_the_run_passes(tmp_path, capsys):
    model = write_conv(tmp_path / "m.onnx")
    rc = surgery("bench", model, "--batch", "1,16", "--no-reshape", *FAST)
    out = capsys.readouterr().out
    assert rc == 0
    assert "failed [1]" in out and "[1] batch 16: batch 16 refused: the model has a static batch (x:1)" in out
    assert out.strip().splitlines()[-1].startswith("PASSED | 1/2 batch sizes measured on ort-cpu; failed: batch 16")
    record = json.loads((tmp_path / "m.ort-cpu.bench.json").read_text())
    assert record["perf"][1]["error"] and record["perf"][1]["throughput"] is None


def test_every_batch_failing_is_a_failure(tmp_path, capsys):
    model = write_conv(tmp_path / "m.onnx")
    rc = surgery("bench", model, "--batch", "4,8", "--no-reshape", *FAST)
    out = capsys.readouterr().out
    assert rc == 1
    assert out.strip().splitlines()[-1].startswith("FAILED | no batch size ran: batch 4 refused")
    assert json.loads((tmp_path / "m.ort-cpu.bench.json").read_text())["status"] == "FAILED"


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
    assert not (tmp_path / "m.ort-cpu.bench.json").exists()


def test_missing_provider_names_it_and_how_to_get_it(tmp_path, capsys):
    if ort_tool.is_available("ort-cuda"):
        pytest.skip("this onnxruntime has CUDAExecutionProvider")
    model = write_conv(tmp_path / "m.onnx")
    assert surgery("bench", model, "--target", "ort-cuda", *FAST) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "CUDAExecutionProvider" in err and "pip install onnxruntime-gpu" in err


def write_convs(path: Path, extra: int = 0) -> Path:
    """x → Conv (→ ``extra`` more Convs): a model and a slower twin."""
    w = numpy_helper.from_array(np.full((3, 3, 1, 1), 0.1, np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c0"])]
    nodes += [helper.make_node("Conv", [f"c{k}", "w"], [f"c{k + 1}"]) for k in range(extra)]
    graph = helper.make_graph(nodes, "convs", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
                              [helper.make_tensor_value_info(f"c{extra}", TensorProto.FLOAT, ["N", 3, 8, 8])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def test_several_models_are_measured_together_with_one_record_each_and_the_paired_table(tmp_path, capsys):
    a, b = write_convs(tmp_path / "a.onnx"), write_convs(tmp_path / "b.onnx", extra=2)
    rc = surgery("bench", a, b, "--batch", "1,2", "--iterations", 24, "--warmup", 1, "--threads", 1)
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "a vs b on ort-cpu: measured together (paired)" in out and "b vs a (95% CI)" in out
    assert "record a: " in out and "record b: " in out
    assert out.strip().splitlines()[-1].startswith("PASSED | b vs a (paired): ")
    ra, rb = (json.loads((tmp_path / f"{n}.ort-cpu.bench.json").read_text()) for n in "ab")
    assert ra["pairing"] == rb["pairing"] and [m["label"] for m in ra["pairing"]["models"]] == ["a", "b"]
    assert ra["pairing"]["models"][1]["record"] == str(tmp_path / "b.ort-cpu.bench.json")
    for k in range(2):
        pa, pb = ra["perf"][k], rb["perf"][k]
        assert pa["pairing"]["id"] == pb["pairing"]["id"] and pa["pairing"]["id"].startswith(ra["pairing"]["id"])
        assert pa["rounds"] == pb["rounds"] and sum(pa["rounds"]) == 24 and pa["stop"] == "iterations"
    # diff knows they were measured together
    assert surgery("diff", tmp_path / "a.ort-cpu.bench.json", tmp_path / "b.ort-cpu.bench.json", "--csv") == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["b.ort-cpu.bench_paired"] for r in rows] == ["yes", "yes"]


def test_the_same_model_twice_gets_two_records(tmp_path, capsys):
    a = write_convs(tmp_path / "a.onnx")
    assert surgery("bench", a, a, "--batch", "1", "--iterations", 12, "--warmup", 1, "--json") == 0
    data = json.loads(capsys.readouterr().out)
    paths = [m["record"] for m in data["pairing"]["models"]]
    assert len(set(paths)) == 2 and all(Path(p).is_file() for p in paths)
    assert [m["label"] for m in data["pairing"]["models"]] == ["1:a", "2:a"]
    assert data["diff"]["rows"][0]["cells"][1]["speedup"]["paired"] is True
    assert data["diff"]["min_effect"] == 0.01  # the default margin reaches the table
    assert surgery("bench", a, a, "--batch", "1", "--iterations", 12, "--warmup", 1, "--json", "--overwrite",
                   "--min-effect", 0.5) == 0
    assert json.loads(capsys.readouterr().out)["diff"]["min_effect"] == 0.5
    b = write_convs(tmp_path / "b.onnx")  # a label "1:b" followed by ":" is text, not rich's :b: emoji
    assert surgery("bench", b, b, "--batch", "1", "--iterations", 12, "--warmup", 1) == 0
    out = capsys.readouterr().out
    assert "record 1:b: " in out and "record 2:b: " in out


def test_records_benched_apart_diff_unpaired_with_this_hosts_calibration(tmp_path, capsys, monkeypatch):
    from surgery import noise
    from surgery.cli import bench as bench_cli

    a = write_convs(tmp_path / "a.onnx")
    first, second = tmp_path / "1.json", tmp_path / "2.json"
    for record in (first, second):
        assert surgery("bench", a, "--batch", "1", "--iterations", 30, "--warmup", 1, "--record", record) == 0
    capsys.readouterr()
    assert surgery("diff", first, second, "--json") == 0
    cell = json.loads(capsys.readouterr().out)["rows"][0]["cells"][1]["speedup"]
    assert cell["paired"] is False and cell["run_noise"] == noise.DEFAULT_NOISE
    # calibrate: three separate runs (their medians stubbed here), stored for this host
    medians = iter([1.0, 1.02, 0.99])
    monkeypatch.setattr(bench_cli, "_separate_run", lambda args, model, record: next(medians))
    assert surgery("bench", "--calibrate", "--runs", 3) == 0
    out = capsys.readouterr().out
    assert "run 3/3: median 0.9900 ms" in out and "PASSED | between-run noise on ort-cpu: ±" in out
    assert surgery("diff", first, second, "--json") == 0
    cell = json.loads(capsys.readouterr().out)["rows"][0]["cells"][1]["speedup"]
    assert cell["paired"] is False and cell["run_noise"] < noise.DEFAULT_NOISE and "3 runs" in cell["noise_source"]


def test_a_calibration_run_is_a_separate_bench_process_with_the_users_settings(tmp_path, monkeypatch):
    import subprocess
    import sys

    from surgery.cli import bench as bench_cli
    from surgery.cli.main import build_parser

    seen: list[list[str]] = []

    def fake_run(argv, **kwargs):
        seen.append(argv)
        return subprocess.CompletedProcess(argv, 0, stdout=json.dumps({"perf": [{"stats": {"median": 1.5}}]}),
                                           stderr="")

    monkeypatch.setattr(subprocess, "run", fake_run)
    args = build_parser().parse_args(["bench", "--calibrate", "--threads", "1", "--max-time", "2", "--spinning"])
    assert bench_cli._separate_run(args, "m.onnx", tmp_path / "r.json") == 1.5
    argv = seen[0]
    assert argv[:4] == [sys.executable, "-m", "surgery.cli.main", "bench"] and argv[4] == "m.onnx"
    assert argv[argv.index("--threads") + 1] == "1" and argv[argv.index("--max-time") + 1] == "2.0"
    assert argv[argv.index("--batch") + 1] == "1" and "--json" in argv
    assert "--spinning" in argv and "True" not in argv  # a switch, no value

    def failing(argv, **kwargs):
        return subprocess.CompletedProcess(argv, 2, stdout="", stderr="error: model not found: m.onnx\n")

    monkeypatch.setattr(subprocess, "run", failing)
    with pytest.raises(Exception, match=r"calibration run failed \(exit 2\): error: model not found"):
        bench_cli._separate_run(args, "m.onnx", tmp_path / "r.json")


@pytest.mark.parametrize("argv, message", [
    (("--threads", 100000), "--threads must be <="),
    (("--min-time", "nan"), "--min-time must be a finite number"),
    (("--max-time", "-1"), "--max-time must be a finite number"),
    (("--precision", 0), "--precision must be in (0, 1)"),
    (("--iterations", 5, "--precision", 0.02), "does not combine with --precision"),
    (("--iterations", 5, "--max-time", 2), "does not combine with --max-time"),
    (("--min-time", 5, "--max-time", 2), "longer than --max-time"),
    (("--runs", 5), "--runs counts the separate runs of --calibrate"),
])
def test_measurement_values_are_checked_in_one_line(tmp_path, capsys, argv, message):
    model = write_conv(tmp_path / "m.onnx")
    assert surgery("bench", model, *argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "m.ort-cpu.bench.json").exists()


def test_several_models_and_record_or_vendor_targets_are_refused(tmp_path, capsys):
    a, b = write_conv(tmp_path / "a.onnx"), write_conv(tmp_path / "b.onnx")
    assert surgery("bench", a, b, "--record", tmp_path / "r.json") == 2
    assert "--record names one record" in capsys.readouterr().err
    assert surgery("bench", a, b, "--target", "trtexec", "--dry-run") == 2
    assert "target trtexec measures one model per bench" in capsys.readouterr().err
    assert surgery("bench", a, "--target", "trtexec", "--precision", 0.02, "--dry-run") == 2
    assert "--precision is not an option of bench on target trtexec" in capsys.readouterr().err
    assert surgery("bench") == 2
    assert "give a MODEL" in capsys.readouterr().err
