from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import onnx
import pytest
from graph_builders import op_types, parse, run
from onnx import TensorProto, helper

from surgery.matcher import Editor, Match, Pattern, PatternPass, Rule, run_rules


class DoubleRelu(Rule):
    """a:Relu → b:Relu ⇒ Relu: the second Relu of a pair is a no-op."""

    def check(self, g: Editor, m: Match) -> str | None:
        if len(g.consumers_of(m["a"].output[0])) != 1:
            return "the first Relu has other readers"
        return None

    def rewrite(self, g: Editor, m: Match) -> None:
        g.replace_uses(m["b"].output[0], m["a"].output[0])
        g.remove(m["b"])


class FlattenConcat(Rule):
    """Concat →* Concat ⇒ Concat: an inner Concat on the same axis is flattened into the outer."""

    def check(self, g: Editor, m: Match) -> str | None:
        inner, outer = m.nodes
        if g.attr(inner, "axis") != g.attr(outer, "axis"):
            return "axes differ"
        return None

    def rewrite(self, g: Editor, m: Match) -> None:
        inner, outer = m.nodes
        names = []
        for x in outer.input:
            names.extend(inner.input if x == inner.output[0] else [x])
        g.set_inputs(outer, names)
        if not g.consumers_of(inner.output[0]):
            g.remove(inner)


class SiblingNegs(Rule):
    """Neg+ ⇒ Neg: sibling Negs of one tensor become one."""

    def check(self, g: Editor, m: Match) -> str | None:
        return None if len(m.nodes) > 1 else "only one Neg"

    def rewrite(self, g: Editor, m: Match) -> str:
        keep, *rest = m.nodes
        for n in rest:
            g.remove(n)
            g.replace_uses(n.output[0], keep.output[0])
        return "Neg merged"


class LinearResize(Rule):
    """Resize(mode=linear|cubic) ⇒ Resize(mode=nearest)."""

    def rewrite(self, g: Editor, m: Match) -> None:
        g.set_attr(m.anchor, "mode", "nearest")


def relu_chain() -> onnx.ModelProto:
    return parse("""
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[2, 3] x) => (float[2, 3] y, float[2, 3] z) {
            a = Relu (x)
            b = Relu (a)
            c = Relu (b)
            y = Sigmoid (c)
            z = Relu (y)
        }
    """)


def test_pattern_grammar():
    p = Pattern.parse("t1:Transpose → bn:BatchNormalization(training_mode=0) →* Transpose ⇒ Mul → Add")
    assert [s.ops for s in p.steps] == [("Transpose",), ("BatchNormalization",), ("Transpose",)]
    assert p.steps[0].label == "t1" and p.steps[2].any_slot and not p.steps[1].any_slot
    assert p.steps[1].conds[0].values == ("0",)
    assert p.text() == "t1:Transpose → bn:BatchNormalization(training_mode=0) →* Transpose"
    assert Pattern.parse("Slice+ ⇒ Split").fan
    assert Pattern.parse("Resize|Upsample(mode!=nearest) -> Relu").steps[0].conds[0].negate
    for bad in ("⇒ x", "Relu →", "Relu(mode) ⇒", "a:Relu → a:Relu ⇒", "Relu → Neg+ ⇒"):
        with pytest.raises(ValueError):
            Pattern.parse(bad)


def test_rule_without_arrow_in_doc_has_no_pattern():
    class NoPattern(Rule):
        """Just prose."""

    with pytest.raises(TypeError, match="no pattern"):
        run_rules(relu_chain(), [NoPattern()])


def test_chain_rewrites_in_one_sweep_and_keeps_parity():
    model = relu_chain()
    feed = {"x": np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)}
    before = run(model, feed)
    report = run_rules(model, [DoubleRelu()])
    assert report.changed and report.counts == {"Relu → Relu": 2}
    assert op_types(model) == ["Relu", "Sigmoid", "Relu"]
    onnx.checker.check_model(model)
    after = run(model, feed)
    for k in before:
        np.testing.assert_array_equal(before[k], after[k])
    again = run_rules(model, [DoubleRelu()])
    assert not again.changed and again.counts == {}


def test_check_reason_is_kept_as_a_note():
    model = parse("""
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[2] x) => (float[2] y, float[2] w) {
            a = Relu (x)
            y = Relu (a)
            w = Neg (a)
        }
    """)
    report = run_rules(model, [DoubleRelu()])
    assert not report.changed
    assert any("the first Relu has other readers" in n for n in report.notes)


def test_near_misses_at_the_anchor_are_grouped_by_reason():
    model = parse("""
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[2] x) => (float[2] y) {
            a = Neg (x)
            b = Relu (a)
            c = Neg (b)
            y = Relu (c)
        }
    """)
    report = run_rules(model, [DoubleRelu()])
    assert report.notes == ["no a:Relu → b:Relu in the graph",
                            "2 × Relu nodes whose input 0 comes from a Neg, not Relu"]


