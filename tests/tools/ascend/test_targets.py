"""tools/ascend/targets.py: the atc target (tune --aoe / --auto-tune) and the ais-bench target, through the CLI
and through typed requests."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import onnx
import onnx.parser
import pytest
from surgery.tools.ascend.targets import AisBenchTarget, AtcTarget

from surgery.cli.main import main
from surgery.errors import ToolNotFoundError, UsageError
from surgery.targets import BENCH, TUNE, Events, ModelSpec, Request


@pytest.fixture
def tiny(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(tmp_path)
    model = onnx.parser.parse_model(textwrap.dedent("""
        <ir_version: 7, opset_import: ["" : 11]>
        g (float[N, 3, 8, 8] image) => (float[N, 3, 8, 8] out) { out = Relu(image) }"""))
    onnx.save(model, tmp_path / "tiny.onnx")
    return "tiny.onnx"


def tune(*argv: str) -> int:
    return main(["tune", *argv])


def test_tune_aoe_end_to_end(fake_ascend, tiny, capsys):
    rc = tune(tiny, "--aoe", "--batch", "1,4", "--soc", "Ascend310P3", "--loop", "3")
    out = capsys.readouterr().out
    assert rc == 0, out
    assert out.strip().splitlines()[-1] == ("PASSED | 4/4 rows measured aoe on Ascend310P3; "
                                            "best 2,500.0 samples/s at batch 4")
    record = json.loads(Path("ascend-tiny/tiny.tune-aoe.json").read_text())
    assert record["target"] == "ascend-aoe" and record["tools"]["job_types"] == [1, 2]
    tuned = [p for p in record["perf"] if p["settings"]["build"] == "aoe"]
    assert tuned[0]["throughput"] == pytest.approx(625.0)
    assert tuned[0]["settings"]["bank"]["digest"] and record["extra"]["banks"][1]["batch"] == 4
    assert record["input_model"]["digest"]


def test_tune_auto_tune_dry_run(tiny, capsys):
    rc = tune(tiny, "--auto-tune", "--dry-run")
    out = capsys.readouterr().out
    assert rc == 0
    assert "--auto_tune_mode=RL,GA" in out and "aoe " not in out
    assert "soc Ascend310P3 by default" in out


@pytest.mark.parametrize("argv, message", [
    (("--dry-run",), "target ort-cpu runs in-process"),
    (("--aoe", "--job-type", "3"), "--job-type takes"),
    (("--auto-tune", "--job-type", "1"), "AOE option"),
    (("--aoe", "--soc", "bogus"), "not an Ascend chip"),
    (("--aoe", "--threads", "2"), "--threads is not an option of tune on target atc"),
    (("--aoe", "--checkpoint", "w.pth"), "--checkpoint applies to zoo models only"),
    (("--job-type", "1"), "--job-type is not an option of tune on target ort-cpu"),
])
def test_tune_usage_errors(tiny, argv, message, capsys):
    assert tune(tiny, *argv) == 2
    assert message in capsys.readouterr().err


def test_aoe_and_auto_tune_exclude_each_other(tiny, capsys):
    with pytest.raises(SystemExit):
        tune(tiny, "--aoe", "--auto-tune")
    assert "not allowed with argument" in capsys.readouterr().err


def test_tune_without_tools_names_the_first_missing_one(no_tools, tiny, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ToolNotFoundError, match=r"^atc not found"):
        AtcTarget().tune(Request(ModelSpec(tiny), settings={"method": "aoe"}), Events())


FAKE_AIS_FROM_LOG = """
print(pathlib.Path(os.environ['FAKE_LOG']).read_text())
"""


def test_bench_ascend_reads_the_printed_summary(fake_ais_bench, data, tmp_path, monkeypatch):
    fake_ais_bench(FAKE_AIS_FROM_LOG)
    monkeypatch.setenv("FAKE_LOG", str(data / "ais_bench_bs16.log"))
    om = tmp_path / "nested_unet_bs16.om"
    om.write_bytes(b"om")
    outcome = AisBenchTarget().bench(Request(ModelSpec(str(om)), settings={"loop": 5}, workdir=str(tmp_path / "w")),
                                     Events())
    [record] = outcome.records
    assert record.batch == 16 and record.effective_batch == 16  # from the om name and the tool's throughput
    assert record.stats["p99"] == 6.5612 and record.settings["loop"] == 5


def test_bench_ascend_cli_dry_run_and_bad_input(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["bench", "m_bs4.om", "--target", "ais-bench", "--dry-run", "--iterations", "20"]) == 0
    out = capsys.readouterr().out
    assert "python3 -m ais_bench --model m_bs4.om --output ais-bench-m_bs4/ais_bench --output_dirname m_bs4 " \
           "--batchsize 4 --loop 20 --device 0" in out
    with pytest.raises(UsageError, match=r"compiled \.om"):
        AisBenchTarget().plan(BENCH, Request(ModelSpec("m.onnx")))
    with pytest.raises(UsageError, match="one batch size"):
        AisBenchTarget().plan(BENCH, Request(ModelSpec("m.om"), batches=(1, 4)))
    assert main(["bench", "m_bs4.om", "--target", "ais-bench", "--dry-run", "--threads", "2"]) == 2
    assert "--threads is not an option of bench on target ais-bench" in capsys.readouterr().err


def test_the_tune_request_reaches_the_plan(tiny):
    plan = AtcTarget().plan(TUNE, Request(ModelSpec(tiny), batches=(2,), settings={
        "method": "aoe", "job_type": "2", "soc": "Ascend310B1", "loop": 7, "device": 3}, workdir="w"))
    text = plan.render()
    assert "--job_type=2" in text and "--job_type=1" not in text and "--soc_version=Ascend310B1" in text
    assert "--loop 7 --device 3" in text and "--input_shape=image:2,3,8,8" in text


