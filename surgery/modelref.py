"""Resolve a MODEL argument: a path to an .onnx file, or a zoo name exported on the fly."""

from __future__ import annotations

import difflib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from surgery.errors import ModelLoadError, UsageError
from surgery.recipe import Recipe


@dataclass
class ModelRef:
    path: Path
    recipe: Recipe | None = None
    notices: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.recipe.name if self.recipe else str(self.path)


def zoo_recipes() -> dict[str, Recipe]:
    """The zoo's recipes, or {} if the zoo cannot be imported (it never needs torch to list)."""
    try:
        from surgery.models import RECIPES
    except ImportError:
        return {}
    return dict(RECIPES)


def resolve_model(arg: str | os.PathLike, **export_options: Any) -> ModelRef:
    """A path if one exists (or looks like a file), else a zoo model exported through its cache."""
    text = str(arg)
    path = Path(text)
    recipes = zoo_recipes()
    if path.exists() or text.endswith(".onnx") or os.sep in text or text not in recipes:
        given = sorted(k for k, v in export_options.items() if v)
        if given:
            flag = {"variants": "variant"}.get(given[0], given[0])
            raise UsageError(f"--{flag} applies to zoo models only, and {text} is a file path")
        if not path.exists():
            close = difflib.get_close_matches(text, list(recipes), n=2, cutoff=0.6)
            hint = f" (did you mean the zoo model {' or '.join(map(repr, close))}?)" if close else ""
            if not text.endswith(".onnx") and os.sep not in text and recipes and not close:
                hint = f" (not a file, nor a zoo model: {', '.join(sorted(recipes))})"
            raise ModelLoadError(f"model not found: {text}{hint}")
        return ModelRef(path=path)
    from surgery.models import resolve_zoo_model

    path = Path(resolve_zoo_model(text, **{k: v for k, v in export_options.items() if v is not None}))
    return ModelRef(path=path, recipe=recipes[text], notices=_export_notices(path))


def _export_notices(path: Path) -> list[str]:
    """The notices the zoo export wrote beside its cached model (e.g. "seeded weights: accuracy means nothing")."""
    try:
        return list(json.loads(path.with_suffix(".json").read_text(encoding="utf-8")).get("notices", []))
    except (OSError, ValueError, AttributeError):
        return []
