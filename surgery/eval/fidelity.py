"""Fidelity: how far a rewritten model agrees with the original on the task's own terms, without labels.

The model before the rewrite plays the ground truth:

- segmentation: the after-vs-before agreement of the argmax label maps (``pixel_agreement``)
  and their mIoU (``mIoU``: classes present in either map; the per-image figure too);
- binary segmentation: the IoU of the thresholded masks (``mask_IoU``; two empty masks
  agree perfectly) and pixel agreement; the threshold is the mode's (guide: raw logits
  > 0.5; upstream: sigmoid > 0.5);
- classification: ``top1_agreement`` (same top class) and ``top5_overlap``
  (|top-5 after ∩ top-5 before| / 5).

``max_abs`` is the largest element difference of the raw outputs. A model compared with
itself scores exactly 1.

:class:`FidelityInstrument` records this figure for every inexact pass of a
:class:`surgery.pipeline.Pipeline`, on images generated in the model's input distribution.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
import onnx

from surgery import validate
from surgery.errors import UsageError, first_line
from surgery.eval import generate, metrics
from surgery.eval.preprocess import Preprocessor
from surgery.eval.result import EvalResult
from surgery.pass_infra import Pass, PassResult
from surgery.pipeline import Instrument, StepReport
from surgery.recipe import EvalSpec, Preprocessing, Recipe
from surgery.shapes import Shape, model_inputs, shapes_at

TASKS = ("segmentation", "binary_segmentation", "classification")
TASK_DATASET = {"segmentation": "cityscapes", "binary_segmentation": "dsb2018", "classification": "imagenet"}
DEFAULT_SAMPLES = 8  # images per comparison for inputs up to SAMPLE_PIXELS pixels
SAMPLE_PIXELS = 512 * 512  # above it, fewer images (ICNet's 1024x2048 gets MIN_SAMPLES): each costs two inferences
MIN_SAMPLES = 2


def default_samples(input_shape: Sequence[int]) -> int:
    """How many generated images a comparison uses by default: 8, fewer for large inputs (at least 2)."""
    pixels = int(input_shape[-1]) * int(input_shape[-2]) if len(input_shape) >= 2 else 1
    return max(MIN_SAMPLES, min(DEFAULT_SAMPLES, DEFAULT_SAMPLES * SAMPLE_PIXELS // max(1, pixels)))


class Agreement:
    """Accumulates after-vs-before agreement over samples; subclasses per task."""

    task: ClassVar[str] = ""
    primary: ClassVar[str] = ""
    headline: ClassVar[str] = ""
    worst_key: ClassVar[str] = ""
    notes: ClassVar[dict[str, str]] = {}

    def __init__(self) -> None:
        self.per_sample: list[dict[str, Any]] = []
        self.max_abs = 0.0

    def update(self, sample_id: str, before: np.ndarray, after: np.ndarray) -> dict[str, Any]:
        b, a = np.asarray(before), np.asarray(after)
        if b.shape != a.shape:
            raise UsageError(f"{sample_id}: outputs before and after differ in shape ({list(b.shape)} vs "
                             f"{list(a.shape)})")
        if b.size and np.issubdtype(b.dtype, np.number):
            diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
            self.max_abs = max(self.max_abs, float(np.nan_to_num(diff, nan=np.inf).max()))
        figures = self._compare(sample_id, b, a)
        self.per_sample.append({"id": sample_id, **figures})
        return figures

    def _compare(self, sample_id: str, before: np.ndarray, after: np.ndarray) -> dict[str, Any]:
        raise NotImplementedError

    def result(self) -> dict[str, float]:
        raise NotImplementedError


class SegmentationAgreement(Agreement):
    task = "segmentation"
    primary = "mIoU"
    headline = "mIoU vs before"
    worst_key = "mIoU"
    notes: ClassVar[dict[str, str]] = {
        "mIoU": "mIoU of the after label maps against the before ones, over the classes in either (summed areas)",
        "pixel_agreement": "fraction of pixels with the same class before and after",
        "max_abs": "largest absolute difference of the raw outputs",
    }

    def __init__(self, num_classes: int | None = None):
        super().__init__()
        self.num_classes = num_classes
        self.cm: np.ndarray | None = None
        self.agree = 0
        self.pixels = 0

    def _compare(self, sample_id: str, before: np.ndarray, after: np.ndarray) -> dict[str, Any]:
        b, a = metrics.label_map(before, sample_id), metrics.label_map(after, sample_id)
        n = self.num_classes or int(max(b.max(initial=0), a.max(initial=0)) + 1)
        logits = metrics.logits_chw(before)
        if logits is not None:
            n = max(n, logits.shape[0])
        if self.cm is None:
            self.cm = np.zeros((n, n), np.int64)
        elif n > self.cm.shape[0]:
            grown = np.zeros((n, n), np.int64)
            grown[: self.cm.shape[0], : self.cm.shape[0]] = self.cm
            self.cm = grown
        n = self.cm.shape[0]
        cm = np.bincount(b.astype(np.int64).ravel() * n + a.astype(np.int64).ravel(), minlength=n * n).reshape(n, n)
        self.cm += cm
        agree = int(np.trace(cm))
        self.agree += agree
        self.pixels += int(b.size)
        return {"mIoU": metrics.image_figures(cm)["mIoU"], "pixel_agreement": agree / b.size if b.size else 1.0}

    def result(self) -> dict[str, float]:
        if self.cm is None:
            return {"mIoU": float("nan"), "pixel_agreement": float("nan"), "max_abs": self.max_abs}
        return {"mIoU": metrics.image_figures(self.cm)["mIoU"],
                "pixel_agreement": self.agree / self.pixels if self.pixels else 1.0, "max_abs": self.max_abs}


class BinaryAgreement(Agreement):
    task = "binary_segmentation"
    primary = "mask_IoU"
    headline = "mask IoU vs before"
    worst_key = "mask_IoU"
    notes: ClassVar[dict[str, str]] = {
        "mask_IoU": "IoU of the after masks against the before ones over all pixels (two empty masks: 1)",
        "pixel_agreement": "fraction of pixels on the same side of the threshold before and after",
        "max_abs": "largest absolute difference of the raw logits",
    }

    def __init__(self, threshold: str = "raw"):
        super().__init__()
        if threshold not in ("raw", "sigmoid"):
            raise UsageError(f"binary threshold must be raw or sigmoid, got {threshold!r}")
        self.threshold = threshold
        self.inter = self.union = self.agree = self.pixels = 0

    def _mask(self, output: np.ndarray, what: str) -> np.ndarray:
        logits = metrics.logits_hw(output, what)
        return (logits > 0.5) if self.threshold == "raw" else (metrics.sigmoid32(logits) > 0.5)

    def _compare(self, sample_id: str, before: np.ndarray, after: np.ndarray) -> dict[str, Any]:
        b, a = self._mask(before, sample_id), self._mask(after, sample_id)
        i, u = metrics.mask_iou(a, b)
        agree = int(np.count_nonzero(a == b))
        self.inter, self.union = self.inter + i, self.union + u
        self.agree, self.pixels = self.agree + agree, self.pixels + b.size
        return {"mask_IoU": i / u if u else 1.0, "pixel_agreement": agree / b.size if b.size else 1.0}

    def result(self) -> dict[str, float]:
        return {"mask_IoU": self.inter / self.union if self.union else 1.0,
                "pixel_agreement": self.agree / self.pixels if self.pixels else float("nan"), "max_abs": self.max_abs}


class ClassificationAgreement(Agreement):
    task = "classification"
    primary = "top1_agreement"
    headline = "top-1 agreement with before"
    worst_key = "top5_overlap"
    notes: ClassVar[dict[str, str]] = {
        "top1_agreement": "fraction of images whose top class is the same before and after",
        "top5_overlap": "mean over images of |top-5 after ∩ top-5 before| / 5",
        "max_abs": "largest absolute difference of the raw scores",
    }

    @staticmethod
    def _top5(scores: np.ndarray) -> np.ndarray:
        return np.argsort(-scores, kind="stable")[: metrics.TOP_K]

    def _compare(self, sample_id: str, before: np.ndarray, after: np.ndarray) -> dict[str, Any]:
        b, a = metrics.class_scores(before, sample_id), metrics.class_scores(after, sample_id)
        tb, ta = self._top5(b), self._top5(a)
        return {"top1_agreement": float(tb[0] == ta[0]),
                "top5_overlap": len(set(tb.tolist()) & set(ta.tolist())) / metrics.TOP_K}

    def result(self) -> dict[str, float]:
        if not self.per_sample:
            return {"top1_agreement": float("nan"), "top5_overlap": float("nan"), "max_abs": self.max_abs}
        return {k: float(np.mean([s[k] for s in self.per_sample])) for k in ("top1_agreement", "top5_overlap")} | {
            "max_abs": self.max_abs}


def make_agreement(task: str, *, num_classes: int | None = None, mode: str = "guide") -> Agreement:
    """The agreement for a task (``mode`` picks the binary threshold: guide raw logits, upstream sigmoid)."""
    if task == "segmentation":
        return SegmentationAgreement(num_classes)
    if task == "binary_segmentation":
        return BinaryAgreement("raw" if mode == "guide" else "sigmoid")
    if task == "classification":
        return ClassificationAgreement()
    raise UsageError(f"task must be one of {', '.join(TASKS)}, got {task!r}")


def agreement_result(agreement: Agreement, *, recipe: str | None, mode: str, extra: dict[str, Any] | None = None,
                     ) -> EvalResult:
    """An EvalResult of kind ``fidelity`` from an agreement's figures."""
    return EvalResult(kind="fidelity", task=agreement.task, metric=f"{agreement.task}_agreement",
                      primary=agreement.primary, metrics=agreement.result(), recipe=recipe, mode=mode,
                      notes={**agreement.notes, "_headline": agreement.headline},
                      per_sample=list(agreement.per_sample), worst_key=agreement.worst_key, extra=dict(extra or {}))


