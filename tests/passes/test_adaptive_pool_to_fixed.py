"""adaptive_pool_to_fixed: exact adaptive pooling → the ICNet guide's fixed pool; equals the ppm=ascend export."""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import pytest
from graph_builders import run
from onnx import helper, numpy_helper
from pass_checks import assert_idempotent, copy_of, ops
from surgery.passes import AdaptivePoolToFixed
from surgery.passes.adaptive_pool_to_fixed import adaptive_bins


def axis_cells(nodes: list, inits: list, x: str, axis: int, size: int, bins: int, tag: str) -> str:
    """Slice → ReduceMean per adaptive bin of ``axis``, then Concat: torch's narrow().mean() cells."""
    means = []
    for k, (start, end) in enumerate(adaptive_bins(size, bins)):
        names = [f"{tag}{k}_{w}" for w in ("s", "e", "a")]
        for name, v in zip(names, (start, end, axis), strict=True):
            inits.append(numpy_helper.from_array(np.array([v], np.int64), name))
        nodes.append(helper.make_node("Slice", [x, *names], [f"{tag}{k}_cut"], name=f"{tag}/Slice_{k}"))
        nodes.append(helper.make_node("ReduceMean", [f"{tag}{k}_cut"], [f"{tag}{k}_mean"], axes=[axis], keepdims=1))
        means.append(f"{tag}{k}_mean")
    nodes.append(helper.make_node("Concat", means, [f"{tag}_out"], axis=axis, name=f"{tag}/Concat"))
    return f"{tag}_out"


def adaptive_model(h: int, w: int, bins: int) -> onnx.ModelProto:
    """x[N,2,h,w] → adaptive average pooling into bins×bins as the zoo's exact ICNet export writes it."""
    nodes: list = []
    inits: list = []
    y = axis_cells(nodes, inits, "x", 2, h, bins, "rows") if h % bins else "x"
    if h % bins == 0:
        nodes.append(helper.make_node("AveragePool", [y], ["rows_out"], kernel_shape=[h // bins, 1],
                                      strides=[h // bins, 1]))
        y = "rows_out"
    if w % bins:
        y = axis_cells(nodes, inits, y, 3, w, bins, "cols")
    else:
        nodes.append(helper.make_node("AveragePool", [y], ["cols_out"], kernel_shape=[1, w // bins],
                                      strides=[1, w // bins], name="cols/AveragePool"))
        y = "cols_out"
    nodes.append(helper.make_node("Identity", [y], ["y"]))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", 1, ["N", 2, h, w])],
                              [helper.make_tensor_value_info("y", 1, ["N", 2, bins, bins])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def fixed_pool(x: np.ndarray, bins: int) -> np.ndarray:
    """The guide's avg_pool2d: stride ⌊n/k⌋, kernel n − (k−1)·stride, per axis."""
    h, w = x.shape[2:]
    (sh, sw) = (h // bins, w // bins)
    kh, kw = h - (bins - 1) * sh, w - (bins - 1) * sw
    out = np.empty((*x.shape[:2], bins, bins), np.float64)
    for i in range(bins):
        for j in range(bins):
            out[:, :, i, j] = x[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw].mean(axis=(2, 3))
    return out


@pytest.mark.parametrize(("h", "w", "bins"), [(32, 64, 3), (32, 64, 6), (8, 12, 3), (12, 8, 3)],
                         ids=["icnet-bin3", "icnet-bin6", "rows-sliced-cols-pooled", "rows-pooled-cols-sliced"])
def test_the_pooling_becomes_the_guides_fixed_pool(h, w, bins):
    model = adaptive_model(h, w, bins)
    before = copy_of(model)
    result = AdaptivePoolToFixed()(model)
    assert result.counts == {"pooling (inexact)": 1}
    assert ops(model) == ["AveragePool", "Identity"] and not model.graph.initializer  # the Slices' constants went
    onnx.checker.check_model(model)
    x = np.random.default_rng(0).standard_normal((2, 2, h, w)).astype(np.float32)
    got, exact = run(model, {"x": x})["y"], run(before, {"x": x})["y"]
    np.testing.assert_allclose(got, fixed_pool(x, bins), atol=1e-6)
    assert np.abs(got - exact).max() > 1e-3  # inexact on purpose: the fixed windows are wider
    assert_idempotent(AdaptivePoolToFixed(), model)


def test_windows_equal_to_the_bins_are_an_exact_rewrite():
    model = adaptive_model(7, 12, 3)  # rows: bins [0:3) [2:5) [4:7) are the fixed windows (kernel 3, stride 2)
    result = AdaptivePoolToFixed()(model)
    assert result.counts == {"pooling": 1}


def test_bins_that_divide_are_already_fixed():
    model = adaptive_model(8, 16, 2)
    result = AdaptivePoolToFixed()(model)
    assert not result.changed and ops(model) == ["AveragePool", "AveragePool", "Identity"]


def test_cells_that_are_not_adaptive_bins_are_left_with_the_reason():
    model = adaptive_model(32, 64, 3)
    for t in model.graph.initializer:
        if t.name == "rows1_s":  # the middle row cell starts at 11 instead of 10
            t.CopyFrom(numpy_helper.from_array(np.array([11], np.int64), t.name))
    result = AdaptivePoolToFixed()(model)
    assert any("cells [0:11), [11:22), [21:32) of axis 2 are not the adaptive bins of 32 into 3" in n
               for n in result.notes)
    # the columns are still an adaptive pooling of whatever the rows made: that axis alone becomes fixed,
    # exactly (64 into 3: the adaptive bins [0:22) [21:43) [42:64) are the fixed windows)
    assert result.counts == {"pooling": 1}
    assert ops(model).count("Slice") == 3 and ops(model).count("AveragePool") == 1


def test_unknown_sizes_are_refused():
    model = adaptive_model(32, 64, 3)
    for d in model.graph.input[0].type.tensor_type.shape.dim[2:]:
        d.dim_param = "S"
    result = AdaptivePoolToFixed()(model)
    assert not result.changed
    assert any("size of axis 2 of 'x' is unknown" in n for n in result.notes)


# -- the zoo: the exact ICNet export, rewritten, is the ppm=ascend export


@pytest.fixture(scope="module")
def icnet_pair(tmp_path_factory):
    pytest.importorskip("torch", reason="exporting ICNet needs torch")
    from surgery.models import export_model

    folder = tmp_path_factory.mktemp("icnet")
    shape = {"actual_input_1": (1, 3, 256, 512)}  # the 8×16 map: bins 3 and 6 divide neither axis
    # the same seeded weights in both (calibration would tune each variant's head to its own pyramid pooling)
    return [onnx.load(export_model("icnet", folder / f"{v}.onnx", variants={"ppm": v}, input_shapes=shape,
                                   calibrate=False).path) for v in ("exact", "ascend")]


def test_on_the_exact_icnet_export_it_gives_the_ppm_ascend_export(icnet_pair):
    exact, ascend = icnet_pair
    result = AdaptivePoolToFixed()(exact)
    assert result.counts == {"pooling (inexact)": 2}  # bins 3 and 6; bins 1 and 2 were fixed pools already
    assert Counter(ops(exact)) == Counter(ops(ascend))
    x = {"actual_input_1": np.random.default_rng(0).standard_normal((1, 3, 256, 512)).astype(np.float32)}
    got, want = run(exact, x), run(ascend, x)
    for name in want:
        assert np.isfinite(want[name]).all() and want[name].std() > 0, name
        np.testing.assert_allclose(got[name], want[name], atol=1e-6, rtol=0, err_msg=name)
