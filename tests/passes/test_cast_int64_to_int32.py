from __future__ import annotations

import numpy as np
from graph_builders import parse
from pass_checks import check_exact, ops
from surgery.passes.cast_int64_to_int32 import CastInt64ToInt32

I64 = np.int64


def flatten_by_shape():
    """x → Shape → Gather(0) → Unsqueeze → Concat(-1) → Reshape: the export's int64 shape arithmetic."""
    return parse("""
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[N, C, H, W] x) => (float[N, ?] y, int64[2] shape) {
            s = Shape (x)
            n = Gather <axis = 0> (s, zero)
            n1 = Unsqueeze (n, ax0)
            shape = Concat <axis = 0> (n1, minus_one)
            y = Reshape (x, shape)
        }
    """, zero=np.array(0, I64), ax0=np.array([0], I64), minus_one=np.array([-1], I64))


def test_shape_arithmetic_runs_in_int32_with_casts_at_the_edges():
    result = check_exact(CastInt64ToInt32(), flatten_by_shape(), [{"x": (2, 3, 4, 5)}, {"x": (1, 1, 7, 2)}])
    assert result.counts == {"Cast (into int32)": 1, "int64 ops → int32": 3, "Cast (back to int64)": 1}
    assert ops(result.model) == ["Shape", "Cast", "Gather", "Unsqueeze", "Concat", "Cast", "Reshape"]
    inits = {t.name: t.data_type for t in result.model.graph.initializer}
    assert inits == {"zero": 7, "ax0": 7, "minus_one_int32": 6}  # Gather's index and the axes take int64 only


def test_values_that_could_overflow_stay_int64():
    m = parse("""
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[N, C, H, W] x, int64[2] a) => (float[?, ?, ?] y, int64[2] b) {
            s = Shape (x)
            h = Gather <axis = 0> (s, two)
            w = Gather <axis = 0> (s, three)
            hw = Mul (h, w)
            big = Add (h, huge)
            b = Add (a, one)
            n = Gather <axis = 0> (s, zero)
            c = Gather <axis = 0> (s, one_)
            n1 = Unsqueeze (n, ax0)
            c1 = Unsqueeze (c, ax0)
            hw1 = Unsqueeze (hw, ax0)
            shape = Concat <axis = 0> (n1, c1, hw1)
            y = Reshape (x, shape)
        }
    """, two=np.array(2, I64), three=np.array(3, I64), zero=np.array(0, I64), ax0=np.array([0], I64),
               huge=np.array(2**40, I64), one=np.array([1], I64), one_=np.array(1, I64))
    result = check_exact(CastInt64ToInt32(), m, [{"x": (2, 3, 4, 5), "a": (2,)}, {"x": (1, 2, 3, 3), "a": (2,)}])
    notes = " | ".join(result.notes)
    assert "Mul hw" in notes or "Mul (unnamed)" in notes
    assert "has range [0, 4.61e+18], beyond int32" in notes
    assert "input 'huge' has range" in notes and "input 'a' has an unknown range" in notes
    # the four Gathers and two Unsqueezes; not the Mul, the Add, the Unsqueeze of hw nor the Concat reading it
    assert result.counts["int64 ops → int32"] == 6


def test_graph_without_int64_arithmetic():
    m = parse("""
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[2] x) => (float[2] y) { y = Relu (x) }
    """)
    result = CastInt64ToInt32()(m)
    assert not result.changed and result.notes == ["no int64 computation in the graph"]
