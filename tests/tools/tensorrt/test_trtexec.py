"""trtexec: argv for every option, the T4 command, TensorRT 7 and 8 parsers, percentiles by label."""

from __future__ import annotations

import pytest
from surgery.tools.runner import ToolOutputError
from surgery.tools.tensorrt import trtexec

from surgery.errors import ToolError, UsageError


def test_every_option():
    options = trtexec.TrtexecOptions(
        onnx="m.onnx", fp16=True, int8=True, min_shapes={"x": (1, 3, 8, 8)}, opt_shapes={"x": (4, 3, 8, 8)},
        max_shapes={"x": (16, 3, 8, 8)}, shapes={"x": (4, 3, 8, 8), "y": (4, 10)}, workspace=2048,
        save_engine="m.engine", iterations=100, warm_up=500, duration=10, avg_runs=20, threads=True,
        extra=(("useCudaGraph", None), ("device", "1")))
    assert options.argv() == [
        "trtexec", "--onnx=m.onnx", "--fp16", "--int8", "--shapes=x:4x3x8x8,y:4x10", "--minShapes=x:1x3x8x8",
        "--optShapes=x:4x3x8x8", "--maxShapes=x:16x3x8x8", "--workspace=2048", "--saveEngine=m.engine",
        "--iterations=100", "--warmUp=500", "--duration=10", "--avgRuns=20", "--threads", "--useCudaGraph",
        "--device=1"]
    assert options.batch() == 4


def test_load_engine():
    assert trtexec.TrtexecOptions(load_engine="m.engine").argv() == ["trtexec", "--loadEngine=m.engine"]


@pytest.mark.parametrize("kwargs, match", [({}, "exactly one"), ({"onnx": "m", "load_engine": "e"}, "exactly one"),
                                           ({"onnx": "m", "min_shapes": "x:1x3"}, "together"),
                                           ({"onnx": "m", "iterations": 0}, "iterations"),
                                           ({"onnx": "m", "shapes": "x:1,3,8,8"}, "shape")])
def test_bad_options(kwargs, match):
    with pytest.raises(UsageError, match=match):
        trtexec.TrtexecOptions(**kwargs)


def test_t4_command_for_a_zoo_model():
    # ICNet guide: trtexec --onnx=ICNet.onnx --fp16 --shapes=image:1,3,1024,2048 --threads (its input is
    # really actual_input_1, and trtexec separates dims with x)
    options = trtexec.t4_options("icnet.onnx", {"actual_input_1": (1, 3, 1024, 2048)}, threads=True)
    assert options.argv() == ["trtexec", "--onnx=icnet.onnx", "--fp16", "--shapes=actual_input_1:1x3x1024x2048",
                              "--threads"]


@pytest.mark.parametrize("name, batch, mean, p99, fps", [
    ("icnet_trt7_bs1.log", 1, 13.8817, 14.6328, 72.0372),
    ("icnet_trt7_bs4.log", 4, 13.8078, 14.5562, 289.6913),
    ("icnet_trt7_bs16.log", 16, 13.5858, 14.2744, 1177.7175),
])
def test_icnet_guide_lines_reproduce_the_t4_column(data, name, batch, mean, p99, fps):
    record = trtexec.parse_output((data / name).read_text(), batch=batch)
    assert record.stats["mean"] == mean and record.stats["p99"] == p99
    # the guide's 1000/mean x bs (its bs16 column was computed from a mean 0.0002 ms off its quoted line)
    assert record.throughput == pytest.approx(fps, rel=2e-5)
    assert record.extra["format"] == "trt7"


def test_trt8_summary_percentiles_by_label(data):
    path = data / "trtexec_trt8_bs4.log"
    record = trtexec.parse_output(path.read_text(), source=str(path))
    assert record.effective_batch == 4  # from the echoed --shapes
    assert record.target_version == "8.6.1"
    assert record.stats["p90"] == 10.2598 and record.stats["p95"] == 10.373 and record.stats["p99"] == 10.6445
    assert record.throughput == pytest.approx(4000 / 10.1372)
    assert record.extra["qps"] == 98.9254 and record.extra["qps_x_batch"] == pytest.approx(98.9254 * 4)
    assert record.extra["sections"]["h2d"]["mean"] == 0.104687
    assert record.extra["format"] == "trt8"


def test_trt70_block_format(data):
    record = trtexec.parse_output((data / "trtexec_trt70_block.log").read_text())
    assert record.stats == {"min": 1.40723, "max": 1.86377, "mean": 1.47289, "median": 1.46729, "p99": 1.58411}
    assert record.effective_batch == 1
    assert record.extra["sections"]["host_latency"]["p99"] == 1.7337


def test_batch_from_inference_shape_lines():
    text = ("[I] Input inference shape: images=8x3x224x224\n"
            "[I] GPU Compute Time: min = 1 ms, max = 3 ms, mean = 2 ms, median = 2 ms, percentile(99%) = 3 ms\n")
    assert trtexec.parse_output(text).effective_batch == 8


@pytest.mark.parametrize("text, match", [
    ("GPU Compute Time: min = 13.2834 ms, max = 14.6467 ms, mean = 13.88", "lacks median"),
    ("GPU Compute Time: min = 13.2 ms, max = 14.6 ms, mean = 13.8 ms, median = 13.8 ms, percentile(99%) = 14",
     "lack their unit"),
    ("GPU Compute Time: min = 13.2 ms, max = 14.6 ms, mean = 13.8 ms, median = 13.8 ms, percentile(99%) = 1 ms",
     "outside"),
    ("[I] GPU Compute\n[I] min: 1.4 ms\n[I] max: 1.8 ms\n", "lacks mean"),
    ("&&&& FAILED TensorRT.trtexec # trtexec --onnx=m.onnx", "not a trtexec summary"),
])
def test_truncated_or_corrupt(text, match):
    with pytest.raises(ToolOutputError, match=match):
        trtexec.parse_output(text, batch=1)


def test_batch_must_be_known(data):
    with pytest.raises(ToolOutputError, match="batch size"):
        trtexec.parse_output((data / "icnet_trt7_bs1.log").read_text())


def test_run_with_fake_trtexec(fake_bin, data, tmp_path):
    fake_bin("trtexec", f"print(open({str(data / 'trtexec_trt8_bs4.log')!r}).read())")
    options = trtexec.TrtexecOptions(onnx="unetpp.onnx", fp16=True, shapes={"actual_input_1": (4, 3, 96, 96)})
    _run, record = trtexec.run_trtexec(options, log_path=tmp_path / "t.log")
    assert record.batch == 4 and record.settings["fp16"] is True


def test_run_failure(fake_bin):
    fake_bin("trtexec", "print('[E] Error[4]: network has dynamic inputs but no optimization profile')\n"
                        "print('&&&& FAILED TensorRT.trtexec [TensorRT v8601] # trtexec --onnx=m.onnx')\nsys.exit(1)")
    with pytest.raises(ToolError, match="exit code 1"):
        trtexec.run_trtexec(trtexec.TrtexecOptions(onnx="m.onnx"))
