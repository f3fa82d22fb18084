"""surgery tune MODEL [--target ort-cpu] [--pass NAME ...] [-o OUT.onnx] | --aoe | --auto-tune"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

from rich.markup import escape
from rich.table import Table
from surgery.tools.ascend.aoe_flow import TuneReport

from surgery import validate
from surgery.errors import UsageError
from surgery.graph import default_output_path, save_model
from surgery.perf_table import compare, diff_rich
from surgery.search import KEPT, SearchResult, Trial
from surgery.stats import DEFAULT_MIN_EFFECT
from surgery.targets import TUNE, Outcome, Request, Target, get_target
from surgery.targets.measure import TUNE_MAX_TIME, TUNE_PRECISION
from surgery.validate import arg

from . import _budget, _targets
from ._common import (
    add_json,
    add_verify,
    add_zoo,
    console,
    plan_model_outputs,
    print_json,
    print_table,
    status,
    zoo,
)
from ._run import (
    add_vendor,
    events_for,
    new_record,
    perf_status,
    print_plan,
    progress_bar,
    request_from,
    save_and_report,
)
from .bench import add_measure, add_ort_settings

NAME = "tune"
HELP = "keep-or-revert search over exact passes and session settings; or AOE / auto_tune on Ascend"

SETTINGS = ("warmup", "iterations", "min_time", "max_time", "precision", "seed", "threads", "inter_op_threads",
            "graph_optimization", "execution_mode", "passes", "no_passes", "no_session_settings", "min_effect",
            "samples", "atol", "rtol", "method", "job_type", "soc", "loop", "device", "bank_root",
            "budget", "fallback", "fallback_layers", "budget_data", "budget_samples", "calib")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL", help="an .onnx file or a zoo model name")
    parser.add_argument("--target", default="ort-cpu", help=f"where to tune: {', '.join(_targets.names(TUNE))} "
                        "(ort-cpu; --aoe and --auto-tune choose atc)")
    parser.add_argument("--batch", metavar="LIST", default=None,
                        help="batch sizes of the before/after table; the search compares at the first (1; with "
                             "--aoe/--auto-tune: the recipe's batch sizes)")
    parser.add_argument("--pass", dest="passes", action="append", metavar="NAME",
                        help="exact pass to try (repeat; default: every exact pass that needs no options)")
    parser.add_argument("--no-passes", action="store_true", default=None, help="try session settings only")
    parser.add_argument("--no-session-settings", action="store_true", default=None, help="try passes only")
    parser.add_argument("--min-effect", type=arg(validate.fraction, "--min-effect", open_high=True),
                        metavar="FRACTION",
                        help=f"keep only speed-ups whose whole CI clears 1+FRACTION ({DEFAULT_MIN_EFFECT:g})")
    add_measure(parser, warmup=3, precision=TUNE_PRECISION, max_time=TUNE_MAX_TIME)
    parser.add_argument("-o", "--output", metavar="OUT.onnx", help="best model (default: <model>.tuned.onnx "
                        "beside the input; zoo models in the current folder)")
    parser.add_argument("--record", metavar="FILE.json", help="run record path (default: beside the output)")
    add_ort_settings(parser)
    add_verify(parser, defaults_none=True)
    ascend = parser.add_argument_group("Ascend tuning (AOE or ATC auto_tune)")
    method = ascend.add_mutually_exclusive_group()
    method.add_argument("--aoe", dest="method", action="store_const", const="aoe",
                        help="tune with AOE, then compile with the tuned bank")
    method.add_argument("--auto-tune", dest="method", action="store_const", const="auto_tune",
                        help="tune with ATC --auto_tune_mode=RL,GA (CANN < 6.0.1)")
    ascend.add_argument("--job-type", metavar="1|2|1,2",
                        help="AOE job types in order: 1 subgraph, 2 operator (default: the recipe's, else 1,2)")
    ascend.add_argument("--soc", metavar="SOC", help="the chip for ATC --soc_version (default: the recipe's, "
                        "else Ascend310P3)")
    ascend.add_argument("--loop", type=arg(validate.count, "--loop"), metavar="N", help="ais_bench loops per om (100)")
    ascend.add_argument("--device", type=arg(validate.count, "--device", minimum=0), metavar="ID",
                        help="NPU device id (0)")
    ascend.add_argument("--bank-root", metavar="DIR", help="where tuned banks are cached (default: <workdir>/banks)")
    add_vendor(ascend)
    _budget.add_arguments(parser, defaults_none=True)
    add_zoo(parser)
    add_json(parser)


def run(args: argparse.Namespace) -> int:
    name = "atc" if args.method else args.target
    if args.method and args.target not in ("ort-cpu", "atc"):
        raise UsageError(f"--{args.method.replace('_', '-')} tunes on the atc target, not {args.target}")
    target = get_target(_targets.targets(), name, TUNE)
    if args.no_verify:
        raise UsageError("tune keeps only verified changes: --no-verify is not allowed here")
    if args.inputs:
        raise UsageError("tune verifies on seeded random samples; --inputs is not supported yet")
    request = request_from(args, SETTINGS)
    target.check(TUNE, request)
    if args.dry_run:
        return print_plan(target.plan(TUNE, request), "tune", args.json)
    quiet = args.json
    if args.method:
        outcome = target.tune(request, events_for(None, quiet, name))
        return _report_vendor(args, outcome)
    # the model and the record resolved and checked before the search, not after it
    zoo_name = args.model if zoo().is_name(args.model) else None
    default = Path.cwd() / f"{zoo_name}.tuned.onnx" if zoo_name else default_output_path(Path(args.model), "tuned")
    out_path, record_path, note = plan_model_outputs(args, default)
    if note and not quiet:
        console.print(f"[yellow]notice:[/] {escape(note)}")
    return _tune_ort(args, target, request, quiet, out_path, record_path)


def _tune_ort(args: argparse.Namespace, target: Target, request: Request, quiet: bool, out_path: Path,
              record_path: Path) -> int:
    started = time.perf_counter()
    with progress_bar(not quiet) as progress:
        events = events_for(progress, quiet, "baseline")
        count = events.on_trial

        def on_trial(trial: Trial) -> None:
            if count is not None:
                count(trial)
            if not quiet:
                progress.console.print(_trial_line(trial))

        outcome = target.tune(request, dataclasses.replace(events, on_trial=on_trial))
    elapsed = time.perf_counter() - started
    result: SearchResult = outcome.detail
    model = outcome.model
    assert model is not None
    saved = save_model(result.model, out_path, protect=model.onnx)
    record = new_record("tune", args, args.target, outcome)
    record.output_model = {"path": str(saved.path), "digest": saved.digest, "bytes": saved.nbytes}
    record.verification = {"enabled": True, "atol": request.get("atol"), "rtol": request.get("rtol"),
                           "samples": request.get("samples", 3), "seed": request.get("seed", 0)}
    record.passes = [s.to_dict() for s in result.steps]
    record.extra["baseline_perf"] = [p.to_dict() for p in result.before]
    record.extra["trials"] = [t.to_dict() for t in result.trials]
    record.extra["kept"] = [t.candidate for t in result.kept]
    record.save(record_path)
    if quiet:
        print_json(record.to_dict())
        return 0
    print_table(_trials_table(result.trials))
    diff = compare([("before", result.before), ("after", result.after)], reference=model.recipe)
    print_table(diff_rich(diff, title=f"{model.name} on {args.target}: before vs after"))
    console.print(f"wrote {saved.path}, record {record_path}")
    kept = ", ".join(t.candidate for t in result.kept) or "nothing"
    status(True, f"kept {kept} ({len(result.kept)}/{len(result.trials)} candidates); "
                 f"session: {outcome.tools.get('onnxruntime', {}).get('best', '-')} ({elapsed:.1f} s)")
    return 0


def _report_vendor(args: argparse.Namespace, outcome: Outcome) -> int:
    report: TuneReport = outcome.detail
    method = outcome.tools.get("method", "aoe")
    record = new_record("tune", args, f"ascend-{method}", outcome)
    record.extra["banks"] = report.banks
    model = outcome.model
    name = model.name if model is not None else args.model
    work = Path(args.workdir) if args.workdir else Path(f"ascend-{name}")
    path = Path(args.record) if args.record else work / f"{name}.tune-{method}.json"
    ok, summary = perf_status(record, f"{method} on {outcome.tools.get('soc_version')}", unit="rows")
    return save_and_report(args, record, path, _vendor_table(report, name, method), ok, summary)


def _vendor_table(report: TuneReport, name: str, method: str) -> Table:
    table = Table(title=f"{name}: untuned vs {method} (ais_bench samples/s)")
    for column in ("batch", "untuned", method, "ratio", "bank"):
        table.add_column(column, justify="right" if column != "bank" else "left")
    banks = {b["batch"]: b for b in report.banks}
    for row in report.rows():
        bank = banks.get(row["batch"], {})
        where = ("cached " if bank.get("cached") else "") + (bank.get("digest") or "")[:12]
        table.add_row(str(row["batch"]), _fmt(row["untuned"], row["untuned_error"]),
                      _fmt(row["tuned"], row["tuned_error"]),
                      f"{row['ratio']:.3f}x" if row["ratio"] else "-", escape(where or "-"))
    return table


def _fmt(value: float | None, error: str | None) -> str:
    if value is not None:
        return f"{value:.2f}"
    return "[red]failed[/]" if error else "-"


def _trial_line(trial: Trial) -> str:
    colour = {"kept": "green", "reverted": "yellow", "failed": "red"}.get(trial.decision, "dim")
    return f"  [{colour}]{trial.decision:>8}[/] {escape(trial.candidate)}: {escape(trial.reason)}"


def _trials_table(trials: list[Trial]) -> Table:
    table = Table(title="tried")
    for h in ("candidate", "decision", "speed-up (95% CI)", "why"):
        table.add_column(h)
    for t in trials:
        ratio = t.ratio.describe() if t.ratio else "—"
        style = "green" if t.decision == KEPT else ""
        table.add_row(escape(t.candidate), f"[{style}]{t.decision}[/]" if style else t.decision, ratio,
                      escape(t.reason))
    return table
