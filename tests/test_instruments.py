"""The instruments enforce the pass contract and compare what they claim to: each case of issue 9."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import onnx
import pytest
from graph_builders import parse, two_heads
from onnx import TensorProto, helper
from surgery.passes import EliminateDeadCode, FixShapes, ResizeNearest, Simplify, Truncate

from surgery.apply import NotVerifiedError, apply
from surgery.errors import VerificationError
from surgery.instruments import Contract, NumericParity, interface, interface_changes
from surgery.pass_infra import Pass, PassResult
from surgery.pipeline import Pipeline
from surgery.verification import FAILED, UNCHANGED, UNVERIFIED, VERIFIED


def _set(model: onnx.ModelProto, name: str, value: np.ndarray) -> None:
    t = next(t for t in model.graph.initializer if t.name == name)
    t.CopyFrom(onnx.numpy_helper.from_array(value.astype(np.float32), name))


@dataclass(frozen=True, kw_only=True)
class QuietEdit(Pass):
    """Doubles a weight and says it changed nothing."""

    name: ClassVar[str] = "quiet_edit"

    def call(self, model):
        w = next(t for t in model.graph.initializer if t.name == "w")
        _set(model, "w", onnx.numpy_helper.to_array(w) * 2)
        return PassResult(model, changed=False)


@dataclass(frozen=True, kw_only=True)
class DropAux(Pass):
    """Removes the graph output 'aux' without declaring it."""

    name: ClassVar[str] = "drop_aux"

    def call(self, model):
        keep = [o for o in model.graph.output if o.name != "aux"]
        del model.graph.output[:]
        model.graph.output.extend(keep)
        return PassResult(model, changed=True)


@dataclass(frozen=True, kw_only=True)
class RenameAux(Pass):
    """Renames the graph output 'aux' to 'probs' without declaring it."""

    name: ClassVar[str] = "rename_aux"

    def call(self, model):
        from surgery.passes.prune_outputs import rename_tensor

        rename_tensor(model.graph, "aux", "probs")
        return PassResult(model, changed=True)


@dataclass(frozen=True, kw_only=True)
class RenameInputAndScale(Pass):
    """Renames input 'x' to 'image' and doubles the conv weight."""

    name: ClassVar[str] = "rename_input"

    def call(self, model):
        model.graph.input[0].name = "image"
        for node in model.graph.node:
            node.input[:] = ["image" if x == "x" else x for x in node.input]
        w = next(t for t in model.graph.initializer if t.name == "w")
        _set(model, "w", onnx.numpy_helper.to_array(w) * 2)
        return PassResult(model, changed=True)


@dataclass(frozen=True, kw_only=True)
class SaysChanged(Pass):
    """Claims a change and makes none."""

    name: ClassVar[str] = "says_changed"

    def call(self, model):
        return PassResult(model, changed=True, counts={"nothing": 1})


def test_a_pass_that_edits_and_says_unchanged_fails():
    with pytest.raises(VerificationError, match="pass quiet_edit reported no change but edited the model"):
        apply(two_heads(), [QuietEdit()])


def test_a_claimed_change_that_changed_nothing_is_unchanged_not_compared():
    result = apply(two_heads(), [SaysChanged()])
    step = result.steps[0]
    assert step.verification.status == UNCHANGED and step.figures["parity"] == {"skipped": "model unchanged"}
    assert result.verified


@pytest.mark.parametrize(("pass_", "message"), [
    (DropAux(), "is exact but dropped graph output 'aux' without declaring it"),
    (RenameAux(), "is exact but renamed graph output 'aux' to 'probs' without declaring it"),
    (RenameInputAndScale(), "is exact but renamed graph input 'x' to 'image' without declaring it"),
])
def test_an_exact_pass_keeps_the_interface_unless_it_declares_the_change(pass_, message):
    with pytest.raises(VerificationError, match=message):
        apply(two_heads(), [pass_])


def test_declared_output_changes_pass_the_contract():
    before = two_heads()
    after = two_heads()
    result = Truncate(tensors=("r",))(after)
    assert interface_changes(interface(before), interface(after), result) == []
    assert result.dropped_outputs == ["up", "aux"] and result.added_outputs == ["r"]
    undeclared = PassResult(after, changed=True)
    assert interface_changes(interface(before), interface(after), undeclared)[0].text == (
        "renamed graph output 'up' to 'r' without declaring it")


def test_dtype_and_rank_changes_are_named():
    before, after = two_heads(), two_heads()
    after.graph.output[1].type.tensor_type.elem_type = TensorProto.FLOAT16
    after.graph.output[0].type.tensor_type.shape.dim.pop()
    problems = interface_changes(interface(before), interface(after), PassResult(after, changed=True))
    assert [(c.kind, c.text) for c in problems] == [
        ("rank", "changed the rank of graph output 'up' from 4 to 3"),
        ("dtype", "changed the dtype of graph output 'aux' from float to float16")]


# -- samples from several distributions -------------------------------------------------------------

NEG_BRANCH = """
<ir_version: 7, opset_import: ["" : 13]>
g (float[1, 8] x) => (float[1, 8] y) {
    n = Neg (x)
    r = Relu (n)
    s = Mul (r, w)
    y = Add (s, x)
}
"""


@dataclass(frozen=True, kw_only=True)
class ScaleNegativeBranch(Pass):
    """Exact in name only: changes a weight that matters only for negative inputs."""

    name: ClassVar[str] = "scale_w"

    def call(self, model):
        _set(model, "w", np.full(8, 3.0))
        return PassResult(model, changed=True)


def test_a_weight_behind_a_negative_only_branch_is_caught():
    model = parse(NEG_BRANCH, w=np.ones(8, np.float32))
    # samples from [0, 1) alone never reach the branch: this is what verification used to do
    assert apply(model, [ScaleNegativeBranch()], distributions=("uniform",)).verified
    with pytest.raises(VerificationError, match="scale_w is exact but changed output 'y'"):
        apply(model, [ScaleNegativeBranch()])


def test_samples_rotate_through_named_distributions_and_are_recorded():
    result = apply(two_heads(), [EliminateDeadCode()], samples=4, seed=7)
    per_sample = result.figures["parity_inputs"]["per_sample"]
    assert [s["distribution"] for s in per_sample] == ["normal", "uniform", "image", "normal"]
    assert [s["seed"] for s in per_sample] == [7, 8, 9, 10]
    assert result.steps[0].verification.samples == per_sample


# -- shapes a pass sets ------------------------------------------------------------------------------

FLAT = """
<ir_version: 7, opset_import: ["" : 13]>
g (float[1, 3, 8, 8] x) => (float[1, 4] y) {
    f = Reshape (x, flat)
    y = MatMul (f, w)
}
"""

DYNAMIC_HW = """
<ir_version: 7, opset_import: ["" : 13]>
g (float[1, 3, H, W] x) => (float[1, 4, H, W] y) {
    c = Conv <pads = [1, 1, 1, 1]> (x, w)
    y = Relu (c)
    dead = Neg (c)
}
"""


def test_a_static_shape_the_model_before_cannot_take_is_unverified_with_the_reason():
    model = parse(FLAT, w=np.ones((192, 4), np.float32), flat=np.array([1, 192], np.int64))
    result = apply(model, [FixShapes(shapes="x:1x3x16x16")])
    v = result.steps[0].verification
    assert v.status == UNVERIFIED
    assert v.reasons[0].startswith("the model before the pass cannot take x:1x3x16x16")
    assert not result.verified
    assert result.verification.describe().startswith("NOT VERIFIED: fix_shapes (the model before the pass cannot "
                                                     "take x:1x3x16x16")
    with pytest.raises(NotVerifiedError, match=r"NOT VERIFIED: fix_shapes .*\(--strict\)"):
        apply(model, [FixShapes(shapes="x:1x3x16x16")], strict=True)


def test_new_static_shapes_are_compared_by_running_the_model_before_at_them():
    result = apply(two_heads(), [FixShapes(shapes="x:1x3x16x16")])
    v = result.steps[0].verification
    assert v.status == VERIFIED and result.steps[0].figures["parity"]["outputs"]["up"]["shape"] == [1, 4, 32, 32]


def test_the_shapes_a_pass_sets_are_the_shapes_later_verification_uses():
    model = parse(DYNAMIC_HW, w=np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32))
    result = apply(model, [FixShapes(shapes="x:1x3x20x24"), Simplify()])  # no --input-shapes given
    assert [s.verification.status for s in result.steps] == [VERIFIED, VERIFIED]  # simplify drops the dead Neg
    assert result.verified
    assert result.steps[0].figures["parity"]["outputs"]["y"]["shape"] == [1, 4, 20, 24]


def test_dynamic_dims_with_no_size_leave_the_steps_unverified_with_the_hint():
    model = parse(DYNAMIC_HW, w=np.ones((4, 3, 3, 3), np.float32))
    result = apply(model, [EliminateDeadCode()])
    reasons = result.steps[0].verification.reasons
    assert len(reasons) == 1 and "give its size with --input-shapes x:1x3xNxN" in reasons[0]
    assert apply(model, [EliminateDeadCode()], input_shapes={"x": (1, 3, 8, 8)}).verified


@dataclass(frozen=True, kw_only=True)
class BatchTwoAndScale(Pass):
    """Sets a static batch of 2 and, quietly, doubles the conv weight."""

    name: ClassVar[str] = "batch_two"

    def call(self, model):
        FixShapes(batch="2")(model)
        w = next(t for t in model.graph.initializer if t.name == "w")
        _set(model, "w", onnx.numpy_helper.to_array(w) * 2)
        return PassResult(model, changed=True)


def test_a_static_batch_change_with_a_weight_change_is_caught():
    model = two_heads()
    FixShapes(batch="1")(model)
    with pytest.raises(VerificationError, match="batch_two is exact but changed output 'up'"):
        apply(model, [BatchTwoAndScale()])


def test_a_static_batch_change_alone_is_compared_row_by_row():
    model = two_heads()
    FixShapes(batch="1")(model)
    result = apply(model, [FixShapes(batch="3")])
    assert result.steps[0].verification.status == VERIFIED
    assert result.steps[0].figures["parity"]["outputs"]["up"]["shape"] == [3, 4, 16, 16]


# -- a dynamic batch is proven ------------------------------------------------------------------------

RESHAPE_PIN = """
<ir_version: 7, opset_import: ["" : 13]>
g (float[1, 2, 8] x) => (float[1, 16] y) {
    f = Reshape (x, shape)
    y = Relu (f)
}
"""


def class_token_model() -> onnx.ModelProto:
    """A ViT-like head: a constant class token expanded to batch 1 at export, concatenated to the tokens."""
    nodes = [helper.make_node("Expand", ["cls", "cls_shape"], ["tok"], name="expand_cls"),
             helper.make_node("Concat", ["tok", "x"], ["seq"], axis=1, name="concat_cls"),
             helper.make_node("Relu", ["seq"], ["y"])]
    graph = helper.make_graph(
        nodes, "vit_head", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5, 8])],
        [onnx.numpy_helper.from_array(np.ones((1, 1, 8), np.float32), "cls"),
         onnx.numpy_helper.from_array(np.array([1, 1, 8], np.int64), "cls_shape")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def test_dynamic_batch_with_a_literal_reshape_fails_at_batch_2():
    model = parse(RESHAPE_PIN, shape=np.array([1, -1], np.int64))
    with pytest.raises(VerificationError, match=r"fix_shapes: at batch 2, output 'y' has shape \[1, 32\] where each "
                                                r"sample run alone gives \[1, 16\]: its batch does not follow") as info:
        apply(model, [FixShapes(batch="dynamic")])
    assert "hazard: Reshape" in str(info.value) and "constant target shape [1, -1]" in str(info.value)


def test_dynamic_batch_pinned_by_an_expanded_class_token_fails_and_names_the_hazard():
    with pytest.raises(VerificationError, match="does not run at batch 2") as info:
        apply(class_token_model(), [FixShapes(batch="dynamic")])
    assert "hazard: Concat 'concat_cls' joins a constant 'tok'" in str(info.value)


def test_a_sound_dynamic_batch_is_proven_at_each_verify_batch():
    model = two_heads()
    FixShapes(batch="1")(model)
    result = apply(model, [FixShapes(batch="dynamic")], verify_batches=(2, 5))
    v = result.steps[0].verification
    assert v.status == VERIFIED and v.batches == [1, 2, 5] and v.hazards == []


def test_a_freed_batch_without_verify_batches_is_unverified():
    model = two_heads()
    FixShapes(batch="1")(model)
    result = apply(model, [FixShapes(batch="dynamic")], verify_batches=())
    assert result.steps[0].verification.reasons == [
        "the batch is now dynamic but no --verify-batches were given to prove it"]


# -- pre-existing damage, models random samples cannot run, non-finite outputs ---------------------------

def test_a_model_that_already_fails_the_full_check_is_named_and_strict_fails():
    model = two_heads()
    model.graph.initializer.append(onnx.numpy_helper.from_array(np.ones(3, np.float32), "unused"))
    result = apply(model, [ResizeNearest()])
    assert result.steps[0].verification.status == VERIFIED  # the pass's change itself was compared
    assert result.verification.input_problems == [
        "the model given already fails the onnx checker's full check: unused initializer name is not unique"]
    assert result.verification.describe().startswith("NOT VERIFIED: input (the model given already fails")
    with pytest.raises(NotVerifiedError):
        apply(model, [ResizeNearest()], strict=True)


EXPAND_BY_INPUT = """
<ir_version: 7, opset_import: ["" : 13]>
g (float[2, 3] x, int64[2] s) => (float[N, M] y) {
    t = Add (s, five)
    e = Expand (x, t)
    y = Relu (e)
}
"""


def test_a_model_random_samples_cannot_run_still_runs_the_passes_unverified(tmp_path):
    model = parse(EXPAND_BY_INPUT, five=np.array([5, 5], np.int64))
    model.graph.node.append(helper.make_node("Neg", ["x"], ["dead"]))
    result = apply(model, [EliminateDeadCode()])
    assert result.steps[0].counts == {"nodes": 1}
    (reason,) = result.steps[0].verification.reasons
    assert reason.startswith("the model given does not run on the generated samples")
    assert reason.endswith("give real samples with --inputs FILE.npz")
    real = tmp_path / "real.npz"
    np.savez(real, x=np.ones((2, 3), np.float32), s=np.array([-4, -2], np.int64))  # s + 5 = [1, 3]
    assert apply(model, [EliminateDeadCode()], inputs=real).verified


def test_a_sequence_input_leaves_steps_unverified_not_refused():
    seq = helper.make_tensor_sequence_value_info("xs", TensorProto.FLOAT, None)
    nodes = [helper.make_node("SequenceAt", ["xs", "zero"], ["y"]), helper.make_node("Neg", ["y"], ["dead"])]
    graph = helper.make_graph(nodes, "seq", [seq], [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [onnx.numpy_helper.from_array(np.array(0, np.int64), "zero")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    result = apply(model, [EliminateDeadCode()])
    assert result.steps[0].changed
    assert "input 'xs' is not a tensor" in result.steps[0].verification.reasons[0]


INF = """
<ir_version: 7, opset_import: ["" : 13]>
g (float[1, 8] x) => (float[1, 8] y) {
    y = Div (x, zero)
    dead = Neg (x)
}
"""


def test_infinities_on_both_sides_match():
    model = parse(INF, zero=np.zeros(8, np.float32))
    result = apply(model, [EliminateDeadCode()])
    d = result.steps[0].figures["parity"]["outputs"]["y"]
    assert d["passed"] and d["nonfinite"] == 0 and result.verified


def test_a_loop_output_can_be_truncated_at():
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]), helper.make_node("Mul", ["v_in", "two"], ["v_out"])],
        "body", [helper.make_tensor_value_info("i", TensorProto.INT64, []),
                 helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
                 onnx.ValueInfoProto(name="v_in")],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []), onnx.ValueInfoProto(name="v_out")])
    nodes = [helper.make_node("Loop", ["trips", "cond", "x"], ["loop_out"], body=body, name="loop"),
             helper.make_node("Add", ["loop_out", "x"], ["y"])]
    graph = helper.make_graph(
        nodes, "looped", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
        [onnx.numpy_helper.from_array(np.array(3, np.int64), "trips"),
         onnx.numpy_helper.from_array(np.array(True), "cond"),
         onnx.numpy_helper.from_array(np.array(2.0, np.float32), "two")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    inferred = onnx.shape_inference.infer_shapes(model)
    assert not any(v.name == "loop_out" and v.type.tensor_type.HasField("shape") for v in inferred.graph.value_info)
    result = apply(model, [Truncate(tensors=("loop_out",))])
    out = result.model.graph.output[0]
    assert out.name == "loop_out" and len(out.type.tensor_type.shape.dim) == 2  # rank from a run
    assert result.verified and result.steps[0].figures["parity"]["outputs"]["loop_out"]["max_abs"] == 0


# -- the pipeline records a failure on the step ---------------------------------------------------------

def test_a_failed_step_carries_its_failure():
    steps = []
    with pytest.raises(VerificationError):
        Pipeline([QuietEdit()], [Contract()]).run(two_heads(), on_step=steps.append)
    assert steps[0].verification.status == FAILED
    assert steps[0].to_dict()["verification"]["failure"].startswith("pass quiet_edit reported no change")


def test_parity_alone_detects_an_unchanged_model_by_digest():
    result = Pipeline([SaysChanged()], [NumericParity()]).run(two_heads())
    assert result.steps[0].verification.unchanged