# ---------------------------------------------------------------------------
# generated inputs


class TaskSpec:
    """What fidelity needs to know of a task: kind, classes, the scored output, how to make inputs.

    Built from a recipe (its evaluation spec) or from a bare task kind (ImageNet normalisation,
    RGB, the dataset kind's pictures).
    """

    def __init__(self, task: Recipe | EvalSpec | str, mode: str = "guide"):
        spec: EvalSpec | None = None
        self.recipe: str | None = None
        if isinstance(task, Recipe):
            if task.evaluation is None:
                raise UsageError(f"recipe {task.name} has no evaluation spec")
            spec, self.recipe = task.evaluation, task.name
        elif isinstance(task, EvalSpec):
            spec = task
        if spec is not None:
            self.kind, self.dataset = spec.task, spec.dataset
            self.num_classes: int | None = spec.num_classes
            self.output: str | int = spec.output
            self.preprocessing = spec.mode(mode).preprocessing
        else:
            if task not in TASKS:
                raise UsageError(f"task must be a recipe or one of {', '.join(TASKS)}, got {task!r}")
            self.kind, self.dataset = str(task), TASK_DATASET[str(task)]
            self.num_classes, self.output, self.preprocessing = None, 0, Preprocessing()
        self.mode = mode

    def agreement(self) -> Agreement:
        return make_agreement(self.kind, num_classes=self.num_classes if self.kind == "segmentation" else None,
                              mode=self.mode)


