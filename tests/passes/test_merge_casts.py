from __future__ import annotations

import numpy as np
from graph_builders import parse
from onnx import TensorProto as T
from pass_checks import check_exact, ops
from surgery.passes.merge_casts import MergeCasts, lossless


def test_lossless_table():
    assert lossless(T.INT32, T.INT64) and lossless(T.UINT8, T.FLOAT16) and lossless(T.FLOAT16, T.FLOAT)
    assert lossless(T.BOOL, T.INT8) and lossless(T.INT16, T.FLOAT)
    assert not lossless(T.INT64, T.INT32) and not lossless(T.FLOAT, T.INT32) and not lossless(T.INT32, T.FLOAT)
    assert not lossless(T.FLOAT, T.FLOAT16) and not lossless(T.FLOAT16, T.BFLOAT16) and not lossless(T.INT8, T.BOOL)


def test_siblings_chains_and_identities():
    m = parse("""
        <ir_version: 8, opset_import: ["" : 13]>
        g (int32[N, 4] x, float[N, 4] f) => (float[N, 4] y, int32[N, 4] z, float[N, 4] w) {
            a = Cast <to = 7> (x)
            b = Cast <to = 7> (x)
            s = Add (a, b)
            c = Cast <to = 1> (s)
            up = Cast <to = 7> (x)
            back = Cast <to = 6> (up)
            z = Add (back, x)
            same = Cast <to = 1> (f)
            y = Add (c, same)
            d = Cast <to = 11> (f)
            w = Cast <to = 1> (d)
        }
    """)
    result = check_exact(MergeCasts(), m, [{"x": (1, 4), "f": (1, 4)}, {"x": (5, 4), "f": (5, 4)}])
    assert result.counts == {"Cast → Cast": 2, "Cast (identity)": 2, "Cast+ (siblings)": 1}
    # the int32 → int64 → int32 round trip and float → float are gone; w keeps its name via its own Cast
    assert ops(result.model).count("Cast") == 3


def test_narrowing_chain_is_kept_with_the_reason():
    m = parse("""
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[4] f) => (float[4] y) {
            i = Cast <to = 6> (f)
            y = Cast <to = 1> (i)
        }
    """)
    result = MergeCasts()(m)
    assert not result.changed
    assert any("(float → int32) can change values" in n for n in result.notes)
    f = {"f": np.array([1.5, -2.7, 3.0, 0.2], np.float32)}
    from graph_builders import run

    np.testing.assert_array_equal(run(m, f)["y"], [1.0, -2.0, 3.0, 0.0])


def test_cast_of_unknown_type_is_left_alone():
    m = parse("""
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[4] f) => (float[4] y) {
            u = Unique (f)
            i = Cast <to = 7> (u)
            y = Cast <to = 1> (i)
        }
    """)
    result = MergeCasts()(m)
    assert not result.changed
