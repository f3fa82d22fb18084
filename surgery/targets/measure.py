"""The measurement contract between the core and the runtimes: what to measure, how to time it.

A *runner* (one per in-process target, e.g. ``surgery.tools.onnxruntime.run_jobs``) takes
prepared :class:`Job` s and a :class:`Measure` and returns one :class:`PerfRecord` per job.
It builds every session first, then hands their calls to :func:`interleave`, the loop every
runner shares: warm-up, then *rounds* of a few calls per job in rotating order (A B, B A,
...) until the precision goal, the time cap or the fixed call count is reached.
:func:`time_calls` is the timed inner loop; :func:`effective_batch` / :func:`finish_record`
turn the samples into the record's statistics and throughput.

Why rounds: drift on a shared host (a neighbour starting, the clock) is larger than the
differences worth seeing; models measured in short alternating rounds share it, and the
per-round ratios cancel it (see :mod:`surgery.stats`). Why a precision goal: a fixed time
gives ±50 % on a slow model and ±0.1 % on a fast one; ``--precision 0.02`` measures until
the interval's half-width is 2 %, within ``--max-time``, and says when it stopped short.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from surgery import errors, validate
from surgery.errors import UsageError
from surgery.records import PerfRecord
from surgery.stats import (
    DEFAULT_CONFIDENCE,
    DEFAULT_SESSION_NOISE,
    MIN_CYCLES,
    latency_stats,
    median_half_width,
    paired_speedup_ci,
    throughput,
)

ProgressFn = Callable[[float], None]  # fraction of the current batch done, 0..1

DEFAULT_PRECISION = 0.02
DEFAULT_MAX_TIME = 10.0  # seconds per batch: a 50 ms model at batch 1 gets a usable interval well inside 15 s
# tune compares to a finer precision than bench: a 3 % gain needs a half-width well under 3 %
TUNE_PRECISION = 0.01
TUNE_MAX_TIME = 15.0  # seconds per comparison (incumbent and candidate together)
DEFAULT_ROUND_TIME = 0.05  # seconds per job per round: short enough to share drift, long enough to amortise a switch
DEFAULT_MIN_CYCLES = MIN_CYCLES  # whole rotations before the precision goal may stop a measurement
MAX_CALLS_PER_ROUND = 100_000

STOP_PRECISION = "precision"  # the half-width reached the goal
STOP_MAX_TIME = "max-time"  # the time cap came first: stopped short of the goal
STOP_ITERATIONS = "iterations"  # a fixed number of calls was asked for
STOP_MAX_ITERATIONS = "max-iterations"  # the call cap came first (a very fast model)
STOP_FAILED = "failed"  # every job failed


@dataclass(frozen=True)
class Measure:
    """How to measure jobs: warm-up calls, then rounds until a precision goal, a time cap or a call count.

    Attributes:
        warmup: calls per job before timing starts (the first call always runs: it allocates).
        iterations: a fixed number of timed calls per job; the precision goal is then ignored.
        min_time: seconds of timed rounds before the precision goal may stop a batch.
        max_time: seconds of timed rounds at most per batch (checked at the end of each rotation; a
            fixed ``iterations`` count is not capped).
        precision: the goal, a relative half-width of the interval (0.02: ±2 %); None: run to ``max_time``.
        confidence: level of the interval the goal refers to.
        round_time: seconds per job per round (how many calls a round makes, from the warm-up).
        rounds: with ``iterations``, split them over exactly this many rounds (None: from ``round_time``).
        min_cycles: whole rotations before the precision goal may stop a batch.
        max_iterations: timed calls per job at most.
        session_noise: the paired interval's per-side floor (see :mod:`surgery.stats`).
    """

    warmup: int = 5
    iterations: int | None = None
    min_time: float = 0.0
    max_time: float = DEFAULT_MAX_TIME
    precision: float | None = DEFAULT_PRECISION
    confidence: float = DEFAULT_CONFIDENCE
    round_time: float = DEFAULT_ROUND_TIME
    rounds: int | None = None
    min_cycles: int = DEFAULT_MIN_CYCLES
    max_iterations: int = 1_000_000
    session_noise: float = DEFAULT_SESSION_NOISE

    def __post_init__(self) -> None:
        validate.count(self.warmup, "--warmup", minimum=0)
        if self.iterations is not None:
            validate.count(self.iterations, "--iterations")
        validate.seconds(self.min_time, "--min-time", allow_zero=True)
        validate.seconds(self.max_time, "--max-time")
        if self.min_time > self.max_time:
            raise UsageError(f"--min-time ({self.min_time:g} s) is longer than --max-time ({self.max_time:g} s)")
        if self.precision is not None:
            validate.fraction(self.precision, "--precision", open_low=True, open_high=True)
        validate.fraction(self.confidence, "--confidence", open_low=True, open_high=True)
        validate.seconds(self.round_time, "round time")
        if self.rounds is not None:
            validate.count(self.rounds, "rounds")
        validate.count(self.min_cycles, "minimum cycles")
        validate.count(self.max_iterations, "maximum iterations")
        validate.fraction(self.session_noise, "session noise", open_high=True)

    @property
    def fixed(self) -> bool:
        """A fixed call count (``--iterations``) rather than a precision goal."""
        return self.iterations is not None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Job:
    """One thing a runner measures at one batch size: a model source, target options, a feed."""

    source: bytes | str  # serialised model, or a path for models above 2 GB
    options: Any
    feed: dict[str, np.ndarray]


class Runner(Protocol):
    """A target's measurement: one PerfRecord per job, failures as records with ``error``."""

    def __call__(self, jobs: Sequence[Job], measure: Measure,
                 on_progress: ProgressFn | None = None) -> list[PerfRecord]: ...


