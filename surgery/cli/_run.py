"""What the verbs share around a target: typed requests from arguments, progress, plans, records."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from surgery import validate
from surgery.records import PerfRecord, RunRecord
from surgery.shapes import parse_batches
from surgery.targets import Events, ModelSpec, Outcome, Plan, Request, Step
from surgery.validate import arg

from ._common import console, print_json, shapes_arg, status, zoo_options


def settings_from(args: argparse.Namespace, names: Sequence[str]) -> dict[str, Any]:
    """The target-specific flags the user gave (their defaults are None), by name."""
    return {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}


def request_from(args: argparse.Namespace, settings: Sequence[str], *, output: str | None = None) -> Request:
    """A typed, frozen request: MODEL with its zoo options, batches as integers, shapes, the given settings."""
    return Request(model=ModelSpec(args.model, zoo_options(args, guide=True)),
                   batches=parse_batches(args.batch) if args.batch is not None else None,
                   input_shapes=shapes_arg(args), settings=settings_from(args, settings),
                   workdir=getattr(args, "workdir", None), timeout=getattr(args, "timeout", None), output=output)


def add_vendor(parser: argparse.ArgumentParser | Any) -> None:
    """``--dry-run``, ``--workdir``, ``--timeout``: what the vendor targets take."""
    parser.add_argument("--dry-run", action="store_true",
                        help="print the exact vendor-tool commands (runnable on the NPU/GPU host); run nothing")
    parser.add_argument("--workdir", metavar="DIR", help="vendor targets: where models, logs and results go "
                        "(default: ./<target>-<model>)")
    parser.add_argument("--timeout", type=arg(validate.seconds, "--timeout"), metavar="S",
                        help="vendor targets: seconds per tool command")


def progress_bar(enabled: bool) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(),
                    console=console, transient=True, disable=not enabled)


def step_printer(quiet: bool) -> Any:
    """An ``on_step`` callback printing ``[n] what`` for each vendor-tool command."""
    def on_step(index: int, step: Step) -> None:
        if not quiet:
            console.print(f"[dim][{index + 1}] {escape(step.description)}[/]")
    return on_step


def notice_printer(quiet: bool) -> Any:
    def on_notice(text: str) -> None:
        if not quiet:
            console.print(f"[yellow]notice:[/] {escape(text)}")
    return on_notice


def print_plan(plan: Plan, verb: str, as_json: bool) -> int:
    """A dry run's output: the plan as a shell script (or JSON) and the closing line."""
    if as_json:
        print_json({"dry_run": True, "plan": plan.to_dict()})
        return 0
    console.print(plan.render(), markup=False, highlight=False)
    commands = sum(1 for s in plan.steps if s.skip is None and s.requires != "internal")
    status(True, f"dry run: {commands} command{'s' if commands != 1 else ''} planned for {verb}; nothing run")
    return 0


def new_record(command: str, args: argparse.Namespace, target: str, outcome: Outcome) -> RunRecord:
    """A run record with the command line, target, input model, perf records and tool settings."""
    record = RunRecord(command=command, argv=["surgery", *args.argv], target=target)
    model = outcome.model
    if model is not None:
        record.input_model = {"path": str(model.onnx), "digest": model.digest, "bytes": model.nbytes,
                              "zoo": model.recipe.name if model.recipe else None}
    record.perf = list(outcome.records)
    record.tools = dict(outcome.tools)
    if outcome.plan is not None:
        record.extra["plan"] = outcome.plan.to_dict()
    if outcome.steps:
        record.extra["steps"] = [r.to_dict() for r in outcome.steps]
    return record


def perf_status(record: RunRecord, what: str, unit: str = "batch sizes") -> tuple[bool, str]:
    """PASSED when at least one row measured; the summary names the failed rows."""
    failed = [r for r in record.perf if not r.ok]
    ok = bool(record.perf) and len(failed) < len(record.perf)
    record.status = "PASSED" if ok else "FAILED"
    record.reason = "; ".join(f"batch {r.batch}{_build(r)}: {r.error}" for r in failed)
    measured = len(record.perf) - len(failed)
    summary = f"{measured}/{len(record.perf)} {unit} measured {what}"
    if failed:
        summary += f"; failed: {', '.join(sorted({f'batch {r.batch}' for r in failed}))}"
    if ok:
        best = max((r for r in record.perf if r.ok), key=lambda r: r.throughput or 0)
        if best.throughput:
            summary += f"; best {best.throughput:,.1f} samples/s at batch {best.batch}"
    elif failed:
        summary = f"no {unit.removesuffix('s')} ran: {failed[0].error}"
    return ok, summary


def _build(r: PerfRecord) -> str:
    build = r.settings.get("build")
    return f" ({build})" if build else ""


def save_and_report(args: argparse.Namespace, record: RunRecord, path: Path, table: Table | None, ok: bool,
                    summary: str) -> int:
    """Write the record, print the table, the record's path and the closing line; the exit code."""
    path.parent.mkdir(parents=True, exist_ok=True)
    record.save(path)
    if args.json:
        print_json(record.to_dict())
        return 0 if ok else 1
    if table is not None:
        from ._common import print_table

        print_table(table)
    console.print(f"record {escape(str(path))}")
    status(ok, summary)
    return 0 if ok else 1


def events_for(progress: Progress | None, quiet: bool, label: str) -> Events:
    """Events that drive one progress task (batches or candidates) and print notices and steps."""
    if progress is None:
        return Events(on_notice=notice_printer(quiet), on_step=step_printer(quiet))
    task = progress.add_task(label, total=1)
    state = {"index": 0}

    def on_total(n: int) -> None:
        progress.update(task, total=n)

    def on_batch(index: int, batch: int) -> None:
        state["index"] = index
        progress.update(task, completed=index, description=f"{label} batch {batch}")

    def on_progress(fraction: float) -> None:
        progress.update(task, completed=state["index"] + fraction)

    def on_trial(_trial: Any) -> None:
        state["index"] += 1
        progress.update(task, completed=state["index"])

    def on_phase(phase: str) -> None:
        progress.update(task, description="search" if phase == "search" else "before/after table")

    def notice(text: str) -> None:
        if not quiet:
            progress.console.print(f"[yellow]notice:[/] {escape(text)}")

    return Events(on_notice=notice, on_total=on_total, on_batch=on_batch, on_progress=on_progress,
                  on_step=step_printer(quiet), on_trial=on_trial, on_phase=on_phase)
