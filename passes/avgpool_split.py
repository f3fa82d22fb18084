"""AveragePool ⇒ AveragePool → AveragePool → …, when kernel == strides and area ≥ 255. Exact.

    x → AveragePool(kernel=[32,64], strides=[32,64]) → y
    ⇒  x → AveragePool(kernel=[8,16], strides=[8,16]) → AveragePool(kernel=[4,4], strides=[4,4]) → y

Why: Ascend's AvgPool instruction takes kernels of area up to 255; a larger one gets extra
TransData/Transpose around it (auto-optimizer's KnowledgeAvgPoolSplit). ICNet's pyramid
pooling at 1024×2048 has two such pools, bins 1 and 2 (32×64 and 16×32).

Exact because the windows tile the input: with kernel == stride and no padding, each
output is the mean of a k₁·k₂ block, which is the mean of k₂ means of k₁-sized blocks.
Conditions: kernel_shape == strides; no padding (pads all 0, auto_pad NOTSET or VALID);
ceil_mode 0 (a partial last window is averaged over its own size, which a chain does not
reproduce); dilations 1; kernel area ≥ ``max_area``; every stage's area < ``max_area``
(a kernel dimension with a prime factor ≥ ``max_area`` cannot be split).

The first stage takes the largest area under the limit whose proportions are closest to
the kernel's (``[32,64]`` → ``[8,16]`` then ``[4,4]``, as auto-optimizer's documentation
shows); new nodes get fresh names (auto-optimizer's ``{name}_{i}`` collided with ICNet's
``/ppm/AveragePool_1`` and crashed its ``evaluate``).
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass
from typing import ClassVar

from surgery.matcher import Editor, Match, PatternPass
from surgery.pass_infra import option
from surgery.validate import integer

KERNEL_MAX_AREA = 255  # Ascend AvgPool instruction limit (auto-optimizer's KERNEL_MAX_SIZE)


@dataclass(frozen=True, kw_only=True)
class AvgPoolSplit(PatternPass):
    """AveragePool ⇒ AveragePool → AveragePool → …: kernel == stride, area ≥ 255 (Ascend's AvgPool limit); exact."""

    name: ClassVar[str] = "avgpool_split"
    exact: ClassVar[bool] = True
    label: ClassVar[str] = "AveragePool"

    max_area: int = option(KERNEL_MAX_AREA, help="split pools whose kernel area is at least this; every stage "
                                                 "stays below it (Ascend: 255)")

    def validate(self) -> None:
        integer(self.max_area, "pass avgpool_split: max_area", minimum=2)

    def check(self, g: Editor, m: Match) -> str | None:
        return self.plan(g, m.anchor)[1] or None

    def rewrite(self, g: Editor, m: Match) -> None:
        node = m.anchor
        stages, _ = self.plan(g, node)
        base = node.name or "AveragePool"
        attrs = {a.name: g.attr(node, a.name) for a in node.attribute if a.name not in ("kernel_shape", "strides")}
        g.remove(node)
        x = node.input[0]
        for k, stage in enumerate(stages):
            out = [node.output[0]] if k == len(stages) - 1 else 1
            x = g.add_node("AveragePool", [x], out, name=f"{base}/split{k}", kernel_shape=stage, strides=stage,
                           **attrs).output[0]

    def plan(self, g: Editor, node) -> tuple[list[list[int]], str]:
        """The kernels of the chain replacing ``node``, or ([], the reason it stays)."""
        kernel = [int(k) for k in g.attr(node, "kernel_shape") or []]
        strides = [int(s) for s in g.attr(node, "strides") or [1] * len(kernel)]
        if not kernel:
            return [], "no kernel_shape"
        if strides != kernel:
            return [], f"kernel {_dims(kernel)} ≠ strides {_dims(strides)} (windows overlap or leave gaps)"
        pads = [int(p) for p in g.attr(node, "pads") or []]
        if any(pads):
            return [], f"padded (pads {pads}): the border windows average fewer inputs"
        if (g.attr(node, "auto_pad") or "NOTSET") not in ("NOTSET", "VALID"):
            return [], f"auto_pad {g.attr(node, 'auto_pad')} may pad"
        if int(g.attr(node, "ceil_mode") or 0):
            return [], "ceil_mode=1: a partial last window is averaged over its own size"
        dilations = [int(d) for d in g.attr(node, "dilations") or []]
        if any(d != 1 for d in dilations):
            return [], f"dilations {dilations}"
        area = math.prod(kernel)
        if area < self.max_area:
            return [], f"kernel {_dims(kernel)} area {area} < {self.max_area}"
        stages = split_kernel(kernel, self.max_area)
        if not stages:
            return [], (f"kernel {_dims(kernel)} cannot be split into pools of area < {self.max_area} "
                        "(a prime factor is too large)")
        return stages, ""


def split_kernel(kernel: list[int], max_area: int) -> list[list[int]]:
    """Stage kernels whose product is ``kernel``, each of area < ``max_area``; [] when impossible.

    Greedy: each stage takes the largest area under the limit, ties broken by the
    proportions closest to what is left of the kernel.
    """
    return [list(s) for s in _split_kernel(tuple(kernel), max_area)]


@functools.cache  # a model repeats a handful of kernels: plan each once
def _split_kernel(kernel: tuple[int, ...], max_area: int) -> tuple[tuple[int, ...], ...]:
    left = list(kernel)
    stages: list[list[int]] = []
    while math.prod(left) >= max_area:
        best: tuple[float, ...] | None = None
        choice: list[int] = []
        for cand in itertools.product(*(_divisors(n) for n in left)):
            area = math.prod(cand)
            if area <= 1 or area >= max_area:
                continue
            score = (-area, _skew(list(cand), left))
            if best is None or score < best:
                best, choice = score, list(cand)
        if not choice:
            return ()
        stages.append(choice)
        left = [n // d for n, d in zip(left, choice, strict=True)]
    if math.prod(left) > 1:
        stages.append(left)
    return tuple(tuple(stage) for stage in stages)


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _skew(cand: list[int], left: list[int]) -> float:
    """How far the stage's proportions are from the remaining kernel's (0: the same shape, scaled)."""
    scale = math.log(math.prod(cand)) / math.log(math.prod(left)) if math.prod(left) > 1 else 0.0
    return sum((math.log(c) - scale * math.log(n)) ** 2 for c, n in zip(cand, left, strict=True))


def _dims(dims: list[int]) -> str:
    return "x".join(map(str, dims))


__all__ = ["AvgPoolSplit", "split_kernel"]
