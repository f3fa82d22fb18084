"""Channel layouts for align_channels: where each original channel sits in a zero-padded tensor.

A padded tensor keeps its original channels in order and has extra channels in between
(after each Conv's own outputs: ``18 → 18 + 14 zeros``; a Concat of two such tensors
puts the second block after the first one's padding). The padding channels always hold
finite values that every reader ignores: a Conv reading them has zero weights there, and
whatever reads the original channels only gets them through a slice back.

The propagation rules say, for each op, what a padded input does to its outputs:
``PER_CHANNEL`` ops keep the layout (their padding stays finite), ``POOLS`` too, and a
few ops need their constants scattered into the new layout (BatchNormalization, PRelu,
binary ops with a per-channel constant, Resize with constant sizes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# finite in → finite out, channel by channel: the padding never turns into inf or NaN
PER_CHANNEL = frozenset({
    "Relu", "LeakyRelu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Elu", "Selu", "Celu", "Softsign", "Neg",
    "Abs", "Identity", "Clip", "Erf", "Gelu", "Sign", "Floor", "Ceil", "Round", "ThresholdedRelu", "Shrink",
})
# per channel when they reduce spatial axes only
REDUCE = frozenset({"ReduceMean", "ReduceMax", "ReduceMin", "ReduceSum", "ReduceL1", "ReduceL2", "ReduceSumSquare"})
POOLS = frozenset({"MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "LpPool", "GlobalLpPool"})
# elementwise with broadcasting: padded operands must share one layout; constants are scattered
BINARY = {"Add": 0.0, "Sub": 0.0, "Mul": 0.0, "Max": 0.0, "Min": 0.0, "Div": 1.0, "Sum": 0.0, "Mean": 0.0}
# operands of these that may not be padded (a zero divisor gives inf, then 0·inf = NaN downstream)
DIVISORS = {"Div": (1,)}


@dataclass(frozen=True)
class Layout:
    """``positions[i]``: where original channel ``i`` sits among ``total`` channels."""

    positions: tuple[int, ...]
    total: int

    @classmethod
    def prefix(cls, channels: int, total: int) -> Layout:
        """The first ``channels`` kept in place, zeros up to ``total``: a padded Conv's output."""
        return cls(tuple(range(channels)), total)

    @classmethod
    def plain(cls, channels: int) -> Layout:
        return cls(tuple(range(channels)), channels)

    @property
    def channels(self) -> int:
        return len(self.positions)

    @property
    def is_prefix(self) -> bool:
        return self.positions == tuple(range(len(self.positions)))

    def scatter(self, array: np.ndarray, axis: int, fill: float) -> np.ndarray:
        """``array`` with axis ``axis`` spread into this layout, ``fill`` at the padding positions."""
        shape = list(array.shape)
        shape[axis] = self.total
        out = np.full(shape, fill, dtype=array.dtype)
        index = [slice(None)] * array.ndim
        index[axis] = list(self.positions)  # type: ignore[call-overload]
        out[tuple(index)] = array
        return out

    def concat(self, other: Layout) -> Layout:
        return Layout(self.positions + tuple(self.total + p for p in other.positions), self.total + other.total)


def channel_axis_of_operand(operand_rank: int, output_rank: int) -> int | None:
    """Which axis of a broadcast operand lines up with the output's channel axis 1 (None: it has none)."""
    axis = 1 - (output_rank - operand_rank)
    return axis if axis >= 0 else None
