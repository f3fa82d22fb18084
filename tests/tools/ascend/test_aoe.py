"""AOE: argv, recipe dicts, the stdout and result-JSON parsers, a run with a fake aoe."""

from __future__ import annotations

import json

import pytest
from surgery.tools.ascend import aoe
from surgery.tools.runner import ToolOutputError

from surgery.errors import ToolError, UsageError


def test_argv_every_option():
    options = aoe.AoeOptions(model="ICNet.onnx", job_type=1, output="ICNet_bs1-aoe",
                             input_shape={"actual_input_1": (1, 3, 1024, 2048)}, input_format="NCHW",
                             out_nodes=("Resize_317:0",), log="error", precision_mode="force_fp16",
                             op_select_implmode="high_performance", soc_version="Ascend310P3", reload=True,
                             extra=(("tune_ops_file", "ops.cfg"),))
    assert options.argv() == [
        "aoe", "--framework=5", "--model=ICNet.onnx", "--job_type=1", "--output=ICNet_bs1-aoe",
        "--input_format=NCHW", "--input_shape=actual_input_1:1,3,1024,2048", "--out_nodes=Resize_317:0",
        "--soc_version=Ascend310P3", "--log=error", "--precision_mode=force_fp16",
        "--op_select_implmode=high_performance", "--tune_ops_file=ops.cfg", "--reload"]


@pytest.mark.parametrize("kwargs, match", [({"job_type": 3}, "job_type"), ({"job_type": 2, "reload": True}, "reload"),
                                           ({"job_type": 1, "log": "loud"}, "--log")])
def test_bad_options(kwargs, match):
    with pytest.raises(UsageError, match=match):
        aoe.AoeOptions(model="m.onnx", **kwargs)


def test_recipe_dict_skips_experiment_keys():
    options = aoe.aoe_options("m.onnx", 2, {"job_type": 2, "log": "error", "op_select_implmode": "high_performance",
                                            "tune_bank_path": "/x", "auto_tune_mode": "RL,GA"},
                              input_shape={"x": (1, 3)})
    assert options.argv() == ["aoe", "--framework=5", "--model=m.onnx", "--job_type=2", "--input_shape=x:1,3",
                              "--log=error", "--op_select_implmode=high_performance"]


def test_parse_output(data):
    found = aoe.parse_aoe_output((data / "aoe_icnet_job2.log").read_text())
    assert found == [aoe.AoeImprovement("OPAT", 1.32)]
    assert aoe.parse_aoe_output("Performance improved by -3.5%") == [aoe.AoeImprovement(None, -3.5)]


def test_parse_result_json(data):
    [result] = aoe.parse_aoe_result_json(data / "aoe_result_opat_20220711155311_pid41873.json")
    assert (result.job, result.baseline_ms, result.result_ms, result.improvement) == ("OPAT", 48.3201, 47.6912, 1.32)
    assert result.tuning_time_s == 10342 and result.tuning_name == "ICNet_bs1-aoe"
    assert result.operators[0]["op_type"] == "Conv2D"
    base, tuned = result.perf_records(batch=1)
    assert base.settings == {"aoe_job": "OPAT", "tuned": False} and tuned.settings["tuned"] is True
    assert tuned.throughput == pytest.approx(1000 / 47.6912)
    assert result.perf_records()[0].throughput is None  # batch unknown: no number made up


def test_improvement_computed_when_absent(tmp_path):
    path = tmp_path / "aoe_result_sgat_1_pid2.json"
    path.write_text(json.dumps({"SGAT": {"model_baseline_performance(ms)": 10.0, "model_result_performance(ms)": 8.0}}))
    [result] = aoe.parse_aoe_result_json(path)
    assert result.improvement == pytest.approx(25.0)


@pytest.mark.parametrize("text, match", [
    ('{"basic": {"tuning_name": "x"}, "OPAT": {"model_baseline_perf', "not valid JSON"),
    ('{"basic": {}}', "neither an SGAT nor an OPAT"),
    ('{"OPAT": {"model_baseline_performance(ms)": "fast"}}', "not a number"),
    ('{"OPAT": {"model_result_performance(ms)": -1}}', "not positive"),
    ('{"OPAT": {"tuning": 1}}', "no model performance"),
])
def test_corrupt_result_json(tmp_path, text, match):
    path = tmp_path / "aoe_result_opat_1.json"
    path.write_text(text)
    with pytest.raises(ToolOutputError, match=match):
        aoe.parse_aoe_result_json(path)


FAKE_AOE = """
bank = pathlib.Path(os.environ['TUNE_BANK_PATH'])
(bank / 'op').mkdir(parents=True, exist_ok=True)
(bank / 'op' / 'Conv2D.json').write_text('{"tiling": 7}')
pathlib.Path('aoe_result_opat_20240101_pid1.json').write_text(json.dumps(
    {"OPAT": {"model_baseline_performance(ms)": 2.0, "model_result_performance(ms)": 1.6}}))
print('OPAT process finished. Performance improved by 25.00%')
print('Aoe process finished')
"""


def test_run_aoe_fills_the_bank_and_reads_results(fake_bin, tmp_path):
    fake_bin("aoe", FAKE_AOE)
    bank = tmp_path / "bank"
    run = aoe.run_aoe(aoe.AoeOptions(model="m.onnx", job_type=2), bank=bank, cwd=tmp_path)
    assert (bank / "op" / "Conv2D.json").is_file()
    assert run.improvements == (aoe.AoeImprovement("OPAT", 25.0),)
    assert run.results[0].improvement == pytest.approx(25.0)


def test_run_aoe_without_finish_line_fails(fake_bin, tmp_path):
    fake_bin("aoe", "print('[INFO] Aoe start working now'); print('tuning op 3/120')")
    with pytest.raises(ToolError, match="success line"):
        aoe.run_aoe(aoe.AoeOptions(model="m.onnx", job_type=1), bank=tmp_path / "b", cwd=tmp_path)
