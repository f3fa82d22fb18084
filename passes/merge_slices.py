"""first:Slice → second:Slice ⇒ Slice. Exact.

A Slice whose output only another Slice reads is merged into it: slices of different axes
join into one multi-axis Slice (auto-optimizer's KnowledgeMergeConsecutiveSlice), and two
step-1 slices of the same axis compose into one range when all their bounds are
non-negative or the axis length is known (``x[2:10][1:5]`` = ``x[3:7]``). Each Slice on the
NPU is a StridedSliceD, often with TransData around it: one is cheaper than two.

Conditions: constant starts, ends, axes and steps (initializers or Constant nodes; attributes
before opset 10); negative axes need the input's rank.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import onnx

from surgery.matcher import Editor, Match, PatternPass

from ._slices import INT64_MAX, SliceSpec, read_slice, slice_inputs


@dataclass(frozen=True, kw_only=True)
class MergeSlices(PatternPass):
    """first:Slice → second:Slice ⇒ Slice: consecutive Slices become one (exact)."""

    name: ClassVar[str] = "merge_slices"
    exact: ClassVar[bool] = True

    def check(self, g: Editor, m: Match) -> str | None:
        m.plan = _merge(g, *m.nodes)
        return m.plan if isinstance(m.plan, str) else None

    def rewrite(self, g: Editor, m: Match) -> None:
        first, second = m.nodes
        spec = m.plan
        assert isinstance(spec, SliceSpec)
        out = second.output[0]
        g.remove(first, second)
        inputs, attrs = slice_inputs(g, first.input[0], spec, second.name or "slice")
        g.add_node("Slice", inputs, [out], name=second.name or "merged_slice", **attrs)


def _merge(g: Editor, first: onnx.NodeProto, second: onnx.NodeProto) -> SliceSpec | str:
    out = first.output[0]
    if g.is_output(out):
        return "the first Slice's output is a graph output"
    if len(g.consumers_of(out)) != 1:
        return "the first Slice feeds other nodes too"
    a, b = read_slice(g, first), read_slice(g, second)
    if isinstance(a, str):
        return f"first Slice: {a}"
    if isinstance(b, str):
        return f"second Slice: {b}"
    starts, ends, axes, steps = list(a.starts), list(a.ends), list(a.axes), list(a.steps)
    for k, axis in enumerate(b.axes):
        if axis not in axes:
            starts.append(b.starts[k])
            ends.append(b.ends[k])
            axes.append(axis)
            steps.append(b.steps[k])
            continue
        j = axes.index(axis)
        composed = _compose(g, first.input[0], axis, (starts[j], ends[j], steps[j]),
                            (b.starts[k], b.ends[k], b.steps[k]))
        if isinstance(composed, str):
            return composed
        starts[j], ends[j] = composed
    return SliceSpec(tuple(starts), tuple(ends), tuple(axes), tuple(steps))


def _compose(g: Editor, data: str, axis: int, first: tuple[int, int, int],
             second: tuple[int, int, int]) -> tuple[int, int] | str:
    """One [start, end) equal to slicing ``first`` then ``second`` on the same axis (step 1 only)."""
    (s1, e1, st1), (s2, e2, st2) = first, second
    if st1 != 1 or st2 != 1:
        return f"both slice axis {axis} with steps other than 1"
    if min(s1, e1, s2, e2) < 0:
        shape = g.shape(data)
        dim = shape[axis] if shape is not None and axis < len(shape) else None
        if not isinstance(dim, int):
            return f"both slice axis {axis} with negative bounds and its length is unknown"
        s1, e1 = (max(0, min(v + dim if v < 0 else v, dim)) for v in (s1, e1))
        length = max(0, e1 - s1)
        s2, e2 = (max(0, min(v + length if v < 0 else v, length)) for v in (s2, e2))
    # x[s1:e1][s2:e2] keeps the indices i with s1 + s2 <= i < min(e1, s1 + e2), clamped by the runtime
    return min(s1 + s2, INT64_MAX), min(e1, s1 + e2, INT64_MAX)
