from __future__ import annotations

import numpy as np
import onnx
import pytest
from graph_builders import op_types, parse, run, two_heads
from surgery.passes import Truncate

from surgery.errors import UnknownNameError

CLASSIFIER = """
<ir_version: 7, opset_import: ["" : 13]>
clf (float[N, 3, 8, 8] x) => (float[N, 5] logits) {
    c = Conv <pads = [1, 1, 1, 1]> (x, w)
    feat = Relu (c)
    p = GlobalAveragePool (feat)
    f = Flatten (p)
    logits = Gemm <transB = 1> (f, fc_w, fc_b)
}
"""


def classifier():
    rng = np.random.default_rng(3)
    return parse(CLASSIFIER, w=rng.random((4, 3, 3, 3), dtype=np.float32),
                 fc_w=rng.random((5, 4), dtype=np.float32), fc_b=np.zeros(5, np.float32))


def test_cuts_classifier_head():
    model = classifier()
    feed = {"x": np.random.default_rng(4).random((2, 3, 8, 8), dtype=np.float32)}
    expected = run(_expose(classifier(), "feat"), feed)["feat"]
    result = Truncate(tensors=("feat",))(model)
    assert result.changed
    assert op_types(model) == ["Conv", "Relu"]
    assert {t.name for t in model.graph.initializer} == {"w"}
    assert [o.name for o in model.graph.output] == ["feat"]
    out = model.graph.output[0]
    assert out.type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # typed by shape inference
    onnx.checker.check_model(model)
    np.testing.assert_array_equal(run(model, feed)["feat"], expected)


def test_node_name_and_node_index_references():
    model = two_heads()
    Truncate(tensors=("relu",))(model)
    assert [o.name for o in model.graph.output] == ["r"]
    model = two_heads()
    Truncate(tensors=("conv:0",))(model)
    assert op_types(model) == ["Conv"]


def test_already_outputs_is_a_no_op():
    model = two_heads()
    result = Truncate(tensors=("up", "aux"))(model)
    assert not result.changed
    assert "already are the graph outputs" in result.notes[0]


def test_unknown_tensor():
    with pytest.raises(UnknownNameError, match="unknown tensor or node 'fet'"):
        Truncate(tensors=("fet",))(classifier())


def _expose(model, name):
    model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    return model


def _loop_model():
    """x → Loop(v * 2, 3 times) → loop_out → + x → y; the body's values carry no shape, so neither does loop_out."""
    from onnx import TensorProto, helper

    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]), helper.make_node("Mul", ["v_in", "two"], ["v_out"])],
        "body", [helper.make_tensor_value_info("i", TensorProto.INT64, []),
                 helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []), onnx.ValueInfoProto(name="v_in")],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []), onnx.ValueInfoProto(name="v_out")])
    nodes = [helper.make_node("Loop", ["trips", "cond", "x"], ["loop_out"], body=body, name="loop"),
             helper.make_node("Add", ["loop_out", "x"], ["y"])]
    graph = helper.make_graph(
        nodes, "looped", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
        [onnx.numpy_helper.from_array(np.array(3, np.int64), "trips"),
         onnx.numpy_helper.from_array(np.array(True), "cond"),
         onnx.numpy_helper.from_array(np.array(2.0, np.float32), "two")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def test_a_loop_output_gets_its_dtype_and_rank_from_a_run():
    model = _loop_model()
    result = Truncate(tensors=("loop",))(model)
    out = model.graph.output[0]
    assert out.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert [d.dim_param for d in out.type.tensor_type.shape.dim] == ["loop_out_d0", "loop_out_d1"]
    assert any("dtype and rank from a run" in n for n in result.notes)
    onnx.checker.check_model(model, full_check=True)  # what our own checker step used to refuse
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(run(model, {"x": x})["loop_out"], x * 8)


def test_declares_the_outputs_it_drops_and_adds():
    result = Truncate(tensors=("r", "aux"))(two_heads())
    assert result.dropped_outputs == ["up"] and result.added_outputs == ["r"] and not result.reordered_outputs
    result = Truncate(tensors=("aux", "up"))(two_heads())
    assert result.reordered_outputs and not result.dropped_outputs and not result.added_outputs
