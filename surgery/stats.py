"""Latency statistics and the significance of a speed-up.

Numbers on shared machines are noisy, so every comparison carries a confidence
interval for the *speed-up* (``> 1`` means the second measurement is faster), which
accounts for the batch each side really ran:

    speedup = (effective_batch_b / latency_b) / (effective_batch_a / latency_a)

**Paired** (:func:`paired_speedup_ci`: models measured together in one process). The
harness runs them in *rounds* of a few calls each, in rotating order (A B, B A, A B ...),
so a slow spell of the host hits both sides of a round. Each round gives the log ratio of
the two sides' round medians; common-mode drift (a neighbour, the clock, thermal state)
cancels inside it, which is the point: drift between and within runs on a shared 2-core
host is far larger than any difference worth tuning for. The rounds are grouped by
rotation *cycle* (one round per starting position), so a position effect ("the model run
right after a switch pays for the other's spinning threads") cancels too. The interval is
Wilcoxon's signed-rank interval of the cycle values, with the Hodges-Lehmann estimate:

- under "no change" the cycle values are *symmetric about 0 by construction* (the two
  models swap places within a cycle), the one assumption the signed-rank interval needs,
  so its coverage is exact however the host misbehaves;
- a host burst hits one side's whole round now and then: the cycle values have heavy tails
  (measured on this shared 2-core host with other work beside it: round-to-round spread
  of 5-40 % while the typical value is steady). A mean and Student's t lose most of their
  power to such tails; ranks do not, and under normal noise they keep 95 % of it;
- few values give honestly wide intervals (infinite below 6 at 95 %), where a bootstrap of
  6-10 values would be far too narrow. Fewer than 6 whole cycles (a slow model) fall back
  to the rounds themselves, still balanced (every position equally often). The null
  distribution is exact (a subset-sum count) up to 60 values and normal beyond.

A small floor ``session_noise`` (relative, per side) is added in quadrature in log space:
two sessions of the same model may differ slightly and consistently (memory layout, thread
placement), which no pairing cancels.

**Unpaired** (:func:`speedup_ci`: records measured apart). Nothing cancels. Each side's
median gets a circular *block* bootstrap (blocks of consecutive iterations, because
latencies drift within a run; an i.i.d. bootstrap of tens of thousands of samples gives
±0.1 % intervals while back-to-back runs differ by far more), and the interval is widened
by the host's *between-run* noise ``run_noise`` (the relative standard deviation of one
run's median across separate processes, which ``surgery bench --calibrate`` measures; see
:mod:`surgery.noise`), twice over: two runs, each with its own systematic error.

A verdict other than "no significant change" needs the whole interval on one side of
``1 ± min_effect`` (callers default to :data:`DEFAULT_MIN_EFFECT`, 1 %). Fixed seeds: the same
records always give the same interval.
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
# per side, relative: two sessions of one model in one process (see the module docstring)
DEFAULT_SESSION_NOISE = 0.002
# A change under this is never called significant by default (``--min-effect``). A 95 % interval calls
# "no change" wrongly 1 time in 20 by its level; on this 2-core host with a core busy beside it, the same
# model measured as A and B gave intervals that missed 1 by a few tenths of a percent in 3 of 14 runs
# (benchmarks/bench_ab.py); changes that small are below what one session's placement moves anyway.
DEFAULT_MIN_EFFECT = 0.01
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


def interval_text(low: float | None, high: float | None) -> str:
    """``[0.950, 1.050]``, or words when too few rounds bounded it (None, 0 or infinite bounds)."""
    if low is None or high is None or not math.isfinite(high) or low <= 0:
        return "(too few rounds for an interval)"
    return f"[{low:.3f}, {high:.3f}]"


@dataclass(frozen=True)
class RatioCI:
    """A speed-up of B over A with its confidence interval and verdict.

    ``paired`` says how the interval was made: from rounds measured together (``cycles``
    values: rotation cycles, or the rounds themselves when there were too few cycles), or
    from two records measured apart (block bootstrap widened by ``run_noise``, the host's
    between-run noise, whose origin ``noise_source`` names).
    """

    ratio: float
    low: float
    high: float
    confidence: float = DEFAULT_CONFIDENCE
    resamples: int = DEFAULT_RESAMPLES
    verdict: str = SAME
    run_noise: float = DEFAULT_RUN_NOISE
    blocks: int = DEFAULT_BLOCKS
    paired: bool = False
    cycles: int = 0
    session_noise: float = 0.0
    noise_source: str = ""

    @property
    def half_width(self) -> float:
        """Half the interval's width, relative to the ratio (0.03 means ±3 %)."""
        return (self.high - self.low) / 2 / self.ratio if self.ratio else float("nan")

    @property
    def below_min_effect(self) -> bool:
        """No change called although the interval excludes 1: it does not clear ``1 ± min_effect``."""
        return self.verdict == SAME and (self.low > 1 or self.high < 1)

    def describe(self) -> str:
        return f"×{self.ratio:.3f} {interval_text(self.low, self.high)}" + ("" if self.paired else " unpaired")

    def to_dict(self) -> dict[str, float | int | str | bool | None]:
        """The fields, with an interval that has no bound (too few rounds) as ``None``: JSON has no infinity."""
        return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in asdict(self).items()}


