from __future__ import annotations

import numpy as np
import pytest
from graph_builders import parse, run, two_heads
from surgery.passes import ResizeNearest

from surgery.errors import UsageError

FEED = {"x": np.random.default_rng(5).random((1, 3, 8, 8), dtype=np.float32)}


def attrs(node):
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def test_torch_preset_equals_torch_nearest_export():
    model = two_heads()
    before = run(model, FEED)["up"]
    result = ResizeNearest()(model)
    assert result.changed and result.counts == {"Resize(linear)": 1}
    a = attrs(model.graph.node[2])
    assert a["mode"] == b"nearest"
    assert a["coordinate_transformation_mode"] == b"asymmetric"
    assert a["nearest_mode"] == b"floor"
    after = run(model, FEED)["up"]
    # torch's nearest ×2 with asymmetric+floor repeats each pixel: compare with np.repeat of the input of Resize
    relu = run(_expose_relu(two_heads()), FEED)["r"]
    np.testing.assert_array_equal(after, relu.repeat(2, axis=2).repeat(2, axis=3))
    assert np.abs(after - before).max() > 1e-3  # inexact on purpose


def test_keep_preset_keeps_coordinate_mode():
    model = two_heads()
    ResizeNearest(preset="keep")(model)
    a = attrs(model.graph.node[2])
    assert a["coordinate_transformation_mode"] == b"align_corners"
    assert a["nearest_mode"] == b"round_prefer_floor"


def test_overrides_beat_the_preset():
    model = two_heads()
    ResizeNearest(preset="torch", nearest_mode="round_prefer_ceil")(model)
    assert attrs(model.graph.node[2])["nearest_mode"] == b"round_prefer_ceil"


def test_selection_by_name_and_regex_with_reasons():
    model = two_heads()
    result = ResizeNearest(nodes=("other",))(model)
    assert not result.changed
    assert "Resize Resize_317: not among nodes=" in result.notes
    assert any("'other' given in nodes= is not a Resize" in n for n in result.notes)
    result = ResizeNearest(regex="^head/")(model)
    assert not result.changed and "does not match regex" in result.notes[0]
    result = ResizeNearest(regex="Resize_3")(model)
    assert result.changed


def test_already_nearest_is_not_touched():
    model = two_heads()
    ResizeNearest()(model)
    result = ResizeNearest()(model)
    assert not result.changed
    assert result.notes == ["Resize Resize_317: mode is already nearest"]


def test_no_resize_in_graph():
    model = parse("""
        <ir_version: 7, opset_import: ["" : 13]>
        g (float[2] x) => (float[2] y) { y = Relu (x) }
    """)
    result = ResizeNearest()(model)
    assert not result.changed and "no Resize or Upsample node" in result.notes[0]


def test_bad_options():
    with pytest.raises(UsageError, match="bad regex"):
        ResizeNearest(regex="(")
    with pytest.raises(UsageError, match="is not one of"):
        ResizeNearest(nearest_mode="nearest")
    with pytest.raises(UsageError, match="is not one of"):
        ResizeNearest(preset="tf")


def _expose_relu(model):
    import onnx

    model.graph.output.append(onnx.helper.make_tensor_value_info("r", onnx.TensorProto.FLOAT, None))
    return model