def test_any_slot_edge_and_anchor_rematched_after_rewrite():
    model = parse("""
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[1, 2] x, float[1, 2] w) => (float[1, 10] y) {
            a = Concat <axis = 1> (x, w)
            b = Concat <axis = 1> (w, x)
            y = Concat <axis = 1> (a, x, b)
        }
    """)
    feed = {"x": np.ones((1, 2), np.float32), "w": np.zeros((1, 2), np.float32)}
    before = run(model, feed)["y"]
    report = run_rules(model, [FlattenConcat()])
    assert report.counts == {"Concat → Concat": 2}
    assert op_types(model) == ["Concat"] and len(model.graph.node[0].input) == 5
    np.testing.assert_array_equal(run(model, feed)["y"], before)


def test_sibling_group():
    model = parse("""
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[2] x) => (float[2] y) {
            a = Neg (x)
            b = Neg (x)
            y = Add (a, b)
        }
    """)
    report = run_rules(model, [SiblingNegs()])
    assert report.counts == {"Neg merged": 1}
    assert op_types(model) == ["Neg", "Add"]
    assert list(model.graph.node[1].input) == ["a", "a"]
    onnx.checker.check_model(model)


def test_attribute_conditions_use_the_schema_default():
    model = parse("""
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[1, 1, 2, 2] x) => (float[1, 1, 4, 4] y, float[1, 1, 4, 4] z) {
            y = Resize <mode = "linear"> (x, roi, scales)
            z = Resize (x, roi, scales)
        }
    """, roi=np.zeros(0, np.float32), scales=np.array([1, 1, 2, 2], np.float32))
    report = run_rules(model, [LinearResize()])
    assert report.counts == {"Resize": 1}
    assert "1 × Resize nodes that are a Resize with mode=nearest, not mode=linear|cubic" in report.notes


