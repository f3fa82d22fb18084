"""Cast+ ⇒ Cast; a:Cast → b:Cast ⇒ Cast; Cast(to = its input's type) ⇒ (removed). Exact.

Three rules, after auto-optimizer's KnowledgeMergeCasts, each kept exact:

- **siblings**: Casts of one tensor to the same type (same attributes) become one;
- **chains**: ``Cast(Cast(x, T1), T2)`` reads ``x`` directly when T1 holds every value of
  x's type exactly (a widening: int32 → int64, float16 → float32, uint8 → float16, bool → any
  number…), so the first cast changes nothing the second could see. auto-optimizer collapsed
  every chain, which changes values: float32 → int32 → float32 truncates and we keep it;
- **identities**: a Cast to the type its input already has is dropped.

A Cast whose output is a graph output is kept (its name is the output's). Input types come
from the model's value_info or shape inference; a Cast of unknown input type is left alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import onnx
from onnx import TensorProto as T

from surgery.matcher import Editor, Match, PatternPass, Rule, run_rules
from surgery.pass_infra import PassResult

MAX_ROUNDS = 8

_INTS = {T.INT8: (-(2**7), 2**7 - 1), T.INT16: (-(2**15), 2**15 - 1), T.INT32: (-(2**31), 2**31 - 1),
         T.INT64: (-(2**63), 2**63 - 1), T.UINT8: (0, 2**8 - 1), T.UINT16: (0, 2**16 - 1),
         T.UINT32: (0, 2**32 - 1), T.UINT64: (0, 2**64 - 1), T.BOOL: (0, 1)}
# floats: (mantissa bits incl. the implicit one, max exponent): integers up to 2**mantissa are exact
_FLOATS = {T.FLOAT16: (11, 15), T.BFLOAT16: (8, 127), T.FLOAT: (24, 127), T.DOUBLE: (53, 1023)}


def lossless(src: int, mid: int) -> bool:
    """Whether every value of type ``src`` is exactly representable in type ``mid``."""
    if src == mid:
        return True
    if src in _INTS and mid in _INTS:
        lo, hi = _INTS[src]
        mlo, mhi = _INTS[mid]
        return mid != T.BOOL and mlo <= lo and hi <= mhi
    if src in _INTS and mid in _FLOATS:
        lo, hi = _INTS[src]
        return max(abs(lo), hi) <= 2 ** _FLOATS[mid][0]
    if src in _FLOATS and mid in _FLOATS:
        (m1, e1), (m2, e2) = _FLOATS[src], _FLOATS[mid]
        return m1 <= m2 and e1 <= e2
    return False


def _same_attrs(a, b) -> bool:
    return sorted(x.SerializeToString() for x in a.attribute) == sorted(x.SerializeToString() for x in b.attribute)


class SiblingCasts(Rule):
    """Cast+ ⇒ Cast: sibling Casts to one type become one."""

    label = "Cast+ (siblings)"

    def check(self, g: Editor, m: Match) -> str | None:
        if not _groups(g, m.nodes):
            return "no two of them cast to the same type with the same attributes"
        return None

    def rewrite(self, g: Editor, m: Match) -> dict[str, int]:
        merged = 0
        for keep, *rest in _groups(g, m.nodes):
            for node in rest:
                g.remove(node)
                g.replace_uses(node.output[0], keep.output[0])
                merged += 1
        return {self.label: merged}


def _groups(g: Editor, casts: Sequence) -> list[list]:
    groups: list[list] = []
    for node in casts:
        if g.is_output(node.output[0]):
            continue  # its name is the graph's: keep it
        for group in groups:
            if _same_attrs(group[0], node):
                group.append(node)
                break
        else:
            groups.append([node])
    return [grp for grp in groups if len(grp) > 1]


class CastChain(Rule):
    """a:Cast → b:Cast ⇒ Cast: the second Cast reads the first one's input when the first is a widening."""

    label = "Cast → Cast"

    def check(self, g: Editor, m: Match) -> str | None:
        a, _ = m.nodes
        src = g.dtype(a.input[0])
        if src is None:
            return "the first Cast's input type is unknown"
        mid = g.attr(a, "to")
        if not lossless(src, mid):
            return f"the first Cast ({_name(src)} → {_name(mid)}) can change values"
        return None

    def rewrite(self, g: Editor, m: Match) -> None:
        a, b = m.nodes
        g.set_input(b, 0, a.input[0])
        if not g.consumers_of(a.output[0]) and not g.is_output(a.output[0]):
            g.remove(a)


class IdentityCast(Rule):
    """Cast ⇒ (removed) when it casts to its input's own type."""

    label = "Cast (identity)"

    def check(self, g: Editor, m: Match) -> str | None:
        node = m.anchor
        src = g.dtype(node.input[0])
        if src is None:
            return "its input type is unknown"
        if src != g.attr(node, "to"):
            return f"it changes the type ({_name(src)} → {_name(g.attr(node, 'to'))})"
        if g.is_output(node.output[0]):
            return "its output is a graph output"
        return None

    def rewrite(self, g: Editor, m: Match) -> None:
        node = m.anchor
        g.remove(node)
        g.replace_uses(node.output[0], node.input[0])


def _name(elem_type: int) -> str:
    return T.DataType.Name(elem_type).lower() if elem_type in T.DataType.values() else str(elem_type)


@dataclass(frozen=True, kw_only=True)
class MergeCasts(PatternPass):
    """Merge sibling Casts, bypass widening Cast → Cast chains, drop identity Casts (exact)."""

    name: ClassVar[str] = "merge_casts"
    exact: ClassVar[bool] = True

    def rules(self) -> list[Rule]:
        return [CastChain(), IdentityCast(), SiblingCasts()]

    def call(self, model: onnx.ModelProto) -> PassResult:
        # one rule's rewrite can open a site for another (a bypassed chain leaves an identity Cast, a dropped
        # identity joins two Casts): repeat until nothing changes, so that a second run finds nothing
        counts: dict[str, int] = {}
        changed = False
        for _ in range(MAX_ROUNDS):
            report = run_rules(model, self.rules())
            for k, v in report.counts.items():
                counts[k] = counts.get(k, 0) + v
            changed = changed or report.changed
            if not report.changed:
                break
        return PassResult(model, changed=changed, counts=counts, notes=report.notes)
