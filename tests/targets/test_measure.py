from __future__ import annotations

import math
import time

import numpy as np
import pytest

from surgery.errors import UsageError
from surgery.targets.measure import (
    STOP_FAILED,
    STOP_ITERATIONS,
    STOP_MAX_TIME,
    STOP_PRECISION,
    Measure,
    calls_per_round,
    effective_batch,
    interleave,
    split_calls,
    time_calls,
)


class FakeClock:
    """``time.perf_counter`` for the harness: time moves only when a fake model runs."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def fake_model(clock: FakeClock, ms: float, log: list[str] | None = None, name: str = "", *,
               drift: float = 0.0, jitter: float = 0.0, seed: int = 0, fail_after: int | None = None):
    """A call that takes ``ms`` (times a shared slow-down that grows with time, plus jitter) on the fake clock."""
    rng = np.random.default_rng(seed)
    calls = [0]

    def call() -> None:
        calls[0] += 1
        if fail_after is not None and calls[0] > fail_after:
            raise RuntimeError("device lost")
        slow = 1.0 + drift * clock.now  # common-mode drift: the host gets busier over time
        clock.now += ms / 1000.0 * slow * (1.0 + jitter * rng.standard_normal())
        if log is not None:
            log.append(name)
    return call


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(time, "perf_counter", fake)
    return fake


def test_effective_batch_reads_the_inputs_not_a_reduced_output():
    x = np.zeros((4, 3))
    assert effective_batch({"x": x}) == 4
    assert effective_batch({"x": x}, [np.zeros((1, 3))]) == 4  # ReduceSum over the batch: still batch 4
    side = {"x": x, "table": np.zeros((10, 2))}
    assert effective_batch(side, [np.zeros((4, 7))]) == 4  # outputs settle which input axis is the batch
    assert effective_batch({"s": np.float32(1)}) == 1


def test_time_calls_counts_and_reports_progress(monkeypatch):
    calls = []
    seen: list[float] = []
    out = time_calls(lambda: calls.append(1), iterations=7, on_progress=seen.append, report_every=0)
    assert len(out) == len(calls) == 7 and all(x >= 0 for x in out) and seen[-1] == 1.0
    timed = time_calls(lambda: None, seconds=0.0, min_iterations=5)
    assert 5 <= len(timed) <= 8  # whole chunks of 1, 2, 4 calls
    clock = iter(range(0, 1000, 3))  # a fake clock: every read is 3 s after the last
    monkeypatch.setattr(time, "perf_counter", lambda: float(next(clock)))
    assert time_calls(lambda: None, iterations=4) == [3000.0] * 4


@pytest.mark.parametrize("kwargs, message", [
    ({"min_time": float("nan")}, "--min-time"),
    ({"max_time": float("inf")}, "--max-time"),
    ({"max_time": 0}, "--max-time"),
    ({"precision": 0}, "--precision"),
    ({"precision": 1.5}, "--precision"),
    ({"warmup": -1}, "--warmup"),
    ({"iterations": 0}, "--iterations"),
    ({"min_time": 5, "max_time": 2}, "longer than --max-time"),
])
def test_measure_refuses_values_that_would_hang_or_mean_nothing(kwargs, message):
    with pytest.raises(UsageError, match=message):
        Measure(**kwargs)


def test_round_sizes_and_even_splits():
    assert calls_per_round(1.0, 0.05) == 50 and calls_per_round(500.0, 0.05) == 1
    assert calls_per_round(0.0, 0.05) == calls_per_round(math.inf, 0.05) > 1000
    assert split_calls(10, 3) == [4, 3, 3] and split_calls(2, 5) == [1, 1]


def test_interleave_warms_up_then_rotates_the_order_each_round(clock):
    log: list[str] = []
    calls = [fake_model(clock, 10.0, log, "A"), fake_model(clock, 10.0, log, "B")]
    out = interleave(calls, Measure(warmup=2, iterations=4, rounds=4), warmed=1)
    assert log[:2] == ["A", "B"]  # one more warm-up call each (the runner made the first), before any timing
    assert out.warmup == [2, 2]
    timed = log[2:]
    assert timed == ["A", "B", "B", "A", "A", "B", "B", "A"]
    assert out.rounds == [[1, 1, 1, 1]] * 2 and out.stop == STOP_ITERATIONS
    assert all(x == pytest.approx(10.0) for x in out.latencies[0])


def test_fixed_iterations_pick_rounds_from_the_round_time(clock):
    alone = interleave([fake_model(clock, 1.0)], Measure(warmup=1, iterations=300, round_time=0.05))
    assert alone.rounds[0] == [50] * 6  # 50 calls fill 50 ms
    calls = [fake_model(clock, 1.0), fake_model(clock, 1.0)]
    pair = interleave(calls, Measure(warmup=1, iterations=300, round_time=0.05))
    assert pair.rounds == [[25] * 12] * 2  # six whole rotations of two rounds
    few = interleave(calls, Measure(warmup=1, iterations=8))
    assert few.rounds[0] == [1] * 8  # enough whole rotations for an interval, at most one call each


def test_precision_goal_stops_early_and_a_noisy_pair_runs_to_the_time_cap(clock):
    quiet = [fake_model(clock, 2.0, jitter=0.002, seed=1), fake_model(clock, 2.2, jitter=0.002, seed=2)]
    out = interleave(quiet, Measure(warmup=1, precision=0.02, max_time=10.0))
    assert out.stop == STOP_PRECISION and out.half_width <= 0.02
    assert out.seconds < 2.0 and len(out.rounds[0]) % 2 == 0  # whole rotations only
    assert len(out.rounds[0]) >= 2 * Measure().min_cycles
    noisy = [fake_model(clock, 2.0, jitter=0.5, seed=3), fake_model(clock, 2.0, jitter=0.5, seed=4)]
    out = interleave(noisy, Measure(warmup=1, precision=0.001, max_time=1.0))
    assert out.stop == STOP_MAX_TIME and out.half_width > 0.001
    assert 1.0 <= out.seconds < 1.5


def test_min_time_keeps_measuring_past_the_goal(clock):
    calls = [fake_model(clock, 2.0, jitter=0.001, seed=1)]
    out = interleave(calls, Measure(warmup=1, precision=0.5, min_time=3.0, max_time=10.0))
    assert out.stop == STOP_PRECISION and out.seconds >= 3.0


def test_rounds_grow_shorter_when_the_host_slows_down(clock):
    calls = [fake_model(clock, 1.0, drift=2.0)]  # twice as slow after 0.5 s
    out = interleave(calls, Measure(warmup=1, precision=None, max_time=2.0))
    assert out.rounds[0][0] == 50 and out.rounds[0][-1] < 25


def test_a_job_that_fails_is_dropped_and_the_others_go_on(clock):
    calls = [fake_model(clock, 1.0), fake_model(clock, 1.0, fail_after=60), fake_model(clock, 1.0)]
    out = interleave(calls, Measure(warmup=1, iterations=200, rounds=4))
    assert out.errors[1] == "RuntimeError: device lost"
    assert out.errors[0] is None and sum(out.rounds[0]) == 200 and sum(out.rounds[2]) == 200
    assert len(out.rounds[1]) == 1  # the round it finished before failing
    dead = interleave([fake_model(clock, 1.0, fail_after=0)], Measure(warmup=1, iterations=5))
    assert dead.stop == STOP_FAILED and dead.errors[0] == "RuntimeError: device lost"
