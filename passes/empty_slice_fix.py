"""s:Slice →* c:Concat ⇒ Concat without it. An ATC workaround (the om's Concat takes no empty input).

A Slice that yields an empty tensor for certain (equal starts and ends, or bounds that clamp
to nothing on an axis of known length) is dropped from the Concats that read it; a Concat
left with one input is bypassed. auto-optimizer's KnowledgeEmptySliceFix, off by default
there.

Deviation: none on onnxruntime (concatenating nothing adds nothing; the tests measure
parity), but the rewrite exists only for the compiler, so it is marked inexact and stays out
of ``tune`` and default pipelines. A Concat whose every input is empty is left alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from surgery.matcher import Editor, Match, PatternPass

from ._slices import clamp_range, read_slice


@dataclass(frozen=True, kw_only=True)
class EmptySliceFix(PatternPass):
    """s:Slice →* c:Concat ⇒ Concat: drop certainly-empty Slices from Concats (ATC workaround, inexact)."""

    name: ClassVar[str] = "empty_slice_fix"
    exact: ClassVar[bool] = False

    def check(self, g: Editor, m: Match) -> str | None:
        s, c = m.nodes
        why = _not_empty(g, s)
        if why:
            return why
        if all(_is_empty_slice(g, x) for x in c.input):
            return "every input of the Concat is empty"
        return None

    def rewrite(self, g: Editor, m: Match) -> dict[str, int]:
        s, c = m.nodes
        kept = [x for x in c.input if x != s.output[0]]
        if len(kept) == 1 and not g.is_output(c.output[0]):
            g.remove(c)
            g.replace_uses(c.output[0], kept[0])
            counts = {"Slice (empty)": 1, "Concat (bypassed)": 1}
        else:
            g.set_inputs(c, kept)
            counts = {"Slice (empty)": 1}
        if not g.consumers_of(s.output[0]) and not g.is_output(s.output[0]):
            g.remove(s)
        return counts


def _is_empty_slice(g: Editor, name: str) -> bool:
    node = g.producer_of(name)
    return node is not None and node.op_type == "Slice" and _not_empty(g, node) is None


def _not_empty(g: Editor, s) -> str | None:
    """None when the Slice's output is empty for every input it can take, else why that is not certain."""
    spec = read_slice(g, s)
    if isinstance(spec, str):
        return spec
    shape = g.shape(s.input[0])
    for start, end, step, axis in zip(spec.starts, spec.ends, spec.steps, spec.axes, strict=True):
        if start == end:
            return None
        if step > 0 and (start >= 0) == (end >= 0) and end < start:
            return None
        dim = shape[axis] if shape is not None and axis < len(shape) else None
        if step > 0 and isinstance(dim, int):
            lo, hi = clamp_range(start, end, dim)
            if hi <= lo:
                return None
    return "the Slice is not certainly empty"
