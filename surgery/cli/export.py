"""surgery export NAME -o OUT.onnx: a zoo model to ONNX, with its checkpoint, variants and shapes."""

from __future__ import annotations

import argparse
import os
import time

from rich.markup import escape
from rich.table import Table

from surgery import validate
from surgery.errors import UsageError
from surgery.outputs import Outputs
from surgery.validate import arg

from ._common import add_json, console, parse_variants, print_json, shapes_arg, status

NAME = "export"
HELP = "export a zoo model to ONNX (needs torch): checkpoint, variants, shapes, dynamic batch"
MIN_OPSET, MAX_OPSET = 7, 23  # what torch's TorchScript exporter can write


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="NAME", help="a zoo model (see: surgery list models)")
    parser.add_argument("-o", "--output", required=True, metavar="OUT.onnx", help="the ONNX file to write")
    parser.add_argument("--checkpoint", metavar="FILE", type=arg(validate.path, "--checkpoint"),
                        help="upstream weights (.pth); without one the weights are seeded random and accuracy "
                             "means nothing")
    parser.add_argument("--variant", metavar="KEY=VALUE", action="append", default=[],
                        help="a model variant, e.g. ppm=ascend (repeatable; see: surgery list models)")
    parser.add_argument("--batch", metavar="N|dynamic", help="static batch N, or a dynamic batch axis "
                                                             "(default: the recipe's, dynamic for most)")
    parser.add_argument("--opset", type=arg(validate.integer, "--opset", minimum=MIN_OPSET, maximum=MAX_OPSET),
                        default=11, help="ONNX opset (11, what ATC reads)")
    parser.add_argument("--seed", type=arg(validate.seed, "--seed"), default=0,
                        help="seed for weights a checkpoint does not set (0)")
    parser.add_argument("--input-shapes", metavar="NAME:DIMS", action="append", default=[],
                        help="trace sizes, trtexec syntax: actual_input_1:1x3x96x96; numbers make a static "
                             "shape, a name in the batch dimension (Nx3x96x96) a dynamic batch")
    add_json(parser)


def parse_batch(text: str | None) -> int | str | None:
    """``--batch``: None, ``dynamic`` or a positive integer."""
    if text is None or text == "dynamic":
        return text
    if text.strip().isdigit():
        return validate.dim(text, "--batch")
    raise UsageError(f"bad --batch {text!r}: expected a positive number or 'dynamic'")


def run(args: argparse.Namespace) -> int:
    from surgery.models import export_model, get_recipe

    get_recipe(args.model)  # an unknown name fails before any other parsing
    variants = dict(parse_variants(args.variant))
    batch = parse_batch(args.batch)
    shapes = shapes_arg(args)
    plan = Outputs()
    if args.checkpoint and os.path.isfile(args.checkpoint):
        plan.input(args.checkpoint, "the --checkpoint file")
    plan.file(args.output, "the exported model", flag="-o")
    start = time.perf_counter()
    result = export_model(args.model, args.output, checkpoint=args.checkpoint, variants=variants,
                          input_shapes=shapes or None, batch=batch, opset=args.opset, seed=args.seed)
    seconds = time.perf_counter() - start
    if args.json:
        print_json({**result.to_dict(), "seconds": round(seconds, 3)})
        return 0
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("model", result.recipe)
    table.add_row("variants", ", ".join(f"{k}={v}" for k, v in result.variants.items()) or "—")
    table.add_row("inputs", ", ".join(f"{k} {'x'.join(map(str, v))}" for k, v in result.input_shapes.items()))
    table.add_row("checkpoint", f"sha256 {result.checkpoint_digest[:16]}…" if result.checkpoint_digest
                  else "none (seeded random weights)")
    table.add_row("opset", str(result.opset))
    table.add_row("torch", result.torch_version)
    table.add_row("time", f"{seconds:.1f} s")
    console.print(table)
    for notice in result.notices:
        console.print(f"[yellow]notice:[/] {escape(notice)}", markup=True)
    extra = f", {len(result.notices)} notice{'s' if len(result.notices) != 1 else ''}" if result.notices else ""
    status(True, f"exported {result.recipe} -> {result.path} ({result.nodes} nodes{extra})")
    return 0
