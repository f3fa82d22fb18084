"""Tiny models written inline in ONNX text syntax, and helpers to run them (shared by the tests)."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.parser


def parse(text: str, **initializers: np.ndarray) -> onnx.ModelProto:
    """A model from ONNX text syntax, with numpy initializers added by name."""
    model = onnx.parser.parse_model(text)
    for name, value in initializers.items():
        model.graph.initializer.append(onnx.numpy_helper.from_array(np.asarray(value), name))
    onnx.checker.check_model(model)
    return model


def run(model: onnx.ModelProto, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, feed), strict=True))


def op_types(model: onnx.ModelProto) -> list[str]:
    return [n.op_type for n in model.graph.node]


TWO_HEADS = """
<ir_version: 7, opset_import: ["" : 11]>
twoheads (float[N, 3, 8, 8] x) => (float[N, 4, 16, 16] up, float[N, 4, 8, 8] aux) {
    c = Conv <pads = [1, 1, 1, 1]> (x, w)
    r = Relu (c)
    up = Resize <mode = "linear", coordinate_transformation_mode = "align_corners"> (r, roi, scales)
    aux = Sigmoid (r)
    dead = Neg (c)
}
"""


def two_heads() -> onnx.ModelProto:
    """Conv → Relu → {bilinear Resize ×2, Sigmoid}; a dead Neg; an unused initializer."""
    rng = np.random.default_rng(0)
    model = parse(
        TWO_HEADS,
        w=rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
        roi=np.zeros(0, np.float32),
        scales=np.array([1, 1, 2, 2], np.float32),
        unused=np.ones(3, np.float32),
    )
    names = ["conv", "relu", "Resize_317", "aux_sigmoid", "dead_neg"]
    for node, name in zip(model.graph.node, names, strict=True):
        node.name = name
    return model


def padded_model(extra: int) -> onnx.ModelProto:
    """x → Relu → (``extra`` Identity nodes) → Neg → y: simplify removes the padding, outputs unchanged."""
    from onnx import TensorProto, helper

    nodes = [helper.make_node("Relu", ["x"], ["t0"])]
    nodes += [helper.make_node("Identity", [f"t{i}"], [f"t{i + 1}"]) for i in range(extra)]
    nodes.append(helper.make_node("Neg", [f"t{extra}"], ["y"]))
    graph = helper.make_graph(nodes, "padded", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 8])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model
