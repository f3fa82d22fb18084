from __future__ import annotations

import json

from surgery.cli.main import main


def test_inspect_table(model_path, capsys):
    assert main(["inspect", str(model_path)]) == 0
    out = capsys.readouterr().out
    assert "opset ai.onnx 11" in out
    assert "Nx3x8x8" in out and "5 nodes" in out
    assert "parameters 115" in out


def test_inspect_json(model_path, capsys):
    assert main(["inspect", str(model_path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["nodes"] == 5 and data["op_counts"]["Resize"] == 1
    assert data["outputs"][0] == {"name": "up", "dtype": "float", "shape": ["N", 4, 16, 16]}
    assert data["params"] == 115 and data["param_bytes"] == 460


def test_inspect_missing(tmp_path, capsys):
    assert main(["inspect", str(tmp_path / "none.onnx")]) == 2
    assert capsys.readouterr().err.startswith("error: model not found")


def test_list_passes(capsys):
    assert main(["list", "passes"]) == 0
    out = capsys.readouterr().out
    for name in ("eliminate_dead_code", "prune_outputs", "truncate", "resize_nearest", "simplify", "fix_shapes"):
        assert name in out


def test_list_passes_json(capsys):
    assert main(["list", "passes", "--json"]) == 0
    data = {p["name"]: p for p in json.loads(capsys.readouterr().out)}
    assert data["resize_nearest"]["exact"] is False
    preset = next(o for o in data["resize_nearest"]["options"] if o["name"] == "preset")
    assert preset["default"] == "torch"
    assert data["simplify"]["exact"] is True


def test_unknown_verb_is_usage_error(capsys):
    try:
        main(["frobnicate"])
    except SystemExit as exc:
        assert exc.code == 2
