"""Which perf records were measured together, and the speed-up interval that fits how they were measured.

Records of one batch from one ``surgery bench A B`` (or one ``tune`` comparison) share a
pairing id and line up round by round: their interval is the paired one
(:func:`surgery.stats.paired_speedup_ci`). Anything else was measured apart: the unpaired
interval, widened by the host's between-run noise (:mod:`surgery.noise`).
"""

from __future__ import annotations

from surgery.noise import DEFAULT, HostNoise
from surgery.records import PerfRecord
from surgery.stats import (
    DEFAULT_CONFIDENCE,
    DEFAULT_MIN_EFFECT,
    DEFAULT_SESSION_NOISE,
    RatioCI,
    paired_speedup_ci,
    speedup_ci,
)


def measured_together(a: PerfRecord, b: PerfRecord) -> bool:
    """Same pairing id and the same number of rounds, each round's sizes adding up to the samples."""
    if a.paired_with is None or a.paired_with != b.paired_with or a is b:
        return False
    if not a.rounds or len(a.rounds) != len(b.rounds):
        return False
    return sum(a.rounds) == len(a.latencies_ms) and sum(b.rounds) == len(b.latencies_ms)


def cycle_of(a: PerfRecord) -> int:
    """Rounds per rotation: the number of models measured together."""
    size = (a.pairing or {}).get("size", 2)
    return size if isinstance(size, int) and size >= 1 else 2


def speedup(a: PerfRecord, b: PerfRecord, *, confidence: float = DEFAULT_CONFIDENCE,
            min_effect: float = DEFAULT_MIN_EFFECT,
            noise: HostNoise = DEFAULT, session_noise: float = DEFAULT_SESSION_NOISE) -> RatioCI | None:
    """B's speed-up over A with the interval their measurement allows; None without samples on both sides.

    Args:
        a: the reference record.
        b: the candidate.
        confidence: the interval's level.
        min_effect: a relative change below this is never called significant.
        noise: the between-run noise an unpaired interval is widened by.
        session_noise: the paired interval's per-side floor.
    """
    if not a.ok or not b.ok or not a.latencies_ms or not b.latencies_ms:
        return None
    batch_a, batch_b = a.effective_batch or a.batch, b.effective_batch or b.batch
    if measured_together(a, b):
        return paired_speedup_ci(a.latencies_ms, a.rounds, b.latencies_ms, b.rounds, cycle=cycle_of(a),
                                 batch_a=batch_a, batch_b=batch_b, confidence=confidence,
                                 session_noise=session_noise, min_effect=min_effect)
    return speedup_ci(a.latencies_ms, b.latencies_ms, batch_a=batch_a, batch_b=batch_b, confidence=confidence,
                      run_noise=noise.sigma, noise_source=noise.source, min_effect=min_effect)
