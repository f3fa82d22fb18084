"""The ``min = …, max = …, mean = …, median = …, percentile(99%) = …`` fields trtexec and ais_bench print.

ais_bench copied trtexec's format, so one reader serves both. Percentiles are keyed by
their label (``percentile(90%)`` → ``p90``), never by position: TensorRT 8 prints p90,
p95 and p99 where TensorRT 7 printed p99 alone, and reading "the fifth number" (as
ais_bench's own trtexec backend does) takes p90 for p99.
"""

from __future__ import annotations

import math
import re

from .runner import ToolOutputError

_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_FIELD = re.compile(
    r"(?P<label>\bmin\b|\bmax\b|\bmean\b|\bmedian\b|\bpercentile\s*\(\s*(?P<pct>\d+(?:\.\d+)?)\s*%\s*\))"
    rf"\s*=\s*(?P<value>{_NUMBER})(?P<unit>\s*(?:ms|us|s)\b)?",
    re.IGNORECASE,
)
REQUIRED = ("min", "max", "mean", "median")
_TO_MS = {"ms": 1.0, "us": 1e-3, "s": 1e3}


def percentile_key(pct: str | float) -> str:
    """``99`` → ``p99``, ``99.9`` → ``p99.9``."""
    return f"p{float(pct):g}"


def parse_stat_fields(text: str, *, where: str, required: tuple[str, ...] = REQUIRED) -> dict[str, float]:
    """The labelled statistics in one summary line (the part after ``LABEL:``), in ms.

    Args:
        text: e.g. ``min = 13.28 ms, max = 14.65 ms, mean = 13.88 ms, median = 13.87 ms, percentile(99%) = 14.63 ms``.
        where: names the file and line in error messages.
        required: fields that must all be present.

    Raises:
        ToolOutputError: a required field is missing, a value is not finite, a field is
            repeated, units are missing on some fields only (a line cut mid-number), or
            the values contradict each other (a percentile outside [min, max]).
    """
    stats: dict[str, float] = {}
    units: list[bool] = []
    for match in _FIELD.finditer(text):
        label = match.group("label").lower()
        key = percentile_key(match.group("pct")) if match.group("pct") else label
        if key in stats:
            raise ToolOutputError(f"{where}: {key} given twice in {text.strip()!r}")
        value = float(match.group("value"))
        unit = (match.group("unit") or "").strip().lower()
        units.append(bool(unit))
        if not math.isfinite(value):
            raise ToolOutputError(f"{where}: {key} is not finite")
        stats[key] = value * _TO_MS.get(unit, 1.0)
    missing = [k for k in required if k not in stats]
    if missing:
        raise ToolOutputError(f"{where}: summary line lacks {', '.join(missing)} (truncated output?): "
                              f"{text.strip()[:200]!r}")
    if any(units) and not all(units):
        raise ToolOutputError(f"{where}: some values lack their unit (line cut mid-number?): {text.strip()[:200]!r}")
    check_consistent(stats, where)
    return stats


def check_consistent(stats: dict[str, float], where: str) -> None:
    """Reject statistics no real run produces: negatives, or a mean/median/percentile outside [min, max]."""
    if any(v < 0 for v in stats.values()):
        raise ToolOutputError(f"{where}: negative latency in {stats}")
    low, high = stats.get("min"), stats.get("max")
    if low is None or high is None:
        return
    if low > high:
        raise ToolOutputError(f"{where}: min {low} > max {high}")
    slack = 1e-6 * max(1.0, high)  # values are printed rounded
    for key, value in stats.items():
        if key in ("min", "max"):
            continue
        if not low - slack <= value <= high + slack:
            raise ToolOutputError(f"{where}: {key} = {value} lies outside [min {low}, max {high}] "
                                  f"(corrupt or truncated output)")
