"""split_large_kernel_conv: kernels above the threshold become summed slice convolutions, exactly."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper
from pass_checks import check_exact, ops
from surgery.passes import SplitLargeKernelConv
from surgery.passes.split_large_kernel_conv import kernel_slices

from surgery.errors import UsageError


def conv(kernel: list[int], channels: int = 2, bias: bool = True, **attrs) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    group = attrs.get("group", 1)
    w = (rng.standard_normal((4, channels // group, *kernel)) / np.sqrt(channels * np.prod(kernel))).astype(np.float32)
    inits = [numpy_helper.from_array(w, "w")] + ([numpy_helper.from_array(np.arange(4, dtype=np.float32), "b")]
                                                 if bias else [])
    rank = len(kernel)
    node = helper.make_node("Conv", ["x", "w", *(["b"] if bias else [])], ["y"], name="big", kernel_shape=kernel,
                            **attrs)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", 1, ["N", channels, *["?"] * rank])],
                              [helper.make_tensor_value_info("y", 1, ["N", 4, *["?"] * rank])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_kernel_slices_are_16_blocks_spread_evenly():
    assert kernel_slices([400], 192) == [[(0, 144)], [(144, 288)], [(288, 400)]]
    assert kernel_slices([3, 200], 192) == [[(0, 3), (0, 112)], [(0, 3), (112, 200)]]
    assert kernel_slices([100], 192) == [[(0, 100)]]


@pytest.mark.parametrize(("kernel", "attrs", "shapes"), [
    ([400], {"pads": [200, 100], "strides": [2]}, [(1, 2, 1000), (2, 2, 777)]),
    ([3, 250], {"pads": [1, 5, 1, 300], "strides": [1, 3], "dilations": [1, 2]}, [(1, 2, 9, 800), (2, 2, 5, 600)]),
    ([300], {}, [(1, 2, 300), (3, 2, 512)]),
    ([5, 200], {"group": 2}, [(1, 2, 8, 250), (2, 2, 6, 300)]),
], ids=["conv1d-padded-strided", "conv2d-dilated", "unpadded", "grouped"])
def test_split_is_exact(kernel, attrs, shapes):
    model = conv(kernel, **attrs)
    result = check_exact(SplitLargeKernelConv(), model, [{"x": s} for s in shapes], atol=1e-5)
    assert result.counts == {"Conv": 1}
    assert ops(model)[-1] == "Sum" and ops(model).count("Conv") == len(kernel_slices(kernel, 192))
    assert "w" not in {t.name for t in model.graph.initializer}  # the whole kernel is gone


def test_small_kernels_and_refusals():
    model = conv([3, 3], pads=[1, 1, 1, 1])
    result = SplitLargeKernelConv()(model)
    assert not result.changed and result.notes == ["Convs with every kernel dimension ≤ 192 are left as they are"]
    result = SplitLargeKernelConv()(conv([300], auto_pad="SAME_UPPER"))
    assert not result.changed and "auto_pad SAME_UPPER: the pads depend on the input size" in result.notes[0]


def test_threshold_rounds_up_to_16_like_auto_optimizer():
    assert SplitLargeKernelConv(threshold=100).limit == 112
    assert SplitLargeKernelConv(threshold=1).limit == 16
    result = check_exact(SplitLargeKernelConv(threshold=100), conv([120], bias=False), [{"x": (1, 2, 200)}],
                         atol=1e-5)
    assert result.counts == {"Conv": 1}
    with pytest.raises(UsageError, match="threshold must be >= 1"):
        SplitLargeKernelConv(threshold=0)
