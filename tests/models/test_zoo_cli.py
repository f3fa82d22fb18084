"""`surgery export` as a user types it: status line, JSON, and one-line errors with exit code 2."""

from __future__ import annotations

import json

import onnx
import pytest

from surgery.cli.main import main

torch = pytest.importorskip("torch", reason="the zoo networks need torch (pip install torch==2.13.0)")

SMALL = "actual_input_1:Nx3x32x32"


def surgery(*argv) -> int:
    return main([str(a) for a in argv])


def test_export_prints_a_summary_and_a_passed_line(tmp_path, capsys):
    out = tmp_path / "unetpp.onnx"
    assert surgery("export", "unetpp", "-o", out, "--input-shapes", SMALL, "--variant", "upsample=nearest") == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1].startswith(f"PASSED | exported unetpp -> {out} (")
    assert "nodes, 1 notice)" in lines[-1]
    assert any("accuracy figures mean nothing" in line for line in lines)
    resize_modes = {a.s for n in onnx.load(str(out)).graph.node if n.op_type == "Resize" for a in n.attribute
                    if a.name == "mode"}
    assert resize_modes == {b"nearest"}


def test_export_json_with_checkpoint_and_static_batch(tmp_path, capsys, unetpp_checkpoint):
    _, ckpt = unetpp_checkpoint
    out = tmp_path / "u.onnx"
    assert surgery("export", "unetpp", "-o", out, "--checkpoint", ckpt, "--input-shapes",
                   "actual_input_1:2x3x32x32", "--batch", "2", "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["path"] == str(out) and data["input_shapes"] == {"actual_input_1": [2, 3, 32, 32]}
    assert len(data["checkpoint_digest"]) == 64 and data["notices"] == [] and data["nodes"] > 0


@pytest.mark.parametrize(("argv", "message"), [
    (["export", "unetp", "-o", "x.onnx"], "unknown model 'unetp'; did you mean 'unetpp'"),
    (["export", "icnet", "-o", "x.onnx", "--variant", "ppm"], "bad --variant 'ppm'"),
    (["export", "icnet", "-o", "x.onnx", "--variant", "ppm=fast"], "not one of exact, ascend"),
    (["export", "icnet", "-o", "x.onnx", "--batch", "many"], "bad --batch 'many'"),
    (["export", "icnet", "-o", "x.onnx", "--input-shapes", "actual_input_1:1x3"], "has rank 4"),
    (["export", "icnet", "-o", "x.onnx", "--checkpoint", "missing.pth"], "checkpoint not found"),
])
def test_bad_arguments_exit_2_with_one_line(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert surgery(*argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and err.startswith("error: ")
    assert not (tmp_path / "x.onnx").exists()


def test_refused_pickle_exits_2_with_one_line(tmp_path, capsys):
    ckpt = tmp_path / "obj.pth"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "cfg": ValueError("x")}, ckpt)
    assert surgery("export", "unetpp", "-o", tmp_path / "u.onnx", "--checkpoint", ckpt, "--input-shapes", SMALL) == 2
    err = capsys.readouterr().err.strip()
    assert "weights_only=True" in err and "\n" not in err
