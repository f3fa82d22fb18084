"""AMCT: argv as the guides type it, the run contract with a fake amct_onnx, the result files, compile --int8."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np
import onnx
import pytest
from int8_nets import conv_net
from surgery.tools.ascend import amct
from surgery.tools.plan import run_step
from surgery.tools.runner import ToolOutputError

from surgery.cli.main import main
from surgery.errors import ToolError, UsageError

# the ModelZoo ResNet101 guide's command (ACL_PyTorch ResNet101 README, 3.2 "ONNX模型量化")
GUIDE = ('amct_onnx calibration --model resnet101.onnx --save_path ./result/resnet101 '
         '--input_shape "image:32,3,224,224" --data_dir "./calibration_bin" --data_types "float32"')

# a fake amct_onnx: argparse-style "--flag value" pairs; writes the three results and logs as AMCT does
FAKE_AMCT = """
flags = dict(zip(argv[1::2], argv[2::2]))
calls = pathlib.Path(os.environ.get('FAKE_CALLS', 'calls.txt'))
with calls.open('a') as f:
    f.write('amct_onnx ' + ' '.join(argv) + '\\n')
assert argv[0] == 'calibration', argv
mode = os.environ.get('FAKE_AMCT_MODE', 'ok')
data = sorted(pathlib.Path(flags['--data_dir'].split(';')[0]).glob('*.bin'))
assert len(data) >= int(flags.get('--batch_num', '1')), 'not enough calibration batches'
print('INFO - [AMCT]:[AMCT]: Start calibration with %d batches' % int(flags.get('--batch_num', '1')))
if mode == 'error0':
    print('ERROR - [AMCT]:[QuantizeTool]: Layer Conv_0 does not support quantization')
    sys.exit(0)
if mode == 'fail':
    print('ERROR - [AMCT]:[AMCT]: Calibration failed')
    sys.exit(1)
prefix = pathlib.Path(flags['--save_path'])
prefix.parent.mkdir(parents=True, exist_ok=True)
if mode != 'nodeploy':
    pathlib.Path(str(prefix) + '_deploy_model.onnx').write_bytes(
        pathlib.Path(flags['--model']).read_bytes())
    print('INFO - [AMCT]:[Utils]: The model file is saved in %s_deploy_model.onnx' % prefix)
