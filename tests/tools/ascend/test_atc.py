"""ATC: argv for every option, recipe dicts, the run contract with a fake atc, the om JSON op count."""

from __future__ import annotations

import json

import pytest
from surgery.tools.ascend import atc
from surgery.tools.runner import ToolOutputError

from surgery.errors import ToolError, UsageError

FAKE_ATC = """
log = pathlib.Path(os.environ['FAKE_ATC_LOG']).read_text()
print(log, end='')
if 'run success' in log:
    pathlib.Path(opts['output'] + '.om').write_bytes(b'om')
sys.exit(int(os.environ.get('FAKE_ATC_RC', '0')))
"""


def test_minimal_argv():
    options = atc.AtcOptions(model="m.onnx", output="m_bs1", soc_version="Ascend310P3")
    assert options.argv() == ["atc", "--framework=5", "--model=m.onnx", "--output=m_bs1", "--input_format=NCHW",
                              "--soc_version=Ascend310P3"]
    assert options.om_path == "m_bs1.om"


def test_every_option_is_rendered():
    options = atc.AtcOptions(
        model="m.onnx", output="out/m", soc_version="Ascend310", input_format="ND",
        input_shape={"x": (-1, 3, 224, 224), "y": ("N", 10)}, out_nodes=("Resize_317:0", "Conv_1:1"),
        log="debug", precision_mode="allow_mix_precision", op_select_implmode="high_performance",
        optypelist_for_implmode=("ResizeBilinearV2", "Gelu"), fusion_switch_file="fusion.json",
        insert_op_conf="aipp.cfg", enable_small_channel=1, dynamic_batch_size=(1, 2, 4, 8),
        auto_tune_mode="RL,GA", output_type="FP16", keep_dtype="keep.cfg",
        extra=(("export_compile_stat", "1"),), atc="/opt/atc")
    assert options.argv() == [
        "/opt/atc", "--framework=5", "--model=m.onnx", "--output=out/m", "--input_format=ND",
        "--input_shape=x:-1,3,224,224;y:-1,10", "--out_nodes=Resize_317:0;Conv_1:1",
        "--dynamic_batch_size=1,2,4,8", "--log=debug", "--soc_version=Ascend310",
        "--precision_mode=allow_mix_precision", "--op_select_implmode=high_performance",
        "--optypelist_for_implmode=ResizeBilinearV2,Gelu", "--fusion_switch_file=fusion.json",
        "--insert_op_conf=aipp.cfg", "--enable_small_channel=1", "--output_type=FP16", "--keep_dtype=keep.cfg",
        "--auto_tune_mode=RL,GA", "--export_compile_stat=1"]


@pytest.mark.parametrize("bad, match", [
    ({"soc_version": ""}, "soc"),
    ({"log": "verbose"}, "--log"),
    ({"precision_mode": "fp8"}, "precision_mode"),
    ({"op_select_implmode": "fast"}, "op_select_implmode"),
    ({"optypelist_for_implmode": ("Gelu",)}, "needs op_select_implmode"),
    ({"auto_tune_mode": "RL,XX"}, "auto_tune_mode"),
    ({"dynamic_batch_size": (0, 4)}, "dynamic_batch_size"),
    ({"output": "m.om"}, "prefix"),
])
def test_bad_options_are_usage_errors(bad, match):
    kwargs = {"model": "m.onnx", "output": "m", "soc_version": "Ascend310P3", **bad}
    with pytest.raises(UsageError, match=match):
        atc.AtcOptions(**kwargs)


def test_input_shape_round_trip_tolerates_guide_spaces():
    assert atc.parse_input_shape("actual_input_1: 1,3,1024,2048") == {"actual_input_1": (1, 3, 1024, 2048)}
    assert atc.format_input_shape({"a": (1, 3), "b": (2,)}) == "a:1,3;b:2"
    with pytest.raises(UsageError):
        atc.parse_input_shape("x:1,three")


def test_recipe_dict_maps_option_names_and_keeps_unknown_ones_in_order():
    options = atc.atc_options("m.onnx", "m_bs4", "Ascend310P3",
                              {"input_format": "NCHW", "out_nodes": "Resize_317:0", "log": "debug",
                               "soc_version": "Ascend310", "--op-select-implmode": "high_performance",
                               "optypelist_for_implmode": "Resize,Gelu", "net_optimize_enable": 1},
                              input_shape={"x": (4, 3, 8, 8)})
    assert options.soc_version == "Ascend310P3"  # the caller's soc wins over the recipe's default
    assert options.out_nodes == ("Resize_317:0",)
    assert options.optypelist_for_implmode == ("Resize", "Gelu")
    assert options.argv()[-1] == "--net_optimize_enable=1"


def test_om_json_argv():
    assert atc.om_json_argv("m.om", "m.json") == ["atc", "--mode=1", "--om=m.om", "--json=m.json"]


def test_warnings_are_collected(data):
    found = atc.warnings((data / "atc_success.log").read_text())
    assert found == ["W11001: Op [Slice_29] does not hit the high-priority operator information library, "
                     "which might result in compromised performance."]


def test_run_atc_success_writes_om(fake_bin, data, tmp_path, monkeypatch):
    fake_bin("atc", FAKE_ATC)
    monkeypatch.setenv("FAKE_ATC_LOG", str(data / "atc_success.log"))
    options = atc.AtcOptions(model="m.onnx", output="m_bs1", soc_version="Ascend310P3")
    result = atc.run_atc(options, cwd=tmp_path, log_path=tmp_path / "atc.log")
    assert result.om_path == tmp_path / "m_bs1.om"
    assert result.warnings[0].startswith("W11001")


@pytest.mark.parametrize("log, rc, code", [("atc_failure_out_nodes.log", 255, "E10016"),
                                           ("atc_failure_no_kernel.log", 1, "EZ3003"),
                                           ("atc_failure_no_kernel.log", 0, "EZ3003")])
def test_run_atc_failure_is_typed(fake_bin, data, tmp_path, monkeypatch, log, rc, code):
    fake_bin("atc", FAKE_ATC)
    monkeypatch.setenv("FAKE_ATC_LOG", str(data / log))
    monkeypatch.setenv("FAKE_ATC_RC", str(rc))
    with pytest.raises(ToolError) as info:
        atc.run_atc(atc.AtcOptions(model="m.onnx", output="m_bs1", soc_version="Ascend310P3"), cwd=tmp_path)
    assert info.value.code == code
    assert "ATC run failed" in info.value.log_tail


def test_run_atc_success_line_without_om_is_a_failure(fake_bin, tmp_path):
    fake_bin("atc", "print('ATC run success, welcome to the next use.')")
    with pytest.raises(ToolError, match="reported success but wrote no"):
        atc.run_atc(atc.AtcOptions(model="m.onnx", output="m_bs1", soc_version="Ascend310P3"), cwd=tmp_path)


def test_count_om_ops(tmp_path):
    dump = tmp_path / "m.json"
    dump.write_text(json.dumps({"graph": [{"op": [{"name": "a", "type": "TransData"}, {"name": "b", "type": "Conv2D"},
                                                  {"name": "c", "type": "TransData"}]}]}))
    assert atc.count_om_ops(dump) == {"TransData": 2, "Conv2D": 1}
    dump.write_text('{"graph": [{"op": [{"name": "a", "ty')
    with pytest.raises(ToolOutputError, match="cannot read"):
        atc.count_om_ops(dump)
