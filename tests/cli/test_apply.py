from __future__ import annotations

import json

import onnx
import pytest

from surgery.cli.main import main


def surgery(*argv: str) -> int:
    return main([str(a) for a in argv])


def test_apply_writes_model_record_and_table(model_path, capsys):
    rc = surgery("apply", model_path, "--pass", "eliminate_dead_code", "--pass", "prune_outputs",
                 "outputs=Resize_317:0", "names=main", "--pass", "resize_nearest")
    out = capsys.readouterr().out
    assert rc == 0
    assert out.strip().splitlines()[-1].startswith("PASSED | 3/3 passes changed the model, 5 → 3 nodes, verified")
    assert "inexact: resize_nearest" in out
    assert "1. eliminate_dead_code: nodes 1, initializers 1" in out
    assert "before → after" in out
    result = model_path.with_name("m.surgery.onnx")
    model = onnx.load(result)
    assert [o.name for o in model.graph.output] == ["main"]
    record = json.loads(model_path.with_name("m.surgery.json").read_text())
    assert record["schema"] == "surgery.record" and record["status"] == "PASSED"
    assert [p["name"] for p in record["passes"]] == ["eliminate_dead_code", "prune_outputs", "resize_nearest"]
    assert record["passes"][2]["figures"]["parity"]["outputs"]["main"]["max_abs"] > 0
    assert record["output_model"]["digest"] and record["input_model"]["digest"]


def test_apply_json_and_explicit_paths(model_path, tmp_path, capsys):
    out_path, record_path = tmp_path / "o.onnx", tmp_path / "r.json"
    rc = surgery("apply", model_path, "--pass", "eliminate_dead_code", "-o", out_path, "--record", record_path,
                 "--json", "--no-verify")
    assert rc == 0
    data = json.loads(capsys.readouterr().out)
    assert data["output_model"]["path"] == str(out_path)
    assert data["verification"]["enabled"] is False
    assert record_path.is_file() and out_path.is_file()


def test_dry_run_writes_nothing_and_explain_says_why(model_path, capsys):
    before = set(model_path.parent.iterdir())
    rc = surgery("apply", model_path, "--pass", "resize_nearest", "nodes=other", "--dry-run", "--explain")
    out = capsys.readouterr().out
    assert rc == 0
    assert "Resize Resize_317: not among nodes=" in out
    assert "dry run" in out.splitlines()[-1]
    assert set(model_path.parent.iterdir()) == before


def test_exact_pass_breaking_parity_fails_and_writes_nothing(model_path, capsys, monkeypatch):
    from surgery.passes import resize_nearest

    monkeypatch.setattr(resize_nearest.ResizeNearest, "exact", True)
    before = set(model_path.parent.iterdir())
    rc = surgery("apply", model_path, "--pass", "resize_nearest")
    out = capsys.readouterr().out
    assert rc == 1
    assert out.strip().splitlines()[-1].startswith("FAILED | pass resize_nearest is exact but changed output 'up'")
    assert set(model_path.parent.iterdir()) == before


def test_never_overwrites_input(model_path, capsys):
    data = model_path.read_bytes()
    rc = surgery("apply", model_path, "--pass", "eliminate_dead_code", "-o", model_path)
    assert rc == 2
    assert "refusing to overwrite the input model" in capsys.readouterr().err
    assert model_path.read_bytes() == data


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.onnx", "--pass", "simplify"], "error: model not found: missing.onnx"),
        (["{model}", "--pass", "resize_neares"], "unknown pass 'resize_neares'; did you mean 'resize_nearest'?"),
        (["{model}", "--pass", "prune_outputs", "output=0"], "did you mean 'outputs'?"),
        (["{model}", "--pass", "prune_outputs", "outputs"], "is not KEY=VALUE"),
        (["{model}", "--pass", "resize_nearest", "preset=tf"], "is not one of torch, keep"),
        (["{model}", "--pass", "prune_outputs", "outputs=Resize_31:0"], "did you mean 'Resize_317'"),
        (["{model}", "--pass", "simplify", "-o", "{tmp}/no/such/dir/out.onnx"], "output folder does not exist"),
        (["{model}"], "give at least one --pass"),
        (["{model}", "--pass", "simplify", "--input-shapes", "x:1x3x"], "bad shape"),
        (["{model}", "--pass", "simplify", "--inputs", "{tmp}/none.npz"], "--inputs file not found"),
    ],
)
def test_bad_input_is_one_line_exit_2(model_path, tmp_path, capsys, args, message):
    argv = [a.format(model=model_path, tmp=tmp_path) for a in args]
    rc = surgery("apply", *argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


@pytest.mark.parametrize("content", [b"not a model", b"\x08\x07\x12\x03abc"])
def test_not_onnx_and_truncated(tmp_path, model_path, capsys, content):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(content)
    assert surgery("apply", bad, "--pass", "simplify") == 2
    assert "is not an ONNX model" in capsys.readouterr().err
    truncated = tmp_path / "trunc.onnx"
    truncated.write_bytes(model_path.read_bytes()[:100])
    assert surgery("apply", truncated, "--pass", "simplify") == 2
    assert "is not an ONNX model" in capsys.readouterr().err


def test_debug_shows_traceback(tmp_path):
    with pytest.raises(Exception, match="model not found"):
        surgery("apply", tmp_path / "x.onnx", "--pass", "simplify", "--debug")


def test_snapshot(model_path, tmp_path, capsys):
    snap = tmp_path / "snaps"
    assert surgery("apply", model_path, "--pass", "eliminate_dead_code", "--pass", "resize_nearest",
                   "--snapshot", snap) == 0
    assert sorted(p.name for p in snap.iterdir()) == ["01_eliminate_dead_code.onnx", "02_resize_nearest.onnx"]


def test_zoo_options_are_refused_for_files(model_path, capsys):
    assert surgery("apply", model_path, "--pass", "simplify", "--variant", "ppm=ascend") == 2
    assert "--variant applies to zoo models only" in capsys.readouterr().err


def test_zoo_name_with_variant_exports_then_applies(tmp_path, capsys, monkeypatch):
    pytest.importorskip("torch", reason="zoo export needs torch")
    monkeypatch.setenv("SURGERY_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "unetpp.onnx"
    rc = surgery("apply", "unetpp", "--variant", "upsample=nearest", "--pass", "resize_nearest", "-o", out)
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "seeded" in text  # the export's notice: no checkpoint, accuracy means nothing
    assert "resize_nearest (inexact): no match" in text  # the variant already exported nearest Resizes
    modes = {a.s for n in onnx.load(out).graph.node if n.op_type == "Resize" for a in n.attribute if a.name == "mode"}
    assert modes == {b"nearest"}
