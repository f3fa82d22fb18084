from __future__ import annotations

import pytest
from onnx import TensorProto, helper

from surgery.errors import UsageError
from surgery.shapes import InputSpec, model_inputs, parse_batches, parse_shapes, shapes_at


def conv_input(*dims):
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(dims))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(dims))])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_batch_shapes_need_sizes_for_dynamic_axes():
    specs = model_inputs(conv_input("N", 3, "H", "H"))
    with pytest.raises(UsageError, match=r"dynamic axis 2 .*--input-shapes x:4x3xNxN"):
        shapes_at(specs, 4)
    assert shapes_at(specs, 4, {"x": (1, 3, 8, 8)}) == {"x": (4, 3, 8, 8)}
    with pytest.raises(UsageError, match="not an input"):
        shapes_at(specs, 4, {"y": (1, 3, 8, 8)})
    with pytest.raises(UsageError, match="rank 4"):
        shapes_at(specs, 4, {"x": (1, 3)})


def test_one_rule_batch_sets_axis_0_given_sets_the_rest():
    specs = [InputSpec("x", ("N", 3, 96, 96))]
    # the batch wins over a given axis 0, for every target alike
    assert shapes_at(specs, 8, {"x": (1, 3, 64, 64)}) == {"x": (8, 3, 64, 64)}
    # no batch asked for (verification): the given shape stands, a dynamic axis 0 is 1
    assert shapes_at(specs, None, {"x": (2, 3, 64, 64)}) == {"x": (2, 3, 64, 64)}
    assert shapes_at(specs, None) == {"x": (1, 3, 96, 96)}
    # a static model asked for another batch: the batch still sets axis 0 (targets re-shape or override)
    assert shapes_at([InputSpec("x", (1, 3, 8, 8))], 4) == {"x": (4, 3, 8, 8)}
    with pytest.raises(UsageError, match="positive numbers"):
        shapes_at(specs, 1, {"x": (1, 3, "H", 96)})
    with pytest.raises(UsageError, match="rank 4"):
        shapes_at(specs, 1, parse_shapes("x:1x3"))


def test_recipe_and_graph_specs_agree():
    spec = model_inputs(conv_input("N", 3, 8, 8))[0]
    assert spec == InputSpec("x", ("N", 3, 8, 8), "float32")


def test_parse_batches():
    assert parse_batches("1,4, 8") == (1, 4, 8)
    assert parse_batches(None, (1, 2)) == (1, 2)
    for bad in ("0", "1,x", "4,4", "", "1,,2", "99999999999999999999"):
        with pytest.raises(UsageError):
            parse_batches(bad)
