from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import onnx
import pytest
from graph_builders import two_heads
from surgery.passes import EliminateDeadCode, PruneOutputs, ResizeNearest, Truncate

from surgery.apply import apply
from surgery.errors import PassError, UsageError, VerificationError
from surgery.pass_infra import Pass, PassResult


@dataclass(frozen=True, kw_only=True)
class Boom(Pass):
    """Always fails."""

    name: ClassVar[str] = "boom"

    def call(self, model):
        raise RuntimeError("kaboom\nsecond line")


@dataclass(frozen=True, kw_only=True)
class SneakyScale(Pass):
    """Claims to be exact but doubles the weights."""

    name: ClassVar[str] = "sneaky_scale"
    exact: ClassVar[bool] = True

    def call(self, model):
        w = next(t for t in model.graph.initializer if t.name == "w")
        w.CopyFrom(onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(w) * 2, "w"))
        return PassResult(model, changed=True, counts={"w": 1})


@dataclass(frozen=True, kw_only=True)
class BreaksChecker(Pass):
    """Adds a node of an unknown op type."""

    name: ClassVar[str] = "breaks_checker"

    def call(self, model):
        model.graph.node.append(onnx.helper.make_node("NoSuchOp", ["r"], ["zz"]))
        return PassResult(model, changed=True)


def test_error_names_the_pass_and_those_before():
    with pytest.raises(PassError, match=r"pass boom \(after eliminate_dead_code\): RuntimeError: kaboom$"):
        apply(two_heads(), [EliminateDeadCode(), Boom()], verify=False)


def test_usage_error_inside_a_pass_keeps_its_exit_code():
    with pytest.raises(UsageError, match=r"pass prune_outputs \(the first pass\): unknown graph output") as info:
        apply(two_heads(), [PruneOutputs(outputs=("nope",))], verify=False)
    assert info.value.exit_code == 2


def test_exact_pass_that_breaks_parity_fails():
    with pytest.raises(VerificationError, match="sneaky_scale is exact but changed output"):
        apply(two_heads(), [SneakyScale()])


def test_inexact_pass_reports_deviation_and_passes():
    result = apply(two_heads(), [ResizeNearest()])
    parity = result.steps[0].figures["parity"]
    assert parity["passed"] is False
    assert parity["outputs"]["up"]["max_abs"] > 1e-3
    assert parity["outputs"]["aux"]["max_abs"] == 0
    assert result.figures["parity_total"]["up"]["cosine"] < 1


def test_checker_failure_fails_the_run():
    with pytest.raises(VerificationError, match="breaks_checker: onnx checker rejects its output"):
        apply(two_heads(), [BreaksChecker()])


def test_truncate_new_outputs_are_compared_with_the_model_before():
    result = apply(two_heads(), [Truncate(tensors=("r",))])
    figures = result.steps[0].figures["parity"]
    assert figures["passed"] and figures["outputs"]["r"]["max_abs"] == 0


def test_renamed_outputs_are_compared_under_their_old_names():
    result = apply(two_heads(), [PruneOutputs(outputs=("up",), names=("main",))])
    assert result.steps[0].figures["parity"]["outputs"]["main"]["max_abs"] == 0


def test_input_model_is_not_modified_and_dry_run_changes_nothing():
    model = two_heads()
    data = model.SerializeToString()
    result = apply(model, [EliminateDeadCode()], dry_run=True)
    assert result.steps[0].counts == {"nodes": 1, "initializers": 1}
    assert model.SerializeToString() == data
    apply(model, [EliminateDeadCode()])
    assert model.SerializeToString() == data


def test_real_samples_from_npz(tmp_path):
    path = tmp_path / "in.npz"
    np.savez(path, x=np.random.default_rng(0).random((2, 1, 3, 8, 8), dtype=np.float32))
    result = apply(two_heads(), [EliminateDeadCode()], inputs=path, samples=1)
    assert result.figures["parity_inputs"]["samples"] == 3
    assert result.steps[0].figures["parity"]["samples"] == 3


def test_dynamic_dims_need_shapes():
    model = two_heads()
    model.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "H"
    result = apply(model, [EliminateDeadCode()])  # the passes run; what could not be compared is named
    assert result.steps[0].verification.reasons == [
        "input 'x' has a dynamic axis 2 ('H'): give its size with --input-shapes x:1x3xNx8"]
    assert not result.verified
    result = apply(model, [EliminateDeadCode()], input_shapes={"x": (1, 3, 8, 8)})
    assert result.steps[0].figures["parity"]["passed"] and result.verified


def test_step_reports_serialise_their_verification():
    result = apply(two_heads(), [EliminateDeadCode()])
    data = result.steps[0].to_dict()
    assert data["verification"]["status"] == "verified" and data["verification"]["digest_after"]
    assert data["warnings"] == []
