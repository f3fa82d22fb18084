"""surgery compile MODEL --target atc --soc Ascend310P3 [--batch 1,4,8,16] [--dry-run]"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.markup import escape
from rich.table import Table
from surgery.tools.ascend import atc as atc_tool
from surgery.tools.ascend import env as ascend_env
from surgery.tools.ascend.plan import Plan, Step, check_requirements, execute

from surgery.errors import UnknownNameError, UsageError
from surgery.records import RunRecord

from ._common import console, print_json, status
from ._vendor import VendorModel, prepare_model, recipe_settings

NAME = "compile"
HELP = "compile a model for a vendor target (ATC: one .om per batch size); --dry-run prints the commands"
TARGETS = ("atc",)
DEFAULT_SOC = "Ascend310P3"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL", help="an .onnx file or a zoo model name")
    parser.add_argument("--target", default="atc", help=f"compiler: {', '.join(TARGETS)} (atc)")
    parser.add_argument("--soc", metavar="SOC", help=f"ATC --soc_version, e.g. Ascend310P3 (default: the recipe's, "
                        f"else {DEFAULT_SOC}); `npu-smi info` shows the chip")
    parser.add_argument("--batch", metavar="LIST", help="batch sizes, comma-separated: one .om each "
                        "(default: the recipe's, else 1)")
    parser.add_argument("--input-shapes", metavar="NAME:DIMS", action="append", default=[],
                        help="input sizes, trtexec syntax (needed for dynamic dimensions besides the batch)")
    parser.add_argument("--atc-option", dest="atc_options", action="append", default=[], metavar="KEY=VALUE",
                        help="another ATC option, e.g. precision_mode=allow_mix_precision (repeatable)")
    parser.add_argument("--bank", metavar="DIR", help="compile with this tuned bank (TUNE_BANK_PATH)")
    parser.add_argument("-o", "--output-dir", metavar="DIR", help="where the .om files go (default: ./atc-<model>)")
    parser.add_argument("--dry-run", action="store_true", help="print the exact atc commands; run nothing")
    parser.add_argument("--timeout", type=float, metavar="S", help="seconds per atc run (default: none)")
    parser.add_argument("--record", metavar="FILE.json", help="run record path (default: in the output folder)")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON instead of tables")


def parse_atc_options(pairs: list[str]) -> dict[str, str]:
    """``--atc-option KEY=VALUE`` pairs; the options compile sets itself are refused."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip().lstrip("-")
        if not sep or not key:
            raise UsageError(f"--atc-option {pair!r} is not KEY=VALUE (e.g. precision_mode=force_fp16)")
        if key in ("model", "output", "soc_version", "input_shape", "framework"):
            raise UsageError(f"--atc-option {key} is set by surgery compile itself")
        out[key] = value
    return out


def build_plan(vm: VendorModel, *, soc: str, out_dir: Path, extra: dict[str, str], bank: str | None) -> Plan:
    """One atc command per batch size: ``<out_dir>/<name>_bs<b>.om``."""
    settings = {**recipe_settings(vm.recipe, "atc"), **extra}
    plan = Plan(title=f"compile {vm.name} with ATC for {soc}, batch {', '.join(map(str, vm.batches))}")
    plan.steps.extend(vm.prelude)
    plan.notes.extend(vm.notes)
    env = (("TUNE_BANK_PATH", bank),) if bank else ()
    for batch in vm.batches:
        options = atc_tool.atc_options(str(vm.onnx), str(out_dir / f"{vm.name}_bs{batch}"), soc, settings,
                                       input_shape=vm.shapes[batch])
        plan.add(Step(tuple(options.argv()), f"compile {vm.name} bs{batch} → {options.om_path}", "atc", env=env,
                      produces=(options.om_path,), success_line=atc_tool.SUCCESS_LINE,
                      failure_line=atc_tool.FAILURE_LINE, group=f"bs{batch}",
                      meta={"kind": "atc", "batch": batch, "om": options.om_path}))
    return plan


