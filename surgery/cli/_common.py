"""Shared pieces of the verbs: console, JSON output, status lines, option groups."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rich.console import Console

from surgery.errors import UsageError
from surgery.modelref import NO_ZOO, ModelRef, Zoo, ZooOptions, resolve_model
from surgery.parity import DEFAULT_ATOL, DEFAULT_RTOL
from surgery.shapes import parse_shapes

console = Console(highlight=False, soft_wrap=True)  # status lines stay one greppable line
err_console = Console(stderr=True, highlight=False)


def print_json(data: Any) -> None:
    from surgery.records import _json_default

    sys.stdout.write(json.dumps(data, indent=2, default=_json_default) + "\n")
    sys.stdout.flush()


def status(ok: bool, message: str) -> None:
    """The greppable closing line: ``PASSED | ...`` or ``FAILED | ...``."""
    word = "[bold green]PASSED[/]" if ok else "[bold red]FAILED[/]"
    console.print(f"{word} | {message}", markup=True)


def add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON instead of tables")


def add_shapes(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input-shapes", metavar="NAME:DIMS", action="append", default=[],
                        help="sizes for dynamic inputs, trtexec syntax: input:1x3x96x96[,other:1x10]; "
                             "a dynamic batch axis defaults to 1")


def shapes_arg(args: argparse.Namespace) -> dict:
    return parse_shapes(args.input_shapes) if getattr(args, "input_shapes", None) else {}


def add_verify(parser: argparse.ArgumentParser, *, defaults_none: bool = False) -> None:
    """--no-verify, --samples, --seed, --inputs, --atol, --rtol and --input-shapes.

    With ``defaults_none`` the numbers default to None (the library's defaults apply), so a
    verb can tell which the user gave and refuse those a target cannot honour.
    """
    def default(value: object) -> object:
        return None if defaults_none else value

    g = parser.add_argument_group("verification (onnx checker, shape inference, onnxruntime parity)")
    g.add_argument("--no-verify", action="store_true", help="skip verification")
    g.add_argument("--samples", type=int, default=default(3), metavar="N", help="seeded random samples for parity (3)")
    g.add_argument("--seed", type=int, default=default(0), help="seed of the first random sample (0)")
    g.add_argument("--inputs", metavar="FILE.npz", help="real samples: one array per input name")
    g.add_argument("--atol", type=float, default=default(DEFAULT_ATOL), help=f"absolute tolerance ({DEFAULT_ATOL:g})")
    g.add_argument("--rtol", type=float, default=default(DEFAULT_RTOL), help=f"relative tolerance ({DEFAULT_RTOL:g})")
    add_shapes(g)


def add_zoo(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("zoo models (when MODEL is a zoo name)")
    g.add_argument("--checkpoint", metavar="FILE.pth", help="load these weights (strictly) before exporting")
    g.add_argument("--variant", metavar="KEY=VALUE", action="append", default=[],
                   help="a model variant, e.g. ppm=ascend (repeatable; see: surgery list models)")


def zoo() -> Zoo:
    """The built-in model zoo, handed to the core (empty when the zoo cannot be imported)."""
    try:
        from surgery.models import ZOO
    except ImportError:
        return NO_ZOO
    return ZOO


def parse_variants(items: list[str]) -> tuple[tuple[str, str], ...]:
    """``["ppm=ascend", ...]`` → ``(("ppm", "ascend"),)``."""
    variants: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise UsageError(f"bad --variant {item!r}: expected KEY=VALUE such as ppm=ascend")
        if key.strip() in variants:
            raise UsageError(f"--variant {key.strip()} given twice")
        variants[key.strip()] = value.strip()
    return tuple(variants.items())


def zoo_options(args: argparse.Namespace) -> ZooOptions:
    """``--checkpoint`` / ``--variant`` as the typed options model resolution takes."""
    return ZooOptions(checkpoint=args.checkpoint, variants=parse_variants(args.variant))


def resolve(args: argparse.Namespace) -> ModelRef:
    """The verb's MODEL argument resolved against the built-in zoo with its zoo options."""
    return resolve_model(args.model, zoo(), zoo_options(args))


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return f"{n:.2f} GiB"


def print_table(table: Any) -> None:
    """Print a wide table whole when output goes to a file or pipe (no terminal width to respect)."""
    from rich.measure import Measurement

    if console.is_terminal:
        console.print(table)
        return
    saved = console.width
    wanted = Measurement.get(console, console.options.update(width=400), table).maximum
    console.width = max(saved, wanted)  # print() cannot exceed the console's width; widen it for this table
    try:
        console.print(table)
    finally:
        console.width = saved
