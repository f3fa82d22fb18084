"""The table of targets the verbs run on, built with the zoo and pass registry handed to each.

One literal table: a target's name is its key, and adding a target is one line here.
"""

from __future__ import annotations

from surgery.api import builtin_targets
from surgery.targets import Target


def targets() -> dict[str, Target]:
    """Every target, keyed by name; each verb takes the ones that can do it (the public API's table)."""
    return builtin_targets()


def names(verb: str) -> list[str]:
    """The names of the targets that do ``verb``, for help texts."""
    return [name for name, t in targets().items() if verb in t.honours]
