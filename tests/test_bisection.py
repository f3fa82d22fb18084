"""The shortest failing prefix: found in log2(n) checks, confirmed by the prefix one shorter."""

from __future__ import annotations

import pytest

from surgery.bisection import shortest_failing_prefix


def drift(bound: float, steps: list[float]):
    calls = []

    def fails(prefix):
        calls.append(len(prefix))
        total = sum(prefix)
        return total > bound, f"total deviation {total:g} > {bound:g}"

    return fails, calls


@pytest.mark.parametrize("culprit", range(8))
def test_finds_the_pass_where_the_drift_crosses_the_bound(culprit):
    steps = [0.0] * 8
    steps[culprit] = 2.0  # each pass alone is within the bound only until this one
    fails, calls = drift(1.0, steps)
    result = shortest_failing_prefix(steps, fails)
    assert result.length == culprit + 1
    assert result.checked[culprit + 1][0] and (culprit == 0 or not result.checked[culprit][0])
    assert len(set(calls)) <= 5  # whole list + log2(8) + confirmation


def test_drift_that_only_adds_up_in_combination():
    steps = [0.4, 0.4, 0.4, 0.4]  # each alone passes a bound of 1.0; three together do not
    fails, _ = drift(1.0, steps)
    result = shortest_failing_prefix(steps, fails)
    assert result.length == 3
    assert "pass 3" in result.describe(lambda p: f"dev {p}") and "first 2 passes still pass" in result.describe()


def test_nothing_fails():
    fails, calls = drift(10.0, [1.0, 1.0])
    result = shortest_failing_prefix([1.0, 1.0], fails)
    assert result.length is None and calls == [2] and "no prefix" in result.describe()
    assert shortest_failing_prefix([], fails).length is None
