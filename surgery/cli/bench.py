"""surgery bench MODEL [--target ort-cpu|ort-cuda|ort-trt|ais-bench|trtexec] [--batch 1,4,8,16,32] ..."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from surgery.perf_table import bench_rich
from surgery.targets import BENCH, get_target
from surgery.targets.model import file_stem

from . import _targets
from ._common import add_json, add_shapes, add_zoo
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
HELP = "benchmark a model per batch size: latency statistics and throughput, with a run record"

# every target-specific flag of bench; each target says which it honours, the rest are refused
SETTINGS = ("warmup", "iterations", "min_time", "seed", "no_reshape", "threads", "inter_op_threads",
            "graph_optimization", "execution_mode", "fp16", "loop", "device")


def add_measure(parser: argparse.ArgumentParser, *, warmup: int, min_time: float) -> None:
    """--warmup, and --iterations or --min-time (shared with tune)."""
    parser.add_argument("--warmup", type=int, metavar="N", help=f"warm-up calls per batch ({warmup})")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--iterations", type=int, metavar="N", help="timed calls per batch")
    group.add_argument("--min-time", type=float, metavar="S",
                       help=f"time each batch for at least S seconds (default {min_time:g} unless --iterations)")


def add_ort_settings(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("onnxruntime session settings (ort-* targets)")
    g.add_argument("--threads", type=int, metavar="N", help="intra-op threads (0: onnxruntime default)")
    g.add_argument("--inter-op-threads", type=int, metavar="N", help="inter-op threads (0: default)")
    g.add_argument("--graph-optimization", choices=("disable", "basic", "extended", "all"),
                   help="graph optimization level (all)")
    g.add_argument("--execution-mode", choices=("sequential", "parallel"), help="execution mode (sequential)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL", help="an .onnx file, a zoo model name, or an .om (ais-bench)")
    parser.add_argument("--target", default="ort-cpu", help=f"where to run: {', '.join(_targets.names(BENCH))} "
                        "(ort-cpu)")
    parser.add_argument("--batch", metavar="LIST", help="batch sizes, comma-separated (default: the zoo recipe's, "
                        "else 1,4,8,16,32; vendor targets: else 1)")
    add_measure(parser, warmup=5, min_time=1.0)
    parser.add_argument("--no-reshape", action="store_true", default=None,
                        help="refuse batch sizes a static-batch model was not exported for (default: re-shape "
                             "with fix_shapes)")
    parser.add_argument("--seed", type=int, metavar="N", help="seed of the random inputs (0)")
    parser.add_argument("--record", metavar="FILE.json", help="run record path (default: <model>.bench.json "
                        "beside the model; zoo models in the current folder; vendor targets in the workdir)")
    add_shapes(parser)
    add_ort_settings(parser)
    vendor = parser.add_argument_group("vendor targets (ais-bench, trtexec)")
    vendor.add_argument("--fp16", action="store_true", default=None,
                        help="trtexec: build the engine in FP16 (the guides' T4 column)")
    vendor.add_argument("--loop", type=int, metavar="N", help="ais-bench loops (default: --iterations, else 100)")
    vendor.add_argument("--device", type=int, metavar="ID", help="ais-bench NPU device id (0)")
    add_vendor(vendor)
    add_zoo(parser)
    add_json(parser)


def default_record_path(args: argparse.Namespace, outcome_model_path: Path | None, zoo_name: str | None,
                        vendor: bool) -> Path:
    if vendor:
        work = Path(args.workdir) if args.workdir else Path(f"{args.target}-{file_stem(Path(args.model))}")
        return work / f"{file_stem(Path(args.model))}.bench.json"
    if zoo_name is not None:
        return Path.cwd() / f"{zoo_name}.bench.json"
    assert outcome_model_path is not None
    return outcome_model_path.with_name(f"{file_stem(outcome_model_path)}.bench.json")


def run(args: argparse.Namespace) -> int:
    target = get_target(_targets.targets(), args.target, BENCH)
    request = request_from(args, SETTINGS)
    target.check(BENCH, request)
    if args.dry_run:
        return print_plan(target.plan(BENCH, request), "bench", args.json)
    quiet = args.json
    vendor = "workdir" in target.honours[BENCH]
    started = time.perf_counter()
    with progress_bar(not quiet and not vendor) as progress:
        outcome = target.bench(request, events_for(None if vendor else progress, quiet, args.target))
    elapsed = time.perf_counter() - started
    record = new_record("bench", args, args.target, outcome)
    if isinstance(outcome.detail, dict):
        record.extra.update(outcome.detail)
    model = outcome.model
    recipe = model.recipe if model is not None else None
    path = Path(args.record) if args.record else default_record_path(
        args, model.onnx if model else None, recipe.name if recipe else None, vendor)
    ok, summary = perf_status(record, f"on {args.target}")
    label = model.name if model is not None else args.model
    table = bench_rich(record.perf, title=f"{label} on {args.target}", reference=recipe)
    return save_and_report(args, record, path, table, ok, f"{summary} ({elapsed:.1f} s)" if ok else summary)


