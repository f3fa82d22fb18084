"""Latency statistics and the significance of a speed-up.

Numbers on shared machines are noisy, so every comparison carries a confidence
interval for the *speed-up* (``> 1`` means the second measurement is faster), which
accounts for the batch each side really ran:

    speedup = (effective_batch_b / median_b) / (effective_batch_a / median_a)

The interval has two parts, combined in log space:

- a circular *block* bootstrap of each side's median (fixed seed: the same records give
  the same interval). Iterations are resampled in contiguous blocks (``blocks`` per run)
  because latencies drift within a run on a shared host; an i.i.d. bootstrap of tens of
  thousands of samples gives ±0.1 % intervals while back-to-back runs of the same model
  differ by 1-2 % (measured with benchmarks/bench_harness.py);
- a run-to-run floor ``run_noise`` (relative standard deviation of one run's median,
  1 % by default): what no resampling inside one run can see (session memory layout,
  clock, neighbours that were busy for the whole run).

``surgery tune`` also interleaves the two sides it compares, so slow spells hit both.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from statistics import NormalDist

import numpy as np

FASTER = "faster"
SLOWER = "slower"
SAME = "no significant change"

DEFAULT_RESAMPLES = 2000
DEFAULT_CONFIDENCE = 0.95
DEFAULT_SEED = 0
DEFAULT_BLOCKS = 20
DEFAULT_RUN_NOISE = 0.01
# Bound the (resamples x samples) index matrix so long runs do not allocate gigabytes.
_MAX_CELLS = 4_000_000
# Longer runs are condensed to this many consecutive-group medians before resampling (speed).
MAX_POINTS = 2048


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
    run_noise: float = DEFAULT_RUN_NOISE
    blocks: int = DEFAULT_BLOCKS

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


def bootstrap_medians(samples: np.ndarray, resamples: int, rng: np.random.Generator,
                      blocks: int = DEFAULT_BLOCKS) -> np.ndarray:
    """Medians of ``resamples`` circular block-bootstrap resamples of ``samples`` (vectorised, chunked).

    Each resample joins ``blocks`` runs of ``ceil(n / blocks)`` consecutive samples starting
    at random offsets (wrapping around), so drift within a run widens the spread. With
    ``blocks >= n`` this is the ordinary i.i.d. bootstrap.
    """
    n = samples.size
    k = max(1, min(blocks, n))
    length = -(-n // k)
    offsets = np.arange(length)
    out = np.empty(resamples, dtype=np.float64)
    chunk = max(1, _MAX_CELLS // (k * length))
    for start in range(0, resamples, chunk):
        stop = min(start + chunk, resamples)
        starts = rng.integers(0, n, size=(stop - start, k))
        idx = (starts[:, :, None] + offsets) % n
        out[start:stop] = np.median(samples[idx.reshape(stop - start, k * length)], axis=1)
    return out


def condense(samples: np.ndarray, max_points: int = MAX_POINTS) -> np.ndarray:
    """Medians of consecutive groups, so at most ``max_points`` remain (order kept; a short tail is dropped).

    A run of 80,000 iterations of a tiny model would otherwise cost seconds to resample;
    group medians keep its drift and, slightly conservatively, its spread.
    """
    n = samples.size
    if n <= max_points:
        return samples
    group = -(-n // max_points)
    m = n // group
    return np.median(samples[: m * group].reshape(m, group), axis=1)


def speedup_ci(
    a_ms: Sequence[float] | np.ndarray,
    b_ms: Sequence[float] | np.ndarray,
    *,
    batch_a: int = 1,
    batch_b: int = 1,
    confidence: float = DEFAULT_CONFIDENCE,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    blocks: int = DEFAULT_BLOCKS,
    run_noise: float = DEFAULT_RUN_NOISE,
    min_effect: float = 0.0,
) -> RatioCI:
    """Speed-up of B over A (per-sample throughput ratio of medians) with its confidence interval.

    Args:
        a_ms: latencies of the reference, one per iteration in run order, in ms.
        b_ms: latencies of the candidate, in run order.
        batch_a: the batch A really ran (its effective batch).
        batch_b: the batch B really ran.
        confidence: two-sided level of the interval.
        resamples: bootstrap resamples per side.
        seed: the generator's seed; fixed so a diff is reproducible.
        blocks: contiguous blocks per run in the block bootstrap.
        run_noise: relative standard deviation of a run's median that a single run cannot
            reveal; widens the interval in log space (0 for the pure bootstrap).
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
    ca, cb = condense(a), condense(b)
    # resample the condensed series; its spread, re-centred on the exact ratio, gives the interval
    center = float(np.median(ca)) / float(np.median(cb))
    rel = bootstrap_medians(ca, resamples, rng, blocks) / bootstrap_medians(cb, resamples, rng, blocks) / center
    tail = (1 - confidence) / 2 * 100
    boot_low, boot_high = (ratio * float(x) for x in np.percentile(rel, [tail, 100 - tail]))
    # two runs, each with its own systematic error: sqrt(2) * run_noise on the log ratio
    floor = NormalDist().inv_cdf(1 - (1 - confidence) / 2) * math.sqrt(2) * run_noise
    down = math.log(ratio / boot_low) if boot_low > 0 else math.inf
    up = math.log(boot_high / ratio) if ratio > 0 else math.inf
    low = ratio * math.exp(-math.hypot(max(down, 0.0), floor))
    high = ratio * math.exp(math.hypot(max(up, 0.0), floor))
    return RatioCI(ratio=ratio, low=low, high=high, confidence=confidence, resamples=resamples,
                   verdict=verdict(low, high, min_effect=min_effect), run_noise=run_noise, blocks=blocks)
