"""inner:Concat →* outer:Concat ⇒ Concat. Exact.

An inner Concat on the same axis whose output only the outer Concat reads is flattened into
it: ``Concat(a, Concat(b, c), d)`` → ``Concat(a, b, c, d)`` (auto-optimizer's
KnowledgeMergeConsecutiveConcat). Fewer concatenations mean fewer copies and fewer points
where a layout change can be inserted. Axes compare after normalising negative values
(which needs the rank when they differ in sign).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from surgery.matcher import Editor, Match, PatternPass


@dataclass(frozen=True, kw_only=True)
class MergeConcats(PatternPass):
    """inner:Concat →* outer:Concat ⇒ Concat: nested Concats on one axis become one (exact)."""

    name: ClassVar[str] = "merge_concats"
    exact: ClassVar[bool] = True

    def check(self, g: Editor, m: Match) -> str | None:
        inner, outer = m.nodes
        out = inner.output[0]
        if g.is_output(out):
            return "the inner Concat's output is a graph output"
        if any(n is not outer for n in g.consumers_of(out)):
            return "the inner Concat feeds other nodes too"
        a, b = g.attr(inner, "axis"), g.attr(outer, "axis")
        if a is None or b is None:
            return "a Concat has no axis"
        if a != b:
            shape = g.shape(out)
            if (a < 0) == (b < 0) or shape is None or a % len(shape) != b % len(shape):
                return f"the axes differ ({a} and {b})"
        return None

    def rewrite(self, g: Editor, m: Match) -> None:
        inner, outer = m.nodes
        names: list[str] = []
        for x in outer.input:
            names.extend(inner.input if x == inner.output[0] else [x])
        g.set_inputs(outer, names)
        g.remove(inner)
