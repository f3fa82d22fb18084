"""OrtTarget.infer: the batches of surgery eval through one onnxruntime session."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from surgery.tools.onnxruntime import OrtTarget

from surgery.errors import UsageError
from surgery.targets import Events, ModelSpec, Request, Target
from surgery.targets.base import EVAL


def save(path, batch: int | str) -> str:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"]), helper.make_node("Neg", ["x"], ["z"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 3]),
         helper.make_tensor_value_info("z", TensorProto.FLOAT, [batch, 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return str(path)


X = np.arange(15, dtype=np.float32).reshape(5, 3) - 7


def test_batches_run_lazily_through_one_session(tmp_path):
    target = OrtTarget("ort-cpu")
    out = target.infer(Request(model=ModelSpec(save(tmp_path / "d.onnx", "N"))), iter([{"x": X}, {"x": X[:2]}]),
                       Events(), outputs=["y"])
    first = next(out)
    assert set(first) == {"y"} and np.array_equal(first["y"], np.maximum(X, 0))
    assert next(out)["y"].shape == (2, 3)


def test_a_static_batch_is_met_in_pieces(tmp_path):
    out = list(OrtTarget("ort-cpu").infer(Request(model=ModelSpec(save(tmp_path / "s.onnx", 2))), [{"x": X}],
                                          Events()))
    assert out[0]["z"].shape == (5, 3) and np.array_equal(out[0]["z"], -X)


def test_a_batch_the_model_cannot_take_is_one_line(tmp_path):
    out = OrtTarget("ort-cpu").infer(Request(model=ModelSpec(save(tmp_path / "s.onnx", "N"))),
                                     [{"x": np.zeros((1, 4), np.float32)}], Events())
    with pytest.raises(UsageError, match=r"s\.onnx does not run on x:1x4: "):
        next(out)


def test_eval_settings_are_checked_and_other_targets_refuse_in_process_inference():
    target = OrtTarget("ort-cpu")
    assert EVAL in target.honours
    with pytest.raises(UsageError, match="--fp16 is not an option of eval on target ort-cpu"):
        target.check(EVAL, Request(model=ModelSpec("m.onnx"), settings={"fp16": True}))

    class Remote(Target):
        name = "remote"

    with pytest.raises(UsageError, match="target remote cannot run inference in this process"):
        Remote().infer(Request(model=ModelSpec("m.onnx")), [], Events())
