"""The Ascend and TensorRT sides of ``surgery tune`` and ``surgery bench``.

- ``surgery tune MODEL --aoe [--job-type 1|2|1,2] [--soc Ascend310P3] [--batch 1,4]``: the recipe's
  passes → ONNX → AOE per batch (isolated bank) → atc with the bank → ais_bench, against the
  untuned atc build. ``--auto-tune`` takes ATC's ``--auto_tune_mode=RL,GA`` route (CANN < 6.0.1).
- ``surgery bench MODEL.om --target ais-bench`` and ``surgery bench MODEL.onnx --target trtexec [--fp16]``.

The ``tune`` and ``bench`` verbs own their modules; they call :func:`add_ascend_tune_arguments`
/ :func:`run_ascend_tune` and :func:`add_vendor_bench_arguments` / :func:`run_bench_ascend`
/ :func:`run_bench_trtexec`. The library-level entry points (:func:`bench_ascend`,
:func:`bench_trtexec`, :func:`plan_bench_ascend`, :func:`plan_bench_trtexec`) take explicit
parameters and return perf records.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table
from surgery.tools.ascend import ais_bench as ais
from surgery.tools.ascend import env as ascend_env
from surgery.tools.ascend import tune as ascend_tune
from surgery.tools.ascend.plan import Plan, Step, StepResult, check_requirements, execute
from surgery.tools.runner import ToolOutputError
from surgery.tools.tensorrt import trtexec as trt

from surgery.errors import UsageError
from surgery.records import PerfRecord, RunRecord

from ._common import console, print_json, status
from ._vendor import VendorModel, parse_batch_list, prepare_model, recipe_settings

DEFAULT_SOC = "Ascend310P3"
VENDOR_BENCH_TARGETS = ("ais-bench", "trtexec")


def _add(parser: argparse.ArgumentParser | Any, *flags: str, **kwargs: Any) -> None:
    """Add an option unless the verb already has it (``--batch``, ``--json``... are shared with other targets)."""
    existing = getattr(parser, "_option_string_actions", {})
    if any(f in existing for f in flags):
        return
    parser.add_argument(*flags, **kwargs)


def _add_common(parser: argparse.ArgumentParser) -> None:
    _add(parser, "--batch", metavar="LIST", help="batch sizes, comma-separated (default: the recipe's)")
    _add(parser, "--input-shapes", metavar="NAME:DIMS", action="append", default=[],
         help="input sizes, trtexec syntax: input:1x3x96x96 (for dynamic dimensions besides the batch)")
    _add(parser, "--dry-run", action="store_true", help="print the exact commands (runnable on the NPU/GPU host); "
         "run nothing")
    _add(parser, "--workdir", metavar="DIR", help="where models, logs and results go (default: ./<target>-<model>)")
    _add(parser, "--timeout", type=float, metavar="S", help="seconds per tool command (default: none)")
    _add(parser, "--record", metavar="FILE.json", help="run record path (default: in the workdir)")
    _add(parser, "--json", action="store_true", help="print machine-readable JSON instead of tables")


def add_ascend_tune_arguments(parser: argparse.ArgumentParser) -> None:
    """``--aoe``, ``--auto-tune``, ``--job-type``, ``--soc``, ``--batch``, ``--dry-run``, ``--workdir`` and friends.

    Options the ``tune`` verb already defines are left as they are.
    """
    group = parser.add_argument_group("Ascend tuning (AOE or ATC auto_tune)")
    _add(group, "--aoe", action="store_true", help="tune with AOE, then compile with the tuned bank")
    _add(group, "--auto-tune", action="store_true", help="tune with ATC --auto_tune_mode=RL,GA (CANN < 6.0.1)")
    _add(group, "--job-type", metavar="1|2|1,2",
         help="AOE job types in order: 1 subgraph, 2 operator (default: the recipe's, else 1,2)")
    _add(group, "--soc", metavar="SOC", help=f"the chip for ATC --soc_version (default: {DEFAULT_SOC})")
    _add(group, "--loop", type=int, default=100, metavar="N", help="ais_bench loops per om (100)")
    _add(group, "--device", type=int, default=0, metavar="ID", help="NPU device id (0)")
    _add(group, "--bank-root", metavar="DIR", help="where tuned banks are cached (default: <workdir>/banks)")
    _add_common(group)


def parse_job_types(text: str | None, default: Sequence[int] = (1, 2)) -> tuple[int, ...]:
    """``"1,2"`` → (1, 2); None → ``default``."""
    if text is None:
        return tuple(default)
    out: list[int] = []
    for item in str(text).split(","):
        item = item.strip()
        if item not in ("1", "2"):
            raise UsageError(f"--job-type takes 1 (subgraph), 2 (operator) or 1,2; got {text!r}")
        if int(item) in out:
            raise UsageError(f"--job-type {item} given twice")
        out.append(int(item))
    return tuple(out)


def _recipe_job_types(recipe_aoe: Mapping[str, Any]) -> tuple[int, ...]:
    value = recipe_aoe.get("job_types", recipe_aoe.get("job_type"))
    if value is None:
        return (1, 2)
    if isinstance(value, (list, tuple)):
        return tuple(int(v) for v in value)
    return parse_job_types(str(value))


def _workdir(args: argparse.Namespace, prefix: str, model: str) -> Path:
    if getattr(args, "workdir", None):
        return Path(args.workdir)
    stem = Path(model).name
    for suffix in (".onnx", ".om"):
        stem = stem[: -len(suffix)] if stem.endswith(suffix) else stem
    return Path(f"{prefix}-{stem}")


def run_ascend_tune(args: argparse.Namespace) -> int:
    """``surgery tune MODEL --aoe|--auto-tune``: plan, or tune and print the perf table; exit 0/1/2."""
    if bool(getattr(args, "aoe", False)) == bool(getattr(args, "auto_tune", False)):
        raise UsageError("give exactly one of --aoe and --auto-tune")
    method = "aoe" if args.aoe else "auto_tune"
    if method == "auto_tune" and getattr(args, "job_type", None):
        raise UsageError("--job-type is an AOE option; --auto-tune has none")
    work = _workdir(args, "ascend", args.model)
    dry_run = bool(getattr(args, "dry_run", False))
    version = ascend_env.cann_version()

    def config_for(vm: VendorModel) -> ascend_tune.TuneConfig:
        aoe_settings = recipe_settings(vm.recipe, "aoe")
        atc_settings = recipe_settings(vm.recipe, "atc")
        soc = args.soc or atc_settings.get("soc_version") or DEFAULT_SOC
        job_types = parse_job_types(args.job_type, _recipe_job_types(aoe_settings))
        return ascend_tune.TuneConfig(
            onnx=str(vm.onnx), name=vm.name, soc_version=str(soc), input_shapes=vm.shapes,
            batches=tuple(vm.batches), method=method, job_types=job_types, workdir=str(work),
            bank_root=getattr(args, "bank_root", None), atc=atc_settings,
            aoe={k: v for k, v in aoe_settings.items() if k not in ("job_type", "job_types")},
            onnx_digest=vm.digest, cann_version=version, loop=getattr(args, "loop", 100) or 100,
            device=getattr(args, "device", 0))

    planned = prepare_model(args.model, workdir=work, batch=args.batch, input_shapes=args.input_shapes,
                            dry_run=True)
    config = config_for(planned)
    plan = ascend_tune.build_plan(config, prelude=planned.prelude)
    plan.notes[:0] = planned.notes
    if not args.soc and not recipe_settings(planned.recipe, "atc").get("soc_version"):
        plan.notes.append(f"soc {config.soc_version} by default: give --soc (npu-smi info shows the chip)")
    if dry_run:
        return _print_plan(args, plan, "tune")
    check_requirements(plan)  # one line naming a missing atc/aoe/ais_bench before any export
    vm = prepare_model(args.model, workdir=work, batch=args.batch, input_shapes=args.input_shapes, dry_run=False)
    config = config_for(vm)
    quiet = bool(getattr(args, "json", False))

    def on_step(index: int, step: Step) -> None:
        if not quiet:
            console.print(f"[dim][{index + 1}] {escape(step.description)}[/]")

    report = ascend_tune.run_tune(config, timeout=getattr(args, "timeout", None), on_step=on_step)
    record = RunRecord(command="tune", argv=["surgery", *getattr(args, "argv", [])], target=f"ascend-{method}")
    record.input_model = {"path": str(vm.onnx), "digest": vm.digest,
                          "zoo": vm.recipe.name if vm.recipe else None}
    record.perf = report.perf
    record.tools = {"cann_version": version, "soc_version": config.soc_version, "method": method,
                    "job_types": list(config.job_types) if method == "aoe" else []}
    record.extra = {"banks": report.banks, "plan": report.plan.to_dict(),
                    "steps": [r.to_dict() for r in report.steps]}
    return _finish(args, record, work / f"{vm.name}.tune-{method}.json", _tune_table(report, vm.name, method),
                   f"{method} on {config.soc_version}")


def _tune_table(report: ascend_tune.TuneReport, name: str, method: str) -> Table:
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


def _print_plan(args: argparse.Namespace, plan: Plan, verb: str) -> int:
    if getattr(args, "json", False):
        print_json({"dry_run": True, "plan": plan.to_dict()})
        return 0
    console.print(plan.render(), markup=False, highlight=False)
    commands = sum(1 for s in plan.steps if s.skip is None)
    status(True, f"dry run: {commands} commands planned for {verb}; nothing run")
    return 0


def _finish(args: argparse.Namespace, record: RunRecord, default_path: Path, table: Table, what: str) -> int:
    failed = [r for r in record.perf if not r.ok]
    ok = bool(record.perf) and len(failed) < len(record.perf)
    record.status = "PASSED" if ok else "FAILED"
    record.reason = "; ".join(f"batch {r.batch} ({r.settings.get('build', r.target)}): {r.error}" for r in failed)
    path = Path(args.record) if getattr(args, "record", None) else default_path
    path.parent.mkdir(parents=True, exist_ok=True)
    record.save(path)
    if getattr(args, "json", False):
        print_json(record.to_dict())
        return 0 if ok else 1
    console.print(table)
    console.print(f"record {escape(str(path))}")
    measured = len(record.perf) - len(failed)
    summary = f"{measured}/{len(record.perf)} rows measured, {what}"
    if failed:
        summary += f"; failed: {', '.join(sorted({f'batch {r.batch}' for r in failed}))}"
    status(ok, summary)
    return 0 if ok else 1


# ---------------------------------------------------------------------------
# bench --target ais-bench | trtexec


def add_vendor_bench_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``surgery bench --target ais-bench|trtexec`` the bench verb may not have already."""
    group = parser.add_argument_group("ais-bench and trtexec targets")
    _add(group, "--fp16", action="store_true", help="trtexec: build the engine in FP16 (the guides' T4 column)")
    _add(group, "--loop", type=int, metavar="N", help="ais_bench loops (default: --iterations, else 100)")
    _add(group, "--device", type=int, default=0, metavar="ID", help="NPU device id for ais_bench (0)")
    _add_common(group)


