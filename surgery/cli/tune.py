"""surgery tune MODEL --target ort-cpu [--batch 1] [--pass NAME ...] [-o OUT.onnx]"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table

from surgery.bench import Variant, parse_batches, sweep
from surgery.errors import UnknownNameError, UsageError
from surgery.graph import default_output_path, load_model_file, save_model
from surgery.modelref import ModelRef, resolve_model
from surgery.perf_table import compare, diff_rich
from surgery.records import PerfRecord, RunRecord
from surgery.shapes import Shape
from surgery.tune import KEPT, Candidate, Trial, TuneResult, pass_candidates, tune

from ._common import add_json, add_verify, add_zoo, console, print_json, print_table, shapes_arg, status, zoo_options
from .bench import add_measure, add_ort_settings, measure_from_args, ort_options, progress_bar

NAME = "tune"
HELP = "keep-or-revert search over exact passes and session settings; keeps only verified, significant gains"

ROUNDS = 5  # incumbent and candidate alternate this many times per comparison


@dataclass
class TuneRequest:
    """What a target's search needs; the target decides candidates and how to measure."""

    model: Any
    ref: ModelRef
    digest: str
    args: argparse.Namespace
    input_shapes: dict[str, Shape]
    batches: list[int]
    on_trial: Callable[[Trial], None]
    progress: Any


def _tune_ort(req: TuneRequest) -> tuple[TuneResult, dict[str, Any]]:
    from surgery.tools import onnxruntime as ort_tool

    args = req.args
    target = args.target
    ort_tool.require(target)
    options = ort_options(args, target)
    measure = measure_from_args(args, default_min_time=0.5, rounds=ROUNDS)
    candidates = [] if args.no_passes else pass_candidates(args.tune_passes or None)
    if not args.no_session_settings:
        candidates += [Candidate.for_setting(c) for c in ort_tool.session_candidates(options)]
    if not candidates:
        raise UsageError("nothing to try: drop --no-passes or --no-session-settings")
    task = req.progress.add_task("baseline", total=len(candidates) + 1)
    done = {"n": 0}

    def on_trial(trial: Trial) -> None:
        done["n"] += 1
        req.progress.update(task, completed=done["n"])
        req.on_trial(trial)

    def on_phase(phase: str) -> None:
        req.progress.update(task, description="search" if phase == "search" else "before/after table")

    def measure_fn(variants: Sequence[Variant], batches: Sequence[int]) -> list[list[PerfRecord]]:
        return sweep(variants, ort_tool.run_jobs, target=target, batches=batches, measure=measure,
                     input_shapes=req.input_shapes, seed=args.seed)

    result = tune(req.model, options=options, measure=measure_fn, candidates=candidates, batch=req.batches[0],
                  batches=req.batches, min_effect=args.min_effect, samples=args.samples, seed=args.seed,
                  atol=args.atol, rtol=args.rtol, input_shapes=req.input_shapes or None, digest=req.digest,
                  on_trial=on_trial, on_phase=on_phase)
    req.progress.update(task, completed=len(candidates) + 1)
    tools = {"onnxruntime": {"version": ort_tool.version(), "before": options.settings(),
                             "after": result.options.settings(), "best": result.options.describe()}}
    return result, tools


