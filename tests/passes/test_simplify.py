from __future__ import annotations

import numpy as np
import pytest
from graph_builders import op_types, parse, run
from surgery.passes import Simplify

from surgery.errors import PassError, UsageError

SHAPE_CHAIN = """
<ir_version: 8, opset_import: ["" : 13]>
g (float[2, 3, 4] x) => (float[2, 12] y) {
    s = Shape (x)
    i0 = Constant <value = int64[1] {0}> ()
    d0 = Gather <axis = 0> (s, i0)
    m1 = Constant <value = int64[1] {-1}> ()
    shape = Concat <axis = 0> (d0, m1)
    y = Reshape (x, shape)
}
"""


def test_folds_shape_chain():
    model = parse(SHAPE_CHAIN)
    feed = {"x": np.random.default_rng(6).random((2, 3, 4), dtype=np.float32)}
    expected = run(model, feed)["y"]
    result = Simplify()(model)
    assert result.changed
    assert op_types(model) == ["Reshape"]
    assert result.counts["nodes_removed"] == 5
    np.testing.assert_array_equal(run(model, feed)["y"], expected)


def test_nothing_to_fold_says_so():
    model = parse("""
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[2] x) => (float[2] y) { y = Relu (x) }
    """)
    result = Simplify()(model)
    assert not result.changed
    assert "nothing to fold" in result.notes[0]


def test_input_shapes_option_validated():
    with pytest.raises(UsageError, match="must be numbers"):
        Simplify(input_shapes="x:Nx3")


def test_onnxsim_failure_is_a_pass_error():
    model = parse("""
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[2] x) => (float[2] y) { y = Relu (x) }
    """)
    with pytest.raises(PassError, match="onnxsim failed"):
        Simplify(input_shapes="nope:1x2")(model)