def plan_bench_ascend(om: str | os.PathLike, *, batch: int | None = None, loop: int = 100,
                      warmup: int | None = None, device: int | None = 0, workdir: str | os.PathLike = ".",
                      python: str = "python3", layout: str = "ais_bench") -> tuple[Plan, ais.AisBenchOptions]:
    """The ais_bench command for one om (its batch from ``batch``, else ``_bs<N>`` in its name)."""
    from surgery.tools.ascend.benchmark import batch_from_name

    om = str(om)
    if not om.endswith(".om"):
        raise UsageError(f"ais-bench measures a compiled .om, got {om}: compile it first "
                         f"(surgery compile MODEL --target atc --soc ...)")
    batch = batch or batch_from_name(om)
    stem = Path(om).name[: -len(".om")]
    options = ais.AisBenchOptions(model=om, batchsize=batch, loop=loop, warmup_count=warmup, device=device,
                                  output=str(Path(workdir) / "ais_bench"), output_dirname=stem, python=python,
                                  layout=layout)
    plan = Plan(title=f"measure {om} with ais_bench")
    plan.add(Step(tuple(options.argv()), f"ais_bench pure inference, {loop} loops", "python:ais_bench",
                  produces=(str(options.summary_json_path()),), group="om",
                  meta={"kind": "ais_bench", "batch": batch, "summary": str(options.summary_json_path())}))
    if batch is None:
        plan.notes.append("batch not given nor in the om name: ais_bench detects it; the record takes the batch "
                          "from its throughput")
    return plan, options



