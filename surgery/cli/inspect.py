"""surgery inspect MODEL: inputs, outputs, opset, op counts, nodes, parameters."""

from __future__ import annotations

import argparse

from rich.table import Table

from surgery.graph import load_model_file, summarize
from surgery.shapes import format_shape

from ._common import add_json, add_zoo, console, fmt_bytes, print_json, resolve

NAME = "inspect"
HELP = "show a model's inputs, outputs, opset, op counts, node and parameter counts"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL", help="an .onnx file or a zoo model name")
    add_zoo(parser)
    add_json(parser)


def run(args: argparse.Namespace) -> int:
    ref = resolve(args)
    # the weights stay on disk: a summary needs their shapes only (every reference is still checked and hashed)
    loaded = load_model_file(ref.path, load_external_data=False)
    s = summarize(loaded.model, size_bytes=loaded.nbytes)
    if args.json:
        print_json({"path": str(ref.path), "digest": loaded.digest, **s.to_dict()})
        return 0
    console.print(f"[bold]{ref.label}[/]  opset {', '.join(f'{k} {v}' for k, v in s.opset.items())}, "
                  f"IR {s.ir_version}{', ' + s.producer if s.producer else ''}")
    io = Table(show_header=True, box=None)
    io.add_column("")
    io.add_column("name", style="bold")
    io.add_column("dtype")
    io.add_column("shape")
    for kind, items in (("input", s.inputs), ("output", s.outputs)):
        for item in items:
            shape = format_shape(item["shape"]) if item["shape"] is not None else "?"
            io.add_row(kind, item["name"], item["dtype"], shape)
    console.print(io)
    ops = Table(title=f"{s.nodes:,} nodes", box=None)
    ops.add_column("op")
    ops.add_column("count", justify="right")
    for op, n in sorted(s.op_counts.items(), key=lambda kv: (-kv[1], kv[0])):
        ops.add_row(op, str(n))
    console.print(ops)
    console.print(f"parameters {s.params:,} ({fmt_bytes(s.param_bytes)}) in {s.initializers:,} initializers; "
                  f"file {fmt_bytes(s.size_bytes)}; sha256 {loaded.digest[:16]}")
    return 0
