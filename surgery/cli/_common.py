"""Shared pieces of the verbs: console, JSON output, status lines, option groups."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from surgery import validate
from surgery.errors import UsageError
from surgery.modelref import NO_ZOO, ModelRef, Zoo, ZooOptions, resolve_model
from surgery.outputs import Outputs
from surgery.parity import DEFAULT_ATOL, DEFAULT_RTOL
from surgery.shapes import parse_shapes
from surgery.validate import arg

console = Console(highlight=False, soft_wrap=True, emoji=False)  # status lines stay one greppable line; "1:b:" no emoji
err_console = Console(stderr=True, highlight=False, emoji=False)


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
    g.add_argument("--samples", type=arg(validate.count, "--samples"), default=default(3), metavar="N",
                   help="seeded random samples for parity (3)")
    g.add_argument("--seed", type=arg(validate.seed, "--seed"), default=default(0),
                   help="seed of the first random sample (0)")
    g.add_argument("--inputs", metavar="FILE.npz", type=arg(validate.existing_file, "--inputs"),
                   help="real samples: one array per input name")
    g.add_argument("--atol", type=arg(validate.tolerance, "--atol"), default=default(DEFAULT_ATOL),
                   help=f"absolute tolerance ({DEFAULT_ATOL:g})")
    g.add_argument("--rtol", type=arg(validate.tolerance, "--rtol"), default=default(DEFAULT_RTOL),
                   help=f"relative tolerance ({DEFAULT_RTOL:g})")
    add_shapes(g)


def add_zoo(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("zoo models (when MODEL is a zoo name)")
    g.add_argument("--checkpoint", metavar="FILE.pth", type=arg(validate.path, "--checkpoint"),
                   help="load these weights (strictly) before exporting")
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


def zoo_options(args: argparse.Namespace, *, guide: bool = False) -> ZooOptions:
    """``--checkpoint`` / ``--variant`` as the typed options model resolution takes.

    With ``guide`` (run, bench, tune, compile) a zoo model is built as its guide compiled it
    where ``--variant`` does not say otherwise.
    """
    return ZooOptions(checkpoint=args.checkpoint, variants=parse_variants(args.variant), guide=guide)


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


def model_identity(model_arg: str) -> dict[str, str]:
    """The MODEL argument as a record names it: its zoo name, or its file's absolute path."""
    if zoo().is_name(model_arg):
        return {"zoo": model_arg}
    return {"path": os.path.abspath(model_arg)}


def plan_inputs(plan: Outputs, args: argparse.Namespace, *, replace_model: bool = False) -> None:
    """Register what the verb reads (MODEL and its external data, --inputs, --checkpoint) as never written.

    Args:
        plan: the verb's output plan.
        args: the parsed arguments.
        replace_model: ``--overwrite``: the output model may replace MODEL (and its data).
    """
    model_arg = getattr(args, "model", None)
    if isinstance(model_arg, str) and not zoo().is_name(model_arg) and os.path.isfile(model_arg):
        plan.input(model_arg, "the input model", replaceable=replace_model)
        for data in external_files(model_arg):
            plan.input(data, "the input model's external data", replaceable=replace_model)
    for flag in ("inputs", "checkpoint"):
        value = getattr(args, flag, None)
        if isinstance(value, str) and os.path.isfile(value):
            plan.input(value, f"the --{flag} file")


def external_files(model_path: str | os.PathLike) -> list[str]:
    """The external data files an ONNX file reads (its weights not read); [] when it cannot be read."""
    from surgery.errors import SurgeryError
    from surgery.graph import external_data_files

    try:
        return [str(p) for p in external_data_files(model_path)]
    except SurgeryError:
        return []  # the verb reports an unreadable model itself, in its own words


