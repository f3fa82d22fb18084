"""Conv output channels → zero-padded to a multiple of N, readers padded to match. Exact by construction.

    Conv(W: 18×C×k×k) → BN → Relu → Conv(W₂: M×18×…)
    ⇒  Conv(W: 32×C×k×k, filters 18..31 zero) → BN(padded: γ=1, β=0, μ=0, σ²=1) → Relu → Conv(W₂: M×32×…,
       input channels 18..31 zero)

Why: Ascend keeps activations in NC1HWC0 (5HD), C0 = 16 for fp16/fp32 and 32 for int8;
a channel count that is not a multiple of C0 is padded at every TransData and in every
kernel, and an op that meets the ragged last block may fall back to ND with a TransData
around it. HRNet-W18's branches (18, 36, 72 channels) are the case.

How: each Conv with a constant weight, group 1, and an output count not a multiple of
``multiple`` gets zero filters (and zero bias) up to the next multiple. The padding then
flows forward through ops that treat channels independently and keep it finite
(Relu-like activations, BatchNormalization with neutral statistics, pooling, Resize over
spatial axes, depthwise Conv, Add/Mul/… of tensors padded alike or with per-channel
constants scattered into the padded layout, Concat on the channel axis), until a Conv
reads it with zero input-channel weights, which ignores it exactly. Any other reader
(Reshape, Gemm, Softmax over channels, a graph output, an op in another domain, …) gets
the original channels through a Slice (or a Gather after a Concat) inserted once per
tensor: "sliced back only where a non-aligned consumer needs it". A Conv whose padding
reaches no Conv at all is left as it is (padding it would only add a slice).

Refused, with the reason in the notes: grouped Convs (padding would regroup them), a
weight or constant that is not constant, shapes shape inference cannot give (a Concat's
other inputs, a broadcast), anything inside a subgraph. The notes end with the cost:
Conv FLOPs per sample and bytes of activations and weights, before and after.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import onnx

from surgery.graph import iter_nodes
from surgery.pass_infra import Pass, PassResult, option
from surgery.transdata import inferred_shapes
from surgery.validate import integer

from ._channel_layout import BINARY, DIVISORS, PER_CHANNEL, POOLS, REDUCE, Layout, channel_axis_of_operand
from ._scope import Edit, Names, Scope, attrs_of, elem_types, is_default_domain

INT8_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "QLinearConv", "ConvInteger", "MatMulInteger",
                      "QLinearMatMul", "DynamicQuantizeLinear"})


@dataclass
class _Plan:
    """What the propagation decided: padded Convs, tensor layouts, per-node rewrites, slices back."""

    seeds: dict[int, int]  # conv node index -> padded output channels
    layouts: dict[str, Layout] = field(default_factory=dict)
    rewrites: dict[int, str] = field(default_factory=dict)  # node index -> how its constants change
    unpad: dict[int, list[int]] = field(default_factory=dict)  # node index -> input slots sliced back
    reasons: dict[str, str] = field(default_factory=dict)  # "Op name" -> why a padded tensor is sliced back there
    region: dict[str, int] = field(default_factory=dict)  # padded tensor -> its region (union-find root)
    useful: set[int] = field(default_factory=set)  # regions a Conv absorbs


@dataclass(frozen=True, kw_only=True)
class AlignChannels(Pass):
    """Zero-pad Conv output channels (and their readers) to a multiple of 16 (32 for int8 graphs); exact."""

    name: ClassVar[str] = "align_channels"
    exact: ClassVar[bool] = True
    tune_default: ClassVar[bool] = False

    multiple: int | None = option(None, help="channel multiple (default 16, the fp16/fp32 C0; 32 in graphs with "
                                             "int8 quantisation)")

    def validate(self) -> None:
        if self.multiple is not None:
            integer(self.multiple, "pass align_channels: multiple", minimum=2, maximum=1024)

    def chosen_multiple(self, model: onnx.ModelProto) -> int:
        if self.multiple is not None:
            return self.multiple
        return 32 if any(n.op_type in INT8_OPS for n in model.graph.node) else 16

    def call(self, model: onnx.ModelProto) -> PassResult:
        multiple = self.chosen_multiple(model)
        notes: list[str] = []
        inside = sum(1 for n in iter_nodes(model.graph) if n.op_type == "Conv") - \
            sum(1 for n in model.graph.node if n.op_type == "Conv")
        if inside:
            notes.append(f"{inside} Convs inside If/Loop/Scan bodies are not aligned: subgraphs are left as they are")
        scope = Scope(model.graph)
        shapes = inferred_shapes(model)
        seeds, refused = _seeds(scope, multiple)
        notes += refused
        dropped = False
        while True:  # drop Convs whose padding no Conv absorbs, until every region left is useful
            plan = _propagate(scope, shapes, seeds)
            useless = [i for i in seeds if plan.region.get(scope.index.nodes[i].output[0]) not in plan.useful]
            if not useless:
                break
            dropped = True
            for i in useless:
                del seeds[i]
                notes.append(f"{scope.label(scope.index.nodes[i])}: left at "
                             f"{_out_channels(scope, scope.index.nodes[i])} channels: no Conv reads its padding "
                             "(padding it would only add a slice back)")
        if not seeds:
            if not any(n.op_type == "Conv" for n in model.graph.node):
                notes.append("no Conv node in the graph")
            elif not refused and not dropped:
                notes.append(f"every Conv output is already a multiple of {multiple} channels")
            return PassResult(model, changed=False, notes=notes)
        before = model_cost(model, shapes)
        added = sum(total - (_out_channels(scope, scope.index.nodes[i]) or total) for i, total in seeds.items())
        counts = _rewrite(scope, plan, Names(model), shapes)
        notes += [f"sliced back before {where}: {why}" for where, why in plan.reasons.items()]
        after = model_cost(model)
        notes.append(f"{len(seeds)} Convs padded by {added} output channels in all; "
                     f"{describe_cost(before, after, multiple)}")
        return PassResult(model, changed=True, counts=counts, notes=notes)


# ---------------------------------------------------------------------------
# which Convs, and how the padding flows


def _out_channels(scope: Scope, conv: onnx.NodeProto) -> int | None:
    w = scope.constant(conv.input[1]) if len(conv.input) > 1 else None
    return None if w is None else int(w.shape[0])


def _seeds(scope: Scope, multiple: int) -> tuple[dict[int, int], list[str]]:
    seeds: dict[int, int] = {}
    notes: list[str] = []
    for i, node in enumerate(scope.index.nodes):
        if node.op_type != "Conv" or not is_default_domain(node):
            continue
        w = scope.constant(node.input[1]) if len(node.input) > 1 else None
        if w is None:
            notes.append(f"{scope.label(node)}: weight is not a constant")
            continue
        m = int(w.shape[0])
        if m % multiple == 0:
            continue
        group = int(attrs_of(node).get("group", 1))  # type: ignore[call-overload]
        if group != 1:
            if not (group == m and w.shape[1] == 1):
                notes.append(f"{scope.label(node)}: {m} channels, grouped (group={group}): padding would regroup it")
            continue  # a depthwise Conv follows its input's layout instead
        if not np.issubdtype(w.dtype, np.floating):
            notes.append(f"{scope.label(node)}: weight is {w.dtype}")
            continue
        if len(node.input) > 2 and node.input[2] and scope.constant(node.input[2]) is None:
            notes.append(f"{scope.label(node)}: bias is not a constant")
            continue
        seeds[i] = -(-m // multiple) * multiple
    return seeds, notes


class _Regions:
    """Union-find over padded tensors: tensors one op ties together share a region."""

    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def new(self) -> int:
        k = len(self.parent)
        self.parent[k] = k
        return k

    def find(self, k: int) -> int:
        while self.parent[k] != k:
            self.parent[k] = self.parent[self.parent[k]]
            k = self.parent[k]
        return k

    def union(self, ks: list[int]) -> int:
        roots = [self.find(k) for k in ks]
        for r in roots[1:]:
            self.parent[r] = roots[0]
        return roots[0]


def _propagate(scope: Scope, shapes: dict, seeds: dict[int, int]) -> _Plan:
    plan = _Plan(seeds=dict(seeds))
    regions = _Regions()
    tensor_region: dict[str, int] = {}
    useful: set[int] = set()
    for i, node in enumerate(scope.index.nodes):
        padded = [k for k, name in enumerate(node.input) if name in plan.layouts]
        outs: dict[str, Layout] = {}
        if i in seeds:
            if padded:
                if _absorbs(scope, node):
                    plan.rewrites[i] = "absorb"
                    useful.add(regions.find(tensor_region[node.input[0]]))
                else:
                    _unpad(plan, i, node, padded, "its weight does not take padded channels")
            plan.rewrites[i] = "seed+absorb" if plan.rewrites.get(i) == "absorb" else "seed"
            outs[node.output[0]] = Layout.prefix(_out_channels(scope, node) or 0, seeds[i])
            new_region = regions.new()
            plan.layouts.update(outs)
            tensor_region[node.output[0]] = new_region
            continue
        if not padded:
            continue
        kind, why, outs = _rule(scope, node, padded, plan.layouts, shapes)
        if kind == "unpad":
            _unpad(plan, i, node, padded, why)
            continue
        if kind == "absorb":
            useful.add(regions.find(tensor_region[node.input[0]]))
        plan.rewrites[i] = kind
        if outs:
            root = regions.union([tensor_region[node.input[k]] for k in padded])
            for name, layout in outs.items():
                plan.layouts[name] = layout
                tensor_region[name] = root
    for name in scope.index.output_names:
        if name in plan.layouts:
            plan.reasons.setdefault(f"graph output {name!r}", "a graph output keeps its original channels")
    plan.region = {name: regions.find(k) for name, k in tensor_region.items()}
    plan.useful = {regions.find(k) for k in useful}
    return plan


def _unpad(plan: _Plan, i: int, node: onnx.NodeProto, slots: list[int], why: str) -> None:
    plan.unpad.setdefault(i, []).extend(k for k in slots if k not in plan.unpad.get(i, []))
    plan.reasons.setdefault(f"{node.op_type} {node.name or '(unnamed)'}", why)


def _absorbs(scope: Scope, conv: onnx.NodeProto) -> bool:
    """A group-1 Conv/ConvTranspose with a constant float weight: zero input-channel weights ignore the padding."""
    w = scope.constant(conv.input[1]) if len(conv.input) > 1 else None
    group = int(attrs_of(conv).get("group", 1))  # type: ignore[call-overload]
    return w is not None and group == 1 and np.issubdtype(w.dtype, np.floating)


def _rule(scope: Scope, node: onnx.NodeProto, padded: list[int], layouts: dict[str, Layout],
          shapes: dict) -> tuple[str, str, dict[str, Layout]]:
    """(kind of rewrite, why it is sliced back instead, output layouts) for a node reading padded tensors."""
    op = node.op_type
    if not is_default_domain(node):
        return "unpad", f"an op of domain {node.domain!r}", {}
    if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute) or \
            any(k >= len(node.input) for k in padded):
        return "unpad", "its subgraph reads the tensor", {}
    layout = layouts[node.input[padded[0]]]
    if op in ("Conv", "ConvTranspose"):
        if padded != [0]:
            return "unpad", "a padded weight", {}
        if _absorbs(scope, node):
            return "absorb", "", {}
        w = scope.constant(node.input[1]) if len(node.input) > 1 else None
        group = int(attrs_of(node).get("group", 1))  # type: ignore[call-overload]
        if op == "Conv" and w is not None and group == layout.channels and w.shape == (group, 1, *w.shape[2:]) and \
                (len(node.input) < 3 or not node.input[2] or scope.constant(node.input[2]) is not None):
            return "depthwise", "", {node.output[0]: layout}
        return "unpad", (f"grouped (group={group})" if w is not None else "its weight is not a constant"), {}
    if op in PER_CHANNEL or (op == "Dropout" and len([o for o in node.output if o]) == 1):
        return ("keep" if padded == [0] else "unpad"), "a padded parameter", {node.output[0]: layout}
    if op in POOLS:
        if len([o for o in node.output if o]) > 1:
            return "unpad", "its indices output depends on the channel count", {}
        return "keep", "", {node.output[0]: layout}
    if op == "BatchNormalization":
        if padded != [0] or any(scope.constant(n) is None for n in node.input[1:5]) or \
                len([o for o in node.output if o]) > 1:
            return "unpad", "statistics are not constants", {}
        return "batchnorm", "", {node.output[0]: layout}
    if op == "PRelu":
        slope = scope.constant(node.input[1])
        if padded != [0] or slope is None:
            return "unpad", "its slope is not a constant", {}
        return ("prelu" if slope.size > 1 else "keep"), "", {node.output[0]: layout}
    if op in BINARY:
        return _binary_rule(scope, node, padded, layouts, shapes)
    if op == "Concat":
        return _concat_rule(node, padded, layouts, shapes)
    if op in ("Resize", "Upsample"):
        return _resize_rule(scope, node, padded, layout)
    if op in REDUCE:
        axes = _reduce_axes(scope, node, len(shapes.get(node.input[0], [])))
        if padded != [0] or axes is None or 1 in axes or 0 in axes:
            return "unpad", "it reduces over the channels (or its axes are unknown)", {}
        return "keep", "", {node.output[0]: layout}
    if op == "Pad":
        pads = scope.constant(node.input[1]) if len(node.input) > 1 else np.array(attrs_of(node).get("pads", []))
        rank = len(shapes.get(node.input[0], []))
        if padded != [0] or pads is None or not rank or pads.size != 2 * rank or pads[1] or pads[1 + rank] \
                or (len(node.input) > 3 and node.input[3]):
            return "unpad", "it pads the channel axis (or its pads are not constants)", {}
        return "keep", "", {node.output[0]: layout}
    return "unpad", "it reads all channels", {}


def _reduce_axes(scope: Scope, node: onnx.NodeProto, rank: int) -> list[int] | None:
    a = attrs_of(node)
    if "axes" in a:
        axes = [int(x) for x in a["axes"]]  # type: ignore[union-attr]
    elif len(node.input) > 1 and node.input[1]:
        value = scope.constant(node.input[1])
        if value is None:
            return None
        axes = [int(x) for x in value.ravel()]
    else:
        return None  # every axis
    return [x + rank if x < 0 else x for x in axes] if rank else None


def _binary_rule(scope: Scope, node: onnx.NodeProto, padded: list[int], layouts: dict[str, Layout],
                 shapes: dict) -> tuple[str, str, dict[str, Layout]]:
    layout = layouts[node.input[padded[0]]]
    if any(layouts[node.input[k]] != layout for k in padded):
        return "unpad", "its inputs are padded differently", {}
    if any(k in DIVISORS.get(node.op_type, ()) for k in padded):
        return "unpad", "a padded divisor (zero padding would divide by zero)", {}
    out_rank = len(shapes.get(node.output[0], []))
    if not out_rank:
        return "unpad", "its output shape is unknown", {}
    for k, name in enumerate(node.input):
        if k in padded or not name:
            continue
        dims = shapes.get(name)
        if dims is None:
            return "unpad", f"the shape of {name!r} is unknown", {}
        axis = channel_axis_of_operand(len(dims), out_rank)
        if axis is None or dims[axis] == 1:
            continue  # broadcast along channels: every channel, padding included, sees the same value
        if scope.constant(name) is None:
            return "unpad", f"{name!r} has {dims[axis]} channels and is not padded", {}
    return "binary", "", {node.output[0]: layout}


def _concat_rule(node: onnx.NodeProto, padded: list[int], layouts: dict[str, Layout],
                 shapes: dict) -> tuple[str, str, dict[str, Layout]]:
    rank = len(shapes.get(node.output[0], []))
    axis = int(attrs_of(node).get("axis", 0))  # type: ignore[call-overload]
    axis = axis + rank if axis < 0 and rank else axis
    if axis != 1:
        layout = layouts[node.input[padded[0]]]
        if len(padded) == len([n for n in node.input if n]) and all(layouts[node.input[k]] == layout for k in padded):
            return "keep", "", {node.output[0]: layout}
        return "unpad", f"it concatenates on axis {axis}, not the channels", {}
    out: Layout | None = None
    for name in node.input:
        if not name:
            continue
        part = layouts.get(name)
        if part is None:
            dims = shapes.get(name)
            if not dims or len(dims) < 2 or not isinstance(dims[1], int):
                return "unpad", f"the channel count of {name!r} is unknown", {}
            part = Layout.plain(dims[1])
        out = part if out is None else out.concat(part)
    return "keep", "", {node.output[0]: out} if out is not None else {}


def _resize_rule(scope: Scope, node: onnx.NodeProto, padded: list[int],
                 layout: Layout) -> tuple[str, str, dict[str, Layout]]:
    if padded != [0]:
        return "unpad", "a padded scale", {}
    a = attrs_of(node)
    if a.get("coordinate_transformation_mode") == "tf_crop_and_resize":
        return "unpad", "tf_crop_and_resize reads a region of interest", {}
    inputs = [*node.input, "", "", ""]
    scales_name = inputs[2] if node.op_type == "Resize" else inputs[1]
    sizes_name = inputs[3] if node.op_type == "Resize" else ""
    if sizes_name:
        sizes = scope.constant(sizes_name)
        if sizes is None:
            return "unpad", "its sizes are computed at run time", {}
        if len(sizes) < 2 or int(sizes[1]) != layout.channels:
            return "unpad", "it resizes the channel axis", {}
        return "resize_sizes", "", {node.output[0]: layout}
    scales = scope.constant(scales_name) if scales_name else np.array(a.get("scales", []), np.float32)
    if scales is None or scales.size < 2 or float(scales.ravel()[1]) != 1.0:
        return "unpad", "its scales are not constant, or scale the channel axis", {}
    return "keep", "", {node.output[0]: layout}


# ---------------------------------------------------------------------------
# the rewrite


def _rewrite(scope: Scope, plan: _Plan, names: Names, shapes: dict) -> dict[str, int]:
    graph = scope.graph
    edit = Edit(scope)
    outputs = set(scope.index.output_names)
    # a padded graph output keeps its name for the original channels; the padded tensor gets a new one
    padded_name = {t: (names.fresh(f"{t}_aligned") if t in outputs else t) for t in plan.layouts}
    unpadded: dict[str, str] = {}
    counts: dict[str, int] = {}

    def original(t: str, at: int) -> str:
        if t not in unpadded:
            layout = plan.layouts[t]
            unpadded[t] = t if t in outputs else names.fresh(f"{t}_c{layout.channels}")
            edit.before(at, _slice_back(padded_name[t], unpadded[t], layout, edit, names))
            counts["Slice" if layout.is_prefix else "Gather"] = counts.get(
                "Slice" if layout.is_prefix else "Gather", 0) + 1
        return unpadded[t]

    for i, node in enumerate(scope.index.nodes):
        kind = plan.rewrites.get(i)
        sliced = plan.unpad.get(i, [])
        if kind is None and not sliced:
            continue
        new = onnx.NodeProto()
        new.CopyFrom(node)
        for k, name in enumerate(node.input):
            if name in plan.layouts:
                new.input[k] = original(name, i) if k in sliced else padded_name[name]
        for k, name in enumerate(node.output):
            if name in plan.layouts:
                new.output[k] = padded_name[name]
        if kind:
            _constants(scope, i, new, kind, plan, edit, names, shapes)
            if kind.startswith("seed"):
                counts["Conv"] = counts.get("Conv", 0) + 1
        edit.replace(i, [new])
    for t in plan.layouts:
        if t in outputs:
            original(t, len(scope.index.nodes))  # after the last node
    edit.commit()
    stale = [k for k, vi in enumerate(graph.value_info) if vi.name in plan.layouts]
    for k in reversed(stale):
        del graph.value_info[k]
    return counts


def _slice_back(src: str, dst: str, layout: Layout, edit: Edit, names: Names) -> list[onnx.NodeProto]:
    if layout.is_prefix:
        parts = [edit.add_initializer(np.array(v, np.int64), names.fresh(f"{dst}_{what}"))
                 for what, v in (("starts", [0]), ("ends", [layout.channels]), ("axes", [1]))]
        return [onnx.helper.make_node("Slice", [src, *parts], [dst], name=names.fresh(f"{dst}/Slice"))]
    index = edit.add_initializer(np.array(layout.positions, np.int64), names.fresh(f"{dst}_channels"))
    return [onnx.helper.make_node("Gather", [src, index], [dst], axis=1, name=names.fresh(f"{dst}/Gather"))]


def _constants(scope: Scope, i: int, new: onnx.NodeProto, kind: str, plan: _Plan, edit: Edit,
               names: Names, shapes: dict) -> None:
    """Give ``new`` (a copy of node ``i``) constants spread into the padded layouts."""
    node = scope.index.nodes[i]

    def replace_input(k: int, value: np.ndarray) -> None:
        edit.maybe_unused(node.input[k])
        new.input[k] = edit.add_initializer(value, names.fresh(f"{node.input[k]}_aligned"))

    layout_in = plan.layouts.get(node.input[0]) if node.input else None
    if kind in ("absorb", "seed", "seed+absorb"):
        w = scope.constant(node.input[1])
        assert w is not None
        if layout_in is not None and "absorb" in kind:
            w = layout_in.scatter(w, 0 if node.op_type == "ConvTranspose" else 1, 0.0)
        if kind.startswith("seed"):
            out = Layout.prefix(w.shape[0], plan.seeds[i])
            w = out.scatter(w, 0, 0.0)
            if len(node.input) > 2 and node.input[2]:
                b = scope.constant(node.input[2])
                assert b is not None
                replace_input(2, out.scatter(b, 0, 0.0))
        replace_input(1, w)
    elif kind == "depthwise":
        assert layout_in is not None
        replace_input(1, layout_in.scatter(scope.constant(node.input[1]), 0, 0.0))  # type: ignore[arg-type]
        if len(node.input) > 2 and node.input[2]:
            replace_input(2, layout_in.scatter(scope.constant(node.input[2]), 0, 0.0))  # type: ignore[arg-type]
        for attr in new.attribute:
            if attr.name == "group":
                attr.i = layout_in.total
    elif kind == "batchnorm":
        assert layout_in is not None
        for k, fill in ((1, 1.0), (2, 0.0), (3, 0.0), (4, 1.0)):  # γ, β, μ, σ²: the padding maps to itself
            replace_input(k, layout_in.scatter(scope.constant(node.input[k]).ravel(), 0, fill))  # type: ignore
    elif kind == "prelu":
        assert layout_in is not None
        slope = scope.constant(node.input[1])
        assert slope is not None
        axis = channel_axis_of_operand(slope.ndim, len(shapes.get(node.input[0], [])))
        if axis is not None and slope.shape[axis] == layout_in.channels:
            replace_input(1, layout_in.scatter(slope, axis, 0.0))
    elif kind == "binary":
        layout = next(plan.layouts[n] for n in node.input if n in plan.layouts)
        out_rank = len(shapes.get(node.output[0], []))
        for k, name in enumerate(node.input):
            value = None if name in plan.layouts or not name else scope.constant(name)
            if value is None:
                continue
            axis = channel_axis_of_operand(value.ndim, out_rank)
            if axis is not None and value.shape[axis] == layout.channels and layout.channels > 1:
                replace_input(k, layout.scatter(value, axis, BINARY[node.op_type]))
    elif kind == "resize_sizes":
        assert layout_in is not None
        sizes = scope.constant(node.input[3]).copy()  # type: ignore[union-attr]
        sizes[1] = layout_in.total
        replace_input(3, sizes)


# ---------------------------------------------------------------------------
# what the padding costs


@dataclass
class PaddingCost:
    """Conv FLOPs per sample and bytes of activations (per sample) and weights."""

    conv_flops: int = 0
    activation_bytes: int = 0
    weight_bytes: int = 0
    unknown_convs: int = 0  # Convs whose output shape inference could not give


def model_cost(model: onnx.ModelProto, shapes: dict | None = None) -> PaddingCost:
    """Conv FLOPs (2 × MACs), activation bytes of every inferred tensor and initializer bytes; batch counted as 1."""
    shapes = inferred_shapes(model) if shapes is None else shapes
    types = elem_types(model)
    inits = {t.name for t in model.graph.initializer}
    cost = PaddingCost()
    scope = Scope(model.graph)
    for node in model.graph.node:
        if node.op_type not in ("Conv", "ConvTranspose"):
            continue
        out = shapes.get(node.output[0])
        w = scope.initializer(node.input[1]) if len(node.input) > 1 else None
        if not out or w is None or any(not isinstance(d, int) for d in out[1:]):
            cost.unknown_convs += 1
            continue
        per_output = math.prod(w.dims[1:]) if node.op_type == "Conv" else math.prod(w.dims) // max(w.dims[1], 1)
        cost.conv_flops += 2 * math.prod(out[1:]) * per_output
    for name, dims in shapes.items():
        if name in inits or not dims or any(not isinstance(d, int) for d in dims[1:]):
            continue
        size = _itemsize(types.get(name, onnx.TensorProto.FLOAT))
        cost.activation_bytes += math.prod(dims[1:]) * size
    for t in model.graph.initializer:
        cost.weight_bytes += math.prod(t.dims) * _itemsize(t.data_type)
    return cost


def _itemsize(elem_type: int) -> int:
    try:
        return int(onnx.helper.tensor_dtype_to_np_dtype(elem_type).itemsize)
    except (KeyError, TypeError, ValueError):
        return 4


def describe_cost(before: PaddingCost, after: PaddingCost, multiple: int) -> str:
    def pct(a: int, b: int) -> str:
        return f"{(b - a) / a * 100:+.1f}%" if a else "n/a"

    text = (f"cost of padding to {multiple}: Conv FLOPs per sample {before.conv_flops / 1e9:.3f} G → "
            f"{after.conv_flops / 1e9:.3f} G ({pct(before.conv_flops, after.conv_flops)}), activations "
            f"{before.activation_bytes / 2**20:.2f} MiB → {after.activation_bytes / 2**20:.2f} MiB "
            f"({pct(before.activation_bytes, after.activation_bytes)}), weights {before.weight_bytes / 2**20:.2f} MiB "
            f"→ {after.weight_bytes / 2**20:.2f} MiB ({pct(before.weight_bytes, after.weight_bytes)})")
    if after.unknown_convs:
        text += f"; {after.unknown_convs} Convs without inferred shapes not counted"
    return text


__all__ = ["AlignChannels", "PaddingCost", "describe_cost", "model_cost"]
