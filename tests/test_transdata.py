"""The TransData-source estimate: one graph per rule, what it counts and what it leaves."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from surgery.transdata import RULES, estimate


def graph(nodes: list, inits: dict[str, np.ndarray], x: list, outputs: dict[str, list]) -> onnx.ModelProto:
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", 1, x)],
                          [helper.make_tensor_value_info(n, 1, s) for n, s in outputs.items()],
                          [numpy_helper.from_array(v, k) for k, v in inits.items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


def w(*shape: int) -> np.ndarray:
    return np.zeros(shape, np.float32)


def ints(*v: int) -> np.ndarray:
    return np.array(v, np.int64)


def test_each_rule_counts_its_nodes():
    nodes = [
        helper.make_node("Conv", ["x", "w18"], ["a"], name="c18", pads=[1, 1, 1, 1]),  # 18 channels: unaligned
        helper.make_node("Conv", ["a", "w32"], ["b"], name="c32", pads=[1, 1, 1, 1]),
        helper.make_node("Slice", ["b", "s0", "s16", "ax1"], ["half"], name="split_c"),  # channel slice
        helper.make_node("Slice", ["b", "s0", "s16", "ax2"], ["rows"], name="split_h"),  # spatial: not counted
        helper.make_node("AveragePool", ["half"], ["pooled"], kernel_shape=[16, 16], strides=[16, 16], name="big"),
        helper.make_node("AveragePool", ["rows"], ["small"], kernel_shape=[2, 2], strides=[2, 2], name="small"),
        helper.make_node("Reshape", ["b", "shape"], ["r"], name="between"),  # Conv → Reshape → Relu → Conv
        helper.make_node("Relu", ["r"], ["rr"]),
        helper.make_node("Conv", ["rr", "w16"], ["c"], name="c16"),
        helper.make_node("Flatten", ["c"], ["flat"], name="head"),  # no Conv after it: the expected 5HD → ND
    ]
    inits = {"w18": w(18, 3, 3, 3), "w32": w(32, 18, 3, 3), "w16": w(16, 32, 1, 1), "s0": ints(0), "s16": ints(16),
             "ax1": ints(1), "ax2": ints(2), "shape": ints(1, 32, 16, 16)}
    model = graph(nodes, inits, [1, 3, 16, 16], {"pooled": [1, 16, 1, 1], "small": [1, 32, 8, 8],
                                                 "flat": [1, 4096]})
    est = estimate(model)
    assert est.counts == {"unaligned_channels": 1, "channel_slices": 1, "conv1d": 0, "large_avgpool": 1,
                          "reshape_between_convs": 1}
    assert est.total == 4 and est.c0 == 16 and est.shapes_known
    assert est.examples["unaligned_channels"] == ["Conv c18 (18 channels)"]
    assert est.examples["channel_slices"] == ["Slice split_c (Slice on the channels)"]
    assert est.examples["large_avgpool"] == ["AveragePool big (kernel 16x16)"]
    assert est.examples["reshape_between_convs"] == ["Reshape between"]
    assert set(est.to_dict()["counts"]) == set(RULES)


def test_conv1d_gather_and_ragged_split():
    nodes = [helper.make_node("Conv", ["x", "w1d"], ["a"], name="c1d"),
             helper.make_node("Unsqueeze", ["a", "ax"], ["a4"]),
             helper.make_node("Gather", ["a4", "idx"], ["g"], axis=1, name="pick"),
             helper.make_node("Split", ["a4", "parts"], ["p", "q"], axis=1, name="ragged")]
    inits = {"w1d": w(32, 4, 3), "ax": ints(3), "idx": ints(0, 2), "parts": ints(8, 24)}
    model = graph(nodes, inits, [1, 4, 10], {"g": [1, 2, 8, 1], "p": [1, 8, 8, 1], "q": [1, 24, 8, 1]})
    est = estimate(model)
    assert est.counts["conv1d"] == 1 and est.counts["channel_slices"] == 2
    assert est.counts["unaligned_channels"] == 0


def test_int8_graphs_use_c0_32():
    nodes = [helper.make_node("QuantizeLinear", ["x", "scale"], ["q"]),
             helper.make_node("DequantizeLinear", ["q", "scale"], ["dq"]),
             helper.make_node("Conv", ["dq", "w16"], ["y"], name="c16")]
    model = graph(nodes, {"scale": np.array(0.1, np.float32), "w16": w(16, 3, 1, 1)}, [1, 3, 4, 4],
                  {"y": [1, 16, 4, 4]})
    est = estimate(model)
    assert est.c0 == 32 and est.counts["unaligned_channels"] == 1
    assert estimate(model, c0=16).counts["unaligned_channels"] == 0


def test_cspresnext50_has_its_guides_eight_channel_slices():
    pytest.importorskip("torch", reason="exporting CSPResNeXt50 needs torch")
    from surgery.models import resolve_zoo_model

    model = onnx.load(resolve_zoo_model("cspresnext50", input_shapes={"image": ("N", 3, 64, 64)}))
    est = estimate(model)
    assert est.counts["channel_slices"] == 8  # the CSP split of each of the 4 stages: two Slices each
    assert est.counts["unaligned_channels"] == 0
