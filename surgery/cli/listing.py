"""surgery list passes|models: what is available, with summaries and options."""

from __future__ import annotations

import argparse

from rich.markup import escape
from rich.table import Table

from surgery.shapes import InputSpec

from ._common import add_json, print_json, print_table, zoo

NAME = "list"
HELP = "list the passes (with options and defaults) or the zoo models"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("what", choices=["passes", "models"], help="what to list")
    add_json(parser)


def run(args: argparse.Namespace) -> int:
    return _passes(args.json) if args.what == "passes" else _models(args.json)


def _passes(as_json: bool) -> int:
    from surgery.passes import PASSES

    if as_json:
        print_json([{"name": name, "summary": cls.summary(), "exact": cls.exact,
                     "options": [o.__dict__ for o in cls.options()]} for name, cls in PASSES.items()])
        return 0
    table = Table(title="passes", show_lines=True)
    table.add_column("pass", style="bold")
    table.add_column("exact")
    table.add_column("summary and options")
    for name, cls in PASSES.items():
        lines = [escape(cls.summary())]
        for o in cls.options():
            default = "required" if o.required else f"default {_show(o.default)}"
            choices = f" ({'|'.join(o.choices)})" if o.choices else _bounds(o.minimum, o.maximum)
            lines.append(f"  [cyan]{o.name}[/]: {escape(o.type + choices)}, {escape(default)} — {escape(o.help)}")
        table.add_row(name, "yes" if cls.exact else "[yellow]no[/]", "\n".join(lines))
    print_table(table)
    return 0


def _bounds(low: float | None, high: float | None) -> str:
    """`` (>= 1)``, `` (<= 64)``, `` (1..64)`` or nothing."""
    if low is None and high is None:
        return ""
    if low is None:
        return f" (<= {high:g})"
    return f" (>= {low:g})" if high is None else f" ({low:g}..{high:g})"


def _show(value: object) -> str:
    if value in ((), None):
        return "none"
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return str(value)


def _models(as_json: bool) -> int:
    recipes = zoo().recipes
    if as_json:
        print_json([{"name": r.name, "summary": r.summary, "upstream": r.upstream, "params": r.params,
                     "inputs": [_input(i) for i in r.inputs], "outputs": list(r.outputs),
                     "variants": {v.key: {"choices": list(v.choices), "default": v.default} for v in r.variants},
                     "default_passes": [{"name": p.name, "options": p.options} for p in r.default_passes]}
                    for r in recipes.values()])
        return 0
    table = Table(title="zoo models")
    table.add_column("model", style="bold")
    table.add_column("summary")
    table.add_column("params", justify="right")
    table.add_column("input")
    table.add_column("variants")
    table.add_column("default passes")
    for r in recipes.values():
        inputs = ", ".join(f"{i.name} {'x'.join(map(str, i.shape))}" for i in r.inputs)
        variants = ", ".join(f"{v.key}={'|'.join(v.choices)}" for v in r.variants)
        table.add_row(r.name, r.summary, f"{r.params:,}", inputs, variants, ", ".join(p.name for p in r.default_passes))
    print_table(table)
    return 0


def _input(spec: InputSpec) -> dict:
    return {"name": spec.name, "shape": list(spec.shape), "dtype": str(spec.dtype)}
