from __future__ import annotations

import numpy as np
from graph_builders import op_types, parse, run, two_heads
from surgery.passes import EliminateDeadCode


def test_removes_dead_nodes_initializers_and_value_info():
    model = two_heads()
    model.graph.value_info.append(onnx_vi("dead"))
    feed = {"x": np.random.default_rng(1).random((2, 3, 8, 8), dtype=np.float32)}
    before = run(model, feed)
    result = EliminateDeadCode()(model)
    assert result.changed
    assert result.counts == {"nodes": 1, "initializers": 1, "value_info": 1}
    assert op_types(model) == ["Conv", "Relu", "Resize", "Sigmoid"]
    assert "unused" not in {t.name for t in model.graph.initializer}
    after = run(model, feed)
    for name in before:
        np.testing.assert_array_equal(before[name], after[name])


def test_nothing_dead_says_why():
    model = parse("""
        <ir_version: 7, opset_import: ["" : 13]>
        g (float[2] x) => (float[2] y) { y = Relu (x) }
    """)
    result = EliminateDeadCode()(model)
    assert not result.changed
    assert result.counts == {}
    assert any("every node and initializer feeds a graph output" in n for n in result.notes)


def test_unused_graph_input_is_kept_and_noted():
    model = parse("""
        <ir_version: 7, opset_import: ["" : 13]>
        g (float[2] x, float[2] spare) => (float[2] y) { y = Relu (x) }
    """)
    result = EliminateDeadCode()(model)
    assert [i.name for i in model.graph.input] == ["x", "spare"]
    assert any("'spare' is unused" in n for n in result.notes)


def test_legacy_initializer_inputs_are_dropped_with_the_initializer():
    model = parse("""
        <ir_version: 3, opset_import: ["" : 9]>
        g (float[2] x, float[2] old) => (float[2] y) { y = Relu (x) }
    """, old=np.ones(2, np.float32))
    result = EliminateDeadCode()(model)
    assert result.counts["initializers"] == 1
    assert [i.name for i in model.graph.input] == ["x"]


def test_subgraph_reads_keep_outer_tensors_alive():
    model = parse("""
        <ir_version: 7, opset_import: ["" : 13]>
        g (bool c, float[2] x) => (float[2] y) {
            t = Neg (x)
            y = If (c) <then_branch = then_g () => (float[2] a) { a = Relu (t) },
                        else_branch = else_g () => (float[2] b) { b = Identity (x) }>
        }
    """)
    result = EliminateDeadCode()(model)
    assert not result.changed
    assert op_types(model) == ["Neg", "If"]


def onnx_vi(name):
    import onnx

    return onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
