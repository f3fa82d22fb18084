"""s:Slice → c:Conv ⇒ Conv with zero weights outside the slice. Exact for finite inputs.

``Conv(x[:, a:b], W)`` equals ``Conv(x, W')`` where W' is W placed at input channels
``a:b`` and zero elsewhere: the channel slice disappears into the weights, and with it the
StridedSliceD (and its TransData) when the slice feeds only convolutions; a Slice read by
other nodes too stays for them. Proposed in ascend-tools.md §4 for CSP-style splits.

Cost: the Conv reads all C input channels instead of b - a, so its multiply-adds grow by
C / (b - a); ``max_growth`` caps that factor. Exact except that an inf or NaN in a dropped
channel would now meet a zero weight (0 · inf = NaN).

Conditions: the Slice cuts only axis 1 with step 1 (constant parameters; the channel count
known); the Conv has group 1 and a constant weight.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from surgery.errors import UsageError
from surgery.matcher import Editor, Match, PatternPass
from surgery.pass_infra import option

from ._slices import clamp_range, read_slice


@dataclass(frozen=True, kw_only=True)
class FoldSliceIntoConv(PatternPass):
    """s:Slice → c:Conv ⇒ Conv: a channel Slice feeding a Conv becomes zero-padded weights (exact)."""

    name: ClassVar[str] = "fold_slice_into_conv"
    exact: ClassVar[bool] = True

    max_growth: float = option(4.0, help="skip a Conv whose multiply-adds would grow by more than this factor "
                                         "(input channels / sliced channels)")

    def validate(self) -> None:
        if not self.max_growth >= 1.0:
            raise UsageError(f"pass {self.name}: max_growth must be >= 1, got {self.max_growth!r}")

    def check(self, g: Editor, m: Match) -> str | None:
        m.plan = _plan(g, m, self.max_growth)
        return m.plan if isinstance(m.plan, str) else None

    def rewrite(self, g: Editor, m: Match) -> None:
        s, c = m.nodes
        start, stop, channels = m.plan
        w = g.constant(c.input[1])
        padded = np.zeros((w.shape[0], channels, *w.shape[2:]), w.dtype)
        padded[:, start:stop] = w
        g.set_input(c, 1, g.add_initializer(padded, f"{c.name or 'conv'}_weight_full"))
        g.set_input(c, 0, s.input[0])
        if not g.consumers_of(s.output[0]) and not g.is_output(s.output[0]):
            g.remove(s)


def _plan(g: Editor, m: Match, max_growth: float) -> tuple[int, int, int] | str:
    s, c = m.nodes
    spec = read_slice(g, s)
    if isinstance(spec, str):
        return spec
    if spec.axes != (1,):
        return f"the Slice cuts axes {list(spec.axes)}, not only the channels"
    if spec.steps != (1,):
        return f"the Slice has step {spec.steps[0]}"
    shape = g.shape(s.input[0])
    channels = shape[1] if shape is not None and len(shape) > 1 else None
    if not isinstance(channels, int):
        return "the channel count before the Slice is unknown"
    if int(g.attr(c, "group", 1)) != 1:
        return "the Conv is grouped"
    w = g.constant(c.input[1]) if len(c.input) > 1 else None
    if w is None:
        return "the Conv's weight is not a constant"
    start, stop = clamp_range(spec.starts[0], spec.ends[0], channels)
    if stop - start != w.shape[1]:
        return f"the Slice keeps {stop - start} channels, the weight expects {w.shape[1]}"
    if channels / max(1, stop - start) > max_growth:
        return f"the Conv's work would grow {channels / (stop - start):.1f}x (max_growth={max_growth:g})"
    return start, stop, channels
