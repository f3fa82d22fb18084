from __future__ import annotations

import numpy as np
from graph_builders import parse
from pass_checks import check_exact, ops
from surgery.passes.bn_to_mul_add import BnToMulAdd

RNG = np.random.default_rng(1)
STATS = {"s": RNG.random(6, dtype=np.float32) + 0.5, "b": RNG.standard_normal(6).astype(np.float32),
         "mu": RNG.standard_normal(6).astype(np.float32), "var": RNG.random(6, dtype=np.float32) + 0.1}


def model(perm1: str = "[0, 2, 1]", perm2: str = "[0, 2, 1]", extra: str = "", dims: str = "N, L, 6",
          out_dims: str | None = None) -> object:
    return parse(f"""
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[{dims}] x) => (float[{out_dims or dims}] y) {{
            t = Transpose <perm = {perm1}> (x)
            n = BatchNormalization <epsilon = 0.001> (t, s, b, mu, var)
            y = Transpose <perm = {perm2}> (n)
            {extra}
        }}
    """, **STATS)


def test_sequence_batchnorm_becomes_mul_add():
    result = check_exact(BnToMulAdd(), model(), [{"x": (1, 5, 6)}, {"x": (3, 17, 6)}])
    assert result.counts == {"Transpose → BatchNormalization → Transpose": 1}
    assert ops(result.model) == ["Mul", "Add"]


def test_rank4_channels_last():
    m = model("[0, 3, 1, 2]", "[0, 2, 3, 1]", dims="N, H, W, 6")
    result = check_exact(BnToMulAdd(), m, [{"x": (2, 3, 4, 6)}, {"x": (1, 7, 1, 6)}])
    assert ops(result.model) == ["Mul", "Add"]
    assert list(result.model.graph.initializer[-2].dims) == [6]  # broadcasts on the last axis


def test_transposes_that_do_not_cancel_are_skipped_with_the_reason():
    m = model("[0, 2, 1, 3]", "[0, 1, 3, 2]", dims="2, 3, 6, 4", out_dims="2, 6, 4, 3")
    result = BnToMulAdd()(m)
    assert not result.changed
    assert any("do not cancel" in n for n in result.notes)


def test_shared_transpose_is_skipped():
    m = parse("""
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[2, 4, 6] x) => (float[2, 4, 6] y, float[2, 6, 4] z) {
            t = Transpose <perm = [0, 2, 1]> (x)
            n = BatchNormalization (t, s, b, mu, var)
            y = Transpose <perm = [0, 2, 1]> (n)
            z = Relu (t)
        }
    """, **STATS)
    result = BnToMulAdd()(m)
    assert not result.changed and any("first Transpose feeds other nodes" in n for n in result.notes)


def test_no_pattern_note():
    m = parse("""
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[2, 6, 4] x) => (float[2, 6, 4] y) { y = BatchNormalization (x, s, b, mu, var) }
    """, **STATS)
    result = BnToMulAdd()(m)
    assert not result.changed and result.notes[0].startswith("no t1:Transpose → bn:BatchNormalization")
