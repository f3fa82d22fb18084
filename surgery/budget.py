"""An accuracy budget for inexact passes, and the per-layer fallback that keeps it.

    --budget top1=-0.5 | miou=-1.0 | iou=-0.5     a labelled metric (points) may drop at most this much
    --budget agreement=0.99                        the rewritten model agrees with the original on at least
                                                   99% of the task's decisions (no labels needed)

    figure(before) ─► pass ─► figure(after) ─► within budget? ─ yes ─► keep
                                                     │ no, --fallback
                                                     ▼
      sensitivity: the pass again with ONE changed layer left as before, for every layer
      ─► layers sorted by how much of the figure each one costs, most costly first
      ─► return them to their original form, one more at a time, each kept only if the figure improves,
         until the budget holds (when one large cost hid the others, the rest are measured again on top
         of those returned)

Why one layer at a time and then cumulative: a full search over subsets is exponential, and
where one layer carries most of the damage (an outlier weight, a sensitive head) the most
costly first reaches the budget with few layers in float. Costs do not always add up (on
PP-OCRv4's detector the error is spread thinly over many layers), so each layer is kept only
when the figure improves. The sensitivity is measured, not estimated from weights, so it
sees what the task sees; it costs one quantization (calibration reused) and one judgement
per int8 layer.

The figure comes from an :class:`Evaluator` handed in: the evaluation package's metrics on
a dataset, or :class:`OutputAgreement` (task-level agreement with the model before, on
generated inputs). A pass takes part in the fallback when it is :class:`Revertible` (it
names the layers it changed and can leave chosen ones alone), e.g. ``quantize_int8``.
:class:`BudgetCheck` is the instrument ``surgery apply --budget`` runs around each
inexact pass; it runs before the verification instruments so they check the final model.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import onnx

from surgery.calibration import CalibrationSource, Feed
from surgery.errors import UsageError, VerificationError
from surgery.parity import Session
from surgery.pass_infra import Pass, PassResult
from surgery.pipeline import Instrument, StepReport
from surgery.shapes import Shape, model_inputs, shapes_at

# metric -> (kind, unit); "drop": after - before >= limit (limit <= 0, in points); "floor": after >= limit
METRICS: dict[str, tuple[str, str]] = {
    "top1": ("drop", "points"), "top5": ("drop", "points"), "miou": ("drop", "points"),
    "iou": ("drop", "points"), "pixacc": ("drop", "points"), "agreement": ("floor", "fraction"),
}

Scorer = Callable[[onnx.ModelProto], float]


@dataclass(frozen=True)
class Budget:
    """How far an inexact pass may move a task figure: ``top1=-0.5`` (points) or ``agreement=0.99``."""

    metric: str
    limit: float

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise UsageError(f"unknown budget metric {self.metric!r} (known: {', '.join(METRICS)})")
        if not math.isfinite(self.limit):
            raise UsageError(f"budget {self.metric} needs a finite number, got {self.limit!r}")
        if self.kind == "drop" and self.limit > 0:
            raise UsageError(f"budget {self.metric}={self.limit:g} is an allowed change in points and must be <= 0, "
                             f"e.g. {self.metric}=-0.5")
        if self.kind == "floor" and not 0 < self.limit <= 1:
            raise UsageError(f"budget {self.metric}={self.limit:g} is a fraction of decisions kept, in (0, 1], "
                             f"e.g. {self.metric}=0.99")

    @classmethod
    def parse(cls, text: str) -> Budget:
        """``"top1=-0.5"`` → Budget("top1", -0.5).

        Raises:
            UsageError: not ``METRIC=NUMBER``, an unknown metric, or a limit of the wrong sign or range.
        """
        name, sep, value = text.partition("=")
        name = name.strip().lower()
        if not sep or not name or not value.strip():
            raise UsageError(f"bad --budget {text!r}: expected METRIC=VALUE, e.g. top1=-0.5 or agreement=0.99")
        try:
            limit = float(value)
        except ValueError:
            raise UsageError(f"bad --budget {text!r}: {value.strip()!r} is not a number") from None
        return cls(name, limit)

    @property
    def kind(self) -> str:
        return METRICS[self.metric][0]

    @property
    def labelled(self) -> bool:
        """Whether the figure needs labels (a dataset), not just the model before."""
        return self.kind == "drop"

    def holds(self, before: float, after: float) -> bool:
        if self.kind == "floor":
            return after >= self.limit
        return after - before >= self.limit - 1e-9  # within float noise of the limit is within it

    def describe(self) -> str:
        if self.kind == "floor":
            return f"{self.metric} >= {self.limit:g}"
        return f"{self.metric} may change by {self.limit:+g} points"

    def __str__(self) -> str:
        return f"{self.metric}={self.limit:g}"


@dataclass
class Judgement:
    """One measurement of a budget: the figure before and after, and whether it holds."""

    budget: Budget
    before: float
    after: float
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def holds(self) -> bool:
        return self.budget.holds(self.before, self.after)

    @property
    def change(self) -> float:
        return self.after - self.before

    def text(self) -> str:
        b = self.budget
        if b.kind == "floor":
            verdict = "within" if self.holds else "below"
            return f"{b.metric} {self.after:.4f} vs the model before, {verdict} the budget {b.limit:g}"
        verdict = "within" if self.holds else "over"
        return (f"{b.metric} {self.before:.2f} → {self.after:.2f} ({self.change:+.2f} points), {verdict} the budget "
                f"of {b.limit:+g}")

    def to_dict(self) -> dict[str, Any]:
        return {"budget": str(self.budget), "metric": self.budget.metric, "limit": self.budget.limit,
                "before": self.before, "after": self.after, "change": self.change, "holds": self.holds,
                **({"detail": self.detail} if self.detail else {})}


class Evaluator(Protocol):
    """Measures a budget's figure. ``bind(reference)`` gives the scorer of candidates against that model."""

    def bind(self, reference: onnx.ModelProto) -> Scorer:
        """A function giving the figure of a model; ``scorer(reference)`` is the figure before."""
        ...

    def describe(self) -> str:
        """One line: what the figure is measured on."""
        ...


