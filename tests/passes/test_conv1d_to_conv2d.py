from __future__ import annotations

import numpy as np
import pytest
from graph_builders import parse
from pass_checks import check_exact, ops
from surgery.passes.conv1d_to_conv2d import Conv1dToConv2d

RNG = np.random.default_rng(7)


def f32(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def block(opset: int = 13):
    """Conv1d → BN → Relu → Conv1d (+ residual from outside, a (C, 1) constant) → two readers outside."""
    return parse(f"""
        <ir_version: 8, opset_import: ["" : {opset}]>
        g (float[N, 4, L] x) => (float[N, 6, ?] y, float[N, 6, ?] z) {{
            c1 = Conv <kernel_shape = [3], pads = [1, 1]> (x, w1, b1)
            n1 = BatchNormalization (c1, s, bb, mu, var)
            r1 = Relu (n1)
            c2 = Conv <kernel_shape = [3], pads = [1, 1], dilations = [1]> (r1, w2)
            a = Add (c2, shift)
            res = Add (a, c1)
            y = Sigmoid (res)
            z = Neg (res)
        }}
    """, w1=f32(6, 4, 3), b1=f32(6), s=np.abs(f32(6)) + 0.5, bb=f32(6), mu=f32(6), var=np.abs(f32(6)) + 0.5,
        w2=f32(6, 6, 3), shift=f32(6, 1))


SHAPES = [{"x": (1, 4, 9)}, {"x": (3, 4, 16)}]


@pytest.mark.parametrize("opset", [11, 13])
def test_a_conv1d_block_runs_as_conv2d_with_one_boundary(opset):
    result = check_exact(Conv1dToConv2d(), block(opset), SHAPES, atol=1e-5)
    # the whole block, the two heads included, runs in 4-D: x enters once, y and z leave once each
    assert result.counts == {"Conv1d": 2, "region ops": 6, "Unsqueeze": 1, "Squeeze": 2}
    assert ops(result.model).count("Unsqueeze") == 1 and ops(result.model).count("Squeeze") == 2
    weights = {t.name: list(t.dims) for t in result.model.graph.initializer}
    assert all(len(weights[n.input[1]]) == 4 for n in result.model.graph.node if n.op_type == "Conv")


def test_strided_conv_and_outside_operands():
    m = parse("""
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[N, 2, L] x, float[N, 3, 1] gate) => (float[N, 3, ?] y) {
            c = Conv <strides = [2], kernel_shape = [2]> (x, w)
            y = Mul (c, gate)
        }
    """, w=f32(3, 2, 2))
    shapes = [{"x": (2, 2, 8), "gate": (2, 3, 1)}, {"x": (1, 2, 5), "gate": (1, 3, 1)}]
    result = check_exact(Conv1dToConv2d(), m, shapes, atol=1e-5)
    assert result.counts["Unsqueeze"] == 2  # x and gate enter the region


def test_conv2d_and_dynamic_weights_are_skipped():
    m = parse("""
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[1, 2, 4, 4] x, float[3, 2, 1] w) => (float[1, 3, 4, 4] y, float[1, 3, 4] z) {
            y = Conv (x, k)
            x1 = ReduceMean <axes = [2], keepdims = 0> (x)
            z = Conv (x1, w)
        }
    """, k=f32(3, 2, 1, 1))
    result = Conv1dToConv2d()(m)
    assert not result.changed
    assert any("weight is 4-D (a Conv2d)" in n for n in result.notes)
    assert any("weight is not a constant" in n for n in result.notes)
