"""Conv ⇒ Slice → Conv → Sum: a kernel dimension above a threshold, split into slices summed. Exact.

    x → Conv(W[…, 0:400]) → y
    ⇒  x ─┬─ Slice → Conv(W[…, 0:144]) ──┐
          ├─ Slice → Conv(W[…, 144:272]) ─┼─ Sum → y
          └─ Slice → Conv(W[…, 272:400]) ─┘

Why: NPU Conv kernels above about 200 along an axis tile badly (auto-optimizer's
KnowledgeSplitLargeKernelConv, threshold 192 rounded up to a multiple of 16). Each slice
``[j₀, j₁)`` of the kernel reads the input from ``j₀·d − pad_begin``; its begin pad is
what that start leaves below 0 and its end pad ``pad_end − d·(K − j₁)`` (sliced instead
when negative), so every slice produces exactly the original output positions and their
sum is the original convolution (floating-point summation order aside). Slices are made
of 16-wide blocks spread evenly, as auto-optimizer does; only the first keeps the bias.
Unlike auto-optimizer's rule, strides and dilations are allowed (the offsets scale by the
dilation). ``auto_pad`` SAME_* is refused (the pads depend on the input size).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import onnx

from surgery.matcher import Editor, Match, PatternPass, run_rules
from surgery.pass_infra import PassResult, option
from surgery.validate import integer

INT64_MAX = 2**63 - 1
WITHIN = "kernel within the threshold"


@dataclass(frozen=True, kw_only=True)
class SplitLargeKernelConv(PatternPass):
    """Conv ⇒ Slice → Conv → Sum: a kernel dimension above the threshold (192) split into slices, summed; exact."""

    name: ClassVar[str] = "split_large_kernel_conv"
    exact: ClassVar[bool] = True
    label: ClassVar[str] = "Conv"
    rematch: ClassVar[bool] = False

    threshold: int = option(192, help="split kernel dimensions larger than this (rounded up to a multiple of 16)")

    def validate(self) -> None:
        integer(self.threshold, "pass split_large_kernel_conv: threshold", minimum=1)

    @property
    def limit(self) -> int:
        """The threshold rounded up to a multiple of 16 (at least 16), as auto-optimizer rounds it."""
        return (max(self.threshold - 1, 15) // 16 + 1) * 16

    def call(self, model: onnx.ModelProto) -> PassResult:
        report = run_rules(model, [self])
        small = sum(1 for n in report.notes if WITHIN in n)
        if small:  # one line for the common case instead of one per Conv
            report.notes = [n for n in report.notes if WITHIN not in n and not n.startswith("… and")]
            report.notes.append(f"Convs with every kernel dimension ≤ {self.limit} are left as they are")
        return report.to_pass_result(model)

    def check(self, g: Editor, m: Match) -> str | None:
        node = m.anchor
        w = g.constant(node.input[1]) if len(node.input) > 1 else None
        kernel = [int(k) for k in g.attr(node, "kernel_shape") or (list(w.shape[2:]) if w is not None else [])]
        if not kernel or max(kernel) <= self.limit:
            return f"{WITHIN} ({self.limit})"
        if w is None:
            return f"kernel {'x'.join(map(str, kernel))} is large but the weight is not a constant"
        if (g.attr(node, "auto_pad") or "NOTSET") not in ("NOTSET", "VALID"):
            return f"auto_pad {g.attr(node, 'auto_pad')}: the pads depend on the input size"
        if len(node.input) > 2 and node.input[2] and g.constant(node.input[2]) is None:
            return "bias is not a constant"
        return None

    def rewrite(self, g: Editor, m: Match) -> None:
        node = m.anchor
        w = g.constant(node.input[1])
        assert w is not None
        rank = w.ndim - 2
        kernel = list(w.shape[2:])
        pads = [int(p) for p in g.attr(node, "pads") or [0] * 2 * rank]
        dilations = [int(d) for d in g.attr(node, "dilations") or [1] * rank]
        attrs = {a.name: g.attr(node, a.name) for a in node.attribute
                 if a.name not in ("pads", "kernel_shape", "auto_pad")}
        base = node.name or "Conv"
        g.remove(node)
        partials: list[str] = []
        for k, cut in enumerate(kernel_slices(kernel, self.limit)):
            tag = "_".join(str(s) for s, _ in cut)
            starts, ends, axes, new_pads = [], [], [], [0] * (2 * rank)
            for axis, (j0, j1) in enumerate(cut):
                begin = j0 * dilations[axis] - pads[axis]
                end = pads[rank + axis] - dilations[axis] * (kernel[axis] - j1)
                new_pads[axis], new_pads[rank + axis] = max(0, -begin), max(0, end)
                if begin > 0 or end < 0:
                    starts.append(max(0, begin))
                    ends.append(end if end < 0 else INT64_MAX)
                    axes.append(axis + 2)
            x = node.input[0]
            if axes:
                parts = [g.add_initializer(np.array(v, np.int64), f"{base}/k{tag}_{what}")
                         for what, v in (("starts", starts), ("ends", ends), ("axes", axes))]
                x = g.add_node("Slice", [x, *parts], name=f"{base}/k{tag}/Slice").output[0]
            index = (slice(None), slice(None), *(slice(s, e) for s, e in cut))
            w_name = g.add_initializer(np.ascontiguousarray(w[index]), f"{node.input[1]}_k{tag}")
            bias = [node.input[2]] if k == 0 and len(node.input) > 2 and node.input[2] else []
            conv = g.add_node("Conv", [x, w_name, *bias], name=f"{base}/k{tag}", pads=new_pads,
                              kernel_shape=[e - s for s, e in cut], **attrs)
            partials.append(conv.output[0])
        g.add_node("Sum", partials, [node.output[0]], name=f"{base}/Sum")


def kernel_slices(kernel: list[int], limit: int) -> list[list[tuple[int, int]]]:
    """Kernel slices (one ``(start, end)`` per axis) of 16-wide blocks, at most ``limit`` long, spread evenly."""
    per_axis = []
    for size in kernel:
        blocks = [16] * (size // 16) + ([size % 16] if size % 16 else [])
        count = (len(blocks) - 1) // (limit // 16) + 1
        each = (len(blocks) - 1) // count + 1
        lengths = [sum(blocks[k:k + each]) for k in range(0, len(blocks), each)]
        starts = list(itertools.accumulate([0, *lengths[:-1]]))
        per_axis.append([(s, s + n) for s, n in zip(starts, lengths, strict=True)])
    return [list(combo) for combo in itertools.product(*per_axis)]


__all__ = ["SplitLargeKernelConv", "kernel_slices"]
