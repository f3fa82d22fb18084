"""The model-recipe contract: what a zoo entry tells the rest of surgery.

Recipes are plain data (no torch import), so ``surgery list models``, reference
columns in ``surgery diff`` and vendor-tool dry runs work without torch. The network
itself lives in the module named by ``Recipe.module`` and is imported only to export.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from surgery.errors import UsageError
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
    ``per_card`` maps a device column whose figures are per card to the devices a card
    holds (a 310 card: 4, the guides' "×4"); other columns are per device.
    """

    accuracy: dict[str, dict[str, float]] = field(default_factory=dict)
    throughput: dict[str, dict[int, float]] = field(default_factory=dict)
    source: str = ""
    per_card: dict[str, int] = field(default_factory=dict)


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocessing:
    """How one evaluation mode turns an image file into the model's input, as plain data.

    Interpreted by :mod:`surgery.eval.preprocess`; every field names what a guide's or an
    upstream script does, quirks included.

    Attributes:
        read: ``rgb`` (PIL ``convert('RGB')``) or ``bgr`` (``cv2.imread``: BGR channel order, EXIF
            orientation applied); mean and std apply in the array's channel order either way.
        resize: ``none``; ``short`` (shorter side to ``size[0]``, the other ``int(size*long/short)``,
            torchvision/PIL); ``squash`` (to ``size`` = (H, W), ignoring aspect); ``keep_ratio``
            (mmcv ``imrescale`` to fit ``size`` = (long, short) edges).
        size: see ``resize``.
        interpolation: ``pil_bilinear`` (PIL's antialiased bilinear, what torchvision runs on PIL
            images) or ``cv2_linear`` (``cv2.INTER_LINEAR``: half-pixel, no antialiasing).
        crop: center crop to this square size (torchvision's rounded offsets), or None.
        normalize: the arithmetic of the normalization: ``torch`` (``x/255``, then ``(x-mean)/std``),
            ``albumentations`` (``(x - 255*mean) * (1/(255*std))``) or ``mmcv`` (the same constants
            in float64, ``(x - 255*mean) * (1/(255*std))``), all in float32.
        mean: per channel, on the [0, 1] scale.
        std: per channel, on the [0, 1] scale.
        divide: divide once more after normalizing (UNet++ divides by 255 twice).
        note: what a reader should know (the quirk, where it comes from).
    """

    read: str = "rgb"
    resize: str = "none"
    size: tuple[int, ...] = ()
    interpolation: str = "pil_bilinear"
    crop: int | None = None
    normalize: str = "torch"
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    divide: float = 1.0
    note: str = ""


@dataclass(frozen=True)
class EvalMode:
    """One way of evaluating a model: the guide's, or the upstream project's.

    ``metric`` names a scorer of :mod:`surgery.eval.metrics`: ``icnet_segmentation``,
    ``mmseg_segmentation``, ``iou_raw_logits``, ``iou_sigmoid_batch`` or ``topk``.
    """

    preprocessing: Preprocessing
    metric: str
    note: str = ""


@dataclass(frozen=True)
class EvalSpec:
    """A recipe's dataset, preprocessing and metric, per mode (``guide`` and ``upstream``).

    Attributes:
        task: ``segmentation``, ``binary_segmentation`` or ``classification``.
        dataset: the reader: ``cityscapes``, ``imagenet`` or ``dsb2018``.
        guide: what the seed guide does.
        upstream: what the upstream project does (equal to ``guide`` where they agree).
        num_classes: classes of the scored output.
        labels: which label files a Cityscapes reader prefers (``labelIds`` or ``labelTrainIds``).
        output: the scored output, by name or index.
        published: a key of ``Published.accuracy`` → the metric it corresponds to.
        published_scale: 100 where the guide prints percentages, else 1.
        info_size: the width and height the guide passes to ``get_info.py`` for its ``.info`` file.
        batch: the upstream evaluation's batch size, where the metric depends on it.
    """

    task: str
    dataset: str
    guide: EvalMode
    upstream: EvalMode
    num_classes: int
    labels: str = ""
    output: str | int = 0
    published: dict[str, str] = field(default_factory=dict)
    published_scale: float = 1.0
    info_size: tuple[int, int] | None = None
    batch: int = 1

    def mode(self, name: str) -> EvalMode:
        """The ``guide`` or ``upstream`` mode."""
        if name not in ("guide", "upstream"):
            raise UsageError(f"--mode must be guide or upstream, got {name!r}")
        return self.guide if name == "guide" else self.upstream


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
    # the variants of the graph the guide compiled: the defaults of run, bench, tune and compile on zoo names
    guide_variants: dict[str, str] = field(default_factory=dict)
    dataset: str = ""
    preprocessing: str = ""
    metric: str = ""
    published: Published = field(default_factory=Published)
    guide: str = ""  # the seed guide's file name under shared/seeds/
    evaluation: EvalSpec | None = None  # dataset, preprocessing and metric per mode (surgery eval)

    def variant_defaults(self) -> dict[str, str]:
        return {v.key: v.default for v in self.variants}

    def input_shapes(self, batch: int = 1) -> dict[str, tuple[int, ...]]:
        """The guide's input shapes with the batch axis set to ``batch``."""
        return {i.name: tuple(batch if d == "N" else int(d) for d in i.shape) for i in self.inputs}


__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "EvalMode", "EvalSpec", "InputSpec", "ModelVariant", "PassStep",
           "Preprocessing", "Published", "Recipe"]
