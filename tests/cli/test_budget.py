"""surgery apply --budget / --fallback / --calib, read like the command line."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
from int8_nets import conv_net

from surgery.calibration import Generated, write_bins
from surgery.cli.main import main
from surgery.shapes import model_inputs


def surgery(*argv: object) -> int:
    return main([str(a) for a in argv])


@pytest.fixture
def outlier(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "outlier.onnx"
    onnx.save(conv_net(outlier=200.0), path)
    return path


def test_over_budget_fails_naming_the_figure(outlier, capsys):
    rc = surgery("apply", outlier, "--pass", "quantize_int8", "samples=4", "--budget", "agreement=0.99",
                 "--budget-samples", 16, "-o", "q.onnx")
    out = capsys.readouterr().out
    assert rc == 1
    assert "FAILED | pass quantize_int8: agreement 0.0000 vs the model before, below the budget 0.99" in out
    assert not Path("q.onnx").exists()


def test_fallback_returns_the_costly_layer_and_says_which(outlier, capsys):
    rc = surgery("apply", outlier, "--pass", "quantize_int8", "samples=4", "--budget", "agreement=0.99",
                 "--budget-samples", 16, "--fallback", "-o", "q.onnx")
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "budget agreement=0.99: agreement 0.0000 → 1.0000 after returning" in out
    assert "layer(s) to float (conv_b" in out
    record = json.loads(Path("q.json").read_text())
    step = record["passes"][0]
    assert step["figures"]["budget"]["fallback"]["kept_float"][0] == "conv_b"
    assert "conv_b" in step["options"]["exclude_nodes"]  # the record says how to redo it


def test_calib_folder_reaches_the_pass(outlier, tmp_path, capsys):
    specs = model_inputs(conv_net())
    write_bins(list(Generated(seed=5).feeds(specs, {"x": (1, 3, 16, 16)}, 4)), tmp_path / "calib", specs)
    rc = surgery("apply", outlier, "--pass", "quantize_int8", "samples=4", "--calib", tmp_path / "calib",
                 "--explain", "-o", "q.onnx")
    assert rc == 0
    assert f"arrays from {tmp_path / 'calib'}" in capsys.readouterr().out
    assert json.loads(Path("q.json").read_text())["passes"][0]["options"]["calib"] == str(tmp_path / "calib")


@pytest.mark.parametrize(("argv", "message"), [
    (["--pass", "eliminate_dead_code", "--fallback"], "--fallback keeps an accuracy budget"),
    (["--pass", "eliminate_dead_code", "--calib", "x"], "add --pass quantize_int8"),
    (["--pass", "eliminate_dead_code", "--budget", "agreement=0.9"], "every pass given is exact"),
    (["--pass", "quantize_int8", "--budget-samples", "4"], "give --budget too"),
    (["--pass", "quantize_int8", "--budget", "top1=-0.5"], "scores a zoo model on its labelled dataset"),
    (["--pass", "quantize_int8", "--budget", "top1=+1"], "must be <= 0"),
    (["--pass", "quantize_int8", "--budget", "speed=2"], "unknown budget metric"),
])
def test_usage_errors(outlier, capsys, argv, message):
    assert surgery("apply", outlier, *argv) == 2
    assert message in capsys.readouterr().err


def test_budget_data_folder(outlier, tmp_path, capsys):
    specs = model_inputs(conv_net())
    write_bins(list(Generated(seed=9).feeds(specs, {"x": (1, 3, 16, 16)}, 3)), tmp_path / "judge", specs)
    rc = surgery("apply", outlier, "--pass", "quantize_int8", "samples=4", "--budget", "agreement=0.5",
                 "--budget-data", tmp_path / "judge", "-o", "q.onnx", "--record", "r.json")
    assert rc == 1
    assert "below the budget 0.5" in capsys.readouterr().out
    figures = json.loads(Path("r.json").read_text())["passes"][0]["figures"]["budget"]
    assert figures["measured_on"] == f"agreement with the model before on 3 inputs: arrays from {tmp_path / 'judge'}"
