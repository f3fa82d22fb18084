from __future__ import annotations

import numpy as np

from surgery.noise import HostNoise
from surgery.pairing import measured_together, speedup
from surgery.records import PerfRecord
from surgery.targets.measure import finish_record


def rec(ms: float, *, pair: str | None = "g/0", index: int = 0, rounds: int = 20, calls: int = 10, seed: int = 0,
        batch: int = 1) -> PerfRecord:
    rng = np.random.default_rng(seed)
    lat = (ms * (1 + 0.01 * rng.standard_normal(rounds * calls))).tolist()
    r = PerfRecord(target="ort-cpu", batch=batch, effective_batch=batch, latencies_ms=lat, iterations=len(lat),
                   rounds=[calls] * rounds, pairing={"id": pair, "index": index, "size": 2} if pair else None)
    return finish_record(r)


def test_records_of_one_rotation_are_paired_and_others_are_not():
    a, b = rec(2.0), rec(1.9, index=1, seed=1)
    assert measured_together(a, b)
    assert not measured_together(a, rec(1.9, pair="other/0", index=1))
    assert not measured_together(a, rec(1.9, pair=None))
    assert not measured_together(a, rec(1.9, index=1, rounds=19))  # a job that dropped out early
    assert not measured_together(a, a)


def test_paired_records_get_the_paired_interval_and_others_the_widened_one():
    a, b = rec(2.0), rec(1.9, index=1, seed=1)
    paired = speedup(a, b)
    assert paired.paired and paired.verdict == "faster" and paired.half_width < 0.02
    apart = speedup(a, rec(1.9, pair=None, seed=1), noise=HostNoise(sigma=0.05, source="test"))
    assert not apart.paired and apart.verdict == "no significant change"
    assert apart.run_noise == 0.05 and apart.noise_source == "test" and apart.describe().endswith("unpaired")
    assert speedup(a, PerfRecord(target="ort-cpu", batch=1, error="OOM")) is None


def test_a_change_under_the_minimum_effect_is_not_called_by_default():
    a, b = rec(2.0), rec(2.0 / 1.006, index=1, seed=1)  # 0.6 % faster, measured tightly
    ci = speedup(a, b, min_effect=0.0)
    assert ci.low > 1.0 and ci.verdict == "faster"  # the interval excludes 1 ...
    assert speedup(a, b).verdict == "no significant change"  # ... but not 1 + DEFAULT_MIN_EFFECT
    big = speedup(a, rec(2.0 / 1.03, index=1, seed=1))
    assert big.low > 1.01 and big.verdict == "faster"
