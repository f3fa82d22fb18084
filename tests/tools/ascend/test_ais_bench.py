"""ais_bench / ais_infer: argv in both layouts, summary line and summary JSON parsers, a fake run."""

from __future__ import annotations

import json

import pytest
from surgery.tools.ascend import ais_bench
from surgery.tools.runner import ToolOutputError

from surgery.errors import UsageError


def test_argv_new_layout():
    options = ais_bench.AisBenchOptions(model="nested_unet_bs16.om", batchsize=16, loop=100, warmup_count=5, device=1,
                                        input="./prep_dataset/", output="result", output_dirname="result_bs16",
                                        outfmt="BIN", display_all_summary=True, profiler=True,
                                        extra=(("dymBatch", "16"),))
    assert options.argv() == [
        "python3", "-m", "ais_bench", "--model", "nested_unet_bs16.om", "--input", "./prep_dataset/",
        "--output", "result", "--output_dirname", "result_bs16", "--outfmt", "BIN", "--batchsize", "16",
        "--loop", "100", "--warmup_count", "5", "--device", "1", "--display_all_summary", "1", "--profiler", "1",
        "--dymBatch", "16"]
    assert str(options.summary_json_path()) == "result/result_bs16_summary.json"


def test_argv_old_ais_infer_layout_matches_the_unetpp_guide():
    # python3.7 ais_infer.py --model ./nested_unet_bs1.om --input ./prep_dataset/ --output ./ais_results
    #     --outfmt BIN --batchsize=1
    options = ais_bench.AisBenchOptions(model="./nested_unet_bs1.om", input="./prep_dataset/", output="./ais_results",
                                        outfmt="BIN", batchsize=1, layout="ais_infer", python="python3.7",
                                        script="ais_infer.py")
    assert options.argv() == ["python3.7", "ais_infer.py", "--model", "./nested_unet_bs1.om", "--input",
                              "./prep_dataset/", "--output", "./ais_results", "--outfmt", "BIN", "--batchsize", "1"]
    assert options.summary_json_path() is None  # sumary.json goes inside a timestamped folder


@pytest.mark.parametrize("kwargs, match", [({"layout": "msit"}, "layout"), ({"loop": 0}, "--loop"),
                                           ({"outfmt": "CSV"}, "outfmt"), ({"output_dirname": "x"}, "needs --output")])
def test_bad_options(kwargs, match):
    with pytest.raises(UsageError, match=match):
        ais_bench.AisBenchOptions(model="m.om", **kwargs)


def test_summary_text(data):
    record = ais_bench.parse_summary_text((data / "ais_bench_bs16.log").read_text(), source="run.log")
    assert record.effective_batch == 16  # recovered from throughput x mean / 1000
    assert record.stats == {"min": 6.3741, "max": 6.5802, "mean": 6.4387, "median": 6.4328, "p99": 6.5612}
    assert record.throughput == pytest.approx(16000 / 6.4387)
    assert record.extra["tool_throughput"] == 2484.9739
    assert record.extra["H2D_latency"]["p99"] == 0.3102
    assert record.latencies_ms == []  # the printed summary has aggregates only


def test_summary_text_rejects_a_contradicting_batch(data):
    with pytest.raises(ToolOutputError, match="imply batch 16"):
        ais_bench.parse_summary_text((data / "ais_bench_bs16.log").read_text(), batch=8)


def test_summary_text_truncated(data):
    text = (data / "ais_bench_bs16.log").read_text()
    cut = text[: text.index("throughput 1000")]
    with pytest.raises(ToolOutputError, match="throughput"):
        ais_bench.parse_summary_text(cut)
    cut = text[: text.index("median = 6.4328")]
    with pytest.raises(ToolOutputError, match="lacks median"):
        ais_bench.parse_summary_text(cut)
    with pytest.raises(ToolOutputError, match="NPU_compute_time"):
        ais_bench.parse_summary_text("[ERROR] acl init failed, ret 507033")


def test_summary_json_new_layout(data):
    path = data / "result_bs16_summary.json"
    record = ais_bench.parse_summary_json(path)
    assert (record.batch, record.effective_batch, record.iterations, record.warmup) == (16, 16, 5, 1)
    assert record.latencies_ms == [6.3741, 6.4328, 6.4102, 6.5802, 6.3962]
    assert record.stats["p99"] == 6.5612 and record.source == str(path)
    assert record.model == "nested_unet_bs16.om"
    assert record.extra["D2H_latency"]["mean"] == 0.0583


def test_summary_json_old_sumary(data):
    record = ais_bench.parse_summary_json(data / "sumary.json")
    assert record.effective_batch == 1 and record.iterations == 134
    assert record.throughput == pytest.approx(1000 / 0.5947)


@pytest.mark.parametrize("mutate, match", [
    (lambda d: d.pop("NPU_compute_time"), "not an ais_bench summary"),
    (lambda d: d["NPU_compute_time"].pop("mean"), "lacks mean"),
    (lambda d: d["NPU_compute_time"].update(mean="n/a"), "not a number"),
    (lambda d: d["NPU_compute_time"].update(mean=60.0), "outside"),
    (lambda d: d.update(npu_compute_time_list=[6.4, 6.5]), "truncated"),
    (lambda d: d.update(throughput=1234.5), "whole number"),
])
def test_summary_json_corrupt(data, tmp_path, mutate, match):
    content = json.loads((data / "result_bs16_summary.json").read_text())
    content.pop("args")
    mutate(content)
    path = tmp_path / "r_summary.json"
    path.write_text(json.dumps(content))
    with pytest.raises(ToolOutputError, match=match):
        ais_bench.parse_summary_json(path)


def test_summary_json_truncated_file(data, tmp_path):
    path = tmp_path / "r_summary.json"
    path.write_text((data / "result_bs16_summary.json").read_text()[:200])
    with pytest.raises(ToolOutputError, match="not valid JSON"):
        ais_bench.parse_summary_json(path)


FAKE = """
out = pathlib.Path(opts['output'])
out.mkdir(parents=True, exist_ok=True)
src = json.loads(pathlib.Path(os.environ['FAKE_SUMMARY']).read_text())
(out / (opts['output_dirname'] + '_summary.json')).write_text(json.dumps(src))
print(pathlib.Path(os.environ['FAKE_LOG']).read_text())
"""


def test_run_reads_the_summary_json(fake_ais_bench, data, tmp_path, monkeypatch):
    fake_ais_bench(FAKE)
    monkeypatch.setenv("FAKE_SUMMARY", str(data / "result_bs16_summary.json"))
    monkeypatch.setenv("FAKE_LOG", str(data / "ais_bench_bs16.log"))
    options = ais_bench.AisBenchOptions(model="m_bs16.om", batchsize=16, loop=5, output=str(tmp_path / "res"),
                                        output_dirname="m_bs16")
    _run, record = ais_bench.run_ais_bench(options)
    assert len(record.latencies_ms) == 5  # from the JSON, not the printed aggregates
    assert record.settings["loop"] == 5
