from __future__ import annotations

import numpy as np
from graph_builders import parse
from pass_checks import check_exact, ops
from surgery.passes.gather_to_split import GatherToSplit

I64 = np.int64


def qkv(i0, i1, i2, opset=13, axis=0):
    return parse(f"""
        <ir_version: 8, opset_import: ["" : {opset}]>
        g (float[3, N, 4] x) => (float[?, ?] y, float[?, ?, ?] z) {{
            q = Gather <axis = {axis}> (x, i0)
            k = Gather <axis = {axis}> (x, i1)
            v = Gather <axis = {axis}> (x, i2)
            y = Mul (q, k)
            z = Identity (v)
        }}
    """, i0=np.array(i0, I64), i1=np.array(i1, I64), i2=np.array(i2, I64))


def test_qkv_scalars_become_split_and_squeezes():
    result = check_exact(GatherToSplit(), qkv(0, 1, [2]), [{"x": (3, 2, 4)}, {"x": (3, 5, 4)}])
    assert result.counts == {"Gather": 3, "Split": 1}
    assert ops(result.model) == ["Split", "Squeeze", "Squeeze", "Mul", "Identity"]


def test_negative_duplicate_and_gap_indices_opset11():
    result = check_exact(GatherToSplit(), qkv(-1, 0, [2], opset=11), [{"x": (3, 2, 4)}])
    assert result.counts == {"Gather": 3, "Split": 1}  # q and v (both index 2) share a piece; index 1 unused
    assert ops(result.model) == ["Split", "Squeeze", "Squeeze", "Mul", "Identity"]


def test_overlap_and_dynamic_axis_refused():
    result = GatherToSplit()(qkv([0, 1], [1, 2], 0))
    assert not result.changed and any("overlap at 0" in n for n in result.notes)
    result = GatherToSplit()(qkv(0, 1, 0, axis=1))
    assert not result.changed and any("length of axis 1 is unknown" in n for n in result.notes)
