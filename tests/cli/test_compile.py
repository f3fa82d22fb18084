"""surgery compile MODEL --target atc: dry-run plans, a missing atc, fake atc successes and failures."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import onnx
import onnx.parser
import pytest

from surgery.cli.main import main

ATC_SUCCESS = (Path(__file__).parents[1] / "tools" / "data" / "atc_success.log").read_text()
FAKE_ATC = f"""#!/usr/bin/env python3
import os, pathlib, sys
opts = dict(a[2:].split('=', 1) for a in sys.argv[1:] if a.startswith('--') and '=' in a)
print('ATC start working now, please wait for a moment.')
if opts['input_shape'].split(':')[1].startswith('4,'):
    print("ATC run failed, Please check the detail log, Try 'atc --help' for more information")
    print("E10016: Opname [Resize_317] specified in [--out_nodes] is not found in the model")
    sys.exit(255)
pathlib.Path(opts['output'] + '.om').write_bytes(b'om')
print({ATC_SUCCESS!r})
"""


def surgery(*argv: object) -> int:
    return main([str(a) for a in argv])


@pytest.fixture
def tiny(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ASCEND_TOOLKIT_HOME", str(tmp_path / "no-cann"))
    monkeypatch.delenv("ASCEND_HOME_PATH", raising=False)
    model = onnx.parser.parse_model(textwrap.dedent("""
        <ir_version: 7, opset_import: ["" : 11]>
        g (float[N, 3, 8, 8] image) => (float[N, 3, 8, 8] out) { out = Relu(image) }"""))
    path = tmp_path / "tiny.onnx"
    onnx.save(model, path)
    return path


@pytest.fixture
def fake_atc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bindir = tmp_path / "fakebin"
    bindir.mkdir()
    atc = bindir / "atc"
    atc.write_text(FAKE_ATC)
    atc.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    return atc


def test_dry_run_prints_one_atc_command_per_batch(tiny, capsys):
    rc = surgery("compile", tiny.name, "--soc", "Ascend310P3", "--batch", "1,4", "--dry-run")
    out = capsys.readouterr().out
    assert rc == 0
    commands = [line for line in out.splitlines() if line.startswith("atc ")]
    assert commands == [
        "atc --framework=5 --model=tiny.onnx --output=atc-tiny/tiny_bs1 --input_format=NCHW "
        "--input_shape=image:1,3,8,8 --soc_version=Ascend310P3",
        "atc --framework=5 --model=tiny.onnx --output=atc-tiny/tiny_bs4 --input_format=NCHW "
        "--input_shape=image:4,3,8,8 --soc_version=Ascend310P3"]
    assert out.strip().splitlines()[-1] == "PASSED | dry run: 2 commands planned for compile; nothing run"
    assert not Path("atc-tiny").exists()


def test_dry_run_json_with_options_and_bank(tiny, capsys):
    rc = surgery("compile", tiny, "--soc", "Ascend310", "--atc-option", "precision_mode=allow_mix_precision",
                 "--bank", "banks/x", "--dry-run", "--json")
    plan = json.loads(capsys.readouterr().out)["plan"]
    assert rc == 0
    [step] = plan["steps"]
    assert "--precision_mode=allow_mix_precision" in step["argv"]
    assert step["shell"].startswith("TUNE_BANK_PATH=banks/x atc ")


def test_zoo_dry_run_needs_no_torch(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)

    def no_export(*args, **kwargs):
        raise AssertionError("a dry run must not export")

    monkeypatch.setattr("surgery.modelref.resolve_model", no_export)
    monkeypatch.setattr("surgery.targets.model.export_for_target", no_export)
    rc = surgery("compile", "icnet", "--batch", "1", "--dry-run")
    out = capsys.readouterr().out
    assert rc == 0
    assert "surgery apply icnet --variant ppm=ascend -o atc-icnet/icnet.onnx" in out
    assert "--input_shape=actual_input_1:1,3,1024,2048" in out


def test_missing_atc_is_one_line_and_exit_2(tiny, capsys):
    rc = surgery("compile", tiny, "--soc", "Ascend310P3")
    captured = capsys.readouterr()
    assert rc == 2
    [line] = captured.err.strip().splitlines()
    assert line.startswith("error: atc not found") and "set_env.sh" in line and "--dry-run" in line
    assert not Path("atc-tiny").exists()


def test_fake_atc_builds_every_batch(tiny, fake_atc, capsys):
    rc = surgery("compile", tiny, "--soc", "Ascend310P3", "--batch", "1,2")
    out = capsys.readouterr().out
    assert rc == 0, out
    assert Path("atc-tiny/tiny_bs1.om").is_file() and Path("atc-tiny/tiny_bs2.om").is_file()
    assert out.strip().splitlines()[-1] == "PASSED | 2/2 oms built for Ascend310P3"
    record = json.loads(Path("atc-tiny/tiny.compile.json").read_text())
    assert record["status"] == "PASSED" and record["target"] == "atc"
    assert record["extra"]["builds"][0]["warnings"][0].startswith("W11001")
    assert Path(record["extra"]["builds"][0]["log"]).read_text().count("ATC run success") == 1


def test_fake_atc_failure_keeps_the_other_batches(tiny, fake_atc, capsys):
    rc = surgery("compile", tiny, "--soc", "Ascend310P3", "--batch", "1,4")
    out = capsys.readouterr().out
    assert rc == 1
    assert out.strip().splitlines()[-1] == "FAILED | 1/2 oms built for Ascend310P3; failed: batch 4 (E10016)"
    assert Path("atc-tiny/tiny_bs1.om").is_file()
    record = json.loads(Path("atc-tiny/tiny.compile.json").read_text())
    failed = record["extra"]["builds"][1]
    assert record["status"] == "FAILED" and failed["code"] == "E10016" and failed["returncode"] == 255
    assert "ATC run failed" in failed["log_tail"]


@pytest.mark.parametrize("argv, message", [
    (["--atc-option", "precision_mode"], "KEY=VALUE"),
    (["--atc-option", "output=x"], "set by surgery compile"),
    (["--target", "trtexec"], "target trtexec cannot compile"),
    (["--batch", "1,x"], "bad batch size"),
    (["--atc-option", "log=loud"], "--log must be one of"),
    (["--timeout", "-1"], "--timeout must be a finite number of seconds > 0"),
    (["--timeout", "nan"], "--timeout must be a finite number of seconds > 0"),
    (["--input-shapes", "image:1x3"], "has rank 4"),
    (["--soc", "bogus"], "is not an Ascend chip name"),
])
def test_usage_errors(tiny, capsys, argv, message):
    rc = surgery("compile", tiny, "--dry-run", *argv)
    assert rc == 2
    assert message in capsys.readouterr().err


def test_missing_model(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert surgery("compile", "nope.onnx", "--dry-run") == 2
    assert "model not found: nope.onnx" in capsys.readouterr().err


def test_a_bank_that_is_not_here_is_named_in_the_plan_and_refused_for_a_real_run(tiny, capsys):
    assert surgery("compile", tiny, "--soc", "Ascend310P3", "--bank", "/nonexistent/bank", "--dry-run") == 0
    assert "--bank /nonexistent/bank is not a folder on this machine" in capsys.readouterr().out
    assert surgery("compile", tiny, "--soc", "Ascend310P3", "--bank", "/nonexistent/bank") == 2
    assert "is not a folder" in capsys.readouterr().err


def test_outputs_are_checked_before_atc_runs(tiny, fake_atc, capsys):
    before = tiny.read_bytes()
    assert surgery("compile", tiny, "--soc", "Ascend310P3", "--record", tiny) == 2
    err = capsys.readouterr().err.strip()
    assert "refusing to overwrite the input model" in err and "\n" not in err
    assert tiny.read_bytes() == before and not Path("atc-tiny").exists()
    Path("atc-tiny").write_text("a file where the .om folder goes")
    assert surgery("compile", tiny, "--soc", "Ascend310P3") == 2
    assert "is a file; the .om output folder is a folder" in capsys.readouterr().err