def time_calls(run: Callable[[], object], *, iterations: int | None = None, seconds: float | None = None,
               min_iterations: int = 1, max_iterations: int = 1_000_000,
               on_progress: ProgressFn | None = None, report_every: float = 0.1) -> list[float]:
    """Wall time of each call of ``run`` in ms: ``iterations`` calls, or until ``seconds`` have passed.

    The timed loop is ``run(); stamps.append(clock())``: one clock read per call, and each
    latency is the time between consecutive stamps, so the latencies add up to the loop's
    wall time (nothing between calls goes unmeasured, and nothing is counted twice).
    Progress, deadline checks and bookkeeping happen between chunks of calls, outside the
    stamps; chunks double in size until one lasts about 10 ms.
    """
    clock = time.perf_counter
    target = iterations if iterations is not None else max_iterations
    chunks: list[list[float]] = []
    start = clock()
    next_report = start + report_every
    done, chunk = 0, 1
    while done < target:
        k = min(chunk, target - done)
        stamps = [clock()]
        append = stamps.append
        for _ in range(k):
            run()
            append(clock())
        chunks.append(stamps)
        done += k
        now = stamps[-1]
        if now - stamps[0] < 0.01:
            chunk *= 2
        if iterations is None and now - start >= (seconds or 0.0) and done >= min_iterations:
            break
        if on_progress is not None and now >= next_report:
            on_progress(done / iterations if iterations is not None else min(1.0, (now - start) / (seconds or 1.0)))
            next_report = now + report_every
    if on_progress is not None:
        on_progress(1.0)
    return (np.concatenate([np.diff(c) for c in chunks]) * 1000.0).tolist()


@dataclass
class Interleaved:
    """What :func:`interleave` measured, per job in the order given.

    Attributes:
        latencies: every timed call's latency in ms, in order.
        rounds: calls per round (they add up to the latencies); round k of every live job ran in the same rotation.
        errors: the error that stopped a job (its rounds so far are kept), or None.
        warmup: warm-up calls made per job (including the ones the runner made).
        positions: the job's index in the rotation (0 for the first job measured; -1 if its warm-up failed).
        stop: why the measurement stopped (``precision``, ``max-time``, ``iterations``, ``max-iterations``).
        half_width: the relative half-width the stop rule saw last (None in fixed mode before any check).
        seconds: wall time of the timed rounds.
    """

    latencies: list[list[float]]
    rounds: list[list[int]]
    errors: list[str | None]
    warmup: list[int]
    positions: list[int]
    stop: str = STOP_ITERATIONS
    half_width: float | None = None
    seconds: float = 0.0
    size: int = 1  # jobs in the rotation (those whose warm-up succeeded)


def calls_per_round(estimate_ms: float, round_time: float) -> int:
    """How many calls fill ``round_time`` seconds at ``estimate_ms`` a call (at least 1)."""
    if not math.isfinite(estimate_ms) or estimate_ms <= 0:
        return MAX_CALLS_PER_ROUND
    return int(min(MAX_CALLS_PER_ROUND, max(1, round(round_time * 1000.0 / estimate_ms))))


def split_calls(total: int, rounds: int) -> list[int]:
    """``total`` calls spread over ``rounds`` rounds as evenly as possible (the first rounds get the remainder)."""
    rounds = max(1, min(rounds, total))
    base, extra = divmod(total, rounds)
    return [base + (1 if r < extra else 0) for r in range(rounds)]


def half_width(latencies: Sequence[Sequence[float]], rounds: Sequence[Sequence[int]], live: Sequence[int],
               measure: Measure, cycle: int) -> float:
    """The precision the stop rule checks: the widest paired interval against the first live job, or alone its own."""
    if len(live) == 1:
        k = live[0]
        return median_half_width(latencies[k], rounds[k], confidence=measure.confidence)
    first = live[0]
    worst = 0.0
    for k in live[1:]:
        ci = paired_speedup_ci(latencies[first], rounds[first], latencies[k], rounds[k], cycle=cycle,
                               confidence=measure.confidence, session_noise=measure.session_noise)
        worst = max(worst, ci.half_width)
    return worst


