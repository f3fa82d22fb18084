"""Conv ⇒ Unsqueeze → Conv(2-D) → Squeeze, over whole Conv1d regions. Exact.

ATC lowers every Conv1d to a Conv2d with TransData around it (auto-optimizer's
KnowledgeConv1d2Conv2d). Here each Conv with a constant 3-D weight seeds a region that grows
downstream through other Conv1ds and layout-free ops (element-wise, BatchNormalization,
Concat/Split); the region runs in 4-D, ``(N, C, L)`` → ``(N, C, 1, L)``, with one Unsqueeze
per tensor entering it and one Squeeze per tensor leaving it, so a chain of Conv1d blocks
pays for one conversion, not one per Conv.

In the region: Conv attributes gain a unit height (``kernel_shape [k] → [1, k]``, pads
``[a, b] → [0, a, 0, b]``) and its weight a unit axis; constant operands of element-wise ops
of rank 2 or 3 gain the same axis before their last one (so they broadcast as before);
Concat/Split on the length axis move to axis 3. An op joins only when every operand it
reads from outside has a known rank ≤ 3.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import onnx

from surgery.matcher import Editor, Match, PatternPass

UNARY = frozenset({"Relu", "LeakyRelu", "Sigmoid", "Tanh", "Abs", "Neg", "Exp", "Log", "Sqrt", "Elu", "Selu",
                   "HardSigmoid", "HardSwish", "Softplus", "Softsign", "Erf", "Identity", "Dropout", "Celu",
                   "Mish", "Gelu", "Reciprocal", "Floor", "Ceil", "Round", "Sign", "Not", "Cast"})
BINARY = frozenset({"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "PRelu", "Sum", "Mean", "Where", "Equal",
                    "Less", "Greater", "And", "Or", "Xor", "Clip"})
CHANNEL_OPS = frozenset({"BatchNormalization", "InstanceNormalization"})
AXIS_OPS = frozenset({"Concat", "Split"})


@dataclass(frozen=True, kw_only=True)
class Conv1dToConv2d(PatternPass):
    """Conv ⇒ Unsqueeze → Conv → Squeeze: Conv1d regions run as Conv2d with one conversion per boundary (exact)."""

    name: ClassVar[str] = "conv1d_to_conv2d"
    exact: ClassVar[bool] = True
    rematch: ClassVar[bool] = False

    def check(self, g: Editor, m: Match) -> str | None:
        return _conv1d(g, m.anchor)

    def rewrite(self, g: Editor, m: Match) -> dict[str, int]:
        region = _grow(g, m.anchor)
        return _lift(g, region)


def _conv1d(g: Editor, node: onnx.NodeProto) -> str | None:
    """None when ``node`` is a Conv1d this pass can lift, else why not."""
    if node.op_type != "Conv" or len(node.input) < 2:
        return "not a Conv"
    w = g.constant(node.input[1])
    if w is None:
        return "its weight is not a constant"
    if w.ndim != 3:
        return f"its weight is {w.ndim}-D (a Conv{w.ndim - 2}d)"
    return None


def _rank(g: Editor, name: str) -> int | None:
    shape = g.shape(name)
    return None if shape is None else len(shape)


def _joins(g: Editor, node: onnx.NodeProto, inside: set[str]) -> bool:
    """Whether ``node``, reading a region tensor, can run in the region's 4-D layout."""
    if node.domain not in ("", "ai.onnx") or node.op_type in ("If", "Loop", "Scan"):
        return False
    if node.op_type == "Conv":
        return _conv1d(g, node) is None and node.input[0] in inside
    data = [x for x in node.input if x]
    if node.op_type in UNARY:
        return len(data) >= 1 and data[0] in inside and all(g.constant(x) is not None for x in data[1:])
    if node.op_type in CHANNEL_OPS:
        return data[0] in inside and all(g.constant(x) is not None for x in data[1:])
    if node.op_type == "Split":
        return data[0] in inside and all(g.constant(x) is not None for x in data[1:])
    if node.op_type in BINARY or node.op_type == "Concat":
        for x in data:
            if x in inside:
                continue
            rank = _rank(g, x)
            if rank is None or rank > 3:
                return False
        return True
    return False