@runtime_checkable
class Revertible(Protocol):
    """A pass that names the layers it changed and can leave chosen ones as they were (the fallback's lever)."""

    name: str

    def layers(self, model: onnx.ModelProto) -> list[str]:
        """The layers this pass changed in ``model`` (its output), in graph order."""
        ...

    def keeping(self, layers: Sequence[str], *, cache_dir: str | None = None) -> Pass:
        """The same pass leaving ``layers`` unchanged too; it may cache slow work in ``cache_dir``."""
        ...


def judge(budget: Budget, scorer: Scorer, reference: onnx.ModelProto, candidate: onnx.ModelProto,
          before: float | None = None) -> Judgement:
    """The budget measured on ``candidate`` against ``reference`` (``before``: the reference's figure, if known)."""
    return Judgement(budget, scorer(reference) if before is None else before, scorer(candidate))


@dataclass
class LayerCost:
    """What leaving one layer unchanged gives back: the figure with it alone unchanged, and the gain."""

    layer: str
    figure: float
    gain: float

    def to_dict(self) -> dict[str, Any]:
        return {"layer": self.layer, "figure": self.figure, "gain": self.gain}


@dataclass
class FallbackResult:
    """The fallback's outcome: layers returned (most costly first), each step's figure, the final model."""

    costs: list[LayerCost]
    kept: list[str]
    trail: list[tuple[int, float]]  # (layers returned, figure)
    judgement: Judgement | None = None
    scans: int = 0
    rejected: list[str] = field(default_factory=list)  # tried on top of those returned, and no better
    model: onnx.ModelProto | None = None
    result: PassResult | None = None
    pass_: Pass | None = None

    @property
    def holds(self) -> bool:
        return self.judgement is not None and self.judgement.holds

    def to_dict(self) -> dict[str, Any]:
        return {"holds": self.holds, "kept_float": list(self.kept), "scans": self.scans,
                "rejected": list(self.rejected),
                "sensitivity": [c.to_dict() for c in self.costs],
                "trail": [{"layers": n, "figure": f} for n, f in self.trail],
                "judgement": self.judgement.to_dict() if self.judgement else None}


def _run_variant(p: Pass, reference: onnx.ModelProto) -> tuple[onnx.ModelProto, PassResult]:
    model = onnx.ModelProto()
    model.CopyFrom(reference)
    result = p(model)
    return result.model, result


def sensitivity(p: Revertible, reference: onnx.ModelProto, layers: Sequence[str], scorer: Scorer, base: float, *,
                kept: Sequence[str] = (), cache_dir: str | None = None,
                on_layer: Callable[[int, int, str], None] | None = None) -> list[LayerCost]:
    """Each layer's cost: the figure with that layer (and ``kept``) left unchanged, minus ``base``.

    Returns:
        One cost per layer, most costly first (ties keep graph order).
    """
    costs: list[LayerCost] = []
    for k, layer in enumerate(layers):
        if on_layer is not None:
            on_layer(k, len(layers), layer)
        model, _ = _run_variant(p.keeping([*kept, layer], cache_dir=cache_dir), reference)
        figure = scorer(model)
        costs.append(LayerCost(layer, figure, figure - base))
    return sorted(costs, key=lambda c: -c.gain)


