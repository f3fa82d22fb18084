"""surgery scan: the table, --json, --pass/--skip, a bad file's row, usage errors."""

from __future__ import annotations

import json

import onnx
import pytest
from graph_builders import two_heads

from surgery.cli.main import main


@pytest.fixture
def models(tmp_path):
    onnx.save(two_heads(), tmp_path / "heads.onnx")
    return tmp_path


def test_table_lists_the_passes_that_would_change_the_model(models, capsys):
    assert main(["scan", str(models), "--jobs", "1", "--skip", "simplify"]) == 0
    out = capsys.readouterr().out
    assert "heads.onnx" in out
    assert "resize_nearest (inexact) 1" in out and "eliminate_dead_code" in out
    assert "1 (unaligned C 1)" in out  # its 4-channel Conv
    assert "not run: prune_outputs: needs options" in out and "not run: simplify: skipped (--skip)" in out
    assert "not run: quantize_int8: calibrates on sample inputs" in out
    assert out.rstrip().splitlines()[-1].startswith("PASSED | 1 model scanned with")


def test_json_and_chosen_passes(models, capsys):
    assert main(["scan", str(models / "heads.onnx"), "--pass", "resize_nearest", "--pass", "align_channels",
                 "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    row = data["models"][0]
    assert data["passes"] == ["resize_nearest", "align_channels"] and row["error"] is None
    resize, align = row["passes"]
    assert resize == {**resize, "name": "resize_nearest", "exact": False, "changed": True, "sites": 1,
                      "counts": {"Resize(linear)": 1}}
    assert align["changed"] is False  # its Conv's padding would reach no Conv
    assert row["transdata"]["counts"]["unaligned_channels"] == 1


def test_a_bad_file_is_a_row_and_the_run_fails(models, capsys):
    (models / "bad.onnx").write_bytes(b"\x00garbage")
    assert main(["scan", str(models), "--jobs", "1", "--pass", "resize_nearest"]) == 1
    out = capsys.readouterr().out
    assert "bad.onnx is not an ONNX model" in out
    assert "FAILED | 1 of 2 could not be scanned" in out


@pytest.mark.parametrize(("argv", "message"), [
    (["scan", "nowhere.onnx"], "error: model not found: nowhere.onnx"),
    (["scan", ".", "--pass", "resize_nearst"], "did you mean 'resize_nearest'"),
    (["scan", ".", "--pass", "prune_outputs"], "pass prune_outputs cannot run in a scan"),
    (["scan", ".", "--jobs", "0"], "--jobs must be >= 1"),
])
def test_usage_errors(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err
