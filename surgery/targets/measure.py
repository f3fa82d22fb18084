"""The measurement contract between the core and the runtimes: what to measure, how to time it.

A *runner* (one per in-process target, e.g. ``surgery.tools.onnxruntime.run_jobs``) takes
prepared :class:`Job` s and a :class:`Measure` and returns one :class:`PerfRecord` per job;
:func:`time_calls` is the timed loop every runner shares, and :func:`effective_batch` /
:func:`finish_record` turn its samples into the record's statistics and throughput.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from surgery import errors
from surgery.errors import UsageError
from surgery.records import PerfRecord
from surgery.stats import latency_stats, throughput

ProgressFn = Callable[[float], None]  # fraction of the current batch done, 0..1


@dataclass(frozen=True)
class Measure:
    """How long to measure each job: warm-up calls, then a fixed count or a minimum time.

    ``rounds`` > 1 splits the measurement of several jobs into interleaved rounds
    (A B A B ...) so drift on a shared host hits every job alike.
    """

    warmup: int = 5
    iterations: int | None = None
    min_time: float | None = 1.0  # seconds per job, used when iterations is None
    min_iterations: int = 10
    max_iterations: int = 1_000_000
    rounds: int = 1

    def __post_init__(self) -> None:
        if self.warmup < 0:
            raise UsageError(f"--warmup must be >= 0, got {self.warmup}")
        if self.iterations is not None and self.iterations < 1:
            raise UsageError(f"--iterations must be >= 1, got {self.iterations}")
        if self.iterations is None and (self.min_time is None or self.min_time <= 0):
            raise UsageError("give --iterations N or a positive --min-time S")
        if self.rounds < 1:
            raise UsageError(f"rounds must be >= 1, got {self.rounds}")

    def per_round(self, round_index: int) -> tuple[int | None, float | None]:
        """(iterations, seconds) for one round; iteration counts are spread over rounds exactly."""
        if self.iterations is not None:
            base, extra = divmod(self.iterations, self.rounds)
            return base + (1 if round_index < extra else 0), None
        return None, (self.min_time or 0) / self.rounds

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