def bench_ascend(om: str | os.PathLike, *, batch: int | None = None, loop: int = 100, warmup: int | None = None,
                 device: int | None = 0, workdir: str | os.PathLike = ".", timeout: float | None = None,
                 python: str = "python3", env: Mapping[str, str] | None = None) -> list[PerfRecord]:
    """Measure one om with ais_bench; one PerfRecord (``error`` set if the run failed).

    Raises:
        ToolNotFoundError: no python3 with ais_bench (checked first).
    """
    if not Path(om).is_file():
        from surgery.errors import ModelLoadError

        raise ModelLoadError(f"om not found: {om}")
    plan, options = plan_bench_ascend(om, batch=batch, loop=loop, warmup=warmup, device=device, workdir=workdir,
                                      python=python)
    results = execute(plan, log_dir=Path(workdir) / "logs", timeout=timeout, env=env)
    return [_ais_record(results[0], options)]


def _ais_record(result: StepResult, options: ais.AisBenchOptions) -> PerfRecord:
    if not result.ok:
        return PerfRecord(target=ais.TARGET, batch=options.batchsize or 1, model=options.model,
                          error=str(result.error or result.skipped))
    summary = options.summary_json_path()
    try:
        if summary is not None and summary.is_file():
            record = ais.parse_summary_json(summary, batch=options.batchsize, model=options.model)
        else:
            assert result.run is not None
            record = ais.parse_summary_text(result.run.output, batch=options.batchsize, model=options.model,
                                            source=str(result.run.log_path) if result.run.log_path else None)
    except ToolOutputError as exc:
        return PerfRecord(target=ais.TARGET, batch=options.batchsize or 1, model=options.model, error=str(exc))
    record.target_version = ascend_env.cann_version()
    record.settings.update({"loop": options.loop, "device": options.device})
    return record


