from __future__ import annotations

import numpy as np
from graph_builders import parse, run
from pass_checks import assert_idempotent, copy_of, ops, random_feed
from surgery.passes.empty_slice_fix import EmptySliceFix

I64 = np.int64


def model(start, end, other: bool = True):
    second = ", b" if other else ""
    return parse(f"""
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[N, 4] x, float[N, 2] b) => (float[N, ?] y) {{
            e = Slice (x, s, en, ax)
            y = Concat <axis = 1> (e{second})
        }}
    """, s=np.array([start], I64), en=np.array([end], I64), ax=np.array([1], I64))


def deviation(before, after, shapes):
    worst = 0.0
    for k, shape in enumerate(shapes):
        feed = random_feed(before, shape, k)
        want, got = run(before, feed)["y"], run(after, feed)["y"]
        assert want.shape == got.shape
        worst = max(worst, float(np.abs(want - got).max(initial=0.0)))
    return worst


SHAPES = [{"x": (1, 4), "b": (1, 2)}, {"x": (3, 4), "b": (3, 2)}]


def test_empty_slice_leaves_the_concat_and_it_is_bypassed():
    before = model(2, 2)
    result = EmptySliceFix()(copy_of(before))
    assert result.counts == {"Slice (empty)": 1}  # the Concat makes the graph output: kept, with one input
    assert ops(result.model) == ["Concat"] and list(result.model.graph.node[0].input) == ["b"]
    assert deviation(before, result.model, SHAPES) == 0.0
    assert_idempotent(EmptySliceFix(), result.model)


def test_clamped_range_on_a_known_axis_is_empty():
    before = model(6, 9)
    result = EmptySliceFix()(copy_of(before))
    assert result.changed and deviation(before, result.model, SHAPES) == 0.0


def test_non_empty_and_all_empty_are_left():
    result = EmptySliceFix()(model(0, 2))
    assert not result.changed and any("not certainly empty" in n for n in result.notes)
    result = EmptySliceFix()(model(1, 1, other=False))
    assert not result.changed and any("every input of the Concat is empty" in n for n in result.notes)