def fallback(p: Revertible, budget: Budget, reference: onnx.ModelProto, changed: onnx.ModelProto, scorer: Scorer,
             before: float, *, max_layers: int | None = None, cache_dir: str | None = None,
             on_layer: Callable[[int, int, str], None] | None = None) -> FallbackResult:
    """Return the most costly layers to their original form, one more at a time, until ``budget`` holds.

    The first scan measures every layer alone (``costs``: the per-layer sensitivity). Layers
    are then tried in that order, each on top of those already returned, and kept only when
    the figure improves (costs do not always add up: ``rejected`` lists the others). When the
    next layer's measured gain is not positive, one large cost was hiding the others, and the
    remaining layers are scanned again on top of those returned; a scan in which no layer
    helps ends the search.

    Args:
        p: the pass that made ``changed`` from ``reference``.
        budget: the budget to meet.
        reference: the model before the pass.
        changed: the model after it (over budget).
        scorer: the figure of a model (``Evaluator.bind(reference)``).
        before: the figure of ``reference``.
        max_layers: the most layers to return (None: as many as the pass changed).
        cache_dir: handed to the pass variants (calibration reuse).
        on_layer: progress, called with (index, count, layer) during each scan.

    Returns:
        The sensitivity, the layers returned and each step's figure; ``model`` is the first
        variant within budget, or None when none is.
    """
    remaining = list(p.layers(changed))
    current = scorer(changed)
    out = FallbackResult(costs=[], kept=[], trail=[(0, current)])
    limit = len(remaining) if max_layers is None else min(max_layers, len(remaining))
    queue: list[LayerCost] = []
    while remaining and len(out.kept) < limit:
        fresh = not queue
        if fresh:
            queue = sensitivity(p, reference, remaining, scorer, current, kept=out.kept, cache_dir=cache_dir,
                                on_layer=on_layer)
            out.scans += 1
            if out.scans == 1:
                out.costs = list(queue)
            if queue[0].gain <= 0:
                break  # no remaining layer helps on top of those returned
        cost = queue.pop(0)
        remaining.remove(cost.layer)
        variant = p.keeping([*out.kept, cost.layer], cache_dir=cache_dir)
        model, result = (None, None) if fresh else _run_variant(variant, reference)
        figure = cost.figure if model is None else scorer(model)  # fresh: this very set was scanned
        if figure <= current:
            out.rejected.append(cost.layer)
        else:
            out.kept.append(cost.layer)
            current = figure
            out.trail.append((len(out.kept), current))
            out.judgement = Judgement(budget, before, current)
            if out.judgement.holds:
                if model is None:
                    model, result = _run_variant(variant, reference)
                out.model, out.result, out.pass_ = model, result, variant
                return out
        if queue and queue[0].gain <= 0:
            queue = []  # the scan says nothing more about the rest: measure them again on top of these
    if out.judgement is None:
        out.judgement = Judgement(budget, before, current)
    return out


class BudgetCheck(Instrument):
    """Around each inexact pass: measure the budget's figure before and after; fail, or fall back, when over.

    Put it first among the instruments: on a fallback it replaces the pass's output with the
    variant within budget, which the checker and parity then verify.
    """

    name = "budget"

    def __init__(self, budget: Budget, evaluator: Evaluator, *, fallback: bool = False,
                 max_layers: int | None = None, applies: Callable[[Pass], bool] | None = None,
                 on_layer: Callable[[int, int, str], None] | None = None):
        self.budget, self.evaluator, self.fallback, self.max_layers = budget, evaluator, fallback, max_layers
        self.applies = applies or (lambda p: not p.exact)
        self.on_layer = on_layer
        self._reference: onnx.ModelProto | None = None

    def before_pass(self, p: Pass, model: onnx.ModelProto, step: StepReport) -> None:
        self._reference = None
        if self.applies(p):
            self._reference = onnx.ModelProto()
            self._reference.CopyFrom(model)

    def after_pass(self, p: Pass, result: PassResult, step: StepReport) -> None:
        reference = self._reference
        if reference is None:
            return
        if not result.changed:
            step.figures[self.name] = {"skipped": "model unchanged"}
            return
        scorer = self.evaluator.bind(reference)
        judgement = judge(self.budget, scorer, reference, result.model)
        figures: dict[str, Any] = {**judgement.to_dict(), "measured_on": self.evaluator.describe()}
        step.figures[self.name] = figures
        if judgement.holds:
            return
        if not self.fallback:
            hint = " (add --fallback to return the most costly layers)" if isinstance(p, Revertible) else ""
            raise VerificationError(f"pass {p.name}: {judgement.text()}{hint}")
        if not isinstance(p, Revertible):
            raise VerificationError(f"pass {p.name}: {judgement.text()}; it cannot return single layers, so "
                                    f"--fallback has nothing to try")
        with tempfile.TemporaryDirectory(prefix="surgery-fallback-") as cache:
            outcome = fallback(p, self.budget, reference, result.model, scorer, judgement.before,
                               max_layers=self.max_layers, cache_dir=cache, on_layer=self.on_layer)
        figures["fallback"] = outcome.to_dict()
        if outcome.model is None or outcome.result is None or outcome.pass_ is None:
            last = outcome.trail[-1][1]
            names = ", ".join(outcome.kept[:4]) + (", ..." if len(outcome.kept) > 4 else "")
            others = f"; {len(outcome.rejected)} more did not help" if outcome.rejected else ""
            raise VerificationError(f"pass {p.name}: {judgement.text()}; returning the {len(outcome.kept)} layer(s) "
                                    f"that helped ({names or 'none'}) leaves the {self.budget.metric} at "
                                    f"{last:.4g}{others}")
        result.model.CopyFrom(outcome.model)
        final = outcome.result
        step.counts, step.notes = dict(final.counts), list(final.notes)
        step.options = outcome.pass_.option_values()
        kept = ", ".join(outcome.kept)
        step.notes.append(f"budget {self.budget}: {outcome.judgement.text() if outcome.judgement else ''}; "
                          f"returned {len(outcome.kept)} layer(s) to float, most costly first: {kept}")


