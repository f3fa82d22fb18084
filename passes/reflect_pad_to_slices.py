"""Pad(mode=reflect) ⇒ Slice → Concat per padded axis. Exact.

A reflect Pad runs slowly on Ascend (auto-optimizer's KnowledgeModifyReflectionPad); each
padded axis becomes ``Concat(x[p:0:-1], x, x[-2:-2-q:-1])`` along that axis: the ``p``
elements after the first, reversed, then the ``q`` before the last, reversed, which is what
reflect padding is. auto-optimizer handled only the last two axes of a 4-D tensor with equal
pads; this takes any axes and sizes.

Conditions: opset 11 or later (pads as a constant input; opset 18's axes input constant too;
reversed Slices need steps); no negative pads (crops); a pad smaller than its axis when the
axis length is known.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from surgery.matcher import Editor, Match, PatternPass


@dataclass(frozen=True, kw_only=True)
class ReflectPadToSlices(PatternPass):
    """Pad(mode=reflect) ⇒ Slice → Concat: reflect padding as reversed Slices and Concats (exact)."""

    name: ClassVar[str] = "reflect_pad_to_slices"
    exact: ClassVar[bool] = True

    def check(self, g: Editor, m: Match) -> str | None:
        m.plan = _pads(g, m.anchor)
        return m.plan if isinstance(m.plan, str) else None

    def rewrite(self, g: Editor, m: Match) -> None:
        pad = m.anchor
        per_axis = m.plan
        hint = pad.name or "reflect_pad"
        out = pad.output[0]
        g.remove(pad)
        x = pad.input[0]
        todo = [(axis, before, after) for axis, (before, after) in enumerate(per_axis) if before or after]
        for k, (axis, before, after) in enumerate(todo):
            parts = []
            if before:
                parts.append(_reversed_slice(g, x, before, 0, axis, f"{hint}_ax{axis}_front"))
            parts.append(x)
            if after:
                parts.append(_reversed_slice(g, x, -2, -2 - after, axis, f"{hint}_ax{axis}_back"))
            last = k == len(todo) - 1
            x = g.add_node("Concat", parts, [out] if last else 1, name=f"{hint}_ax{axis}", axis=axis).output[0]


def _reversed_slice(g: Editor, x: str, start: int, end: int, axis: int, hint: str) -> str:
    names = [g.add_initializer(np.array([v], np.int64), f"{hint}_{part}")
             for part, v in (("starts", start), ("ends", end), ("axes", axis), ("steps", -1))]
    return g.add_node("Slice", [x, *names], 1, name=hint).output[0]


def _pads(g: Editor, node) -> list[tuple[int, int]] | str:
    if g.opset < 11:
        return f"opset {g.opset} < 11"
    pads = g.constant_ints(node.input[1]) if len(node.input) > 1 and node.input[1] else None
    if pads is None:
        return "pads is not a constant"
    shape = g.shape(node.input[0])
    if len(node.input) > 3 and node.input[3]:
        axes = g.constant_ints(node.input[3])
        if axes is None:
            return "axes is not a constant"
        if shape is None:
            return "axes given and the input's rank is unknown"
        rank = len(shape)
        axes = [a + rank if a < 0 else a for a in axes]
    else:
        rank = len(pads) // 2
        axes = list(range(rank))
    if len(pads) != 2 * len(axes):
        return f"{len(pads)} pads for {len(axes)} axes"
    per_axis = [(0, 0)] * rank
    for k, axis in enumerate(axes):
        per_axis[axis] = (pads[k], pads[k + len(axes)])
    if any(b < 0 or a < 0 for b, a in per_axis):
        return "negative pads (a crop)"
    if not any(b or a for b, a in per_axis):
        return "all pads are zero"
    if shape is not None:
        for axis, (b, a) in enumerate(per_axis):
            dim = shape[axis]
            if isinstance(dim, int) and max(b, a) >= dim:
                return f"axis {axis} of length {dim} is padded by {max(b, a)}: reflect needs less"
    return per_axis
