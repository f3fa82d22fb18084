"""ReduceMean →* Concat ⇒ AveragePool: exact adaptive average pooling → the ICNet guide's fixed pool. Inexact.

    x ─┬─ Slice[0:11) ─ ReduceMean ─┐                      (per spatial axis: the adaptive bins
       ├─ Slice[10:22) ─ ReduceMean ─┼─ Concat ─ (same on W) ─► y      [⌊i·n/k⌋, ⌈(i+1)·n/k⌉) of n into k)
       └─ Slice[21:32) ─ ReduceMean ─┘
    ⇒  x ─ AveragePool(kernel = n−(k−1)·⌊n/k⌋, strides = ⌊n/k⌋) ─► y

This is Ascend's ``icnet.diff`` (``F.adaptive_avg_pool2d`` → ``F.avg_pool2d`` with those
kernels and strides, computed from the static size) done on the exported graph, so a user
can apply it to their own export. At ICNet's 32×64 map: bin 3 → kernel 12×22 stride 10×21,
bin 6 → kernel 7×14 stride 5×10. Where ``k`` divides ``n`` the two are equal; elsewhere the
fixed windows are wider than some adaptive bins and outputs change (measured on ICNet's
pyramid pooling: max |diff| 0.049 for bin 3, 0.21 for bin 6 on a random input).

Recognised per axis (the form torch exports for ``x.narrow(axis, …).mean(axis)`` cells):
``Concat(axis=a)`` of ``ReduceMean(axes=[a], keepdims=1)`` of ``Slice(x, axes=[a])`` over the
adaptive bins of x's static size, and, on an axis the bins divide, ``AveragePool`` with
kernel 1 on the other axes. Consecutive per-axis units over different axes form one
pooling; a pooling with no Slice unit (every axis divides) is already fixed and stays.
The sizes come from shape inference: give static shapes (``fix_shapes``) if they are unknown.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import onnx

from surgery.matcher import Editor, Match, PatternPass, Rule


@dataclass
class AxisUnit:
    """Adaptive mean pooling of ``source`` along one axis into ``bins`` cells, made of ``nodes``."""

    source: str
    output: str
    axis: int
    bins: int
    size: int
    nodes: list[onnx.NodeProto]
    sliced: bool = True  # False: an AveragePool (the bins divide the size, so it is fixed already)


class _Pooling(Rule):
    """Shared by both rules: a pooling is a chain of axis units ending at the anchor."""

    def check(self, g: Editor, m: Match) -> str | None:
        chain = _chain(g, m.anchor)
        if isinstance(chain, str):
            return chain
        if not any(u.sliced for u in chain):
            return "the bins divide every size: already a fixed AveragePool"
        nxt = _next_unit(g, chain[-1])
        if nxt is not None:
            return f"pools axis {chain[-1].axis} of a pooling that {nxt}: rewritten there"
        rank = len(g.shape(chain[0].source) or ())
        if rank < 3 or any(u.axis < 2 for u in chain):
            return "not a pooling over the spatial axes of an N×C×… tensor"
        return None

    def rewrite(self, g: Editor, m: Match) -> str:
        chain = _chain(g, m.anchor)
        assert not isinstance(chain, str)
        rank = len(g.shape(chain[0].source) or ())
        kernel, strides = [1] * (rank - 2), [1] * (rank - 2)
        for u in chain:
            strides[u.axis - 2] = u.size // u.bins
            kernel[u.axis - 2] = u.size - (u.bins - 1) * strides[u.axis - 2]
        g.remove(*[n for u in chain for n in u.nodes])
        base = m.anchor.name or "pool"
        # what torch writes for F.avg_pool2d(x, kernel, stride), as the guide's patch exports it
        g.add_node("AveragePool", [chain[0].source], [chain[-1].output], name=f"{base}/fixed", kernel_shape=kernel,
                   strides=strides, pads=[0] * (2 * (rank - 2)), ceil_mode=0, count_include_pad=1)
        windows = all(adaptive_bins(u.size, u.bins) == fixed_windows(u.size, u.bins) for u in chain)
        return "pooling" if windows else "pooling (inexact)"


class ConcatEnded(_Pooling):
    """ReduceMean →* Concat ⇒ AveragePool: a pooling whose last axis is a Concat of per-bin means."""

    label = "pooling"


class PoolEnded(_Pooling):
    """Concat → AveragePool ⇒ AveragePool: a pooling whose last axis divides (an AveragePool after the cells)."""

    label = "pooling"


@dataclass(frozen=True, kw_only=True)
class AdaptivePoolToFixed(PatternPass):
    """Exact adaptive avg pooling (per-bin Slice+ReduceMean) → fixed AveragePool, the ICNet guide's patch (inexact)."""

    name: ClassVar[str] = "adaptive_pool_to_fixed"
    exact: ClassVar[bool] = False

    def rules(self) -> Sequence[Rule]:
        return [ConcatEnded(), PoolEnded()]


