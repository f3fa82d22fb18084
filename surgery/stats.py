"""Latency statistics and the significance of a speed-up.

Numbers on shared machines are noisy, so every comparison carries a confidence
interval: a percentile bootstrap of the ratio of medians, with a fixed seed so the
same two records always give the same interval. The ratio is a *speed-up*
(``> 1`` means the second measurement is faster), computed per sample, i.e. it
accounts for the batch each side really ran:

    speedup = (effective_batch_b / median_b) / (effective_batch_a / median_a)

Resampling assumes independent iterations; drift on a shared host breaks that
assumption, which is why ``surgery tune`` interleaves the two sides it compares.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

FASTER = "faster"
SLOWER = "slower"
SAME = "no significant change"

DEFAULT_RESAMPLES = 2000
DEFAULT_CONFIDENCE = 0.95
DEFAULT_SEED = 0
# Bound the (resamples x samples) index matrix so long runs do not allocate gigabytes.
_MAX_CELLS = 4_000_000


def latency_stats(samples_ms: Sequence[float] | np.ndarray) -> dict[str, float]:
    """Mean, median, p90, p99, min, max and std (sample std, ddof=1) of latencies in ms.

    Percentiles use numpy's default linear interpolation. An empty sample set gives {}.
    """
    a = np.asarray(samples_ms, dtype=np.float64)
    if a.size == 0:
        return {}
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    return {
        "mean": float(a.mean()),
        "median": float(p50),
        "p90": float(p90),
        "p99": float(p99),
        "min": float(a.min()),
        "max": float(a.max()),
        "std": float(a.std(ddof=1)) if a.size > 1 else 0.0,
        "count": int(a.size),
    }


def throughput(effective_batch: int, mean_latency_ms: float) -> float:
    """Samples per second from the batch the model really ran and its mean latency."""
    return effective_batch * 1000.0 / mean_latency_ms if mean_latency_ms > 0 else float("nan")


@dataclass(frozen=True)
class RatioCI:
    """A speed-up of B over A with its bootstrap confidence interval and verdict."""

    ratio: float
    low: float
    high: float
    confidence: float = DEFAULT_CONFIDENCE
    resamples: int = DEFAULT_RESAMPLES
    verdict: str = SAME

    @property
    def half_width(self) -> float:
        """Half the interval's width, relative to the ratio (0.03 means ±3 %)."""
        return (self.high - self.low) / 2 / self.ratio if self.ratio else float("nan")

    def describe(self) -> str:
        return f"×{self.ratio:.3f} [{self.low:.3f}, {self.high:.3f}]"

    def to_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


def verdict(low: float, high: float, *, min_effect: float = 0.0) -> str:
    """``faster`` when the whole interval lies above ``1 + min_effect``, ``slower`` below
    ``1 - min_effect``, else ``no significant change``."""
    if low > 1.0 + min_effect:
        return FASTER
    if high < 1.0 - min_effect:
        return SLOWER
    return SAME


def bootstrap_medians(samples: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Medians of ``resamples`` bootstrap resamples of ``samples`` (vectorised, chunked)."""
    n = samples.size
    out = np.empty(resamples, dtype=np.float64)
    chunk = max(1, _MAX_CELLS // max(n, 1))
    for start in range(0, resamples, chunk):
        stop = min(start + chunk, resamples)
        idx = rng.integers(0, n, size=(stop - start, n))
        out[start:stop] = np.median(samples[idx], axis=1)
    return out


def speedup_ci(
    a_ms: Sequence[float] | np.ndarray,
    b_ms: Sequence[float] | np.ndarray,
    *,
    batch_a: int = 1,
    batch_b: int = 1,
    confidence: float = DEFAULT_CONFIDENCE,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    min_effect: float = 0.0,
) -> RatioCI:
    """Speed-up of B over A (per-sample throughput ratio of medians) with a bootstrap CI.

    Args:
        a_ms: latencies of the reference, one per iteration, in ms.
        b_ms: latencies of the candidate.
        batch_a: the batch A really ran (its effective batch).
        batch_b: the batch B really ran.
        confidence: two-sided level of the percentile interval.
        resamples: bootstrap resamples per side.
        seed: the generator's seed; fixed so a diff is reproducible.
        min_effect: a relative change smaller than this is never called significant.

    Raises:
        ValueError: a side with no samples, or a confidence outside (0, 1).
    """
    a = np.asarray(a_ms, dtype=np.float64)
    b = np.asarray(b_ms, dtype=np.float64)
    if a.size == 0 or b.size == 0:
        raise ValueError("speedup_ci needs latency samples on both sides")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    scale = batch_b / batch_a
    ratio = scale * float(np.median(a)) / float(np.median(b))
    rng = np.random.default_rng(seed)
    ma = bootstrap_medians(a, resamples, rng)
    mb = bootstrap_medians(b, resamples, rng)
    ratios = scale * ma / mb
    tail = (1 - confidence) / 2 * 100
    low, high = (float(x) for x in np.percentile(ratios, [tail, 100 - tail]))
    return RatioCI(ratio=ratio, low=low, high=high, confidence=confidence, resamples=resamples,
                   verdict=verdict(low, high, min_effect=min_effect))
