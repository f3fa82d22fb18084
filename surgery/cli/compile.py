"""surgery compile MODEL --target atc --soc Ascend310P3 [--batch 1,4,8,16] [--dry-run]"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from surgery import validate
from surgery.outputs import Outputs
from surgery.targets import COMPILE, get_target
from surgery.targets.model import file_stem
from surgery.validate import arg

from . import _targets
from ._common import add_json, add_shapes, add_zoo, console, model_identity, plan_inputs
from ._run import events_for, new_record, print_plan, request_from, save_and_report

NAME = "compile"
HELP = "compile a model for a vendor target (ATC: one .om per batch size); --dry-run prints the commands"
SETTINGS = ("soc", "atc_options", "bank", "int8", "calib", "calib_samples")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL", help="an .onnx file or a zoo model name")
    parser.add_argument("--target", default="atc", help=f"compiler: {', '.join(_targets.names(COMPILE))} (atc)")
    parser.add_argument("--soc", metavar="SOC", help="ATC --soc_version, e.g. Ascend310P3 (default: the recipe's, "
                        "else Ascend310P3); `npu-smi info` shows the chip")
    parser.add_argument("--batch", metavar="LIST", help="batch sizes, comma-separated: one .om each "
                        "(default: the recipe's, else 1)")
    add_shapes(parser)
    parser.add_argument("--atc-option", dest="atc_options", action="append", metavar="KEY=VALUE",
                        help="another ATC option, e.g. precision_mode=allow_mix_precision (repeatable)")
    parser.add_argument("--bank", metavar="DIR", type=arg(validate.path, "--bank"),
                        help="compile with this tuned bank (TUNE_BANK_PATH)")
    int8 = parser.add_argument_group("INT8 (AMCT calibration, then ATC of the quantized model)")
    int8.add_argument("--int8", action="store_true", default=None,
                      help="calibrate with amct_onnx first and compile its deploy model")
    int8.add_argument("--calib", metavar="DIR", help="AMCT's --data_dir: .bin batches, one folder per input "
                      "(default: generated batches written to <output-dir>/amct/calibration)")
    int8.add_argument("--calib-samples", type=arg(validate.count, "--calib-samples"), metavar="N",
                      help="calibration batches (AMCT --batch_num; 8)")
    parser.add_argument("-o", "--output-dir", dest="workdir", metavar="DIR",
                        help="where the .om files go (default: ./atc-<model>)")
    parser.add_argument("--dry-run", action="store_true", help="print the exact atc commands; run nothing")
    parser.add_argument("--timeout", type=arg(validate.seconds, "--timeout"), metavar="S",
                        help="seconds per atc run (default: none)")
    parser.add_argument("--record", metavar="FILE.json", help="run record path (default: in the output folder)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a default-named record of another model (default: take a free name)")
    add_zoo(parser)
    add_json(parser)


def run(args: argparse.Namespace) -> int:
    target = get_target(_targets.targets(), args.target, COMPILE)
    request = request_from(args, SETTINGS)
    target.check(COMPILE, request)
    if args.dry_run:
        return print_plan(target.plan(COMPILE, request), "compile", args.json)
    # every output resolved before atc runs: the .om folder, the record
    plan = Outputs()
    plan_inputs(plan, args)
    stem = file_stem(Path(args.model))
    out_dir = plan.folder(args.workdir or f"atc-{stem}", "the .om output folder",
                          flag="--output-dir" if args.workdir else "")
    path, note = plan.record(args.record, out_dir / f"{stem}.compile.json", model=model_identity(args.model),
                             overwrite=args.overwrite, create_folder=True)
    if note and not args.json:
        console.print(f"[yellow]notice:[/] {escape(note)}")
    outcome = target.compile(request, events_for(None, args.json, "atc"))
    builds: list[dict] = outcome.detail
    record = new_record("compile", args, args.target, outcome)
    record.extra["builds"] = builds
    failed = [b for b in builds if not b["ok"]]
    ok = bool(builds) and not failed
    record.status = "PASSED" if ok else "FAILED"
    record.reason = "; ".join(f"batch {b['batch']}: {b.get('error') or b.get('skipped')}" for b in failed)
    soc = outcome.tools.get("atc", {}).get("soc_version")
    summary = f"{len(builds) - len(failed)}/{len(builds)} oms built for {soc}"
    if failed:
        codes = sorted({b["code"] for b in failed if b.get("code")})
        summary += f"; failed: {', '.join('batch ' + str(b['batch']) for b in failed)}"
        summary += f" ({', '.join(codes)})" if codes else ""
    return save_and_report(args, record, path, _table(builds), ok, summary)


def _table(builds: list[dict]) -> Table:
    table = Table(title="atc builds")
    for column in ("batch", "om", "seconds", "result"):
        table.add_column(column, justify="right" if column in ("batch", "seconds") else "left")
    for b in builds:
        result = "[green]ok[/]" if b["ok"] else f"[red]{escape(str(b.get('code') or 'failed'))}[/]"
        warnings = len(b.get("warnings", []))
        if b["ok"] and warnings:
            result += f" ({warnings} warnings)"
        table.add_row(str(b["batch"]), escape(str(b["om"])), f"{b.get('seconds', 0):.1f}", result)
    return table