def trtexec_options_for(onnx: str, shapes: Mapping[str, Sequence[int]] | None, settings: Mapping[str, Any],
                        **overrides: Any) -> trt.TrtexecOptions:
    """TrtexecOptions from a recipe's ``trtexec`` dict (field names or trtexec flags) plus overrides."""
    aliases = {"saveEngine": "save_engine", "loadEngine": "load_engine", "warmUp": "warm_up",
               "avgRuns": "avg_runs", "minShapes": "min_shapes", "optShapes": "opt_shapes",
               "maxShapes": "max_shapes"}
    known = set(trt.TrtexecOptions.__dataclass_fields__) - {"extra", "onnx", "shapes"}
    fields: dict[str, Any] = {}
    extra: list[tuple[str, str | None]] = []
    for key, value in {**settings, **overrides}.items():
        if value is None or key in ("shapes", "onnx", "notes", "note", "device", "gpu"):
            continue
        name = aliases.get(key, key.replace("-", "_"))
        if name in known:
            fields[name] = value
        else:
            extra.append((key, None if value is True else str(value)))
    return trt.TrtexecOptions(onnx=onnx, shapes=dict(shapes) if shapes else None, extra=tuple(extra), **fields)


def plan_bench_trtexec(vm: VendorModel, *, fp16: bool | None = None, iterations: int | None = None,
                       warm_up_ms: int | None = None, duration_s: int | None = None,
                       workdir: str | os.PathLike = ".") -> tuple[Plan, list[trt.TrtexecOptions]]:
    """One trtexec command per batch size (``--shapes`` for dynamic-batch inputs only)."""
    settings = recipe_settings(vm.recipe, "trtexec")
    plan = Plan(title=f"measure {vm.name} with trtexec, batch {', '.join(map(str, vm.batches))}")
    plan.steps.extend(vm.prelude)
    plan.notes.extend(vm.notes)
    options_list: list[trt.TrtexecOptions] = []
    for batch in vm.batches:
        shapes = {k: v for k, v in vm.shapes[batch].items() if k in vm.dynamic}
        overrides: dict[str, Any] = {"iterations": iterations, "warm_up": warm_up_ms, "duration": duration_s}
        if fp16 is not None:
            overrides["fp16"] = fp16 or bool(settings.get("fp16"))
        options = trtexec_options_for(str(vm.onnx), shapes or None, settings, **overrides)
        options_list.append(options)
        plan.add(Step(tuple(options.argv()), f"trtexec {vm.name} bs{batch}{' fp16' if options.fp16 else ''}",
                      "trtexec", success_line=trt.SUCCESS_LINE, failure_line=trt.FAILURE_LINE, group=f"bs{batch}",
                      meta={"kind": "trtexec", "batch": batch}))
    return plan, options_list


def bench_trtexec(model: str, *, batches: str | None = None, input_shapes: Sequence[str] = (),
                  fp16: bool | None = None, iterations: int | None = None, warm_up_ms: int | None = None,
                  duration_s: int | None = None, workdir: str | os.PathLike = ".", timeout: float | None = None,
                  env: Mapping[str, str] | None = None) -> list[PerfRecord]:
    """Measure an ONNX (or zoo model, exported and passed) with trtexec at each batch size.

    Returns:
        One PerfRecord per batch; a failed batch keeps ``error``.

    Raises:
        ToolNotFoundError: trtexec is missing (checked before any export).
    """
    planned = prepare_model(model, workdir=workdir, batch=batches, input_shapes=input_shapes, dry_run=True)
    plan, _ = plan_bench_trtexec(planned, fp16=fp16, iterations=iterations, warm_up_ms=warm_up_ms,
                                 duration_s=duration_s, workdir=workdir)
    check_requirements(plan, env)
    vm = prepare_model(model, workdir=workdir, batch=batches, input_shapes=input_shapes, dry_run=False)
    plan, options_list = plan_bench_trtexec(vm, fp16=fp16, iterations=iterations, warm_up_ms=warm_up_ms,
                                            duration_s=duration_s, workdir=workdir)
    results = execute(plan, log_dir=Path(workdir) / "logs", timeout=timeout, env=env)
    records: list[PerfRecord] = []
    for result, options, batch in zip(results, options_list, vm.batches, strict=True):
        if not result.ok:
            records.append(PerfRecord(target=trt.TARGET, batch=batch, model=str(vm.onnx), model_digest=vm.digest,
                                      error=str(result.error or result.skipped)))
            continue
        assert result.run is not None
        try:
            record = trt.parse_output(result.run.output, batch=options.batch() or batch, model=str(vm.onnx),
                                      source=str(result.run.log_path) if result.run.log_path else None)
        except ToolOutputError as exc:
            record = PerfRecord(target=trt.TARGET, batch=batch, model=str(vm.onnx), error=str(exc))
        record.model_digest = vm.digest
        record.settings.update({"fp16": options.fp16})
        records.append(record)
    return records