def _grow(g: Editor, seed: onnx.NodeProto) -> list[onnx.NodeProto]:
    """The region: the seed and every node downstream of it that can join, in graph order."""
    region = {g.id_of(seed)}
    inside = {o for o in seed.output if o}
    frontier = [seed]
    while frontier:
        node = frontier.pop()
        for out in node.output:
            for user in g.consumers_of(out):
                i = g.id_of(user)
                if i in region or not _joins(g, user, inside):
                    continue
                region.add(i)
                inside.update(o for o in user.output if o)
                frontier.append(user)
    return [g.nodes[i] for i in sorted(region)]


def _lift(g: Editor, region: list[onnx.NodeProto]) -> dict[str, int]:
    produced = {o for n in region for o in n.output if o}
    renamed = {o: g.unique_name(f"{o}_4d") for o in produced}
    entering: dict[str, str] = {}
    lifted_consts: dict[str, str] = {}

    def outside_input(x: str, node: onnx.NodeProto, slot: int) -> str:
        value = g.constant(x)
        if value is not None:
            if node.op_type == "Conv" and slot == 1:
                return g.add_initializer(value[:, :, None, :], f"{x}_2d")
            if node.op_type in CHANNEL_OPS or node.op_type in UNARY or node.op_type == "Split" or value.ndim < 2:
                return x  # per-channel vectors, scalars, split sizes, Clip bounds: unchanged
            if x not in lifted_consts:
                lifted_consts[x] = g.add_initializer(np.expand_dims(value, -2), f"{x}_2d")
            return lifted_consts[x]
        rank = _rank(g, x)
        if rank is not None and rank < 2:
            return x  # a scalar or a length-axis vector broadcasts the same in 4-D
        if x not in entering:
            entering[x] = _unsqueeze(g, x, f"{x}_unsqueeze")
        return entering[x]

    for node in region:
        inputs = [renamed.get(x, x) if x in produced else (outside_input(x, node, k) if x else x)
                  for k, x in enumerate(node.input)]
        outputs = [renamed.get(o, o) for o in node.output]
        attrs = _lifted_attrs(g, node)
        g.replace_node(node, inputs=inputs, outputs=outputs, **attrs)
    leaving = 0
    for old, new in renamed.items():
        if g.consumers_of(old) or g.is_output(old):  # read outside the region (the region's nodes are gone)
            _squeeze(g, new, old, f"{old}_squeeze")
            leaving += 1
    convs = sum(1 for n in region if n.op_type == "Conv")
    return {"Conv1d": convs, "region ops": len(region) - convs, "Unsqueeze": len(entering), "Squeeze": leaving}


def _lifted_attrs(g: Editor, node: onnx.NodeProto) -> dict:
    if node.op_type == "Conv":
        out = {}
        for name in ("kernel_shape", "strides", "dilations"):
            if g.has_attr(node, name):
                out[name] = [1, *g.attr(node, name)]
        if g.has_attr(node, "pads"):
            a, b = g.attr(node, "pads")
            out["pads"] = [0, a, 0, b]
        return out
    if node.op_type in AXIS_OPS:
        axis = int(g.attr(node, "axis", 0))
        if axis in (2, -1):
            return {"axis": 3}
        if axis < 0:
            return {"axis": axis - 1}
    return {}


def _unsqueeze(g: Editor, x: str, hint: str) -> str:
    axis = (_rank(g, x) or 3) - 1  # before the length axis: (N, C, L) → (N, C, 1, L), (C, L) → (C, 1, L)
    if g.opset < 13:
        return g.add_node("Unsqueeze", [x], 1, name=hint, axes=[axis]).output[0]
    axes = g.add_initializer(np.array([axis], np.int64), f"{hint}_axes")
    return g.add_node("Unsqueeze", [x, axes], 1, name=hint).output[0]


def _squeeze(g: Editor, x: str, out: str, hint: str) -> None:
    if g.opset < 13:
        g.add_node("Squeeze", [x], [out], name=hint, axes=[2])
        return
    axes = g.add_initializer(np.array([2], np.int64), f"{hint}_axes")
    g.add_node("Squeeze", [x, axes], [out], name=hint)
