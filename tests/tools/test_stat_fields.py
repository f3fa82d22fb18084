"""The labelled statistics reader shared by trtexec and ais_bench."""

from __future__ import annotations

import pytest
from surgery.tools.runner import ToolOutputError
from surgery.tools.stat_fields import parse_stat_fields


def test_labels_not_positions():
    # ais_bench's trtexec backend took "the fifth number" for p99; on TensorRT 8 that is p90
    stats = parse_stat_fields("min = 1 ms, max = 9 ms, mean = 3 ms, median = 2 ms, percentile(90%) = 5 ms, "
                              "percentile(95%) = 6 ms, percentile(99%) = 8 ms", where="t")
    assert stats == {"min": 1, "max": 9, "mean": 3, "median": 2, "p90": 5, "p95": 6, "p99": 8}


def test_units_are_converted_and_spacing_tolerated():
    stats = parse_stat_fields("min=1000 us，max = 0.003 s，mean = 2 ms，median = 2 ms，percentile( 99.9% ) = 2.5 ms",
                              where="t")
    assert stats == {"min": 1.0, "max": 3.0, "mean": 2.0, "median": 2.0, "p99.9": 2.5}


@pytest.mark.parametrize("text, match", [
    ("min = 1, max = 2, mean = 1.5", "lacks median"),
    ("min = 3, max = 2, mean = 2, median = 2", "min 3.0 > max"),
    ("min = 1, max = 2, mean = 1.5, median = 1.5, mean = 1.6", "given twice"),
    ("min = -1, max = 2, mean = 1.5, median = 1.5", "negative"),
])
def test_rejects(text, match):
    with pytest.raises(ToolOutputError, match=match):
        parse_stat_fields(text, where="t")
