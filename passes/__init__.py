"""The pass registry: one literal table, name → class. Importing a pass module registers nothing."""

from __future__ import annotations

from surgery.errors import UnknownNameError
from surgery.pass_infra import Pass

from .eliminate_dead_code import EliminateDeadCode
from .fix_shapes import FixShapes
from .prune_outputs import PruneOutputs
from .resize_nearest import ResizeNearest
from .simplify import Simplify
from .truncate import Truncate

PASSES: dict[str, type[Pass]] = {
    "eliminate_dead_code": EliminateDeadCode,
    "prune_outputs": PruneOutputs,
    "truncate": Truncate,
    "resize_nearest": ResizeNearest,
    "simplify": Simplify,
    "fix_shapes": FixShapes,
}


def get_pass(name: str) -> type[Pass]:
    """The pass class registered under ``name``; UnknownNameError (with a did-you-mean) otherwise."""
    try:
        return PASSES[name]
    except KeyError:
        raise UnknownNameError("pass", name, PASSES) from None


def make_pass(name: str, options: dict[str, str] | None = None) -> Pass:
    """Build a pass from its name and options given as strings (as on the command line)."""
    return get_pass(name).from_strings(options or {})


__all__ = ["PASSES", "EliminateDeadCode", "FixShapes", "PruneOutputs", "ResizeNearest", "Simplify", "Truncate",
           "get_pass", "make_pass"]
