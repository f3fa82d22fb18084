"""What an evaluation produced: the shape that run records (``RunRecord.eval``), ``diff`` and reports read.

``EvalResult.to_dict()``::

    {
      "kind": "accuracy" | "fidelity",
      "task": "segmentation" | "binary_segmentation" | "classification",
      "recipe": "icnet" | None,            # whose preprocessing and metric
      "mode": "guide" | "upstream",
      "metric": "icnet_segmentation",       # the scorer (accuracy) or agreement (fidelity)
      "primary": "mIoU_average",            # the headline metric's key in "metrics"
      "headline": "mIoU_average 0.6890",    # one line for tables
      "metrics": {"mIoU": 0.68, ...},       # fractions in [0, 1] (NaN: no data), dataset-level
      "notes": {"mIoU": "what it means", ...},
      "published": [{"key": "mIoU", "metric": "mIoU_average", "value": 68.9, "scale": 1.0,
                     "figures": {"310": 0.686, "310P": 0.689}}],   # the guide's numbers beside ours
      "guide_line": "Evaluate: Average mIoU: 0.689, ...",          # as the guide's script prints it
      "per_sample": [{"id": "...", "<figure>": 0.9, ...}],         # in dataset order
      "worst": [{"id": "...", ...}],        # the lowest by "worst_key", at most 5
      "worst_key": "mIoU",
      "samples": 8,
      "dataset": {"kind", "path", "samples", "total", "labels", "synthetic"} | {"generated": ...},
      "synthetic": true,                    # figures on generated data are not accuracy
      "source": {"target": "ort-cpu", "batch": 1} | {"outputs": DIR, "layout": "ais_bench", "format": "bin"},
      "models": {"model": {"path", "digest"}} | {"before": {...}, "after": {...}},
      "preprocessing": {...},               # the mode's Preprocessing as a dict
      "extra": {...},                       # per-class IoU, the guide's result.json, accuracies of before/after
      "seconds": {"total", "preprocess", "inference", "score"}, "images_per_second": {...},
      "notices": ["..."]
    }
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from surgery.recipe import EvalSpec, Published

WORST = 5


@dataclass
class EvalResult:
    """An accuracy or fidelity evaluation (see the module docstring for :meth:`to_dict`'s shape)."""

    kind: str
    task: str
    metric: str
    primary: str
    metrics: dict[str, float]
    recipe: str | None = None
    mode: str = "guide"
    notes: dict[str, str] = field(default_factory=dict)
    published: list[dict[str, Any]] = field(default_factory=list)
    guide_line: str = ""
    per_sample: list[dict[str, Any]] = field(default_factory=list)
    worst_key: str = ""
    worst_lowest: bool = True
    dataset: dict[str, Any] = field(default_factory=dict)
    synthetic: bool = False
    source: dict[str, Any] = field(default_factory=dict)
    models: dict[str, Any] = field(default_factory=dict)
    preprocessing: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)

    @property
    def samples(self) -> int:
        return len(self.per_sample)

    def worst(self, count: int = WORST) -> list[dict[str, Any]]:
        """The samples with the lowest ``worst_key`` (NaN last), at most ``count``."""
        if not self.worst_key:
            return []
        scored = [s for s in self.per_sample if isinstance(s.get(self.worst_key), (int, float))]

        def key(s: dict[str, Any]) -> tuple[bool, float]:
            v = float(s[self.worst_key])
            return (math.isnan(v), v if self.worst_lowest else -v)

        return sorted(scored, key=key)[:count]

    def value(self) -> float:
        return float(self.metrics.get(self.primary, float("nan")))

    def headline(self) -> str:
        """``<primary> <value>``, e.g. ``mIoU vs before 0.9712``."""
        label = self.notes.get("_headline", self.primary)
        return f"{label} {self.value():.4f}"

    def images_per_second(self) -> dict[str, float]:
        n = self.samples
        return {k: n / v for k, v in self.seconds.items() if v and v > 0 and n}

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "task": self.task, "recipe": self.recipe, "mode": self.mode, "metric": self.metric,
            "primary": self.primary, "headline": self.headline(), "metrics": dict(self.metrics),
            "notes": {k: v for k, v in self.notes.items() if not k.startswith("_")},
            "published": list(self.published), "guide_line": self.guide_line, "per_sample": list(self.per_sample),
            "worst": self.worst(), "worst_key": self.worst_key, "samples": self.samples, "dataset": dict(self.dataset),
            "synthetic": self.synthetic, "source": dict(self.source), "models": dict(self.models),
            "preprocessing": dict(self.preprocessing), "extra": dict(self.extra), "seconds": dict(self.seconds),
            "images_per_second": self.images_per_second(), "notices": list(self.notices),
        }


def published_rows(spec: EvalSpec, published: Published, metrics: dict[str, float]) -> list[dict[str, Any]]:
    """The guide's published figures beside ours, on the guide's scale (×100 where it prints percentages)."""
    rows = []
    for key, metric in spec.published.items():
        figures = published.accuracy.get(key)
        if not figures or metric not in metrics:
            continue
        rows.append({"key": key, "metric": metric, "value": metrics[metric] * spec.published_scale,
                     "scale": spec.published_scale, "figures": dict(figures)})
    return rows
