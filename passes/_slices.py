"""Reading and writing Slice parameters the same way in every pass (inputs from opset 10, attributes before)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from surgery.matcher import Editor

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)


@dataclass(frozen=True)
class SliceSpec:
    """A Slice's constant parameters, one entry per sliced axis (axes made non-negative when the rank is known)."""

    starts: tuple[int, ...]
    ends: tuple[int, ...]
    axes: tuple[int, ...]
    steps: tuple[int, ...]

def read_slice(g: Editor, node: onnx.NodeProto) -> SliceSpec | str:
    """The constant parameters of a Slice, or why they cannot be read."""
    if g.opset < 10:
        starts, ends = g.attr(node, "starts"), g.attr(node, "ends")
        axes = g.attr(node, "axes")
        if starts is None or ends is None:
            return "starts or ends attribute missing"
        steps = [1] * len(starts)
    else:
        ins = list(node.input) + [""] * (5 - len(node.input))
        starts, ends = g.constant_ints(ins[1]), g.constant_ints(ins[2])
        if starts is None or ends is None:
            return "starts or ends is not a constant"
        axes = g.constant_ints(ins[3]) if ins[3] else None
        if ins[3] and axes is None:
            return "axes is not a constant"
        steps = g.constant_ints(ins[4]) if ins[4] else [1] * len(starts)
        if steps is None:
            return "steps is not a constant"
    if axes is None:
        axes = list(range(len(starts)))
    if not (len(starts) == len(ends) == len(axes) == len(steps)):
        return "starts, ends, axes and steps differ in length"
    if any(a < 0 for a in axes):
        shape = g.shape(node.input[0])
        if shape is None:
            return "negative axes and the input's rank is unknown"
        axes = [a + len(shape) if a < 0 else a for a in axes]
    if len(set(axes)) != len(axes):
        return "an axis is sliced twice"
    return SliceSpec(tuple(starts), tuple(ends), tuple(axes), tuple(steps))


def slice_inputs(g: Editor, data: str, spec: SliceSpec, hint: str) -> tuple[list[str], dict]:
    """Inputs and attributes of a Slice node with ``spec``, in the form the model's opset takes."""
    if g.opset < 10:
        return [data], {"starts": list(spec.starts), "ends": list(spec.ends), "axes": list(spec.axes)}
    names = [g.add_initializer(np.array(v, np.int64), f"{hint}_{part}")
             for part, v in (("starts", spec.starts), ("ends", spec.ends), ("axes", spec.axes))]
    if any(s != 1 for s in spec.steps):
        names.append(g.add_initializer(np.array(spec.steps, np.int64), f"{hint}_steps"))
    return [data, *names], {}


def clamp_range(start: int, end: int, dim: int) -> tuple[int, int]:
    """Positive-step Slice bounds on an axis of length ``dim``, as ONNX clamps them."""
    if start < 0:
        start += dim
    if end < 0:
        end += dim
    return max(0, min(start, dim)), max(0, min(end, dim))


def add_split(g: Editor, data: str, axis: int, sizes: list[int], outputs: list[str], hint: str) -> onnx.NodeProto:
    """A Split of ``data`` on ``axis`` into pieces of ``sizes`` (attribute before opset 13, input after)."""
    if g.opset < 13:
        return g.add_node("Split", [data], outputs, name=hint, axis=axis, split=list(sizes))
    split = g.add_initializer(np.array(sizes, np.int64), f"{hint}_sizes")
    return g.add_node("Split", [data, split], outputs, name=hint, axis=axis)


def add_squeeze(g: Editor, data: str, axes: list[int], output: str | None, hint: str) -> onnx.NodeProto:
    """A Squeeze of ``axes`` (attribute before opset 13, input after)."""
    outputs: list[str] | int = [output] if output else 1
    if g.opset < 13:
        return g.add_node("Squeeze", [data], outputs, name=hint, axes=list(axes))
    axes_name = g.add_initializer(np.array(axes, np.int64), f"{hint}_axes")
    return g.add_node("Squeeze", [data, axes_name], outputs, name=hint)
