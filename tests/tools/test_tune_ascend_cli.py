"""surgery/cli/tune_ascend.py: the tune --aoe / --auto-tune and bench --target ais-bench|trtexec entry points.

Lives under tests/tools to share the fake atc / aoe / ais_bench / trtexec fixtures.
"""

from __future__ import annotations

import argparse
import json
import textwrap
from pathlib import Path

import onnx
import onnx.parser
import pytest

from surgery.cli import tune_ascend
from surgery.errors import ToolNotFoundError, UsageError


@pytest.fixture
def tiny(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(tmp_path)
    model = onnx.parser.parse_model(textwrap.dedent("""
        <ir_version: 7, opset_import: ["" : 11]>
        g (float[N, 3, 8, 8] image) => (float[N, 3, 8, 8] out) { out = Relu(image) }"""))
    onnx.save(model, tmp_path / "tiny.onnx")
    return "tiny.onnx"


def tune_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("--batch", default="1")  # the tune verb defines --batch itself
    tune_ascend.add_ascend_tune_arguments(parser)
    args = parser.parse_args(list(argv))
    args.argv = ["tune", *argv]
    return args


def bench_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("--iterations", type=int)
    parser.add_argument("--json", action="store_true")
    tune_ascend.add_vendor_bench_arguments(parser)
    args = parser.parse_args(list(argv))
    args.argv = ["bench", *argv]
    return args


def test_existing_options_are_kept():
    args = tune_args("m.onnx", "--aoe", "--job-type", "2", "--batch", "1,4")
    assert (args.batch, args.job_type, args.aoe, args.auto_tune, args.loop) == ("1,4", "2", True, False, 100)


def test_tune_aoe_end_to_end(fake_ascend, tiny, capsys):
    rc = tune_ascend.run_ascend_tune(tune_args(tiny, "--aoe", "--batch", "1,4", "--soc", "Ascend310P3",
                                               "--loop", "3"))
    out = capsys.readouterr().out
    assert rc == 0, out
    assert out.strip().splitlines()[-1] == "PASSED | 4/4 rows measured, aoe on Ascend310P3"
    record = json.loads(Path("ascend-tiny/tiny.tune-aoe.json").read_text())
    assert record["target"] == "ascend-aoe" and record["tools"]["job_types"] == [1, 2]
    tuned = [p for p in record["perf"] if p["settings"]["build"] == "aoe"]
    assert tuned[0]["throughput"] == pytest.approx(625.0)
    assert tuned[0]["settings"]["bank"]["digest"] and record["extra"]["banks"][1]["batch"] == 4
    assert record["input_model"]["digest"]


def test_tune_auto_tune_dry_run(tiny, capsys):
    rc = tune_ascend.run_ascend_tune(tune_args(tiny, "--auto-tune", "--dry-run"))
    out = capsys.readouterr().out
    assert rc == 0
    assert "--auto_tune_mode=RL,GA" in out and "aoe " not in out
    assert "soc Ascend310P3 by default" in out


@pytest.mark.parametrize("argv, message", [
    (("--dry-run",), "exactly one of --aoe and --auto-tune"),
    (("--aoe", "--auto-tune"), "exactly one"),
    (("--aoe", "--job-type", "3"), "--job-type takes"),
    (("--auto-tune", "--job-type", "1"), "AOE option"),
])
def test_tune_usage_errors(tiny, argv, message):
    with pytest.raises(UsageError, match=message):
        tune_ascend.run_ascend_tune(tune_args(tiny, *argv))


def test_tune_without_tools_names_the_first_missing_one(no_tools, tiny, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ToolNotFoundError, match=r"^atc not found"):
        tune_ascend.run_ascend_tune(tune_args(tiny, "--aoe"))


FAKE_AIS_FROM_LOG = """
print(pathlib.Path(os.environ['FAKE_LOG']).read_text())
"""


def test_bench_ascend_reads_the_printed_summary(fake_ais_bench, data, tmp_path, monkeypatch):
    fake_ais_bench(FAKE_AIS_FROM_LOG)
    monkeypatch.setenv("FAKE_LOG", str(data / "ais_bench_bs16.log"))
    om = tmp_path / "nested_unet_bs16.om"
    om.write_bytes(b"om")
    [record] = tune_ascend.bench_ascend(om, loop=5, workdir=tmp_path / "w")
    assert record.batch == 16 and record.effective_batch == 16  # from the om name and the tool's throughput
    assert record.stats["p99"] == 6.5612 and record.settings["loop"] == 5


def test_bench_ascend_cli_dry_run_and_bad_input(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert tune_ascend.run_bench_ascend(bench_args("m_bs4.om", "--dry-run", "--iterations", "20")) == 0
    out = capsys.readouterr().out
    assert "python3 -m ais_bench --model m_bs4.om --output ais-bench-m_bs4/ais_bench --output_dirname m_bs4 " \
           "--batchsize 4 --loop 20 --device 0" in out
    with pytest.raises(UsageError, match=r"compiled \.om"):
        tune_ascend.run_bench_ascend(bench_args("m.onnx", "--dry-run"))


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
    records = tune_ascend.bench_trtexec(tiny, batches="1,4,32", fp16=True, workdir=tmp_path / "w")
    assert [r.batch for r in records] == [1, 4, 32]
    assert records[1].throughput == pytest.approx(4000 / 1.4)
    assert records[1].target_version == "8.6.1" and records[1].settings["fp16"] is True
    assert not records[2].ok and "OutOfMemory" in records[2].error


def test_bench_trtexec_cli(fake_bin, tiny, capsys):
    fake_bin("trtexec", FAKE_TRTEXEC)
    assert tune_ascend.run_bench_trtexec(bench_args(tiny, "--batch", "1,2", "--fp16")) == 0
    out = capsys.readouterr().out
    assert out.strip().splitlines()[-1] == "PASSED | 2/2 rows measured, on trtexec"
    record = json.loads(Path("trtexec-tiny/tiny.bench.json").read_text())
    assert [p["effective_batch"] for p in record["perf"]] == [1, 2]


def test_bench_trtexec_missing(no_tools, tiny, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ToolNotFoundError, match="TensorRT"):
        tune_ascend.bench_trtexec(tiny)
