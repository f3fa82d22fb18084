"""surgery run MODEL [--target ort-cpu|atc] [--data DIR | --generate N] [--pass NAME K=V ...] [--budget M=V] ..."""

from __future__ import annotations

import argparse

from rich.markup import escape
from rich.table import Table

from surgery import validate
from surgery.budget import Budget
from surgery.errors import UsageError
from surgery.parity import DEFAULT_ATOL, DEFAULT_RTOL
from surgery.run import KEPT, PassOutcome, RunEvents, RunRequest, VerifySettings
from surgery.run import run as run_loop
from surgery.run_report import perf_rows
from surgery.shapes import parse_batches
from surgery.stats import interval_text
from surgery.targets import ModelSpec
from surgery.validate import arg

from . import _targets
from ._common import (
    add_json,
    add_shapes,
    add_zoo,
    console,
    print_json,
    print_table,
    shapes_arg,
    status,
    zoo,
    zoo_options,
)
from ._run import events_for, progress_bar
from .apply import parse_pass_args

NAME = "run"
HELP = "a guide's whole loop: export, verified passes, before/after benchmark and evaluation, report.html"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL", help="a zoo model name (its guide's recipe) or an .onnx file")
    parser.add_argument("--target", default="ort-cpu", help="where before and after run: ort-cpu, ort-cuda, ort-trt "
                        "(measured here, paired), or atc (plan or run on the NPU host) (ort-cpu)")
    parser.add_argument("--pass", dest="passes", action="append", nargs="+", default=[], metavar="NAME [KEY=VALUE",
                        help="a pass and its options instead of the recipe's (repeat for more)")
    parser.add_argument("--recipe", action="store_true", help="the recipe's passes (the default for zoo models)")
    parser.add_argument("--batch", metavar="LIST", help="batch sizes of the perf table (default: the guide's)")
    add_shapes(parser)
    data = parser.add_argument_group("evaluation before and after")
    source = data.add_mutually_exclusive_group()
    source.add_argument("--data", metavar="DIR", help="the guide's dataset in its real layout (accuracy before and "
                        "after, and agreement)")
    source.add_argument("--generate", type=arg(validate.count, "--generate"), metavar="N",
                        help="N generated images: agreement after vs before (not accuracy)")
    data.add_argument("--limit", type=arg(validate.count, "--limit"), metavar="N", help="at most N dataset images")
    data.add_argument("--mode", choices=("guide", "upstream"), default="guide", help="preprocessing and metric (guide)")
    judge = parser.add_argument_group("keep or revert")
    judge.add_argument("--budget", type=Budget.parse, metavar="METRIC=VALUE",
                       help="how far inexact passes may move the task: agreement=0.99, or top1=-0.5 / miou=-1.0 / "
                            "iou=-0.5 with --data")
    judge.add_argument("--fallback", action="store_true", help="over budget: return the most costly layers to float")
    judge.add_argument("--strict", action="store_true",
                       help="fail instead of reverting a pass; an unverified pass fails")
    judge.add_argument("--no-perf-gate", action="store_true",
                       help="keep a verified pass even when the target is significantly slower with it")
    verify = parser.add_argument_group("verification of each pass")
    verify.add_argument("--samples", type=arg(validate.count, "--samples"), default=3, metavar="N",
                        help="seeded samples per pass (3)")
    verify.add_argument("--seed", type=arg(validate.seed, "--seed"), default=0, help="seed of the first sample (0)")
    verify.add_argument("--atol", type=arg(validate.tolerance, "--atol"), default=DEFAULT_ATOL,
                        help=f"absolute tolerance ({DEFAULT_ATOL:g})")
    verify.add_argument("--rtol", type=arg(validate.tolerance, "--rtol"), default=DEFAULT_RTOL,
                        help=f"relative tolerance ({DEFAULT_RTOL:g})")
    perf = parser.add_argument_group("measurement (onnxruntime targets)")
    perf.add_argument("--precision", type=arg(validate.fraction, "--precision", open_low=True), metavar="FRACTION",
                      help="measure each batch until the paired interval is this tight (0.02)")
    perf.add_argument("--max-time", type=arg(validate.seconds, "--max-time"), metavar="S",
                      help="at most S seconds per batch (10)")
    perf.add_argument("--threads", type=arg(validate.threads, "--threads"), metavar="N",
                      help="onnxruntime intra-op threads (0: default)")
    vendor = parser.add_argument_group("vendor targets (atc)")
    vendor.add_argument("--dry-run", action="store_true",
                        help="run the passes here and write the NPU host's commands as plan.sh in the run folder")
    vendor.add_argument("--aoe", action="store_true", help="tune the after model with AOE on the NPU host")
    vendor.add_argument("--soc", metavar="SOC", help="the ATC chip (default: the recipe's)")
    vendor.add_argument("--timeout", type=arg(validate.seconds, "--timeout"), metavar="S",
                        help="seconds per vendor command")
    where = parser.add_argument_group("run folder")
    where.add_argument("--runs", metavar="DIR", default="runs", help="where run folders go (./runs)")
    where.add_argument("--run-dir", metavar="DIR", help="this run's folder (default: runs/<model>-<time>; a rerun "
                       "of the same command resumes an unfinished one and reuses unchanged steps of earlier ones)")
    add_zoo(parser)
    add_json(parser)


def request_from(args: argparse.Namespace) -> RunRequest:
    if args.passes and args.recipe:
        raise UsageError("give --pass NAME ... or --recipe, not both")
    if (args.aoe or args.soc or args.dry_run or args.timeout) and args.target.startswith("ort-"):
        flag = next(f for f, v in (("--aoe", args.aoe), ("--soc", args.soc), ("--dry-run", args.dry_run),
                                   ("--timeout", args.timeout)) if v)
        raise UsageError(f"{flag} is an option of vendor targets; target {args.target} runs here")
    if args.fallback and not args.budget:
        raise UsageError("--fallback keeps an accuracy budget: give --budget too")
    if args.limit and not args.data:
        raise UsageError("--limit applies to --data")
    passes = tuple(parse_pass_args(args.passes)) if args.passes else None
    return RunRequest(model=ModelSpec(args.model, zoo_options(args, guide=True)), target=args.target, passes=passes,
                      batches=parse_batches(args.batch) if args.batch is not None else None,
                      input_shapes=shapes_arg(args), data=args.data, generate=args.generate, limit=args.limit,
                      mode=args.mode, budget=args.budget, fallback=args.fallback, strict=args.strict,
                      verify=VerifySettings(samples=args.samples, seed=args.seed, atol=args.atol, rtol=args.rtol),
                      precision=args.precision, max_time=args.max_time, threads=args.threads,
                      perf_gate=not args.no_perf_gate, dry_run=args.dry_run, aoe=args.aoe, soc=args.soc,
                      runs_root=args.runs, run_dir=args.run_dir, timeout=args.timeout)


def run(args: argparse.Namespace) -> int:
    from surgery.passes import PASSES

    request = request_from(args)
    quiet = args.json
    with progress_bar(not quiet) as progress:
        target_events = events_for(progress, quiet, args.target)
        say = progress.console.print

        def on_phase(text: str) -> None:
            if not quiet:
                say(f"[bold]▸ {escape(text)}[/]")

        def on_notice(text: str) -> None:
            if not quiet:
                say(f"[yellow]notice:[/] {escape(text)}")

        def on_pass(outcome: PassOutcome) -> None:
            if not quiet:
                say(_pass_line(outcome))

        result = run_loop(request, zoo=zoo(), registry=PASSES, targets=_targets.targets(),
                     events=RunEvents(on_phase=on_phase, on_notice=on_notice, on_pass=on_pass, target=target_events))
    if quiet:
        print_json({"run_folder": str(result.folder), "report": str(result.report), "record": str(result.record_path),
                    **result.record.to_dict()})
        return 0 if result.ok else 1
    rows = perf_rows(result.record.perf, None)
    if rows:
        print_table(_perf_table(rows))
    steps = result.record.extra.get("step_seconds") or {}
    if steps:
        console.print("[dim]time by step: " + escape(" · ".join(f"{k} {v:.1f} s" for k, v in steps.items())) + "[/]")
    console.print(f"run folder {escape(str(result.folder))}")
    if result.reused:
        console.print(f"[dim]reused unchanged steps: {escape(', '.join(result.reused))}[/]")
    if result.plan is not None:
        console.print(f"NPU host plan {escape(str(result.plan))}")
    console.print(f"report {escape(str(result.report))}")
    status(result.ok, result.summary)
    return 0 if result.ok else 1


def _pass_line(o: PassOutcome) -> str:
    colour = {"kept": "green", "reverted": "yellow", "failed": "red"}.get(o.decision, "dim")
    what = ", ".join(f"{k} {v}" for k, v in o.counts.items()) or "no match"
    extra = " · ".join(x for x in (o.parity, o.fidelity, o.budget) if x)
    line = f"  [{colour}]{o.decision:>9}[/] {escape(o.name)}{'' if o.exact else ' (inexact)'}: {escape(what)}"
    if extra:
        line += f" [dim]{escape(extra)}[/]"
    if (o.why and o.decision != KEPT) or (o.why and "NOT VERIFIED" in o.why):
        line += f"\n            [dim]{escape(o.why)}[/]"
    return line


def _perf_table(rows: list) -> Table:
    table = Table(title="before vs after")
    for h in ("batch", "before samples/s", "after samples/s", "after/before (95% CI)", "verdict"):
        table.add_column(h, justify="left" if h == "verdict" else "right")
    for r in rows:
        ci = "—" if r.ratio is None else f"×{r.ratio:.3f} {interval_text(r.low, r.high)}"
        verdict = r.verdict + ("" if r.paired or not r.verdict else " (unpaired)")
        table.add_row(str(r.batch), _fps(r.before_fps, r.before_error), _fps(r.after_fps, r.after_error), ci,
                      escape(verdict))
    return table


def _fps(value: float | None, error: str | None) -> str:
    if error:
        return "failed"
    return "—" if value is None else f"{value:,.1f}"