def interleave(calls: Sequence[Callable[[], object]], measure: Measure, *, warmed: int = 0,
               on_progress: ProgressFn | None = None) -> Interleaved:
    """Warm up every call, then time rounds of them in rotating order until the stop rule says enough.

    Args:
        calls: one zero-argument callable per job (a session's bound ``run``, ready to go).
        measure: warm-up, goal and caps.
        warmed: warm-up calls the runner already made per job (its first call).
        on_progress: called with the fraction done (time or calls, whichever the mode counts).

    A job whose call raises is dropped from later rounds with its error kept; the others go
    on. The stop rule is checked after each whole rotation (one round per starting position),
    so every model ran first equally often.
    """
    k = len(calls)
    out = Interleaved(latencies=[[] for _ in calls], rounds=[[] for _ in calls], errors=[None] * k,
                      warmup=[warmed] * k, positions=list(range(k)), size=k)
    live = list(range(k))
    estimates = [math.inf] * k
    for j, call in enumerate(calls):  # warm-up: every session, before any timing
        try:
            extra = max(1, measure.warmup - warmed)  # at least one timed warm-up call, for the round size
            timed = time_calls(call, iterations=extra)
            out.warmup[j] += extra
            estimates[j] = float(np.min(timed[-3:]))
        except Exception as exc:
            out.errors[j] = describe_error(exc)
            live.remove(j)
    if not live:
        out.stop = STOP_FAILED
        return out
    cycle = out.size = len(live)  # the rotation: the jobs that survived their warm-up
    out.positions = [live.index(j) if j in live else -1 for j in range(k)]
    per_round = {j: calls_per_round(estimates[j], measure.round_time) for j in live}
    plan: dict[int, list[int]] | None = None
    if measure.fixed:
        assert measure.iterations is not None
        n = measure.iterations
        if measure.rounds is not None:
            count = measure.rounds
        else:  # rounds of round_time for the slowest job, and enough whole rotations for an interval
            count = min(n, max(math.ceil(n / min(per_round.values())), measure.min_cycles * cycle))
        plan = {j: split_calls(n, count) for j in live}
        total_rounds = len(next(iter(plan.values())))
    clock = time.perf_counter
    start = clock()
    r = 0
    while live:
        order = live[r % len(live):] + live[: r % len(live)]
        for j in order:
            n = plan[j][r] if plan is not None else per_round[j]
            try:
                lat = time_calls(calls[j], iterations=n)
            except Exception as exc:
                out.errors[j] = describe_error(exc)
                live.remove(j)
                continue
            out.latencies[j].extend(lat)
            out.rounds[j].append(n)
        r += 1
        elapsed = clock() - start
        if plan is not None:
            if on_progress is not None:
                on_progress(min(1.0, r / total_rounds))
            if r >= total_rounds:
                out.stop = STOP_ITERATIONS
                break
            continue
        if on_progress is not None:
            on_progress(min(1.0, elapsed / measure.max_time))
        if not live or r % len(live):
            continue  # decide only after a whole rotation: every model ran first equally often
        for j in live:  # a loaded host slows every call: re-size rounds from what the last one took
            last = out.latencies[j][-out.rounds[j][-1]:]
            per_round[j] = calls_per_round(float(np.median(last)), measure.round_time)
        if measure.precision is not None and r >= 2 * len(live):
            out.half_width = half_width(out.latencies, out.rounds, live, measure, len(live))
        if elapsed >= measure.max_time:
            out.stop = STOP_MAX_TIME
            break
        if max(sum(out.rounds[j]) for j in live) >= measure.max_iterations:
            out.stop = STOP_MAX_ITERATIONS
            break
        enough = r >= measure.min_cycles * len(live) and elapsed >= measure.min_time
        if enough and out.half_width is not None and measure.precision is not None \
                and out.half_width <= measure.precision:
            out.stop = STOP_PRECISION
            break
    else:
        out.stop = STOP_FAILED
    out.seconds = clock() - start
    if live and out.half_width is None and min(len(out.rounds[j]) for j in live) >= 2:
        out.half_width = half_width(out.latencies, out.rounds, live, measure, len(live))
    if on_progress is not None:
        on_progress(1.0)
    return out


def effective_batch(feed: dict[str, np.ndarray], outputs: Sequence[Any] = ()) -> int:
    """The batch the model really ran: the leading dimension of the inputs it received.

    When inputs disagree (a side input of its own size), the outputs' common leading
    dimension decides if it is one of them; otherwise the largest input dimension.
    Outputs alone never decide: a reduction over the batch has a leading 1.
    """
    dims = {int(np.shape(v)[0]) for v in feed.values() if np.ndim(v) >= 1}
    if not dims:
        return 1
    if len(dims) == 1:
        return dims.pop()
    out_dims = {int(np.shape(o)[0]) for o in outputs if np.ndim(o) >= 1}
    if len(out_dims) == 1 and (d := out_dims.pop()) in dims:
        return d
    return max(dims)


def finish_record(record: PerfRecord) -> PerfRecord:
    """Fill statistics and throughput from the latency samples and effective batch."""
    record.stats = latency_stats(record.latencies_ms)
    if record.stats and record.effective_batch:
        record.throughput = throughput(record.effective_batch, record.stats["mean"])
    return record


def describe_error(exc: BaseException) -> str:
    """``Type: first line`` of an error, for a failed batch row."""
    return f"{type(exc).__name__}: {errors.first_line(exc, 300)}" if str(exc).strip() else type(exc).__name__
