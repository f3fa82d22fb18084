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
    assert not result.changed and result.notes == ["no Resize|Upsample in the graph"]


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


def _single_resize(attrs: str, opset: int = 13, ir: int = 8) -> object:
    return parse(f"""
        <ir_version: {ir}, opset_import: ["" : {opset}]>
        g (float[1, 2, 4, 4] x) => (float[1, 2, 8, 8] y) {{
            y = Resize <{attrs}> (x, roi, scales)
        }}
    """, roi=np.zeros(0, np.float32), scales=np.array([1, 1, 2, 2], np.float32))


@pytest.mark.parametrize(("attrs", "opset"), [
    ('mode = "cubic", cubic_coeff_a = -0.5, exclude_outside = 1', 13),
    ('mode = "linear", antialias = 1', 18),
])
def test_cubic_and_antialias_attributes_go_and_onnxruntime_runs_it(attrs, opset):
    model = _single_resize(attrs, opset)
    result = ResizeNearest()(model)
    assert result.changed
    a = attrs_of_first(model)
    assert not {"cubic_coeff_a", "exclude_outside", "antialias"} & set(a)
    import onnx

    onnx.checker.check_model(model, full_check=True)
    x = {"x": np.arange(32, dtype=np.float32).reshape(1, 2, 4, 4)}
    np.testing.assert_array_equal(run(model, x)["y"], x["x"].repeat(2, axis=2).repeat(2, axis=3))


def attrs_of_first(model):
    return attrs(model.graph.node[0])


def test_opset10_resize_changes_only_its_mode():
    model = parse("""
        <ir_version: 7, opset_import: ["" : 10]>
        g (float[1, 1, 2, 2] x) => (float[1, 1, 4, 4] y) { y = Resize <mode = "linear"> (x, scales) }
    """, scales=np.array([1, 1, 2, 2], np.float32))
    ResizeNearest()(model)
    assert attrs_of_first(model) == {"mode": b"nearest"}
    import onnx

    onnx.checker.check_model(model)


def test_resize_inside_an_if_branch_is_rewritten():
    import onnx
    from onnx import TensorProto, helper

    body = helper.make_graph(
        [helper.make_node("Resize", ["x", "roi", "scales"], ["r"], name="inner", mode="linear")], "then", [],
        [helper.make_tensor_value_info("r", TensorProto.FLOAT, [1, 1, 4, 4])])
    other = helper.make_graph([helper.make_node("Resize", ["x", "roi", "scales"], ["q"], name="other_inner",
                                                mode="nearest")], "else", [],
                              [helper.make_tensor_value_info("q", TensorProto.FLOAT, [1, 1, 4, 4])])
    graph = helper.make_graph(
        [helper.make_node("If", ["c"], ["y"], then_branch=body, else_branch=other, name="branch")], "g",
        [helper.make_tensor_value_info("c", TensorProto.BOOL, []),
         helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 2, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 4, 4])],
        [onnx.numpy_helper.from_array(np.zeros(0, np.float32), "roi"),
         onnx.numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    result = ResizeNearest(nodes=("inner",))(model)
    assert result.counts == {"Resize(linear)": 1}
    assert "Resize other_inner: not among nodes= (in If branch.else_branch)" in result.notes
    inner = next(a.g for a in model.graph.node[0].attribute if a.name == "then_branch").node[0]
    assert attrs(inner)["mode"] == b"nearest"
    onnx.checker.check_model(model)
    x = np.arange(4, dtype=np.float32).reshape(1, 1, 2, 2)
    np.testing.assert_array_equal(run(model, {"c": np.array(True), "x": x})["y"], x.repeat(2, 2).repeat(2, 3))


def test_empty_nodes_is_a_usage_error():
    from surgery.passes import make_pass

    with pytest.raises(UsageError, match="nodes= is empty"):
        make_pass("resize_nearest", {"nodes": ""})
    with pytest.raises(UsageError, match="nodes= is empty"):
        make_pass("resize_nearest", {"nodes": " , "})
    with pytest.raises(UsageError, match="nodes= is empty"):
        ResizeNearest(nodes=())
    assert make_pass("resize_nearest", {"nodes": "a,b"}).nodes == ("a", "b")

