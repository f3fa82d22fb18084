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
    cycle_means,
    latency_stats,
    median_half_width,
    order_depth,
    paired_speedup_ci,
    round_medians,
    signed_rank_depth,
    signed_rank_interval,
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


# ---------------------------------------------------------------------------
# paired rounds


def rotating_rounds(ms_a: float, ms_b: float, *, rounds: int = 40, calls: int = 10, seed: int = 0,
                    drift: float = 0.0, jitter: float = 0.02, second_penalty: float = 0.0):
    """Latencies of A and B measured as the harness does: rounds in rotating order (A B, B A, ...).

    ``drift`` slows the host for both alike over time; ``second_penalty`` slows whichever model
    runs second in a round (a switch cost); ``jitter`` is per-call noise.
    """
    rng = np.random.default_rng(seed)
    a, b = [], []
    for r in range(rounds):
        host = 1.0 + drift * r / rounds
        for pos, side in enumerate(("a", "b") if r % 2 == 0 else ("b", "a")):
            base = ms_a if side == "a" else ms_b
            lat = base * host * (1 + pos * second_penalty) * (1 + jitter * rng.standard_normal(calls))
            (a if side == "a" else b).extend(lat.tolist())
    return a, [calls] * rounds, b, [calls] * rounds


def test_signed_rank_depths_match_the_published_critical_values():
    # two-sided 0.05 critical values of T+ (reject when T+ <= c): n=6: 0, 7: 2, 8: 3, 10: 8, 20: 52, 30: 137
    assert [signed_rank_depth(n, 0.95) for n in (5, 6, 7, 8, 10, 20, 30)] == [0, 1, 3, 4, 9, 53, 138]
    assert signed_rank_depth(100, 0.95) == pytest.approx(1955, abs=2)  # normal approximation past 60
    assert [order_depth(n, 0.95) for n in (5, 6, 10, 20)] == [0, 1, 2, 6]


def test_signed_rank_interval_covers_the_centre_of_heavy_tailed_noise_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    covered = 0
    for _ in range(400):
        _, low, high = signed_rank_interval(0.3 + rng.standard_t(2, size=12))
        covered += low <= 0.3 <= high
    assert 0.93 <= covered / 400 <= 0.985
    estimate, low, high = signed_rank_interval([1.0, 2.0, 3.0])
    assert estimate == 2.0 and (low, high) == (-math.inf, math.inf)  # too few values for 95 %


def test_paired_interval_cancels_drift_that_hides_a_small_gain():
    # the host slows down by half over the run, for both models alike; B is 3 % faster
    a, ra, b, rb = rotating_rounds(10.0, 10.0 / 1.03, drift=0.5, seed=1)
    ci = paired_speedup_ci(a, ra, b, rb, cycle=2)
    assert ci.paired and ci.verdict == FASTER and ci.ratio == pytest.approx(1.03, rel=0.005)
    assert ci.half_width < 0.01 and ci.cycles == 20
    apart = speedup_ci(a, b, run_noise=0.0)
    assert apart.half_width > 3 * ci.half_width and not apart.paired


def test_paired_interval_of_a_model_against_itself_sees_no_change_despite_a_switch_cost():
    for seed in range(5):
        a, ra, b, rb = rotating_rounds(5.0, 5.0, second_penalty=0.04, seed=seed)
        ci = paired_speedup_ci(a, ra, b, rb, cycle=2)
        assert ci.verdict == SAME and ci.ratio == pytest.approx(1.0, abs=0.005), seed
    # without whole rotations the switch cost would be a "difference": one round position only
    a, ra, b, rb = rotating_rounds(5.0, 5.0, second_penalty=0.04, seed=0)
    per_round = np.log(round_medians(a, ra)) - np.log(round_medians(b, rb))
    assert np.mean(np.abs(per_round)) > 0.03 and np.mean(np.abs(cycle_means(per_round, 2))) < 0.01


def test_paired_interval_uses_the_effective_batch_and_needs_enough_cycles():
    a, ra, b, rb = rotating_rounds(1.0, 2.0, seed=2)
    ci = paired_speedup_ci(a, ra, b, rb, cycle=2, batch_a=1, batch_b=4)
    assert ci.ratio == pytest.approx(2.0, rel=0.01) and ci.verdict == FASTER
    # 5 cycles are too few for a 95 % interval of their means: the 10 rounds themselves decide
    short = paired_speedup_ci(*rotating_rounds(1.0, 0.5, rounds=10), cycle=2)
    assert short.verdict == FASTER and short.cycles == 10
    tiny = paired_speedup_ci(*rotating_rounds(1.0, 0.5, rounds=4), cycle=2)  # 4 rounds: no interval at all
    assert tiny.verdict == SAME and math.isinf(tiny.high)


def test_session_floor_widens_a_perfectly_quiet_pair():
    a, ra, b, rb = rotating_rounds(1.0, 1.0, jitter=0.0)
    ci = paired_speedup_ci(a, ra, b, rb, cycle=2, session_noise=0.01)
    half = 1.959963984540054 * math.sqrt(2) * 0.01
    assert ci.low == pytest.approx(math.exp(-half)) and ci.high == pytest.approx(math.exp(half))


def test_rounds_must_match_the_samples():
    with pytest.raises(ValueError, match="do not match"):
        round_medians([1.0, 2.0, 3.0], [2, 2])
    with pytest.raises(ValueError, match="same rounds"):
        paired_speedup_ci([1.0] * 4, [2, 2], [1.0] * 6, [2, 2, 2])


def test_median_half_width_of_one_model_alone():
    rng = np.random.default_rng(0)
    steady = 2.0 * (1 + 0.01 * rng.standard_normal(400))
    assert median_half_width(steady, [20] * 20) < 0.01
    assert median_half_width(steady[:100], [20] * 5) == math.inf  # 5 rounds: no 95 % interval


def test_an_unbounded_interval_is_described_as_such_not_as_zero_to_infinity():
    from surgery.stats import RatioCI

    assert RatioCI(ratio=0.995, low=0.0, high=math.inf, paired=True).describe() == \
        "×0.995 (too few rounds for an interval)"
    assert RatioCI(ratio=1.008, low=0.949, high=1.159, paired=True).describe() == "×1.008 [0.949, 1.159]"
    assert RatioCI(ratio=1.0, low=0.9, high=1.1).describe().endswith(" unpaired")
