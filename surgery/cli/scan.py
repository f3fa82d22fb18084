"""surgery scan PATH...: which passes would change each model, at how many sites, and its TransData sources."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from surgery import validate
from surgery.modelref import resolve_model
from surgery.scan import ModelScan, ScanReport, choose_passes, find_models, scan
from surgery.transdata import RULES
from surgery.validate import arg

from ._common import add_json, console, print_json, print_table, status, zoo
from ._run import progress_bar

NAME = "scan"
HELP = "which passes would change each model (and at how many sites), and its likely TransData sources"
SHORT = {"unaligned_channels": "unaligned C", "channel_slices": "channel slices", "conv1d": "Conv1d",
         "large_avgpool": "large AvgPool", "reshape_between_convs": "Reshape in convs"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="an .onnx file, a folder (every .onnx under it, recursively) or a zoo model name")
    parser.add_argument("--pass", dest="passes", action="append", default=[], metavar="NAME",
                        help="scan only these passes (repeatable; default: every pass that runs without options)")
    parser.add_argument("--skip", action="append", default=[], metavar="NAME", help="do not run this pass")
    parser.add_argument("--jobs", "-j", type=arg(validate.count, "--jobs", maximum=256), metavar="N",
                        help="models scanned at once, one process each (default: one per core)")
    add_json(parser)


def run(args: argparse.Namespace) -> int:
    from surgery.passes import PASSES

    passes, not_run = choose_passes(PASSES, args.passes, args.skip)
    paths = find_models(_resolve(p) for p in args.paths)
    quiet = args.json
    with progress_bar(not quiet and len(paths) > 1) as progress:
        task = progress.add_task("scanning", total=len(paths))
        rows = scan(paths, passes, jobs=args.jobs, on_done=lambda _row: progress.advance(task))
    report = ScanReport(models=rows, passes=list(passes), not_run=not_run)
    failed = [r for r in rows if r.error]
    if quiet:
        print_json(report.to_dict())
        return 1 if failed else 0
    _print(report)
    changing = sum(1 for r in rows if r.would_change)
    sources = sum(r.transdata.get("total", 0) for r in rows if not r.error)
    summary = (f"{len(rows)} model{'s' * (len(rows) != 1)} scanned with {len(passes)} passes: {changing} would "
               f"change, {sources} likely TransData sources")
    if failed:
        status(False, f"{len(failed)} of {len(rows)} could not be scanned; {summary}")
        return 1
    status(True, summary)
    return 0


def _resolve(text: str) -> str:
    """A path as given, or a zoo name's exported file (a path that exists always wins)."""
    if Path(text).exists():
        return text
    return str(resolve_model(text, zoo()).path)


def _print(report: ScanReport) -> None:
    table = Table(title="scan", show_lines=True)
    table.add_column("model", style="bold", overflow="fold")
    table.add_column("nodes", justify="right")
    table.add_column("TransData sources", justify="right")
    table.add_column("passes that would change it (sites)")
    table.add_column("errors")
    for row in report.models:
        if row.error:
            table.add_row(escape(row.path), "", "", "", f"[red]{escape(row.error)}[/]")
            continue
        table.add_row(escape(row.path), f"{row.nodes:,}", _sources(row), _changes(row), _errors(row))
    print_table(table)
    for name, why in report.not_run.items():
        console.print(f"[dim]not run: {name}: {escape(why)}[/]")


def _sources(row: ModelScan) -> str:
    counts = row.transdata.get("counts", {})
    parts = [f"{SHORT[r]} {counts[r]}" for r in RULES if counts.get(r)]
    text = f"{row.transdata.get('total', 0)}" + (f" ({', '.join(parts)})" if parts else "")
    if not row.transdata.get("shapes_known", True):
        text += " [yellow]shapes unknown[/]"
    return text


def _changes(row: ModelScan) -> str:
    parts = []
    for p in row.would_change:
        label = p.name if p.exact else f"{p.name} [yellow](inexact)[/]"
        parts.append(f"{label} {p.sites}")
    return ", ".join(parts) or "[dim]none[/]"


def _errors(row: ModelScan) -> str:
    return "\n".join(f"[red]{p.name}[/]: {escape(p.error)}" for p in row.passes if p.error)