def plan_apply_outputs(args: argparse.Namespace, source: Any, input_path: Path, out_path: Path,
                       pass_names: list[str], record_default: Path, before: Path | None = None) -> tuple[Path, Path]:
    """apply's outputs, checked before any pass runs: the model (and its data file), the record, snapshots.

    Args:
        args: apply's arguments (``--output``, ``--record``, ``--snapshot``, ``--overwrite``, ``--inputs``).
        source: the loaded input (a :class:`surgery.graph.ModelFile`: its external data files are inputs too).
        input_path: the input model.
        out_path: where the model goes.
        pass_names: the passes in order (each gets a snapshot file).
        record_default: the record's default path.
        before: where a zoo model's export (the model before the passes) is written too.

    Returns:
        (the output model's path, the record's path).

    Raises:
        UsageError: any two of them the same file, one of them an input, a folder in the way,
            an unwritable or full location.
    """
    from surgery.instruments import Snapshot

    plan = Outputs()
    plan.input(input_path, "the input model", replaceable=args.overwrite)
    for data in source.data_files:
        plan.input(data, "the input model's external data", replaceable=args.overwrite)
    if args.inputs:
        plan.input(args.inputs, "the --inputs file")
    size = source.nbytes + source.data_bytes
    out = plan.model(out_path, flag="-o" if args.output else "", size=size)
    record, _ = plan.record(args.record, record_default, model={"digest": source.digest}, overwrite=args.overwrite)
    if before is not None:
        plan.model(before, "the model before the passes", flag="", size=size)
    if args.snapshot:
        folder = plan.folder(args.snapshot, "the snapshot folder", flag="--snapshot")
        for k, name in enumerate(pass_names):
            plan.model(folder / Snapshot.file_name(k, name), f"the snapshot after pass {k + 1} ({name})", flag="",
                       size=size, create_folder=True)
    return out, record


def _input_size(model_arg: str) -> int:
    """The bytes of an input model file (0 for a zoo name): what an output model about its size needs."""
    try:
        return os.path.getsize(model_arg) if not zoo().is_name(model_arg) else 0
    except OSError:
        return 0


def plan_model_outputs(args: argparse.Namespace, default_out: Path) -> tuple[Path, Path, str | None]:
    """A verb that writes a model and its record (tune): both checked before the work starts.

    Returns:
        (the output model, the record, a note when the record's default name was taken).
    """
    plan = Outputs()
    plan_inputs(plan, args)
    out = plan.model(args.output or default_out, flag="-o" if args.output else "", size=_input_size(args.model))
    default_record = out.with_name(out.name.removesuffix(".onnx") + ".json")
    record, note = plan.record(args.record, default_record, model=model_identity(args.model),
                               overwrite=getattr(args, "overwrite", False))
    return out, record, note


def plan_records(args: argparse.Namespace, defaults: list[tuple[str, Path]]) -> list[tuple[Path, str | None]]:
    """The records a verb writes, one per MODEL (bench), checked against the models and each other up front.

    ``--record`` names the record of a single MODEL; default names that already hold another
    model's record move to a free name, and the same model given twice gets two records.

    Returns:
        One (path, note or None) per MODEL, in order.
    """
    plan = Outputs()
    models = [m for m, _ in defaults]
    for model_arg in models:
        if not zoo().is_name(model_arg) and os.path.isfile(model_arg):
            plan.input(model_arg, f"the input model {model_arg}")
            for data in external_files(model_arg):
                plan.input(data, f"the external data of {model_arg}")
    out: list[tuple[Path, str | None]] = []
    taken: set[Path] = set()
    for model_arg, default in defaults:
        given = args.record if len(defaults) == 1 else None
        candidate, k = Path(default), 1
        while Path(os.path.abspath(candidate)) in taken:  # the same model twice: never one record for both
            k += 1
            candidate = Path(default).with_name(f"{Path(default).name.removesuffix('.json')}-{k}.json")
        path, note = plan.record(given, candidate, model=model_identity(model_arg),
                                 overwrite=getattr(args, "overwrite", False), create_folder=True)
        taken.add(path)
        out.append((path, note))
    return out