def run_bench_ascend(args: argparse.Namespace) -> int:
    """``surgery bench MODEL.om --target ais-bench``: the CLI around :func:`bench_ascend`."""
    work = _workdir(args, "ais-bench", args.model)
    batches = parse_batch_list(args.batch, ()) if getattr(args, "batch", None) else []
    if len(batches) > 1:
        raise UsageError("an om has one batch size; give one --batch (or compile one om per batch)")
    loop = getattr(args, "loop", None) or getattr(args, "iterations", None) or 100
    warmup = getattr(args, "warmup", None)
    batch = batches[0] if batches else None
    if getattr(args, "dry_run", False):
        plan, _ = plan_bench_ascend(args.model, batch=batch, loop=loop, warmup=warmup,
                                    device=getattr(args, "device", 0), workdir=work)
        return _print_plan(args, plan, "bench")
    records = bench_ascend(args.model, batch=batch, loop=loop, warmup=warmup, device=getattr(args, "device", 0),
                           workdir=work, timeout=getattr(args, "timeout", None))
    record = RunRecord(command="bench", argv=["surgery", *getattr(args, "argv", [])], target=ais.TARGET)
    record.input_model = {"path": str(args.model)}
    record.perf = records
    record.tools = {"cann_version": ascend_env.cann_version()}
    return _finish(args, record, work / f"{Path(args.model).stem}.bench.json", _bench_table(records, args.model),
                   "on ais-bench")


def run_bench_trtexec(args: argparse.Namespace) -> int:
    """``surgery bench MODEL --target trtexec [--fp16]``: the CLI around :func:`bench_trtexec`."""
    work = _workdir(args, "trtexec", args.model)
    fp16 = True if getattr(args, "fp16", False) else None
    iterations = getattr(args, "iterations", None)
    if getattr(args, "dry_run", False):
        vm = prepare_model(args.model, workdir=work, batch=args.batch, input_shapes=args.input_shapes or (),
                           dry_run=True)
        plan, _ = plan_bench_trtexec(vm, fp16=fp16, iterations=iterations, workdir=work)
        return _print_plan(args, plan, "bench")
    records = bench_trtexec(args.model, batches=args.batch, input_shapes=args.input_shapes or (), fp16=fp16,
                            iterations=iterations, workdir=work, timeout=getattr(args, "timeout", None))
    record = RunRecord(command="bench", argv=["surgery", *getattr(args, "argv", [])], target=trt.TARGET)
    record.input_model = {"path": str(args.model), "digest": records[0].model_digest if records else None}
    record.perf = records
    record.tools = {"trtexec": {"version": next((r.target_version for r in records if r.target_version), None)}}
    return _finish(args, record, work / f"{Path(args.model).stem}.bench.json", _bench_table(records, args.model),
                   "on trtexec")


def _bench_table(records: Sequence[PerfRecord], title: str) -> Table:
    table = Table(title=escape(str(title)))
    for column in ("batch", "effective", "mean ms", "median ms", "p99 ms", "samples/s", "source"):
        table.add_column(column, justify="right" if column != "source" else "left")
    for r in records:
        if not r.ok:
            table.add_row(str(r.batch), "-", "-", "-", "-", "[red]failed[/]", escape((r.error or "")[:60]))
            continue
        s = r.stats
        table.add_row(str(r.batch), str(r.effective_batch or "-"), _num(s.get("mean")), _num(s.get("median")),
                      _num(s.get("p99")), _num(r.throughput), escape(r.source or "measured"))
    return table


def _num(value: float | None) -> str:
    return f"{value:.3f}" if value is not None else "-"
