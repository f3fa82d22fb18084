"""tools/tensorrt/target.py: trtexec per batch size through a typed request and through the CLI."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import onnx
import onnx.parser
import pytest
from surgery.tools.tensorrt.target import TrtexecTarget

from surgery.cli.main import main
from surgery.errors import ToolNotFoundError
from surgery.targets import Events, ModelSpec, Request


@pytest.fixture
def tiny(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(tmp_path)
    model = onnx.parser.parse_model(textwrap.dedent("""
        <ir_version: 7, opset_import: ["" : 11]>
        g (float[N, 3, 8, 8] image) => (float[N, 3, 8, 8] out) { out = Relu(image) }"""))
    onnx.save(model, tmp_path / "tiny.onnx")
    return "tiny.onnx"


FAKE_TRTEXEC = """
shapes = opts['shapes']
batch = int(shapes.split(':')[1].split('x')[0])
if batch == 32:
    print('[E] Error[2]: [virtualMemoryBuffer.cpp::resizePhysical::140] Error Code 2: OutOfMemory')
    print('&&&& FAILED TensorRT.trtexec [TensorRT v8601] # trtexec ' + ' '.join(argv))
    sys.exit(1)
mean = 1.0 + batch / 10
print('&&&& RUNNING TensorRT.trtexec [TensorRT v8601] # trtexec ' + ' '.join(argv))
print('[I] === Performance summary ===')
print('[I] Throughput: %.4f qps' % (1000 / mean))
print('[I] GPU Compute Time: min = %.4f ms, max = %.4f ms, mean = %.4f ms, median = %.4f ms, '
      'percentile(90%%) = %.4f ms, percentile(95%%) = %.4f ms, percentile(99%%) = %.4f ms'
      % (mean - 0.1, mean + 0.2, mean, mean, mean + 0.1, mean + 0.15, mean + 0.19))
print('&&&& PASSED TensorRT.trtexec [TensorRT v8601] # trtexec ' + ' '.join(argv))
"""


def test_bench_trtexec_per_batch_with_a_failed_one(fake_bin, tiny, tmp_path):
    fake_bin("trtexec", FAKE_TRTEXEC)
    records = TrtexecTarget().bench(Request(ModelSpec(tiny), batches=(1, 4, 32), settings={"fp16": True},
                                            workdir=str(tmp_path / "w")), Events()).records
    assert [r.batch for r in records] == [1, 4, 32]
    assert records[1].throughput == pytest.approx(4000 / 1.4)
    assert records[1].target_version == "8.6.1" and records[1].settings["fp16"] is True
    assert not records[2].ok and "OutOfMemory" in records[2].error


def test_bench_trtexec_cli(fake_bin, tiny, capsys):
    fake_bin("trtexec", FAKE_TRTEXEC)
    assert main(["bench", tiny, "--target", "trtexec", "--batch", "1,2", "--fp16"]) == 0
    out = capsys.readouterr().out
    last = out.strip().splitlines()[-1]
    assert last.startswith("PASSED | 2/2 batch sizes measured on trtexec; best 1,666.7 samples/s at batch 2")
    record = json.loads(Path("trtexec-tiny/tiny.trtexec.bench.json").read_text())
    assert [p["effective_batch"] for p in record["perf"]] == [1, 2]


def test_bench_trtexec_missing(no_tools, tiny, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ToolNotFoundError, match="TensorRT"):
        TrtexecTarget().bench(Request(ModelSpec(tiny)), Events())


def test_options_reach_the_command_or_are_refused(tiny, capsys):
    assert main(["bench", tiny, "--target", "trtexec", "--batch", "2", "--min-time", "2.5", "--dry-run"]) == 0
    assert "--duration=3" in capsys.readouterr().out
    assert main(["bench", tiny, "--target", "trtexec", "--warmup", "3", "--dry-run"]) == 2
    assert "--warmup is not an option of bench on target trtexec" in capsys.readouterr().err
    assert main(["bench", tiny, "--target", "trtexec", "--seed", "3", "--dry-run"]) == 2
    assert "--seed is not an option of bench on target trtexec" in capsys.readouterr().err