# ---------------------------------------------------------------------------------------
# task agreement without labels


def task_agreement(reference: np.ndarray, candidate: np.ndarray) -> tuple[str, float]:
    """How far two outputs of one sample agree on the task's own terms; (what was compared, fraction).

    - N×K scores (K > 1): top-1 agreement;
    - N×C×H×W (C > 1): argmax label-map pixel agreement;
    - N×1×H×W or N×H×W maps: IoU of the thresholded masks (0.5 for outputs within [0, 1],
      else 0: logits), 1.0 when both masks are empty;
    - anything else: the fraction of elements equal within 1e-3 relative tolerance.
    """
    if reference.shape != candidate.shape:
        return "shape", 0.0
    if reference.dtype.kind in "iub":  # label maps already (argmax heads)
        return "labels", float(np.mean(reference == candidate))
    if reference.ndim == 2 and reference.shape[1] > 1:
        return "top1", float(np.mean(reference.argmax(1) == candidate.argmax(1)))
    if reference.ndim == 4 and reference.shape[1] > 1:
        return "pixels", float(np.mean(reference.argmax(1) == candidate.argmax(1)))
    if reference.ndim in (3, 4):
        threshold = 0.5 if reference.min() >= 0 and reference.max() <= 1 else 0.0
        a, b = reference > threshold, candidate > threshold
        union = np.count_nonzero(a | b)
        return "mask_iou", 1.0 if union == 0 else float(np.count_nonzero(a & b) / union)
    close = np.isclose(candidate, reference, rtol=1e-3, atol=1e-6)
    return "close", float(np.mean(close))


@dataclass
class OutputAgreement:
    """Task-level agreement with the model before, on inputs from a calibration source (no labels needed).

    Each sample's outputs are compared with :func:`task_agreement`; the figure is the mean
    over samples of the worst output. Use a source with another seed than calibration's, so
    the model is judged on images it was not calibrated on.
    """

    source: CalibrationSource
    samples: int = 32
    input_shapes: dict[str, Shape] | None = None
    _feeds: list[Feed] = field(default_factory=list, repr=False)

    def _inputs(self, model: onnx.ModelProto) -> list[Feed]:
        if not self._feeds:
            specs = model_inputs(model)
            shapes = shapes_at(specs, None, self.input_shapes)
            self._feeds = list(self.source.feeds(specs, shapes, self.samples))
            if not self._feeds:
                raise UsageError(f"no samples to judge the budget on from {self.source.describe()}")
        return self._feeds

    def bind(self, reference: onnx.ModelProto) -> Scorer:
        feeds = self._inputs(reference)
        session = Session(reference)
        expected = [session.run(f) for f in feeds]

        def score(model: onnx.ModelProto) -> float:
            if model is reference:
                return 1.0
            runner = Session(model)
            per_sample = []
            for feed, ref in zip(feeds, expected, strict=True):
                got = runner.run(feed)
                per_sample.append(min(task_agreement(ref[n], got[n])[1] for n in ref if n in got))
            return float(np.mean(per_sample))

        return score

    def describe(self) -> str:
        count = len(self._feeds) or self.samples  # a folder may hold fewer than asked for
        return f"agreement with the model before on {count} inputs: {self.source.describe()}"
