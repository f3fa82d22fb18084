"""surgery bench MODEL [MODEL ...] [--target ort-cpu|ort-cuda|ort-trt|ais-bench|trtexec] [--batch 1,4,8] ...

One MODEL: the per-batch perf table and a record. Several: measured together in one
process (interleaved rounds, the same inputs), one record per model sharing a pairing id,
and the before/after table with the paired speed-up of each over the first.
``--calibrate`` measures this host's between-run noise for unpaired diffs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.markup import escape

from surgery import noise, validate
from surgery.errors import ToolError, UsageError
from surgery.perf_table import bench_rich, compare, diff_rich
from surgery.records import PerfRecord, RunRecord
from surgery.targets import BENCH, ModelSpec, Outcome, Target, get_target
from surgery.targets.measure import DEFAULT_MAX_TIME, DEFAULT_PRECISION, STOP_MAX_TIME
from surgery.targets.model import file_stem
from surgery.validate import arg

from . import _targets
from ._common import add_json, add_shapes, add_zoo, console, plan_records, print_json, print_table, status, zoo
from ._perf import add_min_effect, add_reference, choose_reference, summary
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

NAME = "bench"
HELP = ("benchmark models per batch size (several: measured together, paired speed-ups); latency statistics, "
        "throughput and run records")

# every target-specific flag of bench; each target says which it honours, the rest are refused
SETTINGS = ("warmup", "iterations", "min_time", "max_time", "precision", "seed", "no_reshape", "threads",
            "inter_op_threads", "graph_optimization", "execution_mode", "spinning", "fp16", "loop", "device")
# flags a calibration run passes on to each of its separate runs
_PASSED_ON = ("warmup", "iterations", "min_time", "max_time", "precision", "seed", "threads", "inter_op_threads",
              "graph_optimization", "execution_mode", "spinning")


def add_measure(parser: argparse.ArgumentParser, *, warmup: int, precision: float, max_time: float) -> None:
    """--warmup, --precision, --min-time, --max-time, or a fixed --iterations (shared with tune)."""
    g = parser.add_argument_group("measurement (rounds until the precision goal or the time cap)")
    g.add_argument("--warmup", type=arg(validate.count, "--warmup", minimum=0), metavar="N",
                   help=f"warm-up calls per model and batch, before any timing ({warmup})")
    g.add_argument("--precision", type=arg(validate.fraction, "--precision", open_low=True, open_high=True),
                   metavar="FRACTION", help=f"measure until the 95%% interval's half-width is under this, e.g. 0.02 "
                   f"for ±2%% ({precision:g})")
    g.add_argument("--max-time", type=arg(validate.seconds, "--max-time"), metavar="S",
                   help=f"stop measuring a batch after S seconds even short of the precision goal ({max_time:g})")
    exclusive = g.add_mutually_exclusive_group()
    exclusive.add_argument("--iterations", type=arg(validate.count, "--iterations"), metavar="N",
                           help="a fixed number of timed calls per model and batch (no precision goal)")
    exclusive.add_argument("--min-time", type=arg(validate.seconds, "--min-time", allow_zero=True), metavar="S",
                           help="measure each batch for at least S seconds before the precision goal may stop it")


def add_ort_settings(parser: argparse.ArgumentParser, *, spinning: bool = False) -> None:
    """--threads, --inter-op-threads, --graph-optimization, --execution-mode (shared with tune), and bench's
    --spinning (one model at a time: measured together, an idle session's spinning threads take the cores)."""
    g = parser.add_argument_group("onnxruntime session settings (ort-* targets)")
    g.add_argument("--threads", type=arg(validate.threads, "--threads"), metavar="N",
                   help="intra-op threads (0: onnxruntime default)")
    g.add_argument("--inter-op-threads", type=arg(validate.threads, "--inter-op-threads"), metavar="N",
                   help="inter-op threads (0: default)")
    g.add_argument("--graph-optimization", choices=("disable", "basic", "extended", "all"),
                   help="graph optimization level (all)")
    g.add_argument("--execution-mode", choices=("sequential", "parallel"), help="execution mode (sequential)")
    if spinning:
        g.add_argument("--spinning", action="store_true", default=None,
                       help="let idle intra-op threads spin-wait, as onnxruntime does by default (one MODEL only; "
                            "default: off, so that records measured alone and together compare like with like)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("models", nargs="*", metavar="MODEL",
                        help="an .onnx file, a zoo model name, or an .om (ais-bench); several are measured together "
                             "and compared with the first")
    parser.add_argument("--target", default="ort-cpu", help=f"where to run: {', '.join(_targets.names(BENCH))} "
                        "(ort-cpu)")
    parser.add_argument("--batch", metavar="LIST", help="batch sizes, comma-separated (default: the zoo recipe's, "
                        "else 1,4,8,16,32; vendor targets: else 1)")
    add_measure(parser, warmup=5, precision=DEFAULT_PRECISION, max_time=DEFAULT_MAX_TIME)
    parser.add_argument("--no-reshape", action="store_true", default=None,
                        help="refuse batch sizes a static-batch model was not exported for (default: re-shape "
                             "with fix_shapes)")
    parser.add_argument("--seed", type=arg(validate.seed, "--seed"), metavar="N",
                        help="seed of the random inputs (0)")
    parser.add_argument("--record", metavar="FILE.json", help="run record path (one MODEL only; default: "
                        "<model>.<target>.bench.json beside the model; zoo models in the current folder; vendor "
                        "targets in the workdir; a name holding another model's record moves to NAME-2.json)")
    parser.add_argument("--overwrite", action="store_true",
                        help="let a default-named record replace another model's record")
    add_reference(parser)
    add_min_effect(parser)
    calibrate = parser.add_argument_group("host noise (for diffs of records measured apart)")
    calibrate.add_argument("--calibrate", action="store_true",
                           help="run MODEL (default: a built-in conv stack) in --runs separate processes and store "
                                "this host's between-run noise")
    calibrate.add_argument("--runs", type=arg(validate.count, "--runs", minimum=3, maximum=200), default=None,
                           metavar="N", help=f"separate runs for --calibrate ({noise.DEFAULT_RUNS})")
    add_shapes(parser)
    add_ort_settings(parser, spinning=True)
    vendor = parser.add_argument_group("vendor targets (ais-bench, trtexec)")
    vendor.add_argument("--fp16", action="store_true", default=None,
                        help="trtexec: build the engine in FP16 (the guides' T4 column)")
    vendor.add_argument("--loop", type=arg(validate.count, "--loop"), metavar="N",
                        help="ais-bench loops (default: --iterations, else 100)")
    vendor.add_argument("--device", type=arg(validate.count, "--device", minimum=0), metavar="ID",
                        help="ais-bench NPU device id (0)")
    add_vendor(vendor)
    add_zoo(parser)
    add_json(parser)


def default_record_path(args: argparse.Namespace, outcome_model_path: Path | None, zoo_name: str | None,
                        vendor: bool, model_arg: str | None = None) -> Path:
    """``<model>.<target>.bench.json``: beside the model, zoo models in the current folder, vendor targets in
    the workdir."""
    model_arg = model_arg or args.model
    if vendor:
        work = Path(args.workdir) if args.workdir else Path(f"{args.target}-{file_stem(Path(model_arg))}")
        return work / f"{file_stem(Path(model_arg))}.{args.target}.bench.json"
    if zoo_name is not None:
        return Path.cwd() / f"{zoo_name}.{args.target}.bench.json"
    assert outcome_model_path is not None
    return outcome_model_path.with_name(f"{file_stem(outcome_model_path)}.{args.target}.bench.json")


def model_labels(args_models: list[str]) -> list[str]:
    """Short unique labels for models measured together: zoo names or file stems, numbered when they collide."""
    stems = [file_stem(Path(m)) for m in args_models]
    if len(set(stems)) == len(stems):
        return stems
    return [f"{k + 1}:{s}" for k, s in enumerate(stems)]


def run(args: argparse.Namespace) -> int:
    if args.calibrate:
        return _calibrate(args)
    if args.runs is not None:
        raise UsageError("--runs counts the separate runs of --calibrate")
    if not args.models:
        raise UsageError("give a MODEL to benchmark (an .onnx file or a zoo name), or --calibrate")
    args.model = args.models[0]
    target = get_target(_targets.targets(), args.target, BENCH)
    request = request_from(args, SETTINGS)
    request = dataclasses.replace(request, others=tuple(ModelSpec(m, request.model.zoo_options)
                                                        for m in args.models[1:]))
    target.check(BENCH, request)
    if request.others and args.record:
        raise UsageError("--record names one record; with several models each record goes beside its model")
    if args.dry_run:
        return print_plan(target.plan(BENCH, request), "bench", args.json)
    quiet = args.json
    vendor = "workdir" in target.honours[BENCH]
    # every record resolved and checked (against the models, each other, folders, space) before measuring
    planned = plan_records(args, [(m, default_record_path(args, Path(m), m if zoo().is_name(m) else None, vendor, m))
                                  for m in args.models])
    for _, note in planned:
        if note and not quiet:
            console.print(f"[yellow]notice:[/] {escape(note)}")
    started = time.perf_counter()
    with progress_bar(not quiet and not vendor) as progress:
        outcome = target.bench(request, events_for(None if vendor else progress, quiet, args.target))
    elapsed = time.perf_counter() - started
    goal = _goal(outcome)
    if outcome.members:
        return _report_together(args, target, outcome, elapsed, goal, [p for p, _ in planned])
    record = new_record("bench", args, args.target, outcome)
    if isinstance(outcome.detail, dict):
        record.extra.update(outcome.detail)
    model = outcome.model
    recipe = model.recipe if model is not None else None
    reference = choose_reference(args, [recipe.name if recipe else None])
    path = planned[0][0]
    ok, summary = perf_status(record, f"on {args.target}")
    if ok:
        summary += _short_note(record.perf, goal)
    label = model.name if model is not None else args.model
    table = bench_rich(record.perf, title=f"{label} on {args.target}", reference=reference, goal=goal)
    return save_and_report(args, record, path, table, ok, f"{summary} ({elapsed:.1f} s)" if ok else summary)


def _goal(outcome: Outcome) -> float | None:
    """The precision goal the target measured to (None for a fixed count or a vendor tool)."""
    detail = outcome.detail if isinstance(outcome.detail, dict) else {}
    measure = detail.get("measure") or {}
    return None if measure.get("iterations") else measure.get("precision")


def _short_note(records: list[PerfRecord], goal: float | None) -> str:
    """``; batch 8 stopped at --max-time short of ±2% (±3.1%)`` for batches whose interval missed the goal."""
    if goal is None:
        return ""
    short = sorted({(r.batch, r.half_width) for r in records
                    if r.ok and r.stop == STOP_MAX_TIME and r.half_width is not None and r.half_width > goal},
                   key=lambda x: x[0])
    if not short:
        return ""
    which = ", ".join(f"batch {b} (±{h * 100:.1f}%)" for b, h in short)
    return f"; stopped at --max-time short of ±{goal * 100:g}%: {which}"


def _report_together(args: argparse.Namespace, target: Target, outcome: Outcome, elapsed: float,
                     goal: float | None, planned: list[Path]) -> int:
    """Several models measured together: one record each, the paired before/after table, the verdicts."""
    labels = model_labels(args.models)
    members = outcome.members
    reference = choose_reference(args, [m.model.recipe.name if m.model.recipe else None for m in members])
    paths: list[Path] = []
    records: list[RunRecord] = []
    for member, path in zip(members, planned, strict=True):  # planned before measuring: one record each
        single = Outcome(records=member.records, tools=outcome.tools, model=member.model)
        record = new_record("bench", args, args.target, single)
        if isinstance(outcome.detail, dict):
            record.extra.update(outcome.detail)
        paths.append(path)
        records.append(record)
    group = next((r.paired_with.split("/")[0] for r in members[0].records if r.paired_with), None)
    pairing = {"id": group, "models": [{"label": label, "model": arg_model, "digest": m.model.digest,
                                        "record": str(path)}
                                       for label, arg_model, m, path in zip(labels, args.models, members, paths,
                                                                            strict=True)]}
    verdicts = [perf_status(record, f"on {args.target}") for record in records]
    ok = all(v[0] for v in verdicts)
    for record, path in zip(records, paths, strict=True):
        record.pairing = pairing
        path.parent.mkdir(parents=True, exist_ok=True)
        record.save(path)
    diff = compare(list(zip(labels, (m.records for m in members), strict=True)), reference=reference,
                   min_effect=args.min_effect)
    if args.json:
        print_json({"pairing": pairing, "records": [r.to_dict() for r in records], "diff": diff.to_dict()})
        return 0 if ok else 1
    print_table(diff_rich(diff, title=f"{' vs '.join(labels)} on {args.target}: measured together (paired)"))
    for label, path in zip(labels, paths, strict=True):
        console.print(f"record {escape(label)}: {escape(str(path))}")
    note = _short_note(members[0].records, goal)
    if not ok:
        failed = next(v[1] for v in verdicts if not v[0])
        status(False, failed)
        return 1
    status(True, f"{summary(diff)}{note} ({elapsed:.1f} s)")
    return 0


# ---------------------------------------------------------------------------
# --calibrate


def _calibrate(args: argparse.Namespace) -> int:
    """Run one model in separate processes and store the spread of their medians as this host's noise."""
    if len(args.models) > 1:
        raise UsageError("--calibrate measures one model (or the built-in one when none is given)")
    if args.record or args.dry_run:
        raise UsageError(f"--calibrate stores its result per host in {noise.cache_path()}; "
                         f"{'--record' if args.record else '--dry-run'} does not apply")
    target = get_target(_targets.targets(), args.target, BENCH)
    if "workdir" in target.honours[BENCH]:
        raise UsageError(f"--calibrate measures in-process targets (ort-*), not {args.target}")
    runs = args.runs or noise.DEFAULT_RUNS
    quiet = args.json
    with tempfile.TemporaryDirectory(prefix="surgery-calibrate-") as tmp:
        if args.models:
            model, label = args.models[0], args.models[0]
        else:
            import onnx

            model, label = str(Path(tmp) / "calibration.onnx"), "built-in conv stack (8 x conv 32 ch, 32x32)"
            onnx.save(noise.conv_stack(), model)

        def run_once(index: int) -> float:
            return _separate_run(args, model, Path(tmp) / f"run-{index}.json")

        def on_run(index: int, median: float) -> None:
            if not quiet:
                console.print(f"  run {index + 1}/{runs}: median {median:.4f} ms")

        if not quiet:
            console.print(f"calibrating {escape(label)} on {args.target}: {runs} separate runs at batch 1")
        result = noise.calibrate(run_once, runs=runs, model=label, on_run=on_run)
    path = noise.store(result, args.target)
    if quiet:
        print_json({"calibration": result.to_dict(), "target": args.target, "stored": str(path)})
        return 0
    status(True, f"between-run noise on {args.target}: ±{result.sigma * 100:.1f}% (upper "
                 f"{noise.UPPER_BOUND_LEVEL * 100:g}% bound; the {result.runs} runs spread ±"
                 f"{result.sample_sigma * 100:.1f}%), stored in {path}; unpaired diffs on this host use it")
    return 0


def _passed_on(args: argparse.Namespace) -> list[str]:
    """The measurement and session flags the user gave, as argv for each separate run."""
    out: list[str] = []
    for name in _PASSED_ON:
        value = getattr(args, name, None)
        if value is True:  # a switch
            out.append(f"--{name.replace('_', '-')}")
        elif value is not None:
            out += [f"--{name.replace('_', '-')}", str(value)]
    for shapes in getattr(args, "input_shapes", None) or []:
        out += ["--input-shapes", shapes]
    return out


def _separate_run(args: argparse.Namespace, model: str, record: Path) -> float:
    """One ``surgery bench MODEL --batch 1`` in a fresh process; its median latency in ms.

    Raises:
        ToolError: the run failed (its last stderr line), or its record has no latency.
    """
    argv = ["bench", model, "--target", args.target, "--batch", "1", "--record", str(record), "--json",
            "--no-reference", *_passed_on(args)]
    for flag, value in (("--checkpoint", args.checkpoint), *(("--variant", v) for v in args.variant)):
        if value:
            argv += [flag, value]
    done = subprocess.run([sys.executable, "-m", "surgery.cli.main", *argv], capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ToolError(f"calibration run failed (exit {done.returncode}): {tail}")
    try:
        data: Any = json.loads(done.stdout)
        median = float(data["perf"][0]["stats"]["median"])
    except (ValueError, KeyError, IndexError, TypeError):
        raise ToolError("calibration run wrote no median latency at batch 1") from None
    return median
