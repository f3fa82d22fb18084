from __future__ import annotations

import numpy as np
import pytest
from graph_builders import parse, run
from surgery.passes import FixShapes

from surgery.errors import UnknownNameError, UsageError
from surgery.graph import value_shape

CONV = """
<ir_version: 7, opset_import: ["" : 13]>
g (float[N, 3, H, W] x) => (float[N, 4, H, W] y) {
    y = Conv <pads = [1, 1, 1, 1]> (x, w)
}
"""


def conv():
    return parse(CONV, w=np.random.default_rng(7).random((4, 3, 3, 3), dtype=np.float32))


def test_static_shapes_and_reinferred_outputs():
    model = conv()
    result = FixShapes(shapes="x:2x3x16x16")(model)
    assert result.changed
    assert value_shape(model.graph.input[0]) == [2, 3, 16, 16]
    assert value_shape(model.graph.output[0]) == [2, 4, 16, 16]
    feed = {"x": np.ones((2, 3, 16, 16), np.float32)}
    assert run(model, feed)["y"].shape == (2, 4, 16, 16)


def test_dynamic_batch():
    model = parse("""
        <ir_version: 7, opset_import: ["" : 13]>
        g (float[1, 3] x) => (float[1, 3] y) { y = Relu (x) }
    """)
    result = FixShapes(batch="dynamic")(model)
    assert result.changed
    assert value_shape(model.graph.input[0]) == ["batch", 3]
    assert value_shape(model.graph.output[0]) == ["batch", 3]
    assert run(model, {"x": np.ones((5, 3), np.float32)})["y"].shape == (5, 3)


def test_constant_reshape_hazard_is_noted():
    model = parse("""
        <ir_version: 7, opset_import: ["" : 13]>
        g (float[1, 3, 2] x) => (float[1, 6] y) { y = Reshape (x, shape) }
    """, shape=np.array([1, 6], np.int64))
    result = FixShapes(batch="dynamic")(model)
    assert any("constant target shape [1, 6]" in n for n in result.notes)


def test_no_change_says_so():
    model = conv()
    FixShapes(shapes="x:1x3x8x8")(model)
    result = FixShapes(shapes="x:1x3x8x8")(model)
    assert not result.changed and result.notes == ["input shapes already as asked"]


def test_errors():
    with pytest.raises(UsageError, match="needs shapes="):
        FixShapes()
    with pytest.raises(UsageError, match="positive number"):
        FixShapes(batch="0")
    with pytest.raises(UnknownNameError, match="unknown graph input 'y'"):
        FixShapes(shapes="y:1x3x8x8")(conv())
    with pytest.raises(UsageError, match="has rank 4"):
        FixShapes(shapes="x:1x3")(conv())


def test_batch_hazards_are_warnings_the_user_always_sees():
    import onnx
    from onnx import TensorProto, helper

    pinned = parse("""
        <ir_version: 7, opset_import: ["" : 13]>
        g (float[1, 2, 8] x) => (float[1, 16] y) { y = Reshape (x, shape) }
    """, shape=np.array([1, -1], np.int64))  # a -1 does not free the literal batch in front of it
    result = FixShapes(batch="dynamic")(pinned)
    assert len(result.warnings) == 1 and "constant target shape [1, -1]" in result.warnings[0]
    token = helper.make_model(helper.make_graph(
        [helper.make_node("Concat", ["cls", "x"], ["y"], axis=1, name="cat")], "vit",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5, 8])],
        [onnx.numpy_helper.from_array(np.ones((1, 1, 8), np.float32), "cls")]), ir_version=8,
        opset_imports=[helper.make_opsetid("", 13)])
    (warning,) = FixShapes(batch="dynamic")(token).warnings
    assert warning.startswith("Concat 'cat' joins a constant 'cls' of shape [1, 1, 8] with batch data on axis 1")
    lstm = helper.make_model(helper.make_graph(
        [helper.make_node("LSTM", ["x", "W", "R", "", "", "h0", "c0"], ["y"], hidden_size=2, name="lstm")], "rnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [5, 1, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [5, 1, 1, 2])],
        [onnx.numpy_helper.from_array(np.ones((1, 8, 3), np.float32), "W"),
         onnx.numpy_helper.from_array(np.ones((1, 8, 2), np.float32), "R"),
         onnx.numpy_helper.from_array(np.zeros((1, 1, 2), np.float32), "h0"),
         onnx.numpy_helper.from_array(np.zeros((1, 1, 2), np.float32), "c0")]), ir_version=8,
        opset_imports=[helper.make_opsetid("", 13)])
    warnings = FixShapes(shapes="x:5x4x3")(lstm).warnings
    assert warnings == []  # the batch of an LSTM is axis 1; axis 0 did not move
    warnings = FixShapes(batch="dynamic")(lstm).warnings
    assert any("LSTM 'lstm' starts from a constant state 'h0' of shape [1, 1, 2]" in w for w in warnings)
    assert conv().graph.input and FixShapes(batch="dynamic")(conv()).warnings == []


def test_outputs_keep_their_rank_when_inference_fails(monkeypatch):
    import onnx

    def broken(*args, **kwargs):
        raise RuntimeError("inference broke")

    model = conv()
    monkeypatch.setattr(onnx.shape_inference, "infer_shapes", broken)
    result = FixShapes(shapes="x:1x3x8x8")(model)
    assert "output dims left symbolic" in result.notes[-1]
    assert value_shape(model.graph.output[0]) == ["out0_d0", "out0_d1", "out0_d2", "out0_d3"]


def test_loop_bodies_lose_the_sizes_they_were_traced_at():
    import onnx
    from onnx import TensorProto, helper

    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]), helper.make_node("Mul", ["v_in", "two"], ["v_out"])],
        "body", [helper.make_tensor_value_info("i", TensorProto.INT64, []),
                 helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
                 helper.make_tensor_value_info("v_in", TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_out", TensorProto.FLOAT, [1, 3])])
    graph = helper.make_graph(
        [helper.make_node("Loop", ["trips", "cond", "x"], ["y"], body=body)], "looped",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
        [onnx.numpy_helper.from_array(np.array(2, np.int64), "trips"),
         onnx.numpy_helper.from_array(np.array(True), "cond"),
         onnx.numpy_helper.from_array(np.array(2.0, np.float32), "two")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    FixShapes(batch="dynamic")(model)
    onnx.checker.check_model(model, full_check=True)
    x = np.ones((4, 3), np.float32)
    np.testing.assert_array_equal(run(model, {"x": x})["y"], x * 4)  # onnxruntime held the body to 1x3 before