# target name -> search. `--aoe` / `--auto-tune` (vendor adapters) add their own entries and flags.
TARGETS: dict[str, Callable[[TuneRequest], tuple[TuneResult, dict[str, Any]]]] = {
    "ort-cpu": _tune_ort,
    "ort-cuda": _tune_ort,
    "ort-trt": _tune_ort,
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL", help="an .onnx file or a zoo model name")
    parser.add_argument("--target", default="ort-cpu", help=f"where to tune: {', '.join(TARGETS)} (ort-cpu)")
    parser.add_argument("--batch", metavar="LIST", default=None,
                        help="batch sizes of the before/after table; the search compares at the first (1; with "
                             "--aoe/--auto-tune: the recipe's batch sizes)")
    parser.add_argument("--pass", dest="tune_passes", action="append", metavar="NAME",
                        help="exact pass to try (repeat; default: every exact pass that needs no options)")
    parser.add_argument("--no-passes", action="store_true", help="try session settings only")
    parser.add_argument("--no-session-settings", action="store_true", help="try passes only")
    parser.add_argument("--min-effect", type=float, default=0.0, metavar="FRACTION",
                        help="keep only speed-ups whose whole CI clears 1+FRACTION, e.g. 0.02 (0)")
    add_measure(parser, warmup=3, min_time=0.5)
    parser.add_argument("-o", "--output", metavar="OUT.onnx", help="best model (default: <model>.tuned.onnx "
                        "beside the input; zoo models in the current folder)")
    parser.add_argument("--record", metavar="FILE.json", help="run record path (default: beside the output)")
    add_ort_settings(parser)
    add_verify(parser)
    add_zoo(parser)
    add_json(parser)
    from surgery.cli.tune_ascend import add_ascend_tune_arguments

    add_ascend_tune_arguments(parser)  # --aoe, --auto-tune, --job-type, --soc, --dry-run, --workdir


def _output_path(args: argparse.Namespace, ref: ModelRef) -> Path:
    if args.output:
        return Path(args.output)
    if ref.recipe is not None:
        return Path.cwd() / f"{ref.recipe.name}.tuned.onnx"
    return default_output_path(ref.path, "tuned")


def run(args: argparse.Namespace) -> int:
    if args.aoe or args.auto_tune:
        from surgery.cli.tune_ascend import run_ascend_tune

        return run_ascend_tune(args)
    if args.dry_run:
        raise UsageError("--dry-run plans vendor tuning: use it with --aoe or --auto-tune")
    if args.target not in TARGETS:
        raise UnknownNameError("target", args.target, TARGETS)
    if args.no_verify:
        raise UsageError("tune keeps only verified changes: --no-verify is not allowed here")
    if args.inputs:
        raise UsageError("tune verifies on seeded random samples; --inputs is not supported yet")
    batches = parse_batches(args.batch or "1")
    measure_from_args(args, default_min_time=0.5, rounds=ROUNDS)  # validate before any heavy work
    shapes = shapes_arg(args)
    ref = resolve_model(args.model, **zoo_options(args))
    out_path = _output_path(args, ref)
    if out_path.exists() and out_path.resolve() == ref.path.resolve():
        raise UsageError(f"refusing to overwrite the input model {ref.path} (give another -o)")
    if not out_path.parent.is_dir():
        raise UsageError(f"output folder does not exist: {out_path.parent}")
    source = load_model_file(ref.path)
    quiet = args.json
    record = RunRecord(command="tune", argv=["surgery", *args.argv], target=args.target)
    record.input_model = {"path": str(ref.path), "digest": source.digest, "bytes": source.nbytes,
                          "zoo": ref.recipe.name if ref.recipe else None}
    record.verification = {"enabled": True, "atol": args.atol, "rtol": args.rtol, "samples": args.samples,
                           "seed": args.seed}

    def on_trial(trial: Trial) -> None:
        if not quiet:
            progress.console.print(_trial_line(trial))

    started = time.perf_counter()
    with progress_bar(not quiet) as progress:
        req = TuneRequest(model=source.model, ref=ref, digest=source.digest, args=args, input_shapes=shapes,
                          batches=batches, on_trial=on_trial, progress=progress)
        result, tools = TARGETS[args.target](req)
    elapsed = time.perf_counter() - started

    saved = save_model(result.model, out_path, protect=ref.path)
    record.output_model = {"path": str(saved.path), "digest": saved.digest, "bytes": saved.nbytes}
    record.passes = [s.to_dict() for s in result.steps]
    record.perf = result.after
    record.tools = tools
    record.extra["baseline_perf"] = [p.to_dict() for p in result.before]
    record.extra["trials"] = [t.to_dict() for t in result.trials]
    record.extra["kept"] = [t.candidate for t in result.kept]
    record_path = Path(args.record) if args.record else saved.path.with_name(
        saved.path.name.removesuffix(".onnx") + ".json")
    record.save(record_path)
    if quiet:
        print_json(record.to_dict())
        return 0
    print_table(_trials_table(result.trials))
    diff = compare([("before", result.before), ("after", result.after)], reference=ref.recipe)
    print_table(diff_rich(diff, title=f"{ref.label} on {args.target}: before vs after"))
    console.print(f"wrote {saved.path}, record {record_path}")
    kept = ", ".join(t.candidate for t in result.kept) or "nothing"
    status(True, f"kept {kept} ({len(result.kept)}/{len(result.trials)} candidates); "
                 f"session: {tools.get('onnxruntime', {}).get('best', '-')} ({elapsed:.1f} s)")
    return 0


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
