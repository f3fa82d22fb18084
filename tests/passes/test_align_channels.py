"""align_channels: Conv outputs zero-padded to a multiple of 16, exact through every supported reader."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper
from pass_checks import assert_idempotent, check_exact, copy_of, ops
from surgery.passes import AlignChannels
from surgery.passes.align_channels import model_cost

from surgery.errors import UsageError

RNG = np.random.default_rng(0)


class Net:
    """A graph builder: named weights with random values, nodes in order."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []

    def const(self, name: str, value: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(np.asarray(value, np.float32), name))
        return name

    def conv(self, x: str, y: str, cin: int, cout: int, k: int = 3, group: int = 1, **attrs) -> str:
        w = self.const(f"{y}_w", RNG.standard_normal((cout, cin // group, k, k)) / np.sqrt(cin * k * k))
        b = self.const(f"{y}_b", RNG.standard_normal(cout) * 0.1)
        pads = [k // 2] * 4
        self.nodes.append(helper.make_node("Conv", [x, w, b], [y], name=y, pads=pads, group=group, **attrs))
        return y

    def bn(self, x: str, y: str, c: int) -> str:
        params = [self.const(f"{y}_{n}", v) for n, v in (("s", RNG.random(c) + 0.5), ("b", RNG.standard_normal(c)),
                                                           ("m", RNG.standard_normal(c)), ("v", RNG.random(c) + .5))]
        self.nodes.append(helper.make_node("BatchNormalization", [x, *params], [y], name=y))
        return y

    def op(self, op: str, inputs: list[str], y: str, **attrs) -> str:
        self.nodes.append(helper.make_node(op, inputs, [y], name=y, **attrs))
        return y

    def model(self, x: list, outputs: dict[str, list | None]) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, "g", [helper.make_tensor_value_info("x", 1, x)],
                                  [helper.make_tensor_value_info(n, 1, s) for n, s in outputs.items()], self.inits)
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def hrnet_like() -> onnx.ModelProto:
    """Two branches of 18 and 36 channels, exchanged through a strided Conv and an upsampling, as HRNet does."""
    n = Net()
    a = n.op("Relu", [n.bn(n.conv("x", "stem", 3, 18), "stem_bn", 18)], "a")
    a2 = n.op("Relu", [n.op("Add", [n.conv(a, "blk", 18, 18), a], "res")], "a2")
    dw = n.conv(a2, "dw", 18, 18, group=18)
    b = n.op("Relu", [n.conv(dw, "down", 18, 36, strides=[2, 2])], "b")
    scales = n.const("scales", [1, 1, 2, 2])
    up = n.op("Resize", [n.conv(b, "b2a", 36, 18, k=1), "", scales], "up", mode="nearest")
    fused = n.op("Add", [a2, up], "fused")
    bias = n.const("chan_bias", RNG.standard_normal((18, 1, 1)))
    shifted = n.op("Mul", [n.op("Add", [fused, bias], "shift"), n.const("half", [0.5])], "scaled")
    pooled = n.op("MaxPool", [shifted], "pool", kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1])
    cat = n.op("Concat", [pooled, a2], "cat", axis=1)
    n.conv(cat, "y", 36, 16, k=1)
    return n.model(["N", 3, "H", "W"], {"y": ["N", 16, "H", "W"]})


def test_hrnet_like_branches_are_padded_exactly():
    model = hrnet_like()
    result = check_exact(AlignChannels(), model, [{"x": (1, 3, 8, 8)}, {"x": (2, 3, 12, 12)}], atol=1e-5)
    assert result.counts == {"Conv": 4}  # stem, blk, down (36 → 48), b2a; the depthwise one follows its input
    assert ops(model) == ops(hrnet_like())  # nothing sliced back: every path ends in a Conv
    convs = {n.name: n for n in model.graph.node if n.op_type == "Conv"}
    weights = {t.name: t for t in model.graph.initializer}
    assert list(weights[convs["stem"].input[1]].dims) == [32, 3, 3, 3]
    assert list(weights[convs["down"].input[1]].dims) == [48, 32, 3, 3]
    assert list(weights[convs["y"].input[1]].dims) == [16, 64, 1, 1]  # the Concat of two padded 32s
    dw = convs["dw"]
    assert next(a.i for a in dw.attribute if a.name == "group") == 32
    assert result.notes[-1].startswith("4 Convs padded by 54 output channels in all; cost of padding to 16: Conv FLOPs")
    assert result.notes[-1].endswith("6 Convs without inferred shapes not counted")  # H and W are symbolic


def test_readers_that_need_the_original_channels_get_a_slice_or_a_gather():
    n = Net()
    a = n.op("Relu", [n.conv("x", "c1", 3, 18)], "a")
    b = n.op("Relu", [n.conv("x", "c2", 3, 18)], "b")
    cat = n.op("Concat", [a, b], "cat", axis=1)
    n.conv(cat, "y", 36, 16, k=1)
    n.op("Softmax", [cat], "soft", axis=1)  # reads every channel: Gather back (the layout has a hole in it)
    n.op("Flatten", [a], "flat")  # Slice back
    model = n.model(["N", 3, "H", "W"], {"y": ["N", 16, "H", "W"], "soft": ["N", 36, "H", "W"], "flat": ["N", "F"],
                                         "a": ["N", 18, "H", "W"]})
    result = check_exact(AlignChannels(), model, [{"x": (1, 3, 4, 4)}, {"x": (2, 3, 6, 6)}], atol=1e-5)
    assert result.counts == {"Conv": 2, "Gather": 1, "Slice": 1}
    text = "\n".join(result.notes)
    assert "sliced back before Softmax soft: it reads all channels" in text
    assert "sliced back before graph output 'a'" in text
    assert [o.name for o in model.graph.output] == ["y", "soft", "flat", "a"]


def test_refused_sites_say_why():
    n = Net()
    n.conv("x", "grouped", 4, 18, group=2)  # 18 = 2 groups of 9: padding would regroup it
    n.op("Relu", [n.conv("x", "head", 4, 19)], "logits")  # no Conv reads it: padding would only add a Slice
    model = n.model([1, 4, 4, 4], {"grouped": [1, 18, 4, 4], "logits": [1, 19, 4, 4]})
    result = AlignChannels()(model)
    assert not result.changed
    text = "\n".join(result.notes)
    assert "Conv grouped: 18 channels, grouped (group=2): padding would regroup it" in text
    assert "Conv head: left at 19 channels: no Conv reads its padding" in text
    assert "already a multiple" not in text


def test_aligned_model_and_multiples():
    n = Net()
    n.conv(n.conv("x", "a", 3, 16), "y", 16, 32)
    model = n.model(["N", 3, 4, 4], {"y": ["N", 32, 4, 4]})
    result = AlignChannels()(model)
    assert not result.changed and result.notes == ["every Conv output is already a multiple of 16 channels"]
    result = check_exact(AlignChannels(multiple=24), model, [{"x": (1, 3, 4, 4)}], atol=1e-5)
    assert result.counts == {"Conv": 1}  # a: 16 → 24; y (32) is read by nothing, so it stays
    with pytest.raises(UsageError, match="multiple must be >= 2"):
        AlignChannels(multiple=1)


def test_int8_graphs_default_to_32():
    n = Net()
    q = n.op("QuantizeLinear", ["x", n.const("qs", 0.1)], "q")
    n.op("DequantizeLinear", [q, "qs"], "dq")
    model = n.model([1, 3, 4, 4], {"dq": [1, 3, 4, 4]})
    assert AlignChannels().chosen_multiple(model) == 32
    assert AlignChannels().chosen_multiple(hrnet_like()) == 16


def test_cost_counts_conv_flops_per_sample():
    n = Net()
    n.conv("x", "y", 2, 3, k=1)
    cost = model_cost(n.model(["N", 2, 5, 5], {"y": ["N", 3, 5, 5]}))
    assert cost.conv_flops == 2 * 3 * 25 * 2  # 2 FLOPs per MAC, 2 inputs per output
    assert cost.unknown_convs == 0


# -- the zoo: HRNet-W18's 18/36/72-channel branches


def test_hrnet_w18_is_aligned_exactly():
    pytest.importorskip("torch", reason="exporting HRNet-W18 needs torch")
    from surgery.models import resolve_zoo_model

    from surgery.parity import Session

    model = onnx.load(resolve_zoo_model("hrnet_w18", input_shapes={"image": ("N", 3, 32, 32)}))
    before, cost = copy_of(model), model_cost(model)
    result = AlignChannels()(model)
    assert result.counts == {"Conv": 256}  # every 18/36/72-channel Conv; no reader needed a slice back
    onnx.checker.check_model(model)
    feed = {"image": np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)}
    # zeros add nothing, but onnxruntime may block 18 and 32 channels differently, which reorders the float
    # sums: equal to float32 rounding of the output's scale
    want, got = Session(before).run(feed)["class"], Session(model).run(feed)["class"]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * np.abs(want).max())
    after = model_cost(model)
    assert after.conv_flops > cost.conv_flops and after.activation_bytes > cost.activation_bytes
    assert result.notes[-1].startswith("256 Convs padded by")
    assert_idempotent(AlignChannels(), model)
