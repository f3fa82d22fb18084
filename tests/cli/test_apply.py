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
    # the zoo export (the model before the passes) is written beside the output, for before/after comparisons
    before = tmp_path / "unetpp.before.onnx"
    assert before.is_file() and f"to {before}" in text
    record = json.loads((tmp_path / "unetpp.json").read_text())
    assert record["extra"]["before_model"]["path"] == str(before)
    assert record["extra"]["before_model"]["digest"] == record["input_model"]["digest"]


# -- issue 9: the closing line never claims more than was checked ------------------------------------

FLAT = """
<ir_version: 7, opset_import: ["" : 13]>
g (float[1, 3, 8, 8] x) => (float[1, 4] y) {
    f = Reshape (x, flat)
    y = MatMul (f, w)
}
"""

RESHAPE_PIN = """
<ir_version: 7, opset_import: ["" : 13]>
g (float[1, 2, 8] x) => (float[1, 16] y) {
    f = Reshape (x, shape)
    y = Relu (f)
}
"""


@pytest.fixture
def flat_path(tmp_path):
    import numpy as np
    from graph_builders import parse

    path = tmp_path / "flat.onnx"
    onnx.save(parse(FLAT, w=np.ones((192, 4), np.float32), flat=np.array([1, 192], np.int64)), path)
    return path


def test_an_unverified_step_is_named_in_the_closing_line_and_the_record(flat_path, capsys):
    rc = surgery("apply", flat_path, "--pass", "fix_shapes", "shapes=x:1x3x16x16")
    out = capsys.readouterr().out
    assert rc == 0
    last = out.strip().splitlines()[-1]
    assert last.startswith("PASSED | 1/1 passes changed the model, 2 → 2 nodes; NOT VERIFIED: fix_shapes (the "
                           "model before the pass cannot take x:1x3x16x16 (fails on onnxruntime: Reshape node: The "
                           "input tensor cannot be reshaped")
    assert "verified (" not in last
    record = json.loads(flat_path.with_name("flat.surgery.json").read_text())
    assert record["passes"][0]["verification"]["status"] == "unverified"
    assert record["verification"]["verified"] is False
    assert record["verification"]["unverified"][0]["step"] == "fix_shapes"


def test_strict_turns_an_unverified_step_into_exit_1_and_writes_nothing(flat_path, tmp_path, capsys):
    before = set(flat_path.parent.iterdir())
    rc = surgery("apply", flat_path, "--pass", "fix_shapes", "shapes=x:1x3x16x16", "--strict", "-o",
                 tmp_path / "out.onnx")
    out = capsys.readouterr().out
    assert rc == 1
    assert out.strip().splitlines()[-1].startswith("FAILED | NOT VERIFIED: fix_shapes (the model before the pass")
    assert out.strip().endswith("(--strict); nothing written")
    assert set(flat_path.parent.iterdir()) == before


def test_a_batch_hazard_prints_without_explain(tmp_path, capsys):
    import numpy as np
    from graph_builders import parse

    path = tmp_path / "pin.onnx"
    onnx.save(parse(RESHAPE_PIN, shape=np.array([1, -1], np.int64)), path)
    rc = surgery("apply", path, "--pass", "fix_shapes", "batch=dynamic", "--record", tmp_path / "r.json")
    out = capsys.readouterr().out
    assert rc == 1
    assert "hazard: Reshape 'f' has a constant target shape [1, -1]" in out
    assert "FAILED | pass fix_shapes: at batch 2, output 'y' has shape [1, 32]" in out
    record = json.loads((tmp_path / "r.json").read_text())
    assert record["status"] == "FAILED" and record["verification"]["failed"][0]["step"] == "fix_shapes"
    assert record["passes"][0]["verification"]["hazards"]


def test_a_model_that_already_fails_the_checker_is_named(tmp_path, capsys):
    import numpy as np
    from graph_builders import two_heads

    model = two_heads()
    model.graph.initializer.append(onnx.numpy_helper.from_array(np.ones(3, np.float32), "unused"))
    path = tmp_path / "dup.onnx"
    onnx.save(model, path)
    assert surgery("apply", path, "--pass", "resize_nearest") == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert "; NOT VERIFIED: input (the model given already fails the onnx checker's full check: unused initializer " \
           "name is not unique)" in last
    assert surgery("apply", path, "--pass", "resize_nearest", "--strict") == 1


@pytest.mark.parametrize(("flags", "message"), [
    (["--atol", "nan"], "--atol must be a finite number >= 0"),
    (["--atol", "-1"], "--atol must be a finite number >= 0"),
    (["--rtol", "inf"], "--rtol must be a finite number >= 0"),
    (["--input-shapes", "x:0x3x16x16"], "must be"),
    (["--samples", "-1"], "--samples must be >= 1"),
    (["--samples", "0"], "--samples must be >= 1"),
    (["--seed", "-1"], "--seed must be >= 0"),
    (["--verify-batches", "2,0"], "bad batch size '0'"),
    (["--strict", "--no-verify"], "--strict needs verification"),
])
def test_bad_settings_exit_2_with_one_line(model_path, capsys, flags, message):
    rc = surgery("apply", model_path, "--pass", "eliminate_dead_code", *flags)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
