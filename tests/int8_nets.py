"""Tiny conv nets for the INT8 tests, built with onnx.helper at opset 11 (as the zoo exports)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _conv(name: str, x: str, out: str, w: np.ndarray, b: np.ndarray) -> tuple[onnx.NodeProto, list[onnx.TensorProto]]:
    k = w.shape[-1]
    node = helper.make_node("Conv", [x, f"{name}.w", f"{name}.b"], [out], name=name, pads=[k // 2] * 4)
    return node, [numpy_helper.from_array(w, f"{name}.w"), numpy_helper.from_array(b, f"{name}.b")]


def conv_net(*, outlier: float | None = None, seed: int = 0, size: int = 16) -> onnx.ModelProto:
    """x[N,3,S,S] → conv_a → Relu → conv_b → Relu → conv_c → Relu → GlobalAveragePool → Flatten → fc → y[N,10].

    With ``outlier``, conv_b quantizes badly: every output channel of it has weights of that
    size on input channel 0, which conv_a's Relu keeps at zero (its bias is -100). The
    outputs in float do not notice; per-channel int8 weights do (each channel's scale is
    set by the outlier, and its ordinary weights round to zero).
    """
    rng = np.random.default_rng(seed)
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []

    def add(name: str, x: str, out: str, cout: int, cin: int, w: np.ndarray | None = None,
            b: np.ndarray | None = None) -> None:
        weight = (rng.standard_normal((cout, cin, 3, 3)) * 0.3).astype(np.float32) if w is None else w
        node, tensors = _conv(name, x, out, weight, np.zeros(cout, np.float32) if b is None else b)
        nodes.append(node)
        inits.extend(tensors)

    bias_a = np.zeros(8, np.float32)
    wb = (rng.standard_normal((8, 8, 3, 3)) * 0.3).astype(np.float32)
    if outlier is not None:
        bias_a[0] = -100.0  # channel 0 of conv_a's Relu is always zero
        wb[:, 0] = outlier
    add("conv_a", "x", "a", 8, 3, b=bias_a)
    nodes.append(helper.make_node("Relu", ["a"], ["ar"], name="relu_a"))
    add("conv_b", "ar", "b", 8, 8, w=wb)
    nodes.append(helper.make_node("Relu", ["b"], ["br"], name="relu_b"))
    add("conv_c", "br", "c", 8, 8)
    nodes.append(helper.make_node("Relu", ["c"], ["cr"], name="relu_c"))
    nodes.append(helper.make_node("GlobalAveragePool", ["cr"], ["g"], name="gap"))
    nodes.append(helper.make_node("Flatten", ["g"], ["f"], name="flatten"))
    inits += [numpy_helper.from_array(rng.standard_normal((10, 8)).astype(np.float32), "fc.w"),
              numpy_helper.from_array(np.zeros(10, np.float32), "fc.b")]
    nodes.append(helper.make_node("Gemm", ["f", "fc.w", "fc.b"], ["y"], name="fc", transB=1))
    graph = helper.make_graph(nodes, "int8_net", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                                  ["N", 3, size, size])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    model.ir_version = 7
    onnx.checker.check_model(model)
    return model


def seg_net(seed: int = 0, size: int = 16) -> onnx.ModelProto:
    """x[N,3,S,S] → Conv → Relu → Conv(4 classes) → Resize ×2 (linear): a segmentation head with an upsampling."""
    rng = np.random.default_rng(seed)
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    for name, x, out, cout, cin in (("enc", "x", "e", 8, 3), ("cls", "er", "logits_s", 4, 8)):
        node, tensors = _conv(name, x, out, (rng.standard_normal((cout, cin, 3, 3)) * 0.4).astype(np.float32),
                              (rng.standard_normal(cout) * 0.1).astype(np.float32))
        nodes.append(node)
        inits.extend(tensors)
        if name == "enc":
            nodes.append(helper.make_node("Relu", ["e"], ["er"], name="relu"))
    inits += [numpy_helper.from_array(np.zeros(0, np.float32), "roi"),
              numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")]
    nodes.append(helper.make_node("Resize", ["logits_s", "roi", "scales"], ["logits"], name="up", mode="linear"))
    graph = helper.make_graph(nodes, "seg_net", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                                 ["N", 3, size, size])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT,
                                                             ["N", 4, 2 * size, 2 * size])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    model.ir_version = 7
    onnx.checker.check_model(model)
    return model