def adaptive_bins(size: int, bins: int) -> list[tuple[int, int]]:
    """torch's adaptive pooling cells: [⌊i·n/k⌋, ⌈(i+1)·n/k⌉) for i < k."""
    return [((i * size) // bins, -((-(i + 1) * size) // bins)) for i in range(bins)]


def fixed_windows(size: int, bins: int) -> list[tuple[int, int]]:
    """The guide's windows: stride ⌊n/k⌋, kernel n − (k−1)·stride."""
    stride = size // bins
    kernel = size - (bins - 1) * stride
    return [(i * stride, i * stride + kernel) for i in range(bins)]


def _axis(axis: int, rank: int) -> int:
    return axis + rank if axis < 0 else axis


def _unit(g: Editor, node: onnx.NodeProto) -> AxisUnit | str:
    """``node`` as the end of one axis of adaptive pooling, or why it is not."""
    if node.op_type == "AveragePool":
        return _pool_unit(g, node)
    if node.op_type == "Concat":
        return _slice_unit(g, node)
    return f"a {node.op_type}"


def _chain(g: Editor, end: onnx.NodeProto) -> list[AxisUnit] | str:
    """The axis units ending at ``end``, first axis first; a reason when ``end`` ends none."""
    last = _unit(g, end)
    if isinstance(last, str):
        return last
    chain = [last]
    while True:
        prev = g.producer_of(chain[0].source)
        if prev is None or prev.op_type not in ("Concat", "AveragePool"):
            break
        unit = _unit(g, prev)
        readers = {id(n) for n in g.consumers_of(chain[0].source)}
        if isinstance(unit, str) or g.is_output(unit.output) or readers - {id(n) for n in chain[0].nodes} \
                or unit.axis in {u.axis for u in chain}:
            break
        chain.insert(0, unit)
    if len(chain) == 1 and not chain[0].sliced:
        return "an AveragePool that is no adaptive pooling's last axis"
    return chain


def _next_unit(g: Editor, unit: AxisUnit) -> str | None:
    """When another axis unit reads ``unit``'s output (and nothing else does): how to name it in a note."""
    readers = g.consumers_of(unit.output)
    if not readers or g.is_output(unit.output):
        return None
    ends = []
    for reader in readers:
        if reader.op_type == "AveragePool":
            ends.append(reader)
        for mean in g.consumers_of(reader.output[0]) if reader.op_type == "Slice" else ():
            ends += [n for n in g.consumers_of(mean.output[0]) if n.op_type == "Concat"]
    for end in {id(e): e for e in ends}.values():
        other = _unit(g, end)
        if isinstance(other, AxisUnit) and other.source == unit.output and other.axis != unit.axis and \
                {id(r) for r in readers} <= {id(n) for n in other.nodes}:
            return f"{end.op_type} {end.name or '(unnamed)'} ends"
    return None


def _slice_unit(g: Editor, concat: onnx.NodeProto) -> AxisUnit | str:
    """Concat of ReduceMeans of Slices of one tensor along one axis, over that axis's adaptive bins."""
    out = concat.output[0]
    rank = len(g.shape(out) or ())
    if not rank:
        return "the rank of its output is unknown"
    axis = _axis(int(g.attr(concat, "axis")), rank)
    cells: list[tuple[int, int]] = []
    nodes: list[onnx.NodeProto] = [concat]
    source = None
    for k, name in enumerate(concat.input):
        mean = g.producer_of(name)
        if mean is None or mean.op_type != "ReduceMean" or _reduce_axes(g, mean, rank) != [axis] or \
                not int(g.attr(mean, "keepdims")):
            return f"input {k} is not a ReduceMean over axis {axis} keeping dims"
        cut = g.producer_of(mean.input[0])
        if cut is None or cut.op_type != "Slice":
            return f"input {k} is not the mean of a Slice"
        cell = _slice_range(g, cut, axis, rank)
        if cell is None:
            return f"input {k} is not the mean of a constant step-1 Slice along axis {axis} only"
        if source is not None and cut.input[0] != source:
            return "its cells slice different tensors"
        if len(g.consumers_of(mean.output[0])) != 1 or len(g.consumers_of(cut.output[0])) != 1:
            return f"the cell of input {k} is read elsewhere too"
        source = cut.input[0]
        cells.append(cell)
        nodes += [cut, mean]
    dims = g.shape(source) if source else None
    size = dims[axis] if dims is not None and len(dims) == rank else None
    if not isinstance(size, int) or size <= 0:
        return f"the size of axis {axis} of {source!r} is unknown (give static shapes: fix_shapes)"
    cells = [(min(max(s + size if s < 0 else s, 0), size), min(max(e + size if e < 0 else e, 0), size))
             for s, e in cells]
    if cells != adaptive_bins(size, len(cells)):
        return (f"cells {', '.join(f'[{s}:{e})' for s, e in cells)} of axis {axis} are not the adaptive bins of "
                f"{size} into {len(cells)}")
    return AxisUnit(source, out, axis, len(cells), size, nodes)  # type: ignore[arg-type]


def _pool_unit(g: Editor, node: onnx.NodeProto) -> AxisUnit | str:
    """An AveragePool pooling one axis by a divisor of its size (kernel 1 elsewhere): adaptive and fixed at once."""
    kernel = [int(k) for k in g.attr(node, "kernel_shape") or []]
    strides = [int(s) for s in g.attr(node, "strides") or [1] * len(kernel)]
    dims = g.shape(node.input[0])
    if strides != kernel or any(int(p) for p in g.attr(node, "pads") or []) or dims is None or \
            len(dims) != len(kernel) + 2:
        return "an AveragePool with overlapping or padded windows"
    pooled = [k for k, n in enumerate(kernel) if n != 1]
    if len(pooled) != 1:
        return "an AveragePool over more than one axis"
    axis = pooled[0] + 2
    size = dims[axis]
    if not isinstance(size, int) or size % kernel[pooled[0]]:
        return "an AveragePool whose windows do not tile its axis"
    return AxisUnit(node.input[0], node.output[0], axis, size // kernel[pooled[0]], size, [node], sliced=False)


def _reduce_axes(g: Editor, node: onnx.NodeProto, rank: int) -> list[int] | None:
    axes = g.attr(node, "axes")
    if axes is None and len(node.input) > 1 and node.input[1]:  # opset 18: axes as an input
        axes = g.constant_ints(node.input[1])
    return None if axes is None else [_axis(int(x), rank) for x in axes]


def _slice_range(g: Editor, node: onnx.NodeProto, axis: int, rank: int) -> tuple[int, int] | None:
    """(start, end) of a step-1 Slice along ``axis`` only, from constant inputs or (opset < 10) attributes."""
    if len(node.input) == 1:
        starts, ends = g.attr(node, "starts"), g.attr(node, "ends")
        axes, steps = g.attr(node, "axes") or list(range(len(starts or []))), None
    else:
        inputs = [*node.input, "", "", ""][:5]
        starts, ends = g.constant_ints(inputs[1]), g.constant_ints(inputs[2])
        axes = g.constant_ints(inputs[3]) if inputs[3] else None
        steps = g.constant_ints(inputs[4]) if inputs[4] else None
        if (inputs[3] and axes is None) or (inputs[4] and steps is None):
            return None
        if axes is None and starts is not None:
            axes = list(range(len(starts)))
    if starts is None or ends is None or [_axis(int(x), rank) for x in np.ravel(axes)] != [axis]:
        return None
    if steps is not None and list(steps) != [1]:
        return None
    return int(starts[0]), min(int(ends[0]), 2**62)


__all__ = ["AdaptivePoolToFixed", "adaptive_bins", "fixed_windows"]
