"""The model zoo: the five seed-guide models as recipes (plain data) and plain-torch networks.

    from surgery.models import get_recipe, load_network, export_model
    recipe = get_recipe("unetpp")                 # no torch needed
    net = load_network("icnet", {"ppm": "ascend"})  # imports torch and the network module
    result = export_model("unetpp", "unetpp.onnx", checkpoint="nested_unet.pth")

Importing this package never imports torch: listing models, reference columns and vendor
dry runs work on hosts without it.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from surgery.errors import UnknownNameError, UsageError
from surgery.modelref import Zoo
from surgery.recipe import Recipe

from .recipes import CSPRESNEXT50, DEEPLABV3, HRNET_W18, ICNET, UNETPP

if TYPE_CHECKING:
    from torch import nn

    from ._export import ExportResult

RECIPES: dict[str, Recipe] = {
    "icnet": ICNET,
    "unetpp": UNETPP,
    "cspresnext50": CSPRESNEXT50,
    "deeplabv3": DEEPLABV3,
    "hrnet_w18": HRNET_W18,
}

TORCH_HINT = "install it with `pip install torch==2.13.0` (or the onnx-surgery[torch] extra)"


def get_recipe(name: str) -> Recipe:
    """The recipe of zoo model ``name``.

    Raises:
        UnknownNameError: no such model (the message suggests close names).
    """
    try:
        return RECIPES[name]
    except KeyError:
        raise UnknownNameError("model", name, RECIPES) from None


def resolve_variants(recipe: Recipe, variants: Mapping[str, str] | None = None) -> dict[str, str]:
    """The recipe's variant defaults overridden by ``variants``, validated.

    Raises:
        UnknownNameError: a variant key the model does not have.
        UsageError: a value that is not one of the key's choices.
    """
    chosen = recipe.variant_defaults()
    known = {v.key: v for v in recipe.variants}
    for key, value in (variants or {}).items():
        if key not in known:
            if not known:
                raise UsageError(f"model {recipe.name} has no variants (got {key}={value})")
            raise UnknownNameError(f"variant of {recipe.name}", key, known)
        if value not in known[key].choices:
            raise UsageError(f"variant {key}={value!r} of {recipe.name} is not one of "
                             f"{', '.join(known[key].choices)}")
        chosen[key] = value
    return chosen


def require_torch() -> ModuleType:
    """Import torch, or raise a one-line UsageError saying how to install it."""
    try:
        return importlib.import_module("torch")
    except ImportError:
        raise UsageError(f"exporting zoo models needs PyTorch, which is not installed: {TORCH_HINT}") from None


def network_module(name: str) -> ModuleType:
    """The network module of zoo model ``name`` (imports torch)."""
    recipe = get_recipe(name)
    require_torch()
    return importlib.import_module(recipe.module)


def load_network(name: str, variants: Mapping[str, str] | None = None) -> nn.Module:
    """Build zoo model ``name`` in eval mode with the given variants (torch's default init, no checkpoint).

    Raises:
        UnknownNameError: unknown model or variant key.
        UsageError: a bad variant value, or torch is not installed.
    """
    recipe = get_recipe(name)
    chosen = resolve_variants(recipe, variants)
    return network_module(name).build(chosen)


def export_model(name: str, out_path: str | Path, **options: Any) -> ExportResult:
    """Export zoo model ``name`` to ONNX; see :func:`surgery.models._export.export_model`."""
    from ._export import export_model as _export_model

    return _export_model(name, out_path, **options)


def resolve_zoo_model(name: str, **options: Any) -> Path:
    """The cached ONNX file of ``name``, exported on first use; see :func:`surgery.models._export.resolve_zoo_model`."""
    from ._export import resolve_zoo_model as _resolve

    return _resolve(name, **options)


ZOO = Zoo(recipes=RECIPES, resolve=resolve_zoo_model)  # what the CLI and the public API hand to the core

__all__ = ["RECIPES", "ZOO", "export_model", "get_recipe", "load_network", "resolve_variants", "resolve_zoo_model"]
