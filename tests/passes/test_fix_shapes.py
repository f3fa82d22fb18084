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