def generated_feeds(task: TaskSpec, input_shape: Sequence[int], n: int, seed: int = 0
                    ) -> list[tuple[str, np.ndarray]]:
    """``n`` pictures of the task's dataset kind at the input's H×W, preprocessed without geometry.

    Returns:
        (id, 1×3×H×W float32) pairs.
    """
    if len(input_shape) != 4 or input_shape[1] != 3:
        raise UsageError(f"fidelity generates N×3×H×W images; the model's input is "
                         f"{'x'.join(map(str, input_shape))}")
    h, w = int(input_shape[2]), int(input_shape[3])
    pre = Preprocessor(task.preprocessing, geometry=False)
    feeds = []
    for i in range(n):
        rgb = generate.picture(task.dataset, generate.image_rng(seed, i), h, w)
        img = rgb[..., ::-1] if task.preprocessing.read == "bgr" else rgb
        feeds.append((f"generated_{i:04d}", pre.from_array(np.ascontiguousarray(img))[None]))
    return feeds


def output_name(names: Sequence[str], wanted: str | int) -> str:
    """The output called ``wanted`` if the model has it, else output number ``wanted`` (or the first)."""
    if isinstance(wanted, str) and wanted in names:
        return wanted
    if isinstance(wanted, int) and 0 <= wanted < len(names):
        return names[wanted]
    return names[0]


# ---------------------------------------------------------------------------
# the instrument


