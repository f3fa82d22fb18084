from __future__ import annotations

import numpy as np
import onnx
import pytest
from graph_builders import op_types, run, two_heads
from surgery.passes import PruneOutputs

from surgery.errors import UnknownNameError, UsageError

FEED = {"x": np.random.default_rng(2).random((1, 3, 8, 8), dtype=np.float32)}


@pytest.mark.parametrize("ref", ["up", "0", "Resize_317:0"])
def test_keeps_one_output_named_three_ways(ref):
    model = two_heads()
    before = run(model, FEED)
    result = PruneOutputs(outputs=(ref,))(model)
    assert result.changed
    assert [o.name for o in model.graph.output] == ["up"]
    assert op_types(model) == ["Conv", "Relu", "Resize"]
    assert result.counts["outputs_removed"] == 1
    onnx.checker.check_model(model)
    np.testing.assert_array_equal(run(model, FEED)["up"], before["up"])


def test_rename_and_reorder():
    model = two_heads()
    before = run(model, FEED)
    result = PruneOutputs(outputs=("aux", "up"), names=("probs", "main"))(model)
    assert [o.name for o in model.graph.output] == ["probs", "main"]
    assert result.renamed_outputs == {"probs": "aux", "main": "up"}
    after = run(model, FEED)
    np.testing.assert_array_equal(after["main"], before["up"])
    np.testing.assert_array_equal(after["probs"], before["aux"])


def test_keeping_everything_is_a_no_op_with_a_reason():
    model = two_heads()
    result = PruneOutputs(outputs=("up", "aux"))(model)
    assert not result.changed
    assert any("nothing to prune" in n for n in result.notes)


def test_bad_references():
    with pytest.raises(UnknownNameError, match="did you mean 'Resize_317'"):
        PruneOutputs(outputs=("Resize_31:0",))(two_heads())
    with pytest.raises(UsageError, match="out of range"):
        PruneOutputs(outputs=("5",))(two_heads())
    with pytest.raises(UsageError, match="not a graph output; use the truncate pass"):
        PruneOutputs(outputs=("relu:0",))(two_heads())
    with pytest.raises(UsageError, match="has no output 3"):
        PruneOutputs(outputs=("Resize_317:3",))(two_heads())
    with pytest.raises(UsageError, match="2 names for 1 outputs"):
        PruneOutputs(outputs=("up",), names=("a", "b"))


def test_rename_collision_is_refused():
    with pytest.raises(UsageError, match="a tensor of that name exists"):
        PruneOutputs(outputs=("up",), names=("r",))(two_heads())


def test_declares_what_it_drops_renames_and_reorders():
    result = PruneOutputs(outputs=("aux", "up"), names=("probs", "main"))(two_heads())
    assert result.dropped_outputs == [] and result.reordered_outputs
    result = PruneOutputs(outputs=("up",))(two_heads())
    assert result.dropped_outputs == ["aux"] and not result.reordered_outputs and not result.renamed_outputs


def test_an_output_without_a_shape_gets_one():
    model = two_heads()
    model.graph.output[0].type.tensor_type.ClearField("shape")
    PruneOutputs(outputs=("up",))(model)
    dims = model.graph.output[0].type.tensor_type.shape.dim
    assert len(dims) == 4  # from shape inference
    onnx.checker.check_model(model)
