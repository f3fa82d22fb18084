from __future__ import annotations

from graph_builders import parse
from pass_checks import check_exact, ops
from surgery.passes.merge_concats import MergeConcats


def test_nested_concats_flatten_into_one():
    m = parse("""
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[N, 2] a, float[N, 3] b, float[N, 1] c) => (float[N, 12] y) {
            i1 = Concat <axis = 1> (a, b)
            i2 = Concat <axis = -1> (c, i1)
            i1_copy = Identity (b)
            y = Concat <axis = 1> (i2, a, i1_copy, c)
        }
    """)
    result = check_exact(MergeConcats(), m, [{"a": (1, 2), "b": (1, 3), "c": (1, 1)},
                                             {"a": (4, 2), "b": (4, 3), "c": (4, 1)}])
    assert result.counts == {"Concat → Concat": 2}
    assert ops(result.model) == ["Identity", "Concat"]
    assert list(result.model.graph.node[1].input) == ["c", "a", "b", "a", "i1_copy", "c"]


def test_different_axes_are_skipped():
    m = parse("""
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[2, 2] a) => (float[4, 4] y) {
            i = Concat <axis = 0> (a, a)
            y = Concat <axis = 1> (i, i)
        }
    """)
    result = MergeConcats()(m)
    assert not result.changed
    assert any("the axes differ (0 and 1)" in n for n in result.notes)


def test_inner_read_elsewhere_is_skipped():
    m = parse("""
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[2, 2] a) => (float[2, 6] y, float[2, 4] z) {
            z = Concat <axis = 1> (a, a)
            y = Concat <axis = 1> (z, a)
        }
    """)
    result = MergeConcats()(m)
    assert not result.changed and any("graph output" in n for n in result.notes)
