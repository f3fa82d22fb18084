"""surgery diff A.json B.json [C.json ...] [--markdown | --csv | --json] [--reference ZOO]"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path
from typing import Any

from surgery import noise, validate
from surgery.errors import RecordError, UsageError
from surgery.noise import HostNoise
from surgery.perf_table import compare, diff_csv, diff_markdown, diff_rich
from surgery.recipe import Recipe
from surgery.records import PerfRecord, RunRecord, load_record
from surgery.validate import arg

from ._common import print_json, print_table, status
from ._perf import add_min_effect, add_reference, choose_reference, summary

NAME = "diff"
HELP = ("compare perf records side by side: throughput, p50/p99, speed-up with a 95%% CI and a verdict (paired "
        "for records benched together; else unpaired, widened by the host's between-run noise)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("records", nargs="+", metavar="RECORD.json",
                        help="run records (surgery bench/tune) or JSON lists of perf records; the first is the "
                             "reference of the ratios. One tune record alone compares its before and after")
    fmt = parser.add_mutually_exclusive_group()
    fmt.add_argument("--markdown", action="store_true", help="print a markdown table")
    fmt.add_argument("--csv", action="store_true", help="print CSV")
    fmt.add_argument("--json", action="store_true", help="print machine-readable JSON")
    add_reference(parser)
    parser.add_argument("--confidence", type=arg(validate.fraction, "--confidence", open_low=True, open_high=True),
                        default=0.95, help="level of the speed-up intervals (0.95)")
    add_min_effect(parser)


def read_perf(path: str | Path) -> tuple[list[PerfRecord], RunRecord | None]:
    """Perf records from a run record, or from a bare JSON list of perf records."""
    path = Path(path)
    if not path.is_file():
        raise RecordError(f"record not found: {path}")
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
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
    measured = [(r.input_model or {}).get("zoo") for r in runs if r is not None]
    return choose_reference(args, measured)


def _noise(record: RunRecord | None, perf: list[PerfRecord]) -> HostNoise:
    """The between-run noise of the host that measured ``record`` (the stated default when unknown)."""
    if record is None:
        return noise.DEFAULT
    target = record.target or next((p.target for p in perf), None)
    return noise.lookup(record.host, target)


def run(args: argparse.Namespace) -> int:
    sources: list[tuple[str, list[PerfRecord]]] = []
    runs: list[RunRecord | None] = []
    levels: list[HostNoise] = []
    labels = labels_for(args.records)
    for label, path in zip(labels, args.records, strict=True):
        perf, record = read_perf(path)
        runs.append(record)
        baseline = (record.extra.get("baseline_perf") if record is not None else None) or []
        if len(args.records) == 1 and baseline:
            sources.append((f"{label}:before", [PerfRecord.from_dict(d) for d in baseline]))
            sources.append((f"{label}:after", perf))
            levels += [_noise(record, perf)] * 2
        else:
            sources.append((label, perf))
            levels.append(_noise(record, perf))
    if len(sources) < 2:
        raise UsageError("give at least two records to compare (or one tune record, which holds before and after)")
    for label, perf in sources:
        if not perf:
            raise RecordError(f"{label} holds no perf records")
    diff = compare(sources, reference=_reference(args, runs), confidence=args.confidence,
                   min_effect=args.min_effect, noise=levels)
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
