"""surgery bench MODEL [--target ort-cpu] [--batch 1,4,8,16,32] [--warmup N] [--iterations N | --min-time S]"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from surgery.bench import Measure, ProgressFn, parse_batches, sweep_one
from surgery.errors import UnknownNameError
from surgery.graph import load_model_file
from surgery.modelref import ModelRef, resolve_model
from surgery.perf_table import bench_rich
from surgery.records import PerfRecord, RunRecord
from surgery.shapes import Shape

from ._common import add_json, add_shapes, add_zoo, console, print_json, print_table, shapes_arg, status, zoo_options

NAME = "bench"
HELP = "benchmark a model per batch size: latency statistics and throughput, with a run record"

DEFAULT_BATCHES = "1,4,8,16,32"  # the guides' perf-table rows


@dataclass
class BenchRequest:
    """Everything a target needs to benchmark one model over a batch sweep."""

    model: onnx.ModelProto
    ref: ModelRef
    digest: str
    target: str
    batches: list[int]
    measure: Measure
    input_shapes: dict[str, Shape]
    reshape: bool
    args: argparse.Namespace  # target-specific flags (threads, graph optimization, ...)
    on_batch: Callable[[int, int], None] | None = None
    on_progress: ProgressFn | None = None


def ort_options(args: argparse.Namespace, target: str) -> Any:
    from surgery.tools.onnxruntime import OrtOptions

    return OrtOptions(target=target, intra_op_threads=args.threads, inter_op_threads=args.inter_op_threads,
                      graph_optimization=args.graph_optimization, execution_mode=args.execution_mode)


def _bench_ort(req: BenchRequest) -> tuple[list[PerfRecord], dict[str, Any]]:
    from surgery.tools import onnxruntime as ort_tool

    options = ort_options(req.args, req.target)
    ort_tool.require(req.target)
    records = sweep_one(req.model, ort_tool.run_jobs, target=req.target, batches=req.batches, measure=req.measure,
                        options=options, digest=req.digest, name=req.ref.label, input_shapes=req.input_shapes,
                        reshape=req.reshape, on_batch=req.on_batch, on_progress=req.on_progress)
    return records, {"onnxruntime": {"version": ort_tool.version(), **options.settings()}}


# target name -> function(BenchRequest) -> (records, tool settings for the run record).
# Vendor targets (ais-bench, trtexec) plug in here.
TARGETS: dict[str, Callable[[BenchRequest], tuple[list[PerfRecord], dict[str, Any]]]] = {
    "ort-cpu": _bench_ort,
    "ort-cuda": _bench_ort,
    "ort-trt": _bench_ort,
}


def add_measure(parser: argparse.ArgumentParser, *, warmup: int, min_time: float) -> None:
    """--warmup, and --iterations or --min-time (shared with tune)."""
    parser.add_argument("--warmup", type=int, default=warmup, metavar="N", help=f"warm-up calls per batch ({warmup})")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--iterations", type=int, metavar="N", help="timed calls per batch")
    group.add_argument("--min-time", type=float, metavar="S",
                       help=f"time each batch for at least S seconds (default {min_time:g} unless --iterations)")


def add_ort_settings(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("onnxruntime session settings (ort-* targets)")
    g.add_argument("--threads", type=int, default=0, metavar="N", help="intra-op threads (0: onnxruntime default)")
    g.add_argument("--inter-op-threads", type=int, default=0, metavar="N", help="inter-op threads (0: default)")
    g.add_argument("--graph-optimization", default="all", choices=("disable", "basic", "extended", "all"),
                   help="graph optimization level (all)")
    g.add_argument("--execution-mode", default="sequential", choices=("sequential", "parallel"),
                   help="execution mode (sequential)")


# Vendor targets run their own tools on their own model formats (.om for ais-bench), so they are
# dispatched before the model is read as ONNX.
VENDOR_TARGETS: dict[str, Callable[[argparse.Namespace], int]] = {
    "ais-bench": lambda args: _vendor().run_bench_ascend(args),
    "trtexec": lambda args: _vendor().run_bench_trtexec(args),
}


def _vendor() -> Any:
    from surgery.cli import tune_ascend

    return tune_ascend


def add_arguments(parser: argparse.ArgumentParser) -> None:
    targets = [*TARGETS, *VENDOR_TARGETS]
    parser.add_argument("model", metavar="MODEL", help="an .onnx file, a zoo model name, or an .om (ais-bench)")
    parser.add_argument("--target", default="ort-cpu", help=f"where to run: {', '.join(targets)} (ort-cpu)")
    parser.add_argument("--batch", metavar="LIST", help="batch sizes, comma-separated (default: the zoo recipe's, "
                        f"else {DEFAULT_BATCHES})")
    add_measure(parser, warmup=5, min_time=1.0)
    parser.add_argument("--no-reshape", action="store_true",
                        help="refuse batch sizes a static-batch model was not exported for (default: re-shape "
                             "with fix_shapes)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random inputs (0)")
    parser.add_argument("--record", metavar="FILE.json", help="run record path (default: <model>.bench.json "
                        "beside the model; for zoo models in the current folder)")
    add_shapes(parser)
    add_ort_settings(parser)
    add_zoo(parser)
    add_json(parser)
    _vendor().add_vendor_bench_arguments(parser)


def measure_from_args(args: argparse.Namespace, default_min_time: float, rounds: int = 1) -> Measure:
    min_time = args.min_time if args.min_time is not None else (None if args.iterations else default_min_time)
    return Measure(warmup=args.warmup, iterations=args.iterations, min_time=min_time, rounds=rounds)


def default_record_path(ref: ModelRef, suffix: str) -> Path:
    if ref.recipe is not None:
        return Path.cwd() / f"{ref.recipe.name}.{suffix}.json"
    name = ref.path.name[: -len(".onnx")] if ref.path.name.endswith(".onnx") else ref.path.name
    return ref.path.with_name(f"{name}.{suffix}.json")


def progress_bar(enabled: bool) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(),
                    console=console, transient=True, disable=not enabled)


def run(args: argparse.Namespace) -> int:
    if args.target in VENDOR_TARGETS:
        return VENDOR_TARGETS[args.target](args)
    if args.target not in TARGETS:
        raise UnknownNameError("target", args.target, [*TARGETS, *VENDOR_TARGETS])
    measure = measure_from_args(args, default_min_time=1.0)
    shapes = shapes_arg(args)
    ref = resolve_model(args.model, **zoo_options(args))
    batches = parse_batches(args.batch or (",".join(map(str, ref.recipe.batches)) if ref.recipe else DEFAULT_BATCHES))
    source = load_model_file(ref.path)
    quiet = args.json
    if not quiet:
        for notice in ref.notices:
            console.print(f"[yellow]notice:[/] {notice}")

    record = RunRecord(command="bench", argv=["surgery", *args.argv], target=args.target)
    record.input_model = {"path": str(ref.path), "digest": source.digest, "bytes": source.nbytes,
                          "zoo": ref.recipe.name if ref.recipe else None}
    record.extra["measure"] = measure.to_dict()
    record.extra["batches"] = batches

    started = time.perf_counter()
    with progress_bar(not quiet) as progress:
        task = progress.add_task(f"{args.target} batch {batches[0]}", total=len(batches))
        current = {"index": 0}

        def on_batch(index: int, batch: int) -> None:
            current["index"] = index
            progress.update(task, completed=index, description=f"{args.target} batch {batch}")

        def on_progress(fraction: float) -> None:
            progress.update(task, completed=current["index"] + fraction)

        req = BenchRequest(model=source.model, ref=ref, digest=source.digest, target=args.target, batches=batches,
                           measure=measure, input_shapes=shapes, reshape=not args.no_reshape, args=args,
                           on_batch=on_batch, on_progress=on_progress)
        records, tools = TARGETS[args.target](req)
        progress.update(task, completed=len(batches))
    elapsed = time.perf_counter() - started

    record.perf = records
    record.tools = tools
    failed = [r for r in records if not r.ok]
    ok = len(failed) < len(records)
    record.status = "PASSED" if ok else "FAILED"
    record.reason = "; ".join(f"batch {r.batch}: {r.error}" for r in failed)
    record_path = Path(args.record) if args.record else default_record_path(ref, "bench")
    record.save(record_path)
    if quiet:
        print_json(record.to_dict())
        return 0 if ok else 1
    print_table(bench_rich(records, title=f"{ref.label} on {args.target}", reference=ref.recipe))
    console.print(f"record {record_path}")
    measured = len(records) - len(failed)
    summary = f"{measured}/{len(records)} batch sizes measured on {args.target}"
    if failed:
        summary += f"; failed: batch {', '.join(str(r.batch) for r in failed)}"
    if ok:
        best = max((r for r in records if r.ok), key=lambda r: r.throughput or 0)
        summary += f"; best {best.throughput:,.1f} samples/s at batch {best.batch}"
    status(ok, f"{summary} ({elapsed:.1f} s)" if ok else f"no batch size ran: {failed[0].error}")
    return 0 if ok else 1
