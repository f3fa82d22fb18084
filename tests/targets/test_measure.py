from __future__ import annotations

import time

import numpy as np
import pytest

from surgery.errors import UsageError
from surgery.targets.measure import Measure, effective_batch, time_calls


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


def test_measure_validates_and_splits_rounds():
    m = Measure(iterations=10, rounds=3)
    assert [m.per_round(r)[0] for r in range(3)] == [4, 3, 3]
    assert Measure(min_time=1.0, rounds=4).per_round(0) == (None, 0.25)
    with pytest.raises(UsageError):
        Measure(iterations=0)
    with pytest.raises(UsageError):
        Measure(iterations=None, min_time=None)