def test_rules_walk_if_branches_and_read_outer_constants():
    then = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["t1"]), helper.make_node("Relu", ["t1"], ["t2"]),
         helper.make_node("Add", ["t2", "k"], ["t3"])],
        "then", [], [helper.make_tensor_value_info("t3", TensorProto.FLOAT, [2])])
    other = helper.make_graph([helper.make_node("Neg", ["x"], ["e1"])], "else", [],
                              [helper.make_tensor_value_info("e1", TensorProto.FLOAT, [2])])
    graph = helper.make_graph(
        [helper.make_node("If", ["cond"], ["y"], then_branch=then, else_branch=other, name="branch")], "g",
        [helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
         helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        [onnx.numpy_helper.from_array(np.array([1.0, 2.0], np.float32), "k")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    seen = {}

    class ReadsK(DoubleRelu):
        """a:Relu → b:Relu ⇒ Relu."""

        def rewrite(self, g: Editor, m: Match) -> None:
            seen["k"] = g.constant("k")
            super().rewrite(g, m)

    report = run_rules(model, [ReadsK()])
    assert report.counts == {"Relu → Relu": 1}
    np.testing.assert_array_equal(seen["k"], [1.0, 2.0])
    body = next(a.g for a in model.graph.node[0].attribute if a.name == "then_branch")
    assert [n.op_type for n in body.node] == ["Relu", "Add"] and body.node[1].input[0] == "t1"
    onnx.checker.check_model(model)
    feed = {"cond": np.array(True), "x": np.array([-1.0, 3.0], np.float32)}
    np.testing.assert_array_equal(run(model, feed)["y"], [1.0, 5.0])


def test_near_miss_inside_a_body_names_where():
    body = helper.make_graph([helper.make_node("Relu", ["x"], ["t1"]), helper.make_node("Neg", ["t1"], ["t2"]),
                              helper.make_node("Relu", ["t2"], ["t3"]), helper.make_node("Relu", ["t3"], ["t4"]),
                              helper.make_node("Neg", ["t3"], ["t5"]), helper.make_node("Add", ["t4", "t5"], ["o"])],
                             "then", [], [helper.make_tensor_value_info("o", TensorProto.FLOAT, [2])])
    graph = helper.make_graph(
        [helper.make_node("If", ["cond"], ["y"], then_branch=body, else_branch=body, name="br")], "g",
        [helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
         helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    report = run_rules(model, [DoubleRelu()])
    assert not report.changed
    assert "Relu nodes reading" not in " ".join(report.notes)
    assert any(n.endswith("(in If br.then_branch)") and "other readers" in n for n in report.notes)


def test_editor_helpers_constants_names_and_cleanup():
    model = parse("""
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[2] x) => (float[2] y) {
            c = Constant <value = float[2] {1, 2}> ()
            a = Add (x, c)
            b = Mul (a, k)
            y = Relu (b)
        }
    """, k=np.array([3.0, 4.0], np.float32))
    model.graph.value_info.append(helper.make_tensor_value_info("b", TensorProto.FLOAT, [2]))

    class FoldAddMul(Rule):
        """add:Add → mul:Mul ⇒ Mul → Add: constant operands folded as (x * k) + c * k."""

        def rewrite(self, g: Editor, m: Match) -> None:
            c, k = g.constant(m["add"].input[1]), g.constant(m["mul"].input[1])
            assert g.dtype("b") == TensorProto.FLOAT and g.shape("b") == (2,)
            kname = g.add_initializer(k, "k")
            cname = g.add_initializer(c * k, "ck")
            mul = g.add_node("Mul", [m["add"].input[0], kname], 1, name="scaled")
            g.remove(m["add"], m["mul"])
            g.add_node("Add", [mul.output[0], cname], ["b"], name="shifted")

    report = run_rules(model, [FoldAddMul()])
    assert report.changed
    names = {t.name for t in model.graph.initializer}
    assert names == {"k_1", "ck"}  # the old k and the Constant went with the nodes that read them
    assert op_types(model) == ["Mul", "Add", "Relu"]
    assert [v.name for v in model.graph.value_info] == ["b"]
    onnx.checker.check_model(model)
    y = run(model, {"x": np.array([1.0, -5.0], np.float32)})["y"]
    np.testing.assert_allclose(y, [6.0, 0.0])


def test_replace_uses_of_a_graph_output_keeps_its_name():
    model = parse("""
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[2] x) => (float[2] y) {
            a = Relu (x)
            y = Relu (a)
        }
    """)
    run_rules(model, [DoubleRelu()])
    assert [o.name for o in model.graph.output] == ["y"]
    assert op_types(model) == ["Relu", "Identity"]
    onnx.checker.check_model(model)


def test_out_of_order_insertions_are_sorted():
    model = parse("""
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[2] x) => (float[2] y) {
            a = Neg (x)
            b = Relu (a)
            y = Relu (b)
        }
    """)

    class InsertEarly(Rule):
        """first:Neg → Relu → Relu ⇒ Relu → Neg."""

        def rewrite(self, g: Editor, m: Match) -> None:
            neg, r1, r2 = m.nodes
            # placed before the Neg, yet reading the Relu's output: commit must reorder
            g.remove(r2)
            g.add_node("Sigmoid", [r1.output[0]], ["y"], before=neg)

    run_rules(model, [InsertEarly()])
    assert op_types(model) == ["Neg", "Relu", "Sigmoid"]
    onnx.checker.check_model(model)


def test_pattern_pass_is_a_pass_and_its_own_rule():
    @dataclass(frozen=True, kw_only=True)
    class DropDoubleRelu(PatternPass):
        """a:Relu → b:Relu ⇒ Relu (test pass)."""

        name: ClassVar[str] = "drop_double_relu"

        def rewrite(self, g: Editor, m: Match) -> None:
            DoubleRelu().rewrite(g, m)

    assert DropDoubleRelu.summary() == "a:Relu → b:Relu ⇒ Relu (test pass)."
    result = DropDoubleRelu()(relu_chain())
    assert result.changed and result.counts == {"Relu → Relu": 2}


def test_constant_folds_shape_expressions_over_static_dims_and_orphans_go():
    model = parse("""
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[N, 8, 3] x) => (float[N, ?, 3] y) {
            s = Shape (x)
            c = Gather (s, one)
            n = Gather (s, zero)
            half = Div (c, two)
            e = Unsqueeze (half, ax)
            y = Slice (x, z1, e, ax)
        }
    """, one=np.array(1, np.int64), zero=np.array(0, np.int64), two=np.array(2, np.int64),
               ax=np.array([0], np.int64), z1=np.array([0], np.int64))
    seen = {}

    class Fold(Rule):
        """Slice ⇒ Slice with constant bounds."""

        rematch = False

        def rewrite(self, g: Editor, m: Match) -> None:
            seen["end"] = g.constant(m.anchor.input[2])
            seen["batch"] = g.constant("n")  # the batch is dynamic: not a constant
            g.set_input(m.anchor, 2, g.add_initializer(seen["end"], "end"))

    run_rules(model, [Fold()])
    assert seen["end"].tolist() == [4] and seen["end"].dtype == np.int64 and seen["batch"] is None
    # the Shape → Gather → Div → Unsqueeze chain only fed the Slice's old end: it went with it
    assert op_types(model) == ["Shape", "Gather", "Slice"]
    onnx.checker.check_model(model)


def test_rules_walk_loop_bodies():
    body = helper.make_graph(
        [helper.make_node("Relu", ["acc"], ["r1"]), helper.make_node("Relu", ["r1"], ["r2"]),
         helper.make_node("Add", ["r2", "x"], ["acc_out"]), helper.make_node("Identity", ["c"], ["c_out"])],
        "body", [helper.make_tensor_value_info("i", TensorProto.INT64, []),
                 helper.make_tensor_value_info("c", TensorProto.BOOL, []),
                 helper.make_tensor_value_info("acc", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("c_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_out", TensorProto.FLOAT, [2])])
    graph = helper.make_graph(
        [helper.make_node("Loop", ["n", "", "x"], ["y"], body=body, name="loop")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        [onnx.numpy_helper.from_array(np.array(3, np.int64), "n")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    x = {"x": np.array([-1.0, 2.0], np.float32)}
    before = run(model, x)["y"]
    report = run_rules(model, [DoubleRelu()])
    assert report.counts == {"Relu → Relu": 1}
    onnx.checker.check_model(model)
    np.testing.assert_array_equal(run(model, x)["y"], before)
