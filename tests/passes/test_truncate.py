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
