"""Where ATC is likely to insert TransData, read from the ONNX graph alone (no CANN needed).

Ascend keeps conv features in NC1HWC0 (5HD): C split in blocks of C0 = 16 (fp16/fp32;
32 for int8), the last block zero-padded, and it inserts a TransData wherever two
neighbouring ops disagree on the format. The rules below are the graph shapes that the
Ascend tooling and the ModelZoo guides blame for extra TransData
(``shared/reference/ascend-tools.md`` §4); each names the nodes it counts, so a user sees
what to fix before going to the NPU host. They are an estimate of *sources*, not a
compiler: the real count comes from ``atc --mode=1`` or ``op_statistic`` on the device.

- ``unaligned_channels``: a Conv whose output channels are not a multiple of C0. Every
  5HD tensor it writes is padded, and ops that meet the ragged last block may fall back to
  ND (msadvisor "Ops_Not_Support_Heavy_Format"). Fix: ``align_channels``.
- ``channel_slices``: a Slice (or Gather) on the channel axis of a 4-D tensor. ATC lowers
  it to StridedSliceD, which has no 5HD kernel: TransData before and after it (the
  CSPResNeXt50 guide's finding). A Split on the channel axis counts when a part is not a
  multiple of C0. Fix: ``slice_to_split``, ``fold_slice_into_conv``.
- ``conv1d``: a Conv over a 3-D tensor. ATC runs it as Conv2d with TransData around it
  (auto-optimizer's KnowledgeConv1d2Conv2d). Fix: ``conv1d_to_conv2d``.
- ``large_avgpool``: an AveragePool with kernel area ≥ 255, the AvgPool instruction's
  limit: extra TransData/Transpose around it (KnowledgeAvgPoolSplit). Fix: ``avgpool_split``.
- ``reshape_between_convs``: a Reshape, Flatten, Transpose, Squeeze or Unsqueeze with a
  Conv upstream and a Conv downstream (through ops that keep the format): 5HD→ND→5HD
  ("Reshape_Ops_Interrupts_Format", msadvisor's advice to remove Reshape-class ops
  between conv blocks).

The 4-D→5HD conversion at the network input and 5HD→4-D at the outputs are expected
("Other_Transform") and not counted.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import onnx

from surgery.graph import GraphIndex
from surgery.tensors import skeleton, tensor_meta

RULES = ("unaligned_channels", "channel_slices", "conv1d", "large_avgpool", "reshape_between_convs")
C0_FLOAT = 16
C0_INT8 = 32
AVGPOOL_MAX_AREA = 255
RESHAPES = frozenset({"Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze"})
# ops that keep a 5HD tensor in 5HD: a walk from a Reshape to a Conv may pass them
KEEPS_FORMAT = frozenset({
    "Relu", "LeakyRelu", "PRelu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Elu", "Selu", "Clip", "Identity",
    "BatchNormalization", "Add", "Sub", "Mul", "Div", "Max", "Min", "Sum", "MaxPool", "AveragePool",
    "GlobalAveragePool", "GlobalMaxPool", "Resize", "Upsample", "Concat", "Dropout", "Cast", "Pad",
})
CONVS = frozenset({"Conv", "ConvTranspose"})
WALK_LIMIT = 64  # ops walked from a Reshape looking for a Conv, each way
INT8_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "QLinearConv", "ConvInteger"})


@dataclass
class TransDataEstimate:
    """Likely TransData sources per rule, with the nodes behind each count (first few only)."""

    c0: int
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RULES, 0))
    examples: dict[str, list[str]] = field(default_factory=lambda: {r: [] for r in RULES})
    shapes_known: bool = True

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def add(self, rule: str, node: onnx.NodeProto, detail: str = "") -> None:
        self.counts[rule] += 1
        if len(self.examples[rule]) < 5:
            label = f"{node.op_type} {node.name or '(unnamed)'}"
            self.examples[rule].append(f"{label} ({detail})" if detail else label)

    def to_dict(self) -> dict:
        return {"c0": self.c0, "total": self.total, "counts": dict(self.counts), "examples": dict(self.examples),
                "shapes_known": self.shapes_known}


def estimate(model: onnx.ModelProto, c0: int | None = None) -> TransDataEstimate:
    """Count the TransData sources of the model's main graph by the rules of this module.

    Args:
        model: the model (not modified).
        c0: the channel block; default 16, or 32 when the graph holds int8 quantisation.
    """
    graph = model.graph
    if c0 is None:
        c0 = C0_INT8 if any(n.op_type in INT8_OPS for n in graph.node) else C0_FLOAT
    index = GraphIndex(graph)
    shapes = inferred_shapes(model)
    est = TransDataEstimate(c0=c0, shapes_known=bool(shapes))
    consts = _constants(graph)
    for node in graph.node:
        op = node.op_type
        if node.domain not in ("", "ai.onnx"):
            continue
        if op in CONVS:
            _conv_rules(node, shapes, index, est, c0)
        elif op in ("Slice", "Gather", "Split"):
            _slice_rule(node, shapes, consts, est, c0)
        elif op == "AveragePool":
            kernel = _ints(node, "kernel_shape")
            if kernel and math.prod(kernel) >= AVGPOOL_MAX_AREA:
                est.add("large_avgpool", node, f"kernel {'x'.join(map(str, kernel))}")
        elif op in RESHAPES and _conv_upstream(index, node) and _conv_downstream(index, node):
            est.add("reshape_between_convs", node)
    return est


def _conv_rules(node: onnx.NodeProto, shapes: dict, index: GraphIndex, est: TransDataEstimate, c0: int) -> None:
    w = index.initializers.get(node.input[1]) if len(node.input) > 1 else None
    dims = list(w.dims) if w is not None else list(shapes.get(node.input[1], []))
    if not dims:
        return
    if len(dims) == 3:
        est.add("conv1d", node)
    channels = dims[0] if node.op_type == "Conv" else dims[1] * max(_int(node, "group", 1), 1)
    if channels % c0:
        est.add("unaligned_channels", node, f"{channels} channels")


def _slice_rule(node: onnx.NodeProto, shapes: dict, consts: dict, est: TransDataEstimate, c0: int) -> None:
    rank = len(shapes.get(node.input[0], []))
    if rank != 4:
        return
    if node.op_type == "Gather":
        if _int(node, "axis", 0) % 4 == 1:
            est.add("channel_slices", node, "Gather on the channels")
        return
    if node.op_type == "Split":
        if _int(node, "axis", 0) % 4 != 1:
            return
        parts = [d[1] for d in (shapes.get(o, []) for o in node.output) if len(d) == 4]
        ragged = [p for p in parts if not isinstance(p, int) or p % c0]
        if ragged:
            est.add("channel_slices", node, f"parts {parts}")
        return
    axes = _slice_axes(node, consts)
    if axes is None or any(a % 4 == 1 for a in axes):
        est.add("channel_slices", node, "Slice on the channels" if axes is not None else "Slice axes unknown")


def _slice_axes(node: onnx.NodeProto, consts: dict) -> list[int] | None:
    if len(node.input) == 1:  # opset < 10: attributes
        axes = _ints(node, "axes")
        return axes if axes else list(range(len(_ints(node, "starts"))))
    if len(node.input) > 3 and node.input[3]:
        value = consts.get(node.input[3])
        return None if value is None else [int(v) for v in value]
    starts = consts.get(node.input[1])
    return None if starts is None else list(range(len(starts)))


def _walk(index: GraphIndex, start: list[int], forward: bool) -> Iterator[onnx.NodeProto]:
    seen: set[int] = set()
    todo = list(start)
    while todo and len(seen) < WALK_LIMIT:
        i = todo.pop()
        if i in seen:
            continue
        seen.add(i)
        node = index.nodes[i]
        yield node
        if node.op_type not in KEEPS_FORMAT:
            continue
        if forward:
            for out in node.output:
                todo.extend(index.consumers.get(out, []))
        else:
            todo.extend(index.producer[x] for x in node.input[:1] if x in index.producer)
            if node.op_type in ("Add", "Sub", "Mul", "Max", "Min", "Sum", "Concat"):
                todo.extend(index.producer[x] for x in node.input[1:] if x in index.producer)


def _conv_upstream(index: GraphIndex, node: onnx.NodeProto) -> bool:
    first = [index.producer[x] for x in node.input[:1] if x in index.producer]
    return any(n.op_type in CONVS for n in _walk(index, first, forward=False))


def _conv_downstream(index: GraphIndex, node: onnx.NodeProto) -> bool:
    readers = [i for out in node.output for i in index.consumers.get(out, [])]
    return any(n.op_type in CONVS for n in _walk(index, readers, forward=True))


def _attr(node: onnx.NodeProto, name: str) -> onnx.AttributeProto | None:
    return next((a for a in node.attribute if a.name == name), None)


def _int(node: onnx.NodeProto, name: str, default: int) -> int:
    a = _attr(node, name)
    return int(a.i) if a is not None else default


def _ints(node: onnx.NodeProto, name: str) -> list[int]:
    a = _attr(node, name)
    return [int(v) for v in a.ints] if a is not None else []


def _constants(graph: onnx.GraphProto) -> dict[str, list[int]]:
    """Small integer constants (Slice axes and starts) by tensor name: initializers and Constant nodes."""
    from onnx import numpy_helper

    out: dict[str, list[int]] = {}
    for t in graph.initializer:
        if t.data_type in (onnx.TensorProto.INT64, onnx.TensorProto.INT32) and math.prod(t.dims) <= 16:
            out[t.name] = [int(v) for v in numpy_helper.to_array(t).ravel()]
    for n in graph.node:
        if n.op_type == "Constant" and n.output:
            a = _attr(n, "value")
            if a is not None and a.t.data_type in (onnx.TensorProto.INT64, onnx.TensorProto.INT32) and \
                    math.prod(a.t.dims) <= 16:
                out[n.output[0]] = [int(v) for v in numpy_helper.to_array(a.t).ravel()]
            elif _attr(n, "value_ints") is not None:
                out[n.output[0]] = _ints(n, "value_ints")
            elif _attr(n, "value_int") is not None:
                out[n.output[0]] = [_int(n, "value_int", 0)]
    return out


def inferred_shapes(model: onnx.ModelProto) -> dict[str, list[int | str]]:
    """Every tensor's shape from onnx shape inference (``str`` for symbolic dims); {} when inference fails.

    Runs on a skeleton of the model whose large tensors carry no data: inference needs
    their dims only, and a model near 2 GB could not be serialised for it otherwise.
    """
    def strip(t: onnx.TensorProto) -> onnx.TensorProto | None:
        return tensor_meta(t) if math.prod(t.dims) > 4096 else None

    light = skeleton(model, strip)
    try:
        inferred = onnx.shape_inference.infer_shapes(light)  # type: ignore[arg-type]
    except Exception:  # best effort: the rules that need shapes count nothing
        return {}
    out: dict[str, list[int | str]] = {}
    g = inferred.graph
    for vi in (*g.input, *g.value_info, *g.output):
        t = vi.type.tensor_type
        if vi.type.HasField("tensor_type") and t.HasField("shape"):
            out[vi.name] = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in t.shape.dim]
    for t in model.graph.initializer:
        out[t.name] = list(t.dims)
    return out


__all__ = ["RULES", "TransDataEstimate", "estimate", "inferred_shapes"]
