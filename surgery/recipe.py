"""The model-recipe contract: what a zoo entry tells the rest of surgery.

Recipes are plain data (no torch import), so ``surgery list models``, reference
columns in ``surgery diff`` and vendor-tool dry runs work without torch. The network
itself lives in the module named by ``Recipe.module`` and is imported only to export.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from surgery.shapes import InputSpec


@dataclass(frozen=True)
class ModelVariant:
    """A switch where a guide changed the model, e.g. ``ppm=exact|ascend``."""

    key: str
    choices: tuple[str, ...]
    default: str
    help: str = ""


@dataclass(frozen=True)
class PassStep:
    """One step of a recipe's default pipeline: a pass name and its options."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Published:
    """Numbers a seed guide published, kept as data for reference columns.

    ``throughput`` maps a device column ("310", "310P", "T4") to {batch: samples/s}.
    ``accuracy`` maps a metric name to its value per device or source.
    """

    accuracy: dict[str, dict[str, float]] = field(default_factory=dict)
    throughput: dict[str, dict[int, float]] = field(default_factory=dict)
    source: str = ""


@dataclass(frozen=True)
class Recipe:
    """A zoo model: upstream reference, export spec, default passes, target options, data and numbers."""

    name: str
    summary: str
    upstream: str  # repo@commit
    module: str  # import path of the network module, e.g. "surgery.models.unetpp"
    inputs: tuple[InputSpec, ...]
    outputs: tuple[str, ...]
    params: int  # parameter count of the network as upstream builds it
    opset: int = 11
    dynamic_batch: bool = True
    variants: tuple[ModelVariant, ...] = ()
    default_passes: tuple[PassStep, ...] = ()
    atc: dict[str, Any] = field(default_factory=dict)  # the guide's ATC options (soc, input_format, ...)
    trtexec: dict[str, Any] = field(default_factory=dict)  # the command behind the guide's T4 column
    aoe: dict[str, Any] = field(default_factory=dict)  # the guide's AOE / auto_tune options
    batches: tuple[int, ...] = (1, 4, 8, 16, 32)  # the batch sizes of the guide's perf table
    dataset: str = ""
    preprocessing: str = ""
    metric: str = ""
    published: Published = field(default_factory=Published)
    guide: str = ""  # the seed guide's file name under shared/seeds/

    def variant_defaults(self) -> dict[str, str]:
        return {v.key: v.default for v in self.variants}

    def input_shapes(self, batch: int = 1) -> dict[str, tuple[int, ...]]:
        """The guide's input shapes with the batch axis set to ``batch``."""
        return {i.name: tuple(batch if d == "N" else int(d) for d in i.shape) for i in self.inputs}


__all__ = ["InputSpec", "ModelVariant", "PassStep", "Published", "Recipe"]
