"""Gather+ ⇒ Split (→ Squeeze). Exact.

Sibling Gathers of one tensor along the same axis with constant indices, each a scalar or a
contiguous ascending run, no two overlapping (equal indices share a piece), become one Split;
a scalar index's piece is squeezed, as Gather drops that axis. Ranges no Gather takes become
unused pieces. auto-optimizer's KnowledgeGatherToSplit (off by default there); typical of
``q, k, v = qkv[0], qkv[1], qkv[2]`` in attention blocks.

Conditions: the axis length is known; at least two Gathers on that axis. The Split (or
Squeeze) outputs keep the Gathers' output names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from surgery.matcher import Editor, Match, PatternPass

from ._slices import add_split, add_squeeze


@dataclass(frozen=True, kw_only=True)
class GatherToSplit(PatternPass):
    """Gather+ ⇒ Split: sibling Gathers of disjoint index runs on one axis become one Split (exact)."""

    name: ClassVar[str] = "gather_to_split"
    exact: ClassVar[bool] = True

    def check(self, g: Editor, m: Match) -> str | None:
        m.plan = _plan(g, m)
        return m.plan if isinstance(m.plan, str) else None

    def rewrite(self, g: Editor, m: Match) -> dict[str, int]:
        axis, pieces = m.plan
        hint = f"{m.nodes[0].name or 'gather'}_split"
        outputs = []
        for _, nodes in pieces:
            runs = [n for n in nodes if not _is_scalar(g, n)]
            outputs.append(runs[0].output[0] if runs else g.unique_name(f"{hint}_piece"))
        for _, nodes in pieces:
            g.remove(*nodes)
        add_split(g, m.tensor, axis, [stop - start for (start, stop), _ in pieces], outputs, hint)
        for (_, nodes), piece in zip(pieces, outputs, strict=True):
            scalars = [n for n in nodes if _is_scalar(g, n)]
            if scalars:
                name = scalars[0].output[0]
                add_squeeze(g, piece, [axis], name, f"{scalars[0].name or 'gather'}_squeeze")
                for dup in scalars[1:]:
                    g.replace_uses(dup.output[0], name)
            for dup in [n for n in nodes if not _is_scalar(g, n)][1:]:
                g.replace_uses(dup.output[0], piece)
        return {"Gather": sum(len(nodes) for _, nodes in pieces), "Split": 1}


Piece = tuple[tuple[int, int], list]


def _is_scalar(g: Editor, node) -> bool:
    value = g.constant(node.input[1])
    return value is not None and value.ndim == 0


def _plan(g: Editor, m: Match) -> tuple[int, list[Piece]] | str:
    if len(m.nodes) < 2:
        return "only one Gather reads it"
    shape = g.shape(m.tensor)
    if shape is None:
        return "its rank is unknown"
    axes = {_axis(g, n, len(shape)) for n in m.nodes}
    if len(axes) != 1:
        return f"the Gathers take different axes ({', '.join(map(str, sorted(axes)))})"
    axis = axes.pop()
    dim = shape[axis]
    if not isinstance(dim, int):
        return f"the length of axis {axis} is unknown"
    runs: dict[tuple[int, int], list] = {}
    for node in m.nodes:
        value = g.constant(node.input[1])
        if value is None:
            return f"{node.name or 'a Gather'}: indices are not constant"
        if value.ndim > 1 or value.size == 0:
            return f"{node.name or 'a Gather'}: indices are not a scalar or a 1-D run"
        idx = [int(v) + dim if v < 0 else int(v) for v in value.reshape(-1)]
        if any(not 0 <= v < dim for v in idx):
            return f"{node.name or 'a Gather'}: an index is out of range"
        if idx != list(range(idx[0], idx[0] + len(idx))):
            return f"{node.name or 'a Gather'}: indices {idx} are not one ascending run"
        runs.setdefault((idx[0], idx[-1] + 1), []).append(node)
    pieces: list[Piece] = []
    at = 0
    for (start, stop), nodes in sorted(runs.items()):
        if start < at:
            return f"index runs overlap at {start}"
        if start > at:
            pieces.append(((at, start), []))  # nobody takes it: an unused piece
        pieces.append(((start, stop), nodes))
        at = stop
    if at < dim:
        pieces.append(((at, dim), []))
    return axis, pieces


def _axis(g: Editor, node, rank: int) -> int:
    a = int(g.attr(node, "axis", 0))
    return a + rank if a < 0 else a
