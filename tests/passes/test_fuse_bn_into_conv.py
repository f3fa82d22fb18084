"""fuse_bn_into_conv: a BN after a Conv/ConvTranspose, or before an unpadded Conv, folds into its weights."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper
from pass_checks import check_exact, ops
from surgery.passes import FuseBnIntoConv

RNG = np.random.default_rng(0)


def bn(name: str, channels: int, x: str, y: str) -> tuple[onnx.NodeProto, list[onnx.TensorProto]]:
    params = [RNG.random(channels) + 0.5, RNG.standard_normal(channels) * 0.1, RNG.standard_normal(channels) * 0.1,
              RNG.random(channels) + 0.5]
    inits = [numpy_helper.from_array(p.astype(np.float32), f"{name}_{k}") for k, p in enumerate(params)]
    return helper.make_node("BatchNormalization", [x, *[t.name for t in inits]], [y], name=name), inits


def weight(name: str, *shape: int) -> onnx.TensorProto:
    return numpy_helper.from_array((RNG.standard_normal(shape) / np.sqrt(np.prod(shape[1:]))).astype(np.float32), name)


def model_of(nodes: list, inits: list, x: list, y: list) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", 1, x)],
                              [helper.make_tensor_value_info("y", 1, y)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_after_conv_and_convtranspose_before_an_unpadded_grouped_conv():
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1")]
    inits = [weight("w1", 6, 4, 3, 3), numpy_helper.from_array(np.arange(6, dtype=np.float32), "b1"),
             weight("w2", 6, 3, 1, 1), weight("wt", 6, 4, 2, 2)]
    for node, params in (bn("bn1", 6, "c1", "b1o"), (helper.make_node("Relu", ["b1o"], ["r1"]), []),
                         bn("bn2", 6, "r1", "b2o"),
                         (helper.make_node("Conv", ["b2o", "w2"], ["c2"], group=2, name="conv2"), []),
                         (helper.make_node("ConvTranspose", ["c2", "wt"], ["ct"], group=2, strides=[2, 2],
                                           name="up"), []),
                         bn("bn3", 8, "ct", "b3o"), bn("bn4", 8, "b3o", "y")):
        nodes.append(node)
        inits += params
    model = model_of(nodes, inits, ["N", 4, 8, 8], ["N", 8, 16, 16])
    result = check_exact(FuseBnIntoConv(), model, [{"x": (1, 4, 8, 8)}, {"x": (3, 4, 8, 8)}], atol=1e-5)
    assert result.counts == {"Conv→BatchNormalization": 1, "BatchNormalization→Conv": 1,
                             "ConvTranspose→BatchNormalization": 2}
    assert ops(model) == ["Conv", "Relu", "Conv", "ConvTranspose"]
    assert not any(n.startswith("BatchNormalization") for n in result.notes)


def test_bns_that_stay_say_why():
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], name="conv1"),
             helper.make_node("Relu", ["c1"], ["r"])]
    inits = [weight("w1", 4, 4, 1, 1), weight("w2", 4, 4, 3, 3)]
    n, i = bn("shared", 4, "c1", "s")  # the Conv's output is read twice: no fold after it
    nodes.append(n)
    inits += i
    n, i = bn("pre", 4, "r", "p")  # before a padded Conv: no fold before it either
    nodes.append(n)
    inits += i
    nodes += [helper.make_node("Conv", ["p", "w2"], ["c2"], pads=[1, 1, 1, 1], name="padded"),
              helper.make_node("Add", ["c2", "s"], ["y"])]
    model = model_of(nodes, inits, [1, 4, 6, 6], [1, 4, 6, 6])
    result = FuseBnIntoConv()(model)
    assert not result.changed
    text = "\n".join(result.notes)
    assert "BatchNormalization shared: the Conv output is also read elsewhere" in text
    assert "Conv padded: the Conv pads its input (its border would see BN(0), not 0)" in text
    assert "BatchNormalization pre is left: after Relu, before Conv" in text


def test_training_mode_and_non_constant_statistics_are_left():
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], name="conv1"),
             helper.make_node("BatchNormalization", ["c1", "s", "b", "m", "v"], ["y"], name="bn")]
    inits = [weight("w1", 2, 2, 1, 1)] + [numpy_helper.from_array(np.ones(2, np.float32), n) for n in "sbm"]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", 1, [1, 2, 3, 3]),
                                           helper.make_tensor_value_info("v", 1, [2])],
                              [helper.make_tensor_value_info("y", 1, [1, 2, 3, 3])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    result = FuseBnIntoConv()(model)
    assert not result.changed
    assert any("scale, bias, mean or variance is not a constant" in n for n in result.notes)


def test_no_batchnorm():
    model = model_of([helper.make_node("Relu", ["x"], ["y"])], [], [2], [2])
    result = FuseBnIntoConv()(model)
    assert not result.changed and result.notes == ["no BatchNormalization node in the graph"]
