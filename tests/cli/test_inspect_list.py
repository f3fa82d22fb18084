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


def test_inspect_a_model_with_external_data_everywhere(tmp_path, capsys, monkeypatch):
    from tensor_models import everywhere

    import surgery.external_data as external
    from surgery.graph import save_model

    monkeypatch.setattr(external, "INLINE_LIMIT", 16)
    save_model(everywhere(512), tmp_path / "m.onnx", external_data=True)
    assert main(["inspect", str(tmp_path / "m.onnx"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    # w, tw, k, ek (512 each), the 0-d zero, and the stored values of two sparse tensors (74 and 103)
    assert data["params"] == 4 * 512 + 1 + 74 + 103 and data["nodes"] == 12


def test_inspect_refuses_external_data_outside_the_folder_from_any_tensor(tmp_path, capsys):
    from tensor_models import SITES, everywhere, point_at

    from surgery.tensors import iter_tensors

    for k, site in enumerate(SITES):
        model = everywhere()
        point_at(next(s.tensor for s in iter_tensors(model) if site in s.where), "/etc/hostname", 0, 4)
        path = tmp_path / f"m{k}.onnx"
        path.write_bytes(model.SerializeToString())
        assert main(["inspect", str(path)]) == 2, site
        err = capsys.readouterr().err.strip()
        assert "outside the model's folder" in err and "\n" not in err


def test_inspect_refuses_names_that_are_not_utf8(tmp_path, model_path, capsys):
    bad = tmp_path / "latin.onnx"
    bad.write_bytes(model_path.read_bytes().replace(b"aux_sigmoid", b"aux\xffsigmoid"))
    assert main(["inspect", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert "not valid UTF-8" in err and "\n" not in err and "internal error" not in err


def test_inspect_a_model_above_the_serialisation_limit(model_path, capsys, monkeypatch):
    import surgery.graph as graph

    monkeypatch.setattr(graph, "EXTERNAL_DATA_THRESHOLD", 256)  # stands in for protobuf's 2 GB
    assert main(["inspect", str(model_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["params"] == 115


def test_list_passes_shows_option_bounds(capsys):
    assert main(["list", "passes", "--json"]) == 0
    options = [o for p in json.loads(capsys.readouterr().out) for o in p["options"]]
    assert all("minimum" in o and "maximum" in o for o in options)
