"""Slice+ ⇒ Split. Exact.

Sibling Slices of one tensor that each take one step-1 range of the same axis, and whose
ranges partition that axis (cover it, no overlap), become one Split; Slices with the same
range share its piece. This is CSPResNeXt50's stage split (``x[:, :c]`` and ``x[:, c:]``),
which ATC compiles to two StridedSliceD with TransData around each (the guide's complaint);
whether Split stays in the 5HD layout is for the device to show (ascend-tools.md §4).

Conditions: constant parameters (see merge_slices); the axis length is known (shape
inference); at least two Slices. The Split's outputs keep the Slices' output names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from surgery.matcher import Editor, Match, PatternPass

from ._slices import add_split, clamp_range, read_slice


@dataclass(frozen=True, kw_only=True)
class SliceToSplit(PatternPass):
    """Slice+ ⇒ Split: sibling Slices that partition one axis become one Split (exact)."""

    name: ClassVar[str] = "slice_to_split"
    exact: ClassVar[bool] = True

    def check(self, g: Editor, m: Match) -> str | None:
        m.plan = _plan(g, m)
        return m.plan if isinstance(m.plan, str) else None

    def rewrite(self, g: Editor, m: Match) -> dict[str, int]:
        axis, pieces = m.plan
        names = [nodes[0].output[0] for _, nodes in pieces]
        for _, nodes in pieces:
            g.remove(*nodes)
        add_split(g, m.tensor, axis, [stop - start for (start, stop), _ in pieces], names,
                  f"{m.nodes[0].name or 'slice'}_split")
        for (_, nodes), name in zip(pieces, names, strict=True):
            for dup in nodes[1:]:
                g.replace_uses(dup.output[0], name)
        return {"Slice": sum(len(nodes) for _, nodes in pieces), "Split": 1}


def _plan(g: Editor, m: Match) -> tuple[int, list[tuple[tuple[int, int], list]]] | str:
    """(axis, [((start, stop), slices with that range)] in order) or why not."""
    if len(m.nodes) < 2:
        return "only one Slice reads it"
    axis = None
    ranges: dict[tuple[int, int], list] = {}
    for node in m.nodes:
        spec = read_slice(g, node)
        if isinstance(spec, str):
            return f"{node.name or 'a Slice'}: {spec}"
        if len(spec.axes) != 1:
            return f"{node.name or 'a Slice'} slices {len(spec.axes)} axes"
        if spec.steps[0] != 1:
            return f"{node.name or 'a Slice'} has step {spec.steps[0]}"
        if axis is None:
            axis = spec.axes[0]
        elif spec.axes[0] != axis:
            return f"the Slices cut different axes ({axis} and {spec.axes[0]})"
        shape = g.shape(m.tensor)
        dim = shape[axis] if shape is not None and axis < len(shape) else None
        if not isinstance(dim, int):
            return f"the length of axis {axis} is unknown"
        start, stop = clamp_range(spec.starts[0], spec.ends[0], dim)
        if stop <= start:
            return f"{node.name or 'a Slice'} is empty"
        ranges.setdefault((start, stop), []).append(node)
    assert axis is not None
    ordered = sorted(ranges.items())
    if len(ordered) < 2:
        return "every Slice takes the same range"
    at = 0
    for (start, stop), _ in ordered:
        if start != at:
            return (f"the ranges overlap at {start}" if start < at else f"nothing takes [{at}, {start}) of axis {axis}")
        at = stop
    if at != dim:
        return f"nothing takes [{at}, {dim}) of axis {axis}"
    return axis, ordered