pathlib.Path(str(prefix) + '_fake_quant_model.onnx').write_bytes(b'fake')
print('INFO - [AMCT]:[Utils]: The model file is saved in %s_fake_quant_model.onnx' % prefix)
pathlib.Path(str(prefix) + '_quant.json').write_text('{}')
"""


def test_argv_reproduces_the_guide_command():
    options = amct.AmctOptions(model="resnet101.onnx", save_path="./result/resnet101",
                               input_shape={"image": (32, 3, 224, 224)}, data_dir="./calibration_bin",
                               data_types="float32")
    assert options.argv() == shlex.split(GUIDE)
    assert options.deploy_model == "./result/resnet101_deploy_model.onnx"
    assert options.fake_quant_model == "./result/resnet101_fake_quant_model.onnx"
    assert options.quant_json == "./result/resnet101_quant.json"


def test_every_option_and_several_inputs():
    options = amct.AmctOptions(model="m.onnx", save_path="out/m", input_shape="x1:1,1;x2:1,2",
                               data_dir=("d/x1", "d/x2"), data_types=("float32", "int64"),
                               calibration_config="quant.cfg", evaluator="evaluator.py", amct="/opt/amct_onnx")
    assert options.argv() == ["/opt/amct_onnx", "calibration", "--model", "m.onnx", "--save_path", "out/m",
                              "--input_shape", "x1:1,1;x2:1,2", "--data_dir", "d/x1;d/x2",
                              "--data_types", "float32;int64", "--calibration_config", "quant.cfg",
                              "--evaluator", "evaluator.py"]
    assert options.shapes() == {"x1": (1, 1), "x2": (1, 2)}
    assert amct.AmctOptions(model="m.onnx", save_path="o", input_shape={"x": (1, 3)}, data_dir="d",
                            batch_num=4).argv()[-2:] == ["--batch_num", "4"]


@pytest.mark.parametrize(("bad", "match"), [
    ({"save_path": "out/"}, "prefix"), ({"save_path": "out/m.onnx"}, "prefix"),
    ({"batch_num": 0}, "positive"), ({"batch_num": 2, "calibration_config": "q.cfg"}, "cannot be combined"),
    ({"data_types": "float8"}, "not one of"), ({"data_dir": "a;b"}, "2 entries for 1 inputs"),
    ({"input_shape": None}, "needs --input_shape and --data_dir"),
])
def test_bad_options_are_usage_errors(bad, match):
    kwargs = {"model": "m.onnx", "save_path": "out/m", "input_shape": {"x": (1, 3, 8, 8)}, "data_dir": "d", **bad}
    with pytest.raises(UsageError, match=match):
        amct.AmctOptions(**kwargs)


@pytest.fixture
def calib_setup(tmp_path, fake_bin, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FAKE_CALLS", str(tmp_path / "calls.txt"))
    fake_bin("amct_onnx", FAKE_AMCT)
    model = tmp_path / "m.onnx"
    onnx.save(conv_net(), model)
    data = tmp_path / "bins"
    data.mkdir()
    for k in range(2):
        np.zeros((1, 3, 16, 16), np.float32).tofile(data / f"b{k}.bin")
    options = amct.AmctOptions(model=str(model), save_path="result/m", input_shape={"x": (1, 3, 16, 16)},
                               data_dir=str(data), data_types="float32", batch_num=2)
    return options


def test_a_calibration_run_and_its_result(calib_setup):
    step = amct.step(calib_setup, "calibrate")
    assert step.requires == "amct_onnx" and step.makedirs == ("result",)
    run = run_step(step)
    result = amct.read_result(run, calib_setup)
    assert result.deploy_model == Path("result/m_deploy_model.onnx")
    assert result.fake_quant_model == Path("result/m_fake_quant_model.onnx")
    assert result.quant_json == Path("result/m_quant.json")
    assert result.saved == ("result/m_deploy_model.onnx", "result/m_fake_quant_model.onnx")


@pytest.mark.parametrize(("mode", "match"), [
    ("fail", r"amct_onnx failed \(exit code 1\)"),
    ("error0", "exited 0 but reported a failure"),
    ("nodeploy", "reported success but wrote no result/m_deploy_model.onnx"),
])
def test_failures_are_tool_errors(calib_setup, monkeypatch, mode, match):
    monkeypatch.setenv("FAKE_AMCT_MODE", mode)
    with pytest.raises(ToolError, match=match):
        run_step(amct.step(calib_setup, "calibrate"))


def test_read_result_without_a_deploy_model(tmp_path):
    options = amct.AmctOptions(model="m.onnx", save_path=str(tmp_path / "m"), input_shape={"x": (1,)}, data_dir="d")
    with pytest.raises(ToolOutputError, match="AMCT wrote no deploy model"):
        amct.read_result("INFO - [AMCT]:[Utils]: The model file is saved in elsewhere_deploy_model.onnx", options)


def test_missing_amct_names_it(tmp_path, no_tools, monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    options = amct.AmctOptions(model="m.onnx", save_path="o/m", input_shape={"x": (1,)}, data_dir="d")
    from surgery.errors import ToolNotFoundError

    with pytest.raises(ToolNotFoundError, match=r"amct_onnx not found.*pip install the amct_onnx wheel"):
        run_step(amct.step(options, "calibrate"))


# --- surgery compile --int8: AMCT calibration, then ATC of the deploy model


def surgery(*argv: object) -> int:
    return main([str(a) for a in argv])


def test_compile_int8_dry_run_plans_amct_then_atc(tmp_path, monkeypatch, capsys, no_tools):
    monkeypatch.chdir(tmp_path)
    onnx.save(conv_net(), tmp_path / "net.onnx")
    rc = surgery("compile", "net.onnx", "--int8", "--calib-samples", 3, "--batch", "1,4", "-o", "out", "--dry-run")
    out = capsys.readouterr().out
    assert rc == 0
    lines = [line for line in out.splitlines() if line and not line.startswith("#")]
    assert lines[0] == ("mkdir -p out/amct && amct_onnx calibration --model net.onnx --save_path out/amct/net "
                        "--input_shape x:1,3,16,16 --data_dir out/amct/calibration --data_types float32 "
                        "--batch_num 3")
    assert lines[1].startswith("atc --framework=5 --model=out/amct/net_deploy_model.onnx --output=out/net_bs1 ")
    assert "--input_shape=x:4,3,16,16" in lines[2]
    bins = sorted((tmp_path / "out" / "amct" / "calibration").glob("*.bin"))
    assert len(bins) == 3 and all(b.stat().st_size == 3 * 16 * 16 * 4 for b in bins)
    values = np.fromfile(bins[0], np.float32)
    assert values.min() < -1 and values.max() > 1  # ImageNet-normalised, not [0, 1) noise
    assert "generated batches" in out and "not real data" in out


def test_calib_without_int8_is_refused(tmp_path, monkeypatch, capsys, no_tools):
    monkeypatch.chdir(tmp_path)
    onnx.save(conv_net(), tmp_path / "net.onnx")
    assert surgery("compile", "net.onnx", "--calib", "bins", "--dry-run") == 2
    assert "--calib and --calib-samples are for --int8" in capsys.readouterr().err


def test_compile_int8_runs_amct_then_atc(tmp_path, monkeypatch, capsys, fake_bin, fake_ascend):
    monkeypatch.chdir(tmp_path)
    fake_bin("amct_onnx", FAKE_AMCT)  # beside fake_ascend's atc, which logs to the same calls file
    onnx.save(conv_net(), tmp_path / "net.onnx")
    rc = surgery("compile", "net.onnx", "--int8", "--batch", "1", "-o", "out", "--record", "rec.json")
    out = capsys.readouterr().out
    assert rc == 0, out
    calls = (tmp_path / "calls.txt").read_text().splitlines()
    assert calls[0].startswith("amct_onnx calibration --model net.onnx --save_path out/amct/net ")
    assert calls[1].startswith("atc --framework=5 --model=out/amct/net_deploy_model.onnx --output=out/net_bs1 ")
    assert (tmp_path / "out" / "net_bs1.om").is_file()
    record = json.loads((tmp_path / "rec.json").read_text())
    assert record["status"] == "PASSED"


def test_calibration_step_for_two_inputs_writes_one_folder_each(tmp_path):
    from onnx import TensorProto, helper

    from surgery.targets.model import TargetModel

    graph = helper.make_graph([helper.make_node("Add", ["a", "b"], ["c"])], "two",
                              [helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N", 4]),
                               helper.make_tensor_value_info("b", TensorProto.FLOAT, ["N", 4])],
                              [helper.make_tensor_value_info("c", TensorProto.FLOAT, ["N", 4])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), tmp_path / "two.onnx")
    model = TargetModel(name="two", onnx=tmp_path / "two.onnx", batches=(1, 4),
                        shapes={1: {"a": (1, 4), "b": (1, 4)}, 4: {"a": (4, 4), "b": (4, 4)}})
    int8 = amct.calibration_step(model, tmp_path / "out", samples=2)
    folder = tmp_path / "out" / "amct" / "calibration"
    assert int8.options.data_dir == (str(folder / "a"), str(folder / "b"))
    assert int8.options.argv()[-6:] == ["--data_dir", f"{folder / 'a'};{folder / 'b'}", "--data_types",
                                        "float32;float32", "--batch_num", "2"]
    assert len(list((folder / "a").glob("*.bin"))) == 2 and len(list((folder / "b").glob("*.bin"))) == 2
    stamp = (folder / "a" / "calib_00000.bin").stat().st_mtime_ns
    amct.calibration_step(model, tmp_path / "out", samples=2)  # the same data: kept, not written again
    assert (folder / "a" / "calib_00000.bin").stat().st_mtime_ns == stamp
    with pytest.raises(UsageError, match="is not a folder"):
        amct.calibration_step(model, tmp_path / "out", data=str(tmp_path / "nope"))
