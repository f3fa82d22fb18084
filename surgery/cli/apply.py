"""surgery apply MODEL --pass NAME [KEY=VALUE ...] [--pass ...] [-o OUT.onnx]"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table

from surgery import validate
from surgery.apply import ApplyResult, apply, check_settings
from surgery.errors import PassError, UsageError, VerificationError
from surgery.graph import ModelSummary, default_output_path, load_model_file, save_model
from surgery.parity import DISTRIBUTIONS
from surgery.pipeline import Instrument, StepReport
from surgery.records import RunRecord
from surgery.shapes import parse_batches
from surgery.validate import arg
from surgery.verification import RunVerification

from . import _budget
from ._common import (
    add_json,
    add_verify,
    add_zoo,
    console,
    fmt_bytes,
    plan_apply_outputs,
    print_json,
    resolve,
    shapes_arg,
    status,
)

NAME = "apply"
HELP = "run passes over a model, verify after each, save the result with a run record"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL", help="an .onnx file or a zoo model name")
    parser.add_argument("--pass", dest="passes", action="append", nargs="+", default=[], metavar="NAME [KEY=VALUE",
                        help="a pass and its options, e.g. --pass prune_outputs outputs=Resize_317:0 "
                             "(repeat for more passes; list options take comma-separated values)")
    parser.add_argument("-o", "--output", metavar="OUT.onnx", help="output path (default: beside the input, "
                        "with a .surgery suffix)")
    parser.add_argument("--record", metavar="FILE.json", help="run record path (default: beside the output)")
    parser.add_argument("--dry-run", action="store_true", help="report what each pass would match; write nothing")
    parser.add_argument("--explain", action="store_true", help="also say why sites did not match")
    parser.add_argument("--snapshot", metavar="DIR", help="save the model after each pass into DIR")
    parser.add_argument("--overwrite", action="store_true", help="allow -o to name the input model itself")
    add_verify(parser)
    parser.add_argument("--verify-batches", default="2,3", metavar="B,B",
                        help="batch sizes besides 1 at which a pass that frees the batch is proven (2,3; 'none')")
    parser.add_argument("--distributions", default=",".join(DISTRIBUTIONS), metavar="D,D",
                        help="what the seeded samples rotate through: normal, uniform ([0,1)), image "
                             f"(ImageNet-normalised) (default {','.join(DISTRIBUTIONS)})")
    parser.add_argument("--strict", action="store_true",
                        help="fail (exit 1, nothing written) when any step, or the model given, is not verified")
    parser.add_argument("--fidelity", type=arg(validate.count, "--fidelity", minimum=0), metavar="N",
                        help="task-level fidelity of each inexact pass on N generated images (zoo models: on by "
                             "default, 8 images up to 512x512; 0: off)")
    _budget.add_arguments(parser)
    add_zoo(parser)
    add_json(parser)


def parse_pass_args(groups: list[list[str]]) -> list[tuple[str, dict[str, str]]]:
    specs = []
    for group in groups:
        name, *pairs = group
        options: dict[str, str] = {}
        for pair in pairs:
            key, sep, value = pair.partition("=")
            if not sep or not key:
                raise UsageError(f"option {pair!r} of pass {name} is not KEY=VALUE (put MODEL before --pass)")
            if key in options:
                raise UsageError(f"option {key} of pass {name} given twice")
            options[key] = value
        specs.append((name, options))
    return specs


def run(args: argparse.Namespace) -> int:
    from surgery.passes import PASSES

    from surgery.apply import build_passes

    specs = parse_pass_args(args.passes)
    passes = build_passes(specs, PASSES)  # validate names and options before any heavy work
    shapes = shapes_arg(args)
    batches = () if args.verify_batches.strip().lower() == "none" else parse_batches(args.verify_batches)
    if args.strict and args.no_verify:
        raise UsageError("--strict needs verification: drop --no-verify")
    distributions = tuple(d.strip() for d in args.distributions.split(",") if d.strip())
    if not args.no_verify:  # bad settings are usage errors before a zoo export takes its seconds
        check_settings(samples=args.samples, seed=args.seed, atol=args.atol, rtol=args.rtol, input_shapes=shapes,
                       verify_batches=batches, distributions=distributions)
    ref = resolve(args)
    if not passes:
        if ref.recipe is None:
            raise UsageError("give at least one --pass (see: surgery list passes)")
        passes = build_passes([(s.name, s.options) for s in ref.recipe.default_passes], PASSES)
    passes = _budget.configure(passes, args, ref.recipe)
    judges = [*_budget.instruments(args, ref.recipe, shapes), *_fidelity(args, ref.recipe, shapes)]
    source = load_model_file(ref.path)
    out_path = _output_path(args, ref)
    planned_record = None
    # a zoo model's export is written beside the output: the "before" of a before/after comparison
    before_path = _before_path(args, ref, out_path) if ref.recipe is not None and not args.dry_run else None
    if not args.dry_run:  # every output checked against the inputs and each other before any pass runs
        out_path, planned_record = plan_apply_outputs(args, source, ref.path, out_path, [p.name for p in passes],
                                                      _record_path(out_path), before=before_path)

    record = RunRecord(command="apply", argv=["surgery", *args.argv])
    record.input_model = {"path": str(ref.path), "digest": source.digest, "bytes": source.nbytes,
                          "zoo": ref.recipe.name if ref.recipe else None}
    record.verification = {"enabled": not args.no_verify, "atol": args.atol, "rtol": args.rtol,
                           "samples": args.samples, "seed": args.seed, "inputs": args.inputs,
                           "verify_batches": list(batches), "distributions": list(distributions),
                           "strict": args.strict}
    quiet = args.json
    if not quiet:
        for notice in ref.notices:
            console.print(f"[yellow]notice:[/] {notice}")

    started = time.perf_counter()
    lines: list[StepReport] = []

    def on_step(step: StepReport) -> None:
        lines.append(step)
        if not quiet:
            _print_step(step, args.explain)

    try:
        result = apply(source.model, passes, verify=not args.no_verify, samples=args.samples, seed=args.seed,
                       atol=args.atol, rtol=args.rtol, input_shapes=shapes, inputs=args.inputs,
                       verify_batches=batches, distributions=distributions, snapshot=args.snapshot,
                       dry_run=args.dry_run, copy=False,
                       on_step=on_step, extra_instruments=judges)
    except (VerificationError, PassError) as exc:
        record.status, record.reason = "FAILED", str(exc)
        record.passes = [s.to_dict() for s in lines]
        record.verification.update(RunVerification.from_steps(lines, enabled=not args.no_verify).to_dict())
        if args.record:
            record.save(args.record)
        if quiet:
            print_json(record.to_dict())
        else:
            status(False, escape(f"{exc}; nothing written"))
        return exc.exit_code

    record.passes = [s.to_dict() for s in result.steps]
    record.verification["figures"] = result.figures
    record.verification.update(result.verification.to_dict())
    elapsed = time.perf_counter() - started
    summary = _summary_line(result, elapsed)
    if args.strict and not args.dry_run and not result.verified:
        record.status, record.reason = "FAILED", f"{result.verification.describe()} (--strict)"
        if args.record:
            record.save(args.record)
        if quiet:
            print_json(record.to_dict())
        else:
            console.print(_table(result.before, result.after))
            status(False, escape(f"{record.reason}; nothing written"))
        return 1
    if args.dry_run:
        record.extra["dry_run"] = True
        if quiet:
            print_json(record.to_dict())
        else:
            console.print(_table(result.before, result.after))
            status(True, escape(f"dry run: {summary}; nothing written"))
        return 0

    saved = save_model(result.model, out_path, protect=None if args.overwrite else ref.path)
    record.output_model = {"path": str(saved.path), "digest": saved.digest, "bytes": saved.nbytes}
    if before_path is not None:  # the passes edited the loaded copy in place: the export is read again
        kept = save_model(load_model_file(ref.path).model, before_path, protect=ref.path)
        record.extra["before_model"] = {"path": str(kept.path), "digest": kept.digest, "bytes": kept.nbytes}
    record_path = planned_record or _record_path(saved.path)
    record.save(record_path)
    if quiet:
        print_json(record.to_dict())
        return 0
    console.print(_table(result.before, result.after))
    console.print(f"wrote {saved.path} ({fmt_bytes(saved.nbytes)}), record {record_path}")
    if before_path is not None:
        console.print(f"wrote the model before the passes (the zoo export) to {before_path}: "
                      f"surgery bench {before_path.name} {saved.path.name} compares them")
    status(True, escape(summary))
    return 0


def _before_path(args: argparse.Namespace, ref: Any, out_path: Path) -> Path:
    """``unetpp.before.onnx`` in the current folder by default; ``X.before.onnx`` beside ``-o X.onnx``."""
    if not args.output:
        return Path.cwd() / f"{ref.recipe.name}.before.onnx"
    return out_path.with_name(out_path.name.removesuffix(".onnx") + ".before.onnx")


def _fidelity(args: argparse.Namespace, recipe: Any | None, shapes: dict) -> list[Instrument]:
    """Task-level fidelity of each inexact pass: on by default for zoo models, ``--fidelity N`` images."""
    if args.fidelity == 0 or args.no_verify or args.dry_run:
        return []
    if recipe is None or getattr(recipe, "evaluation", None) is None:
        if args.fidelity:
            raise UsageError("--fidelity measures a zoo model's task (its recipe says which); this model has none")
        return []
    from surgery.eval.fidelity import FidelityInstrument

    instrument = FidelityInstrument.for_recipe(recipe, samples=args.fidelity, input_shapes=shapes or None)
    return [instrument] if instrument is not None else []


def _output_path(args: argparse.Namespace, ref: Any) -> Path:
    if args.output:
        return Path(args.output)
    if ref.recipe is not None:
        return Path.cwd() / f"{ref.recipe.name}.surgery.onnx"
    return default_output_path(ref.path)


def _record_path(output: Path) -> Path:
    name = output.name[: -len(".onnx")] if output.name.endswith(".onnx") else output.name
    return output.with_name(f"{name}.json")


def _summary_line(result: ApplyResult, elapsed: float) -> str:
    changed = sum(1 for s in result.steps if s.changed)
    nodes = f"{result.before.nodes} → {result.after.nodes} nodes"
    verdict = result.verification.describe()
    verdict = f"; {verdict}" if verdict.startswith(("NOT VERIFIED", "FAILED")) else f", {verdict}"
    inexact = [s.name for s in result.steps if s.changed and not s.exact]
    tail = f"; inexact: {', '.join(inexact)}" if inexact else ""
    return f"{changed}/{len(result.steps)} passes changed the model, {nodes}{verdict}{tail} ({elapsed:.2f} s)"


def _parity_text(figures: dict[str, Any]) -> str:
    parity = figures.get("parity")
    if not parity:
        return ""
    if "skipped" in parity:
        return ""  # unchanged, or a reason printed as "not verified"
    parts = []
    for name, d in parity.get("outputs", {}).items():
        if d.get("cosine") is None:
            text = f"{name}: {d['mismatches']}/{d['elements']} elements differ"
        else:
            text = f"{name}: max abs {d['max_abs']:.3g}, max rel {d['max_rel']:.3g}, cos {d['cosine']:.6f}"
        parts.append(text + (f" ({d['note']})" if d.get("note") else ""))
    if parity.get("batches"):
        parts.append(f"batch proven at {', '.join(map(str, parity['batches']))}")
    return "; ".join(parts)


def _print_step(step: StepReport, explain: bool) -> None:
    label = "" if step.exact else " [yellow](inexact)[/]"
    what = ", ".join(f"{k} {v}" for k, v in step.counts.items()) if step.counts else (
        "changed" if step.changed else "no match")
    console.print(f"  {step.index + 1}. [bold]{escape(step.name)}[/]{label}: {escape(what)}  "
                  f"[dim]{step.seconds * 1000:.1f} ms[/]")
    parity = _parity_text(step.figures)
    if parity:
        console.print(f"       [dim]{escape(parity)}[/]")
    fidelity = step.figures.get("fidelity") or {}
    if fidelity.get("headline"):
        console.print(f"       fidelity: {escape(fidelity['headline'])} ({fidelity.get('samples', '?')} generated "
                      "images)")
    elif fidelity.get("skipped"):
        console.print(f"       [dim]fidelity skipped: {escape(fidelity['skipped'])}[/]")
    if (budget := _budget.step_line(step)) is not None:
        console.print(f"       {escape(budget)}")
    hazards = list(dict.fromkeys([*step.warnings, *step.verification.hazards]))
    for hazard in hazards:  # always: a hazard explains a batch failure before anyone asks
        console.print(f"       [yellow]hazard:[/] {escape(hazard)}")
    for reason in step.verification.reasons:
        console.print(f"       [yellow]not verified:[/] {escape(reason)}")
    if explain:
        for note in step.notes:
            if note not in hazards:
                console.print(f"       [dim]· {escape(note)}[/]")


def _table(before: ModelSummary, after: ModelSummary) -> Table:
    table = Table(title="before → after", show_lines=False)
    table.add_column("", style="bold")
    table.add_column("before", justify="right")
    table.add_column("after", justify="right")
    for op in sorted(set(before.op_counts) | set(after.op_counts)):
        a, b = before.op_counts.get(op, 0), after.op_counts.get(op, 0)
        style = "" if a == b else "green" if b < a else "yellow"
        table.add_row(op, str(a), f"[{style}]{b}[/]" if style else str(b))
    table.add_section()
    for label, a, b in (("nodes", before.nodes, after.nodes), ("initializers", before.initializers,
                        after.initializers), ("params", before.params, after.params)):
        table.add_row(label, f"{a:,}", f"{b:,}")
    table.add_row("size", fmt_bytes(before.size_bytes), fmt_bytes(after.size_bytes))
    return table