def min_effect_text(min_effect: float) -> str:
    """Why an interval that excludes 1 is still no change: the words the tables and tune print."""
    return f"excludes 1 but not 1 ± {min_effect * 100:g}%, the smallest change called (--min-effect)"


def verdict(low: float, high: float, *, min_effect: float = 0.0) -> str:
    """``faster`` when the whole interval lies above ``1 + min_effect``, ``slower`` below
    ``1 - min_effect``, else ``no significant change``."""
    if low > 1.0 + min_effect:
        return FASTER
    if high < 1.0 - min_effect:
        return SLOWER
    return SAME


def _check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


# ---------------------------------------------------------------------------
# distribution-free intervals: Wilcoxon signed rank (paired) and order statistics (one job)

_EXACT_MAX_N = 60  # exact null distributions up to here; the normal approximation beyond is exact to ~1e-3
MIN_CYCLES = 6  # the fewest values with a 95 % signed-rank interval


def _signed_rank_cdf(n: int) -> np.ndarray:
    """P(T+ <= k) for k = 0..n(n+1)/2: the signed-rank statistic of ``n`` values under the null (exact)."""
    counts = np.zeros(n * (n + 1) // 2 + 1)
    counts[0] = 1.0
    for i in range(1, n + 1):  # subsets of {1..n} by their sum: add i to every subset so far
        counts[i:] = counts[i:] + counts[:-i].copy()
    return np.cumsum(counts) / 2.0**n


def signed_rank_depth(n: int, confidence: float) -> int:
    """How many Walsh averages each end of the signed-rank interval drops (0: no interval at this level).

    The interval ``[w_(d), w_(M+1-d)]`` of the sorted ``M = n(n+1)/2`` Walsh averages covers the
    centre of a symmetric distribution with probability ``1 - 2 P(T+ <= d - 1) >= confidence``.
    """
    _check_confidence(confidence)
    tail = (1 - confidence) / 2
    if n <= _EXACT_MAX_N:
        cdf = _signed_rank_cdf(n)
        return int(np.searchsorted(cdf, tail, side="right"))  # the number of k with P(T+ <= k) <= tail
    mean, sd = n * (n + 1) / 4, math.sqrt(n * (n + 1) * (2 * n + 1) / 24)
    z = NormalDist().inv_cdf(tail)
    return max(0, math.floor(mean + z * sd - 0.5) + 1)  # continuity-corrected


def order_depth(n: int, confidence: float) -> int:
    """The sign test's ``d``: ``[x_(d), x_(n+1-d)]`` covers the median with probability >= confidence (0: none)."""
    _check_confidence(confidence)
    tail = (1 - confidence) / 2
    if n <= 1000:
        probs = [math.comb(n, k) / 2.0**n for k in range(n + 1)]
        return int(np.searchsorted(np.cumsum(probs), tail, side="right"))
    z = NormalDist().inv_cdf(tail)
    return max(0, math.floor(n / 2 + z * math.sqrt(n) / 2 - 0.5) + 1)


def signed_rank_interval(values: Sequence[float] | np.ndarray, confidence: float = DEFAULT_CONFIDENCE
                         ) -> tuple[float, float, float]:
    """(Hodges-Lehmann estimate, low, high) of the centre of a symmetric distribution (Wilcoxon signed rank).

    ``low``/``high`` are infinite when there are too few values for the level (fewer than 6 at 95 %).
    """
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        raise ValueError("signed_rank_interval needs at least one value")
    i, j = np.triu_indices(v.size)
    walsh = np.sort((v[i] + v[j]) / 2)
    estimate = float(np.median(walsh))
    d = signed_rank_depth(v.size, confidence)
    if d < 1:
        return estimate, -math.inf, math.inf
    return estimate, float(walsh[d - 1]), float(walsh[walsh.size - d])


# ---------------------------------------------------------------------------
# paired: rounds measured together


def round_medians(samples_ms: Sequence[float] | np.ndarray, rounds: Sequence[int]) -> np.ndarray:
    """The median of each round, from all calls in order and the number of calls per round.

    Raises:
        ValueError: round sizes that do not add up to the number of samples, or an empty round.
    """
    a = np.asarray(samples_ms, dtype=np.float64)
    sizes = [int(n) for n in rounds]
    if sum(sizes) != a.size or any(n < 1 for n in sizes):
        raise ValueError(f"{len(sizes)} rounds of {sum(sizes)} calls do not match {a.size} samples")
    edges = np.cumsum([0, *sizes])
    return np.array([np.median(a[edges[k]:edges[k + 1]]) for k in range(len(sizes))])


def cycle_means(values: Sequence[float] | np.ndarray, cycle: int, max_points: int = 1000,
                min_cycles: int = MIN_CYCLES) -> np.ndarray:
    """Means of consecutive groups of ``cycle`` values (one rotation of the round order); a partial tail is dropped.

    With fewer than ``min_cycles`` whole cycles the rounds themselves are returned: a slow
    model gets few rotations in its time, and its rounds are still balanced (every position
    equally often, so their values stay symmetric about the centre) where too few cycle
    means would give no interval at all. More than ``max_points`` cycles are grouped
    further (consecutive means) to bound the interval's cost (Walsh averages grow with the
    square).
    """
    v = np.asarray(values, dtype=np.float64)
    cycle = max(1, int(cycle))
    whole = v.size // cycle
    if whole < min_cycles:
        return v[: whole * cycle] if whole >= 1 else v
    if whole > max_points:
        cycle *= -(-whole // max_points)
        whole = v.size // cycle
    if cycle == 1:
        return v
    return v[: whole * cycle].reshape(whole, cycle).mean(axis=1)


def paired_log_ratios(a_medians: np.ndarray, b_medians: np.ndarray, cycle: int) -> np.ndarray:
    """Per-cycle means of ``log(a / b)`` over rounds measured together (round k of A beside round k of B)."""
    if a_medians.size != b_medians.size:
        raise ValueError(f"paired sides need the same rounds: {a_medians.size} vs {b_medians.size}")
    if a_medians.size == 0 or np.any(a_medians <= 0) or np.any(b_medians <= 0):
        raise ValueError("paired sides need positive round medians")
    return cycle_means(np.log(a_medians) - np.log(b_medians), cycle)


def paired_speedup_ci(
    a_ms: Sequence[float] | np.ndarray,
    a_rounds: Sequence[int],
    b_ms: Sequence[float] | np.ndarray,
    b_rounds: Sequence[int],
    *,
    cycle: int = 2,
    batch_a: int = 1,
    batch_b: int = 1,
    confidence: float = DEFAULT_CONFIDENCE,
    session_noise: float = DEFAULT_SESSION_NOISE,
    min_effect: float = 0.0,
) -> RatioCI:
    """Speed-up of B over A from rounds measured together: the signed-rank interval over rotation cycles.

    Args:
        a_ms: A's latencies, every call in order, in ms.
        a_rounds: A's calls per round (they add up to ``len(a_ms)``).
        b_ms: B's latencies.
        b_rounds: B's calls per round; round k of B ran beside round k of A.
        cycle: rounds per rotation (the number of models measured together).
        batch_a: the batch A really ran.
        batch_b: the batch B really ran.
        confidence: two-sided level.
        session_noise: relative per-side floor for what pairing cannot cancel (see the module docstring).
        min_effect: a relative change smaller than this is never called significant.

    Raises:
        ValueError: rounds that do not match the samples or each other, a bad confidence.
    """
    _check_confidence(confidence)
    logs = paired_log_ratios(round_medians(a_ms, a_rounds), round_medians(b_ms, b_rounds), cycle)
    center, low_log, high_log = signed_rank_interval(logs, confidence)
    floor = NormalDist().inv_cdf(0.5 + confidence / 2) * math.sqrt(2) * session_noise
    scale = batch_b / batch_a
    ratio = scale * math.exp(center)
    low = scale * math.exp(center - math.hypot(center - low_log, floor))
    high = scale * math.exp(center + math.hypot(high_log - center, floor))
    return RatioCI(ratio=ratio, low=low, high=high, confidence=confidence, resamples=0,
                   verdict=verdict(low, high, min_effect=min_effect), run_noise=0.0, blocks=0, paired=True,
                   cycles=int(logs.size), session_noise=session_noise, noise_source="paired rounds")


def median_half_width(samples_ms: Sequence[float] | np.ndarray, rounds: Sequence[int], *,
                      confidence: float = DEFAULT_CONFIDENCE) -> float:
    """Relative half-width of the order-statistics interval of one job's median round (drift counts as noise).

    What ``--precision`` means for a model measured alone; infinite with too few rounds.
    """
    med = np.sort(round_medians(samples_ms, rounds))
    d = order_depth(med.size, confidence)
    if d < 1:
        return math.inf
    center = float(np.median(med))
    return (float(med[med.size - d]) - float(med[d - 1])) / 2 / center if center > 0 else math.inf


# ---------------------------------------------------------------------------
# unpaired: records measured apart


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
    noise_source: str = "",
) -> RatioCI:
    """Speed-up of B over A measured apart (per-sample throughput ratio of medians) with its confidence interval.

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
            reveal (the host's between-run noise); widens the interval in log space (0 for the pure bootstrap).
        min_effect: a relative change smaller than this is never called significant.
        noise_source: where ``run_noise`` came from, for the reader (calibration, default).

    Raises:
        ValueError: a side with no samples, or a confidence outside (0, 1).
    """
    a = np.asarray(a_ms, dtype=np.float64)
    b = np.asarray(b_ms, dtype=np.float64)
    if a.size == 0 or b.size == 0:
        raise ValueError("speedup_ci needs latency samples on both sides")
    _check_confidence(confidence)
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
                   verdict=verdict(low, high, min_effect=min_effect), run_noise=run_noise, blocks=blocks,
                   paired=False, noise_source=noise_source)
