"""surgery diff A.json B.json [C.json ...] [--markdown | --csv | --json] [--reference ZOO]"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path
from typing import Any

from surgery.errors import RecordError, UnknownNameError, UsageError
from surgery.perf_table import PerfDiff, compare, diff_csv, diff_markdown, diff_rich
from surgery.recipe import Recipe
from surgery.records import PerfRecord, RunRecord, load_record
from surgery.stats import FASTER, SLOWER

from ._common import print_json, print_table, status, zoo

NAME = "diff"
HELP = "compare perf records side by side: throughput, p50/p99, speed-up with a 95%% CI and a verdict"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("records", nargs="+", metavar="RECORD.json",
                        help="run records (surgery bench/tune) or JSON lists of perf records; the first is the "
                             "reference of the ratios. One tune record alone compares its before and after")
    fmt = parser.add_mutually_exclusive_group()
    fmt.add_argument("--markdown", action="store_true", help="print a markdown table")
    fmt.add_argument("--csv", action="store_true", help="print CSV")
    fmt.add_argument("--json", action="store_true", help="print machine-readable JSON")
    parser.add_argument("--reference", metavar="ZOO", help="add the zoo recipe's published throughput columns "
                        "(default: the zoo model the records name, if any)")
    parser.add_argument("--no-reference", action="store_true", help="no published reference columns")
    parser.add_argument("--confidence", type=float, default=0.95, help="level of the speed-up intervals (0.95)")
    parser.add_argument("--min-effect", type=float, default=0.0, metavar="FRACTION",
                        help="never call a change under this fraction significant, e.g. 0.02 (0)")


def read_perf(path: str | Path) -> tuple[list[PerfRecord], RunRecord | None]:
    """Perf records from a run record, or from a bare JSON list of perf records."""
    path = Path(path)
    if not path.is_file():
        raise RecordError(f"record not found: {path}")
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        data = None  # let load_record word the error
    if isinstance(data, list):
        return [PerfRecord.from_dict(d) for d in data if isinstance(d, dict)], None
    record = load_record(path)
    return list(record.perf), record


def labels_for(paths: list[str]) -> list[str]:
    """Short unique column labels: file stems, with the folder when two stems collide."""
    stems = [Path(p).name.removesuffix(".json") for p in paths]
    counts = Counter(stems)
    out = []
    for p, stem in zip(paths, stems, strict=True):
        out.append(stem if counts[stem] == 1 else str(Path(p).with_suffix("")))
    if len(set(out)) < len(out):
        out = [f"{k + 1}:{x}" for k, x in enumerate(out)]
    return out


def _reference(args: argparse.Namespace, runs: list[RunRecord | None]) -> Recipe | None:
    if args.no_reference:
        return None
    recipes = zoo().recipes
    if args.reference:
        if args.reference not in recipes:
            raise UnknownNameError("zoo model", args.reference, recipes)
        return recipes[args.reference]
    names = {(r.input_model or {}).get("zoo") for r in runs if r is not None}
    if len(names) == 1 and (name := names.pop()) in recipes:
        return recipes[name]
    return None


def run(args: argparse.Namespace) -> int:
    if not 0 < args.confidence < 1:
        raise UsageError(f"--confidence must be between 0 and 1, got {args.confidence}")
    sources: list[tuple[str, list[PerfRecord]]] = []
    runs: list[RunRecord | None] = []
    labels = labels_for(args.records)
    for label, path in zip(labels, args.records, strict=True):
        perf, record = read_perf(path)
        runs.append(record)
        baseline = (record.extra.get("baseline_perf") if record is not None else None) or []
        if len(args.records) == 1 and baseline:
            sources.append((f"{label}:before", [PerfRecord.from_dict(d) for d in baseline]))
            sources.append((f"{label}:after", perf))
        else:
            sources.append((label, perf))
    if len(sources) < 2:
        raise UsageError("give at least two records to compare (or one tune record, which holds before and after)")
    for label, perf in sources:
        if not perf:
            raise RecordError(f"{label} holds no perf records")
    diff = compare(sources, reference=_reference(args, runs), confidence=args.confidence,
                   min_effect=args.min_effect)
    if args.json:
        print_json(diff.to_dict())
        return 0
    if args.markdown:
        print(diff_markdown(diff), end="")
        return 0
    if args.csv:
        print(diff_csv(diff), end="")
        return 0
    print_table(diff_rich(diff))
    status(True, summary(diff))
    return 0


def summary(diff: PerfDiff) -> str:
    """``B vs A: 3 faster, 1 slower, 1 no significant change`` for each record after the first."""
    parts = []
    for k, label in enumerate(diff.labels[1:], start=1):
        verdicts = Counter(row.cells[k].verdict for row in diff.rows if row.cells[k].verdict)
        if not verdicts:
            parts.append(f"{label} vs {diff.labels[0]}: no comparable rows")
            continue
        order = [FASTER, SLOWER] + [v for v in verdicts if v not in (FASTER, SLOWER)]
        parts.append(f"{label} vs {diff.labels[0]}: " + ", ".join(f"{verdicts[v]} {v}" for v in order if verdicts[v]))
    return "; ".join(parts)
