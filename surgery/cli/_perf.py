"""What bench and diff share about a perf table: the reference flags and the one-line verdict summary."""

from __future__ import annotations

import argparse
from collections import Counter

from surgery import validate
from surgery.errors import UsageError
from surgery.perf_table import PerfDiff, pick_reference
from surgery.recipe import Recipe
from surgery.stats import DEFAULT_MIN_EFFECT, FASTER, SLOWER
from surgery.validate import arg

from ._common import zoo


def add_reference(parser: argparse.ArgumentParser) -> None:
    """--reference ZOO, --reference-any, --no-reference (shared with diff)."""
    g = parser.add_argument_group("published reference columns (the seed guide's 310 / 310P / T4 figures)")
    g.add_argument("--reference", metavar="ZOO", help="add this zoo model's published throughput (default: the "
                   "zoo model measured, if any)")
    g.add_argument("--reference-any", action="store_true",
                   help="allow --reference to name another zoo model than the one measured")
    g.add_argument("--no-reference", action="store_true", help="no published reference columns")


def choose_reference(args: argparse.Namespace, measured: list[str | None]) -> Recipe | None:
    """The recipe whose published columns to show (``--reference`` checked against the zoo models measured)."""
    if args.no_reference:
        if args.reference:
            raise UsageError("give --reference or --no-reference, not both")
        return None
    return pick_reference(zoo().recipes, args.reference, measured, allow_other=args.reference_any)


def summary(diff: PerfDiff) -> str:
    """``B vs A: 3 faster, 1 slower, 1 no significant change`` for each record after the first."""
    parts = []
    for k, label in enumerate(diff.labels[1:], start=1):
        verdicts = Counter(row.cells[k].verdict for row in diff.rows if row.cells[k].verdict)
        if not verdicts:
            parts.append(f"{label} vs {diff.labels[0]}: no comparable rows")
            continue
        paired = {row.cells[k].ratio.paired for row in diff.rows if row.cells[k].ratio is not None}
        how = " (paired)" if paired == {True} else " (unpaired)" if paired == {False} else ""
        order = [FASTER, SLOWER] + [v for v in verdicts if v not in (FASTER, SLOWER)]
        parts.append(f"{label} vs {diff.labels[0]}{how}: "
                     + ", ".join(f"{verdicts[v]} {v}" for v in order if verdicts[v]))
    return "; ".join(parts)


def add_min_effect(parser: argparse.ArgumentParser) -> None:
    """--min-effect of the verdicts in a before/after table (shared with diff)."""
    parser.add_argument("--min-effect", type=arg(validate.fraction, "--min-effect", open_high=True),
                        default=DEFAULT_MIN_EFFECT, metavar="FRACTION",
                        help="call a change faster or slower only when its whole interval clears 1 +/- FRACTION; "
                             f"0 calls any interval that excludes 1 ({DEFAULT_MIN_EFFECT:g})")