class FidelityInstrument(Instrument):
    """Task-level fidelity of each inexact pass, as a :class:`surgery.pipeline.Instrument`.

    Before an inexact pass it keeps the model; after it, both models run on ``samples``
    generated images and ``step.figures["fidelity"]`` gets :meth:`EvalResult.to_dict` of kind
    ``fidelity`` (its ``headline`` reads e.g. "mask IoU vs before 0.9712"). A pass that did
    not change the model, or a model fidelity cannot feed, gets ``{"skipped": reason}``.
    ``figures["fidelity_inputs"]`` says what was generated.

    Args:
        task: a zoo recipe (its evaluation spec), an EvalSpec, or a task kind
            (``segmentation``, ``binary_segmentation``, ``classification``).
        samples: generated images per pass; None: :func:`default_samples` of the input size
            (8 up to 512×512 pixels, 2 for ICNet's 1024×2048).
        seed: the seed of the first image.
        mode: ``guide`` or ``upstream`` (the preprocessing's channel order and normalisation;
            the binary threshold).
        input_shapes: sizes for dynamic input dimensions (``--input-shapes``).
        every_pass: measure exact passes too (default: inexact passes only).
        session: ``session(model_bytes) -> run(feed) -> {name: array}``; default onnxruntime CPU.
    """

    name = "fidelity"

    def __init__(self, task: Recipe | EvalSpec | str, samples: int | None = None, seed: int = 0, *,
                 mode: str = "guide", input_shapes: dict[str, Shape] | None = None, every_pass: bool = False,
                 session: Callable[[bytes], Any] | None = None):
        self.task = TaskSpec(task, mode)
        self.samples: int | None = None if samples is None else validate.count(samples, "fidelity samples")
        self.seed = validate.seed(seed, "fidelity seed")
        self.input_shapes = dict(input_shapes or {})
        self.every_pass = every_pass
        self._session = session or _ort_session
        self._before: bytes | None = None
        self._feeds: list[tuple[str, np.ndarray]] = []
        self._skip: str | None = None
        self._input: str = ""

    @classmethod
    def for_recipe(cls, recipe: Recipe | None, samples: int | None = None, seed: int = 0, *, mode: str = "guide",
                   input_shapes: dict[str, Shape] | None = None) -> FidelityInstrument | None:
        """The instrument ``surgery apply`` adds for a zoo model's inexact passes; None without an evaluation spec
        or with ``samples == 0`` (``--fidelity 0``)."""
        if recipe is None or recipe.evaluation is None or samples == 0:
            return None
        return cls(recipe, samples, seed, mode=mode, input_shapes=input_shapes)

    def _make_feeds(self, model: onnx.ModelProto) -> None:
        specs = model_inputs(model)
        if len(specs) != 1:
            self._skip = f"fidelity feeds one image input; the model has {len(specs)} inputs"
            return
        try:
            shape = shapes_at(specs, None, self.input_shapes)[specs[0].name]
            if self.samples is None:
                self.samples = default_samples(shape)
            self._feeds = generated_feeds(self.task, shape, self.samples, self.seed)
        except UsageError as exc:
            self._skip = str(exc)
            return
        self._input = specs[0].name

    def before_pipeline(self, model: onnx.ModelProto, figures: dict[str, Any]) -> None:
        self._make_feeds(model)
        figures["fidelity_inputs"] = {"skipped": self._skip} if self._skip else {
            "task": self.task.kind, "generated": self.task.dataset, "samples": self.samples, "seed": self.seed,
            "shape": list(self._feeds[0][1].shape) if self._feeds else [], "mode": self.task.mode,
            "preprocessing": self.task.preprocessing.note or "ImageNet mean/std, RGB"}

    def _applies(self, p: Pass) -> bool:
        return self.every_pass or not p.exact

    def before_pass(self, p: Pass, model: onnx.ModelProto, step: StepReport) -> None:
        self._before = model.SerializeToString() if self._applies(p) and not self._skip else None

    def after_pass(self, p: Pass, result: PassResult, step: StepReport) -> None:
        if not self._applies(p):
            return
        if self._skip:
            step.figures[self.name] = {"skipped": self._skip}
            return
        if not result.changed:
            step.figures[self.name] = {"skipped": "model unchanged"}
            return
        try:
            step.figures[self.name] = self.compare(self._before, result.model, result.renamed_outputs).to_dict()
        except (RuntimeError, UsageError) as exc:
            step.figures[self.name] = {"skipped": first_line(exc)}
        finally:
            self._before = None

    def compare(self, before: bytes | onnx.ModelProto, after: bytes | onnx.ModelProto,
                renamed: dict[str, str] | None = None) -> EvalResult:
        """Fidelity of ``after`` against ``before`` on this instrument's generated images."""
        if not self._feeds and not self._skip:
            self._make_feeds(after if isinstance(after, onnx.ModelProto) else onnx.load_from_string(after))
        if self._skip:
            raise UsageError(self._skip)
        run_before = self._session(before if isinstance(before, bytes) else before.SerializeToString())
        run_after = self._session(after if isinstance(after, bytes) else after.SerializeToString())
        agreement = self.task.agreement()
        renamed = renamed or {}
        name_after = name_before = None
        for sample_id, array in self._feeds:
            feed = {self._input: array}
            out_b, out_a = run_before(feed), run_after(feed)
            if name_after is None:
                name_after = output_name(list(out_a), self.task.output)
                name_before = renamed.get(name_after, name_after)
                if name_before not in out_b:
                    name_before = output_name(list(out_b), self.task.output)
            agreement.update(sample_id, out_b[name_before][0], out_a[name_after][0])
        result = agreement_result(agreement, recipe=self.task.recipe, mode=self.task.mode,
                                  extra={"output": name_after})
        result.dataset = {"generated": self.task.dataset, "samples": len(self._feeds), "seed": self.seed}
        result.synthetic = True
        result.preprocessing = {"note": self.task.preprocessing.note, "geometry": False}
        return result


def _ort_session(model: bytes) -> Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]:
    from surgery.parity import Session

    session = Session(model)
    return session.run
