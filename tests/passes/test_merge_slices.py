from __future__ import annotations

import numpy as np
from graph_builders import parse
from pass_checks import check_exact, ops
from surgery.passes.merge_slices import MergeSlices

I64 = np.int64


def chain(s1, e1, a1, s2, e2, a2, dims="N, 8, 10", out="N, ?, ?", steps1=None, opset=13):
    steps = ", st1" if steps1 is not None else ""
    text = f"""
        <ir_version: 8, opset_import: ["" : {opset}]>
        g (float[{dims}] x) => (float[{out}] y) {{
            t = Slice (x, s1, e1, a1{steps})
            y = Slice (t, s2, e2, a2)
        }}
    """
    inits = dict(s1=np.array(s1, I64), e1=np.array(e1, I64), a1=np.array(a1, I64),
                 s2=np.array(s2, I64), e2=np.array(e2, I64), a2=np.array(a2, I64))
    if steps1 is not None:
        inits["st1"] = np.array(steps1, I64)
    return parse(text, **inits)


SHAPES = [{"x": (1, 8, 10)}, {"x": (3, 8, 10)}]


def test_different_axes_merge():
    result = check_exact(MergeSlices(), chain([1], [5], [1], [2], [9], [2]), SHAPES)
    assert result.counts == {"Slice → Slice": 1} and ops(result.model) == ["Slice"]


def test_same_axis_composes():
    result = check_exact(MergeSlices(), chain([2], [10], [2], [1], [5], [2]), SHAPES)
    assert ops(result.model) == ["Slice"]
    inits = {t.name: t for t in result.model.graph.initializer}
    node = result.model.graph.node[0]
    assert list(np.frombuffer(inits[node.input[1]].raw_data, I64)) == [3]


def test_same_axis_negative_bounds_with_known_length():
    m = chain([-7], [2**63 - 1], [-1], [1], [-1], [2])
    result = check_exact(MergeSlices(), m, SHAPES)
    assert ops(result.model) == ["Slice"]


def test_three_slices_merge_in_one_run():
    m = parse("""
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[N, 8, 10] x) => (float[N, ?, ?] y) {
            a = Slice (x, s, e, ax0)
            b = Slice (a, s, e, ax1)
            y = Slice (b, s, e, ax2)
        }
    """, s=np.array([1], I64), e=np.array([6], I64), ax0=np.array([0], I64), ax1=np.array([1], I64),
               ax2=np.array([2], I64))
    result = check_exact(MergeSlices(), m, [{"x": (7, 8, 10)}, {"x": (2, 8, 10)}])
    assert result.counts == {"Slice → Slice": 2} and ops(result.model) == ["Slice"]


def test_opset9_attribute_slices():
    m = parse("""
        <ir_version: 7, opset_import: ["" : 9]>
        g (float[N, 8, 10] x) => (float[N, 4, 3] y) {
            t = Slice <starts = [1], ends = [5], axes = [1]> (x)
            y = Slice <starts = [0], ends = [3], axes = [2]> (t)
        }
    """)
    result = check_exact(MergeSlices(), m, SHAPES)
    assert ops(result.model) == ["Slice"]


def test_reasons():
    result = MergeSlices()(chain([0], [8], [1], [1], [5], [1], steps1=[2]))
    assert not result.changed and any("steps other than 1" in n for n in result.notes)
    m = parse("""
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[2, 8] x, int64[1] e) => (float[2, ?] y, float[?, ?] z) {
            t = Slice (x, s, e, a)
            y = Slice (t, s, e, a)
            z = Relu (t)
        }
    """, s=np.array([1], I64), a=np.array([1], I64))
    result = MergeSlices()(m)
    assert not result.changed and any("feeds other nodes" in n for n in result.notes)