def run(args: argparse.Namespace) -> int:
    if args.target not in TARGETS:
        raise UnknownNameError("compile target", args.target, TARGETS)
    extra = parse_atc_options(args.atc_options)
    out_dir = Path(args.output_dir) if args.output_dir else Path(f"atc-{Path(args.model).name.removesuffix('.onnx')}")
    planned = prepare_model(args.model, workdir=out_dir, batch=args.batch, input_shapes=args.input_shapes,
                            dry_run=True)
    recipe_soc = recipe_settings(planned.recipe, "atc").get("soc_version")
    soc = args.soc or recipe_soc or DEFAULT_SOC
    plan = build_plan(planned, soc=str(soc), out_dir=out_dir, extra=extra, bank=args.bank)
    if not args.soc and not recipe_soc:
        plan.notes.append(f"soc {soc} by default: give --soc (npu-smi info shows the chip)")
    # validate every command's options before anything runs, dry or not
    if args.dry_run:
        if args.json:
            print_json({"dry_run": True, "plan": plan.to_dict()})
            return 0
        console.print(plan.render(), markup=False, highlight=False)
        count = len(_atc_steps(plan))
        status(True, f"dry run: {count} atc command{'s' if count != 1 else ''} planned; nothing run")
        return 0
    check_requirements(plan)  # a missing atc is one line, before any export
    out_dir.mkdir(parents=True, exist_ok=True)
    vm = prepare_model(args.model, workdir=out_dir, batch=args.batch, input_shapes=args.input_shapes, dry_run=False)
    plan = build_plan(vm, soc=str(soc), out_dir=out_dir, extra=extra, bank=args.bank)
    quiet = args.json

    def on_step(index: int, step: Step) -> None:
        if not quiet:
            console.print(f"[dim][{index + 1}/{len(plan.steps)}] {escape(step.description)}[/]")

    results = execute(plan, log_dir=out_dir / "logs", timeout=args.timeout, on_step=on_step)
    version = ascend_env.cann_version()
    record = RunRecord(command="compile", argv=["surgery", *args.argv], target="atc")
    record.input_model = {"path": str(vm.onnx), "digest": vm.digest, "zoo": vm.recipe.name if vm.recipe else None}
    builds = []
    for result in results:
        if result.step.meta.get("kind") != "atc":
            continue
        entry = {"batch": result.step.meta["batch"], "om": result.step.meta["om"], **result.to_dict()}
        if result.ok and result.run is not None:
            om = Path(result.step.meta["om"])
            if not om.is_file():
                entry.update(ok=False, error=f"atc reported success but wrote no {om}")
            entry["warnings"] = atc_tool.warnings(result.run.output)
        builds.append(entry)
    record.tools = {"atc": {"cann_version": version, "soc_version": soc, "bank": args.bank}}
    record.extra = {"builds": builds, "plan": plan.to_dict()}
    failed = [b for b in builds if not b["ok"]]
    ok = bool(builds) and not failed
    record.status = "PASSED" if ok else "FAILED"
    record.reason = "; ".join(f"batch {b['batch']}: {b.get('error') or b.get('skipped')}" for b in failed)
    record_path = Path(args.record) if args.record else out_dir / f"{vm.name}.compile.json"
    record.save(record_path)
    if quiet:
        print_json(record.to_dict())
        return 0 if ok else 1
    console.print(_table(builds))
    console.print(f"record {escape(str(record_path))}")
    built = len(builds) - len(failed)
    summary = f"{built}/{len(builds)} oms built for {soc}"
    if failed:
        codes = {b.get("code") for b in failed if b.get("code")}
        summary += f"; failed: {', '.join('batch ' + str(b['batch']) for b in failed)}"
        if codes:
            summary += f" ({', '.join(sorted(codes))})"
    status(ok, summary)
    return 0 if ok else 1


def _atc_steps(plan: Plan) -> list[Step]:
    return [s for s in plan.steps if s.requires == "atc"]


def _table(builds: list[dict]) -> Table:
    table = Table(title="atc builds")
    for column in ("batch", "om", "seconds", "result"):
        table.add_column(column, justify="right" if column in ("batch", "seconds") else "left")
    for b in builds:
        result = "[green]ok[/]" if b["ok"] else f"[red]{escape(str(b.get('code') or 'failed'))}[/]"
        warnings = len(b.get("warnings", []))
        if b["ok"] and warnings:
            result += f" ({warnings} warnings)"
        table.add_row(str(b["batch"]), escape(b["om"]), f"{b.get('seconds', 0):.1f}", result)
    return table
