"""Resolve a MODEL argument: a path to an .onnx file, or a zoo name exported on the fly.

The zoo is handed in (:class:`Zoo`; the CLI gives ``surgery.models.ZOO``): the core never
imports the model zoo itself.
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from surgery.errors import ModelLoadError, UsageError
from surgery.recipe import Recipe


@dataclass(frozen=True)
class Zoo:
    """A model zoo as the core sees it: recipes by name, and the export behind a name.

    Attributes:
        recipes: name → recipe (plain data; listing needs no torch).
        resolve: ``resolve(name, checkpoint=..., variants=...)`` → the cached ONNX path
            (exported on first use; needs torch).
    """

    recipes: Mapping[str, Recipe] = field(default_factory=dict)
    resolve: Callable[..., os.PathLike | str] | None = None

    def is_name(self, text: str) -> bool:
        """A zoo model name that is not also a file in the current folder."""
        return text in self.recipes and not Path(text).exists()


NO_ZOO = Zoo()


@dataclass(frozen=True)
class ZooOptions:
    """``--checkpoint`` and ``--variant``: how a zoo name is exported."""

    checkpoint: str | None = None
    variants: tuple[tuple[str, str], ...] = ()
    guide: bool = False  # fill the variants not given from the recipe's guide graph (run, bench, tune, compile)

    def given(self) -> list[str]:
        """The flags given, for refusing them on file paths."""
        return [flag for flag, value in (("--checkpoint", self.checkpoint), ("--variant", self.variants)) if value]

    def chosen_variants(self, recipe: Recipe | None) -> dict[str, str]:
        """The variants given, and with ``guide`` the guide's for the keys not given."""
        guided = dict(recipe.guide_variants) if self.guide and recipe is not None else {}
        return {**guided, **dict(self.variants)}

    def export_kwargs(self, recipe: Recipe | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.checkpoint:
            out["checkpoint"] = self.checkpoint
        variants = self.chosen_variants(recipe)
        if variants:
            out["variants"] = variants
        return out


@dataclass
class ModelRef:
    path: Path
    recipe: Recipe | None = None
    notices: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.recipe.name if self.recipe else str(self.path)


def resolve_model(arg: str | os.PathLike, zoo: Zoo = NO_ZOO, options: ZooOptions | None = None) -> ModelRef:
    """A path if one exists (or looks like a file), else a zoo model exported through its cache.

    Raises:
        ModelLoadError: neither a file nor a zoo name (with a did-you-mean).
        UsageError: zoo options given for a file path.
    """
    text = str(arg)
    path = Path(text)
    options = options or ZooOptions()
    recipes = zoo.recipes
    if path.exists() or text.endswith(".onnx") or os.sep in text or text not in recipes:
        given = options.given()
        if given:
            raise UsageError(f"{given[0]} applies to zoo models only, and {text} is a file path")
        if not path.exists():
            close = difflib.get_close_matches(text, list(recipes), n=2, cutoff=0.6)
            close += [n for n in recipes if n.lower() == text.lower() and n not in close]
            hint = f" (did you mean the zoo model {' or '.join(map(repr, close))}?)" if close else ""
            if not text.endswith(".onnx") and os.sep not in text and recipes and not close:
                hint = f" (not a file, nor a zoo model: {', '.join(sorted(recipes))})"
            raise ModelLoadError(f"model not found: {text}{hint}")
        return ModelRef(path=path)
    if zoo.resolve is None:
        raise UsageError(f"{text} is a zoo model but this zoo cannot export")
    recipe = recipes[text]
    path = Path(zoo.resolve(text, **options.export_kwargs(recipe)))
    notices = _export_notices(path)
    given = dict(options.variants)
    guided = {k: v for k, v in options.chosen_variants(recipe).items() if k not in given}
    if guided:
        defaults = {v.key: v.default for v in recipe.variants}
        other = ", ".join(f"--variant {k}={defaults[k]}" for k in guided if k in defaults)
        notices.insert(0, f"built {text} with {', '.join(f'{k}={v}' for k, v in guided.items())}: the graph its guide "
                          f"compiled" + (f" ({other} for upstream's)" if other else ""))
    return ModelRef(path=path, recipe=recipe, notices=notices)


def _export_notices(path: Path) -> list[str]:
    """The notices the zoo export wrote beside its cached model (e.g. "seeded weights: accuracy means nothing")."""
    try:
        return list(json.loads(path.with_suffix(".json").read_text(encoding="utf-8")).get("notices", []))
    except (OSError, ValueError, AttributeError):
        return []
