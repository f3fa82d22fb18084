"""Find the pass that broke a pipeline: the shortest failing prefix of the pass list.

Each pass may pass verification alone (against the model just before it) while the whole
pipeline drifts past a tolerance or a budget: two inexact passes whose deviations add up,
or a pass whose output only a later pass exposes. ``surgery run`` then asks which prefix
first fails the *whole-pipeline* check (final model vs the original). The check is
assumed monotone in the prefix length (once the drift is past the bound it stays past it),
which makes a binary search valid: log2(n) checks instead of n. Every prefix the search
tried is kept, so the report shows the evidence, and the answer is confirmed by checking
the prefix one shorter (it must pass).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

P = TypeVar("P")


@dataclass
class Bisection(Generic[P]):
    """The outcome: the first failing prefix length, the pass that ends it, and the checks made.

    Attributes:
        length: the shortest failing prefix length (1-based count of passes), None if none fails.
        culprit: the last pass of that prefix.
        checked: prefix length → (failed, why) for every prefix checked.
    """

    length: int | None
    culprit: P | None
    checked: dict[int, tuple[bool, str]] = field(default_factory=dict)

    def describe(self, name: Callable[[P], str] = str) -> str:
        if self.length is None or self.culprit is None:
            return "no prefix of the pass list fails"
        why = self.checked.get(self.length, (True, ""))[1]
        before = "the original model" if self.length == 1 else f"the first {self.length - 1} passes"
        return (f"pass {self.length} ({name(self.culprit)}) is the first whose prefix fails: {why}; "
                f"{before} still pass{'es' if self.length == 1 else ''}")


def shortest_failing_prefix(passes: Sequence[P], fails: Callable[[Sequence[P]], tuple[bool, str]]) -> Bisection[P]:
    """Binary search for the shortest prefix ``passes[:k]`` for which ``fails`` says True.

    Args:
        passes: the pipeline, in order.
        fails: checks a prefix, returns (failed, why). Called on the whole list first.

    Returns:
        The bisection; ``length`` None when even the whole list passes.
    """
    checked: dict[int, tuple[bool, str]] = {}

    def check(k: int) -> bool:
        if k not in checked:
            checked[k] = fails(passes[:k])
        return checked[k][0]

    n = len(passes)
    if n == 0 or not check(n):
        return Bisection(None, None, checked)
    lo, hi = 0, n  # invariant: prefix lo passes (0: nothing applied), prefix hi fails
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if check(mid):
            hi = mid
        else:
            lo = mid
    if hi > 1:
        check(hi - 1)  # the confirmation the report shows (already known when the search visited it)
    return Bisection(hi, passes[hi - 1], checked)
