from __future__ import annotations

import math

import numpy as np
import pytest

from surgery.stats import (
    FASTER,
    SAME,
    SLOWER,
    bootstrap_medians,
    condense,
    latency_stats,
    speedup_ci,
    throughput,
    verdict,
)


def test_latency_stats_on_a_known_sample_set():
    s = latency_stats(list(range(1, 101)))
    assert s["mean"] == 50.5 and s["median"] == 50.5
    assert s["p90"] == pytest.approx(90.1) and s["p99"] == pytest.approx(99.01)
    assert s["min"] == 1 and s["max"] == 100 and s["count"] == 100
    assert s["std"] == pytest.approx(29.011491975882016)  # sample std (ddof=1)


def test_latency_stats_edge_cases():
    assert latency_stats([]) == {}
    one = latency_stats([2.5])
    assert one["std"] == 0.0 and one["p99"] == 2.5 and one["median"] == 2.5


def test_throughput_uses_the_batch_it_is_given():
    assert throughput(4, 2.0) == pytest.approx(2000.0)
    assert throughput(1, 2.0) == pytest.approx(500.0)
    assert math.isnan(throughput(1, 0.0))


def test_verdict_needs_the_whole_interval_on_one_side():
    assert verdict(1.01, 1.2) == FASTER
    assert verdict(0.8, 0.99) == SLOWER
    assert verdict(0.99, 1.2) == SAME
    assert verdict(1.01, 1.2, min_effect=0.02) == SAME


@pytest.mark.parametrize("seed", range(5))
def test_interval_covers_one_for_two_runs_of_the_same_distribution(seed):
    rng = np.random.default_rng(seed)
    a = rng.gamma(20, 0.05, 1000)
    b = rng.gamma(20, 0.05, 1000)
    ci = speedup_ci(a, b)
    assert ci.low < 1.0 < ci.high
    assert ci.verdict == SAME


def test_interval_excludes_one_for_a_slower_and_a_faster_run():
    rng = np.random.default_rng(0)
    a = rng.gamma(20, 0.05, 500)
    slower = speedup_ci(a, rng.gamma(20, 0.05, 500) * 1.3)
    assert slower.verdict == SLOWER and slower.high < 1.0
    assert slower.ratio == pytest.approx(1 / 1.3, rel=0.1)
    faster = speedup_ci(a, rng.gamma(20, 0.05, 500) / 1.3)
    assert faster.verdict == FASTER and faster.low > 1.0


def test_ratio_accounts_for_the_effective_batch():
    a = np.full(50, 1.0)  # batch 1 in 1 ms
    b = np.full(50, 2.0)  # batch 4 in 2 ms: twice the throughput
    ci = speedup_ci(a, b, batch_a=1, batch_b=4)
    assert ci.ratio == pytest.approx(2.0)
    assert ci.verdict == FASTER


def test_run_noise_floor_widens_identical_runs():
    a = np.full(100, 1.0)
    ci = speedup_ci(a, a.copy())
    half = 1.959963984540054 * math.sqrt(2) * 0.01
    assert ci.low == pytest.approx(math.exp(-half)) and ci.high == pytest.approx(math.exp(half))
    bare = speedup_ci(a, a.copy(), run_noise=0.0)
    assert bare.low == bare.high == 1.0


def test_same_inputs_give_the_same_interval():
    rng = np.random.default_rng(3)
    a, b = rng.random(300), rng.random(300)
    assert speedup_ci(a, b) == speedup_ci(a, b)


def test_block_bootstrap_sees_drift_that_iid_resampling_hides():
    rng = np.random.default_rng(0)
    # 2000 iterations, the first 700 of them 20 % slower (a neighbour was busy for a while)
    drift = np.concatenate([np.full(700, 1.2), np.full(1300, 1.0)]) * (1 + 0.01 * rng.standard_normal(2000))
    iid = bootstrap_medians(drift, 500, np.random.default_rng(0), blocks=drift.size)
    blocked = bootstrap_medians(drift, 500, np.random.default_rng(0), blocks=20)
    assert np.std(blocked) > 5 * np.std(iid)


def test_condense_keeps_order_and_bounds_the_size():
    x = np.arange(10_000, dtype=float)
    c = condense(x, max_points=100)
    assert c.size == 100 and np.all(np.diff(c) > 0)
    assert condense(x[:50], max_points=100).size == 50


def test_bad_input_raises():
    with pytest.raises(ValueError, match="samples on both sides"):
        speedup_ci([], [1.0])
    with pytest.raises(ValueError, match="confidence"):
        speedup_ci([1.0], [1.0], confidence=1.5)
