"""The metrics as each guide computes them, and as its upstream project does, vectorised.

A scorer takes one sample at a time (``update(id, output, label)``, the model's output for
that sample without its batch axis) and returns the sample's own figures; ``result()``
gives the dataset figures. Segmentation scorers keep a 19×19 confusion matrix over the
labelled pixels (one ``bincount`` per image), from which ICNet's and mmseg's figures both
follow:

- ``icnet_segmentation`` (liminn/ICNet-pytorch ``utils/metric.py``, copied by the Ascend
  ``evaluate.py``): intersections and unions summed over the dataset; ``mIoU`` is the mean
  over *all* 19 classes (a class absent from labels and predictions counts as 0), with
  ICNet's 2.22e-16 in the denominators; ``pixAcc`` takes the argmax of *truncated* logits
  (``output.long()``), as upstream does. The guide prints ``Average mIoU`` / ``Average
  pixAcc``: the mean over images of the running cumulative value (``mIoU_average``,
  ``pixAcc_average``), not the final cumulative value.
- ``mmseg_segmentation`` (mmseg ``mean_iou``): ``mIoU`` is the nanmean of per-class IoU
  (classes with no union skipped), ``aAcc`` the overall pixel accuracy, ``mAcc`` the nanmean
  of per-class accuracy.
- ``iou_raw_logits`` (Ascend ``nested_unet_postprocess.py``): per image, the raw logits
  thresholded at 0.5 (no sigmoid: equivalent to probability > 0.622) against mask > 0.5,
  ``(|∩| + 1e-5) / (|∪| + 1e-5)``, averaged over images.
- ``iou_sigmoid_batch`` (upstream ``val.py`` ``iou_score``): sigmoid > 0.5, the same ratio
  over each batch of 16 consecutive images, averaged weighted by batch size.
- ``topk`` (Ascend ``imagenet_acc_eval.py``, upstream ``accuracy``): top-1..5. Ties rank the
  lower class index first (a stable sort), so a tie is decided the same way every run; a
  1001-class output (background first) shifts the labels by one, as the Ascend script does.

Metric values are fractions in [0, 1]; the guides' percentages are these times 100.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from surgery.eval.errors import OutputsError

ICNET_EPS = 2.220446049250313e-16  # ICNet's np.spacing(1)
SMOOTH = 1e-5  # UNet++'s iou_score smoothing
IGNORE = 255
TOP_K = 5


class Scorer:
    """Accumulates one metric over a dataset. Subclasses set ``name``, ``primary`` and ``notes``."""

    name: ClassVar[str] = ""
    primary: ClassVar[str] = ""  # the headline metric
    notes: ClassVar[dict[str, str]] = {}
    per_sample_key: ClassVar[str] = ""  # the per-sample figure the worst samples are ranked by

    def __init__(self) -> None:
        self.per_sample: list[dict[str, Any]] = []

    def update(self, sample_id: str, output: np.ndarray, label: Any) -> dict[str, Any]:
        raise NotImplementedError

    def result(self) -> dict[str, Any]:
        raise NotImplementedError

    def extra(self) -> dict[str, Any]:
        """Figures that are not a single number (per-class IoU, the guide's result.json)."""
        return {}

    def guide_line(self, metrics: dict[str, Any]) -> str:
        """The line the guide's own script prints, for these figures."""
        return ""

    def _record(self, sample_id: str, figures: dict[str, Any]) -> dict[str, Any]:
        self.per_sample.append({"id": sample_id, **figures})
        return figures


# ---------------------------------------------------------------------------
# segmentation


def label_map(output: np.ndarray, what: str = "output") -> np.ndarray:
    """A per-pixel class map from logits (C×H×W → argmax over C) or a label map (H×W integers, as is).

    Leading singleton axes are dropped (an ais_bench output file keeps the batch axis).
    """
    out = np.asarray(output)
    while out.ndim > 2 and out.shape[0] == 1 and (out.ndim > 3 or np.issubdtype(out.dtype, np.integer)):
        out = out[0]
    if out.ndim == 3 and np.issubdtype(out.dtype, np.floating):
        return argmax_classes(out)[0]
    if out.ndim == 2 and np.issubdtype(out.dtype, np.integer):
        return out
    raise OutputsError(f"{what}: expected C×H×W logits or an H×W label map, got {out.dtype} {list(out.shape)}")


def argmax_classes(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(argmax over axis 0, the max) of C×H×W logits; the first class wins ties, as torch and numpy decide.

    One pass per class over contiguous H×W planes: about a third faster than
    ``np.argmax(axis=0)``, which walks the class axis with a stride of H×W.
    """
    best = logits[0].copy()
    index = np.zeros(logits.shape[1:], np.uint8 if logits.shape[0] <= 256 else np.int64)
    better = np.empty(logits.shape[1:], bool)
    for c in range(1, logits.shape[0]):
        plane = logits[c]
        np.greater(plane, best, out=better)
        np.copyto(index, c, where=better)
        np.maximum(best, plane, out=best)
    return index, best


def truncated_argmax(logits: np.ndarray, best: np.ndarray) -> np.ndarray:
    """``argmax(trunc(logits), axis=0)`` (torch's ``output.long()`` then argmax) without the truncated copy.

    ``max(trunc(x)) = trunc(max(x)) = T``, so the answer is the first class whose logit
    truncates to ``T``: the first with ``x >= T`` when ``T > 0``, else with ``x > T - 1``.
    """
    top = np.trunc(best)
    low = np.where(top > 0, top, np.nextafter((top - 1).astype(best.dtype), np.asarray(np.inf, best.dtype)))
    index = np.zeros(logits.shape[1:], np.uint8 if logits.shape[0] <= 256 else np.int64)
    hit = np.empty(logits.shape[1:], bool)
    for c in range(logits.shape[0] - 1, -1, -1):
        np.greater_equal(logits[c], low, out=hit)
        np.copyto(index, c, where=hit)
    return index


def logits_chw(output: np.ndarray) -> np.ndarray | None:
    """The C×H×W logits of an output (leading singleton axes dropped), or None for a label map."""
    out = np.asarray(output)
    while out.ndim > 3 and out.shape[0] == 1:
        out = out[0]
    return out if out.ndim == 3 and np.issubdtype(out.dtype, np.floating) else None


def confusion(pred: np.ndarray, label: np.ndarray, num_classes: int, what: str = "output") -> np.ndarray:
    """The num_classes² confusion matrix (rows: label, columns: prediction) over pixels whose label is not 255.

    Raises:
        OutputsError: the prediction and label sizes differ, or a predicted class is out of range.
    """
    if pred.shape != label.shape:
        raise OutputsError(f"{what}: prediction {pred.shape[0]}x{pred.shape[1]} and label "
                           f"{label.shape[0]}x{label.shape[1]} differ in size")
    if pred.size:
        low, high = int(pred.min()), int(pred.max())
        if low < 0 or high >= num_classes:
            raise OutputsError(f"{what}: predicted class {high if high >= num_classes else low} is outside "
                               f"0..{num_classes - 1}")
    # ignored pixels go to an extra label row, dropped after one bincount (cheaper than masking both maps)
    lab = label.astype(np.int64)
    lab[lab == IGNORE] = num_classes
    if lab.size and lab.max() > num_classes:
        raise OutputsError(f"{what}: label class {int(lab.max())} is outside 0..{num_classes - 1}")
    flat = np.bincount((lab * num_classes + pred).ravel(), minlength=(num_classes + 1) * num_classes)
    return flat[: num_classes * num_classes].reshape(num_classes, num_classes)


def _areas(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    inter = np.diag(cm).astype(np.float64)
    area_label = cm.sum(axis=1).astype(np.float64)
    area_pred = cm.sum(axis=0).astype(np.float64)
    return inter, area_label, area_pred


def _nanmean(values: np.ndarray) -> float:
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else float("nan")


def image_figures(cm: np.ndarray) -> dict[str, float]:
    """One image's own pixel accuracy and mIoU (over the classes in its label or prediction)."""
    inter, area_label, area_pred = _areas(cm)
    union = area_label + area_pred - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, inter / union, np.nan)
    labelled = area_label.sum()
    return {"pixAcc": float(inter.sum() / labelled) if labelled else float("nan"), "mIoU": _nanmean(iou)}


class _Segmentation(Scorer):
    per_sample_key = "mIoU"

    def __init__(self, num_classes: int = 19, class_names: Sequence[str] = ()):
        super().__init__()
        self.num_classes = num_classes
        self.class_names = tuple(class_names)
        self.cm = np.zeros((num_classes, num_classes), np.int64)

    def _update_cm(self, sample_id: str, output: np.ndarray, label: np.ndarray) -> np.ndarray:
        pred = label_map(output, sample_id)
        cm = confusion(pred, label, self.num_classes, sample_id)
        self.cm += cm
        return cm

    def per_class_iou(self, nan_absent: bool) -> np.ndarray:
        inter, area_label, area_pred = _areas(self.cm)
        union = area_label + area_pred - inter
        if nan_absent:
            with np.errstate(invalid="ignore", divide="ignore"):
                return np.where(union > 0, inter / union, np.nan)
        return inter / (ICNET_EPS + union)

    def extra(self) -> dict[str, Any]:
        names = list(self.class_names) or [str(i) for i in range(self.num_classes)]
        iou = self.per_class_iou(nan_absent=True)
        return {"per_class": {"names": names, "IoU": [None if np.isnan(v) else float(v) for v in iou],
                              "pixels": self.cm.sum(axis=1).tolist()}}


class ICNetSegmentation(_Segmentation):
    """liminn/ICNet-pytorch's SegmentationMetric, quirks included (see the module docstring)."""

    name = "icnet_segmentation"
    primary = "mIoU"
    notes: ClassVar[dict[str, str]] = {
        "mIoU": "final cumulative value, mean over all 19 classes (absent classes count 0)",
        "pixAcc": "final cumulative value; argmax of truncated logits (output.long()), as upstream",
        "mIoU_average": "mean over images of the running cumulative mIoU: the guide's 'Average mIoU'",
        "pixAcc_average": "mean over images of the running cumulative pixAcc: the guide's 'Average pixAcc'",
        "mIoU_nanmean": "the standard figure: mean over classes present in labels or predictions",
        "pixAcc_argmax": "pixel accuracy of the plain argmax (no truncation)",
    }

    def __init__(self, num_classes: int = 19, class_names: Sequence[str] = ()):
        super().__init__(num_classes, class_names)
        self.correct_truncated = 0
        self.running_miou: list[float] = []
        self.running_pixacc: list[float] = []

    def update(self, sample_id: str, output: np.ndarray, label: np.ndarray) -> dict[str, Any]:
        logits = logits_chw(output)
        if logits is None:  # a label map: truncation changes nothing
            cm = self._update_cm(sample_id, output, label)
            self.correct_truncated += int(np.trace(cm))
        else:
            pred, best = argmax_classes(logits)
            cm = self._update_cm(sample_id, pred, label)
            truncated = truncated_argmax(logits, best)  # torch.argmax(output.long(), 1): first max wins ties
            self.correct_truncated += int(np.count_nonzero((truncated == label) & (label != IGNORE)))
        pix, miou = self._cumulative()
        self.running_pixacc.append(pix)
        self.running_miou.append(miou)
        return self._record(sample_id, image_figures(cm))

    def _cumulative(self) -> tuple[float, float]:
        labelled = float(self.cm.sum())
        pix = self.correct_truncated / (ICNET_EPS + labelled)
        return pix, float(self.per_class_iou(nan_absent=False).mean())

    def result(self) -> dict[str, Any]:
        pix, miou = self._cumulative()
        inter = np.trace(self.cm)
        labelled = self.cm.sum()
        return {
            "mIoU": miou, "pixAcc": pix,
            "mIoU_average": float(np.mean(self.running_miou)) if self.running_miou else float("nan"),
            "pixAcc_average": float(np.mean(self.running_pixacc)) if self.running_pixacc else float("nan"),
            "mIoU_nanmean": _nanmean(self.per_class_iou(nan_absent=True)),
            "pixAcc_argmax": float(inter / labelled) if labelled else float("nan"),
        }

    def guide_line(self, metrics: dict[str, Any]) -> str:
        return (f"Evaluate: Average mIoU: {metrics['mIoU_average']:.3f}, "
                f"Average pixAcc: {metrics['pixAcc_average']:.3f}")


class MMSegSegmentation(_Segmentation):
    """mmseg ``mean_iou`` over labelTrainIds (ignore 255): nanmean IoU, aAcc, mAcc."""

    name = "mmseg_segmentation"
    primary = "mIoU"
    notes: ClassVar[dict[str, str]] = {
        "mIoU": "nanmean of per-class IoU over the dataset's summed areas (classes with no union skipped)",
        "aAcc": "overall pixel accuracy",
        "mAcc": "nanmean of per-class accuracy",
    }

    def update(self, sample_id: str, output: np.ndarray, label: np.ndarray) -> dict[str, Any]:
        cm = self._update_cm(sample_id, output, label)
        return self._record(sample_id, image_figures(cm))

    def result(self) -> dict[str, Any]:
        inter, area_label, _ = _areas(self.cm)
        with np.errstate(invalid="ignore", divide="ignore"):
            acc = np.where(area_label > 0, inter / area_label, np.nan)
        total = area_label.sum()
        return {"mIoU": _nanmean(self.per_class_iou(nan_absent=True)),
                "aAcc": float(inter.sum() / total) if total else float("nan"), "mAcc": _nanmean(acc)}

    def guide_line(self, metrics: dict[str, Any]) -> str:
        return f"{{'aAcc': {metrics['aAcc'] * 100:.2f}, 'mIoU': {metrics['mIoU'] * 100:.2f}}}"


# ---------------------------------------------------------------------------
# binary segmentation (DSB2018)


def logits_hw(output: np.ndarray, what: str = "output") -> np.ndarray:
    """The H×W logits of a 1-channel output (leading singleton axes dropped)."""
    out = np.asarray(output)
    while out.ndim > 2 and out.shape[0] == 1:
        out = out[0]
    if out.ndim != 2:
        raise OutputsError(f"{what}: expected 1×H×W logits, got {list(np.asarray(output).shape)}")
    return out


def sigmoid32(x: np.ndarray) -> np.ndarray:
    """torch.sigmoid in float32 (so ``> 0.5`` rounds where torch rounds)."""
    x = x.astype(np.float32, copy=False)
    with np.errstate(over="ignore"):
        return np.float32(1) / (np.float32(1) + np.exp(-x))


def mask_iou(pred: np.ndarray, gt: np.ndarray) -> tuple[int, int]:
    """(|pred ∧ gt|, |pred ∨ gt|) of two boolean masks."""
    return int(np.count_nonzero(pred & gt)), int(np.count_nonzero(pred | gt))


class _BinaryIoU(Scorer):
    primary = "IoU"
    per_sample_key = "IoU"

    def _masks(self, sample_id: str, output: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits = logits_hw(output, sample_id)
        if logits.shape != mask.shape:
            raise OutputsError(f"{sample_id}: output {logits.shape[0]}x{logits.shape[1]} and mask "
                               f"{mask.shape[0]}x{mask.shape[1]} differ in size")
        return logits, mask > 0.5


class IoURawLogits(_BinaryIoU):
    """The Ascend postprocess: per image, raw logits > 0.5 vs mask > 0.5, mean over images."""

    name = "iou_raw_logits"
    notes: ClassVar[dict[str, str]] = {
        "IoU": "per image (|∩|+1e-5)/(|∪|+1e-5) of raw logits > 0.5 (no sigmoid: probability > 0.622), mean over "
               "images: the guide's figure",
        "IoU_sigmoid": "the same per image with sigmoid > 0.5 (what upstream thresholds)",
    }

    def update(self, sample_id: str, output: np.ndarray, mask: np.ndarray) -> dict[str, Any]:
        logits, gt = self._masks(sample_id, output, mask)
        i, u = mask_iou(logits > 0.5, gt)
        si, su = mask_iou(sigmoid32(logits) > 0.5, gt)
        return self._record(sample_id, {"IoU": (i + SMOOTH) / (u + SMOOTH),
                                        "IoU_sigmoid": (si + SMOOTH) / (su + SMOOTH)})

    def result(self) -> dict[str, Any]:
        if not self.per_sample:
            return {"IoU": float("nan"), "IoU_sigmoid": float("nan")}
        return {k: float(np.mean([s[k] for s in self.per_sample])) for k in ("IoU", "IoU_sigmoid")}

    def guide_line(self, metrics: dict[str, Any]) -> str:
        return f"IoU: {metrics['IoU']:.4f}"


class IoUSigmoidBatch(_BinaryIoU):
    """Upstream ``val.py``: sigmoid > 0.5, IoU per batch of ``batch`` consecutive images, weighted mean."""

    name = "iou_sigmoid_batch"
    notes: ClassVar[dict[str, str]] = {
        "IoU": "sigmoid > 0.5, (|∩|+1e-5)/(|∪|+1e-5) over each batch of 16 consecutive images, mean weighted by "
               "batch size: upstream val.py's figure",
        "IoU_per_image": "the same threshold, per image, mean over images",
    }

    def __init__(self, batch: int = 16):
        super().__init__()
        self.batch = batch
        self._counts: list[tuple[int, int]] = []

    def update(self, sample_id: str, output: np.ndarray, mask: np.ndarray) -> dict[str, Any]:
        logits, gt = self._masks(sample_id, output, mask)
        i, u = mask_iou(sigmoid32(logits) > 0.5, gt)
        self._counts.append((i, u))
        return self._record(sample_id, {"IoU": (i + SMOOTH) / (u + SMOOTH)})

    def result(self) -> dict[str, Any]:
        if not self._counts:
            return {"IoU": float("nan"), "IoU_per_image": float("nan")}
        counts = np.asarray(self._counts, np.float64)
        total, weights = 0.0, 0
        for start in range(0, len(counts), self.batch):
            chunk = counts[start:start + self.batch]
            total += (chunk[:, 0].sum() + SMOOTH) / (chunk[:, 1].sum() + SMOOTH) * len(chunk)
            weights += len(chunk)
        return {"IoU": total / weights, "IoU_per_image": float(np.mean([s["IoU"] for s in self.per_sample]))}

    def guide_line(self, metrics: dict[str, Any]) -> str:
        return f"IoU: {metrics['IoU']:.4f}"


# ---------------------------------------------------------------------------
# classification


def class_scores(output: np.ndarray, what: str = "output") -> np.ndarray:
    """The class scores of one sample (any leading singleton axes dropped)."""
    out = np.asarray(output).reshape(-1) if np.asarray(output).ndim else np.asarray(output)
    if out.ndim != 1 or out.size < 2:
        raise OutputsError(f"{what}: expected a vector of class scores, got {list(np.asarray(output).shape)}")
    return out


def rank_of(scores: np.ndarray, index: int) -> int:
    """The 0-based position of ``index`` in a stable descending sort of ``scores`` (ties: lower index first)."""
    value = scores[index]
    return int(np.count_nonzero(scores > value) + np.count_nonzero(scores[:index] == value))


class TopK(Scorer):
    """Top-1..5 accuracy; ``guide_result`` is the guides' ``result.json``."""

    name = "topk"
    primary = "top1"
    per_sample_key = "top5"
    notes: ClassVar[dict[str, str]] = {
        "top1": "fraction of images whose label is the top class (ties: lower class index first)",
        "top5": "fraction of images whose label is among the 5 top classes",
    }

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self.num_classes = num_classes
        self.hits = np.zeros(TOP_K, np.int64)
        self.count = 0
        self.seen_classes = 0
        self.offset_noted = False

    def update(self, sample_id: str, output: np.ndarray, label: int) -> dict[str, Any]:
        scores = class_scores(output, sample_id)
        self.seen_classes = scores.size
        offset = 1 if scores.size == self.num_classes + 1 else 0  # background class first: labels shift by one
        self.offset_noted |= bool(offset)
        target = int(label) + offset
        if not 0 <= target < scores.size:
            raise OutputsError(f"{sample_id}: label {label} is outside the output's {scores.size} classes")
        rank = rank_of(scores, target)
        if rank < TOP_K:
            self.hits[rank:] += 1
        self.count += 1
        return self._record(sample_id, {"rank": rank, "top1": float(rank < 1), "top5": float(rank < TOP_K)})

    def result(self) -> dict[str, Any]:
        if not self.count:
            return {f"top{k}": float("nan") for k in range(1, TOP_K + 1)}
        return {f"top{k}": float(self.hits[k - 1] / self.count) for k in range(1, TOP_K + 1)}

    def guide_result(self) -> dict[str, Any]:
        """The Ascend ``imagenet_acc_eval.py`` result.json for these figures."""
        metrics = self.result()
        value = [{"key": "Number of images", "value": str(self.count)},
                 {"key": "Number of classes", "value": str(self.seen_classes or self.num_classes)}]
        value += [{"key": f"Top{k} accuracy", "value": f"{round(metrics[f'top{k}'] * 100, 2)}%"}
                  for k in range(1, TOP_K + 1)]
        return {"title": "Overall statistical evaluation", "value": value}

    def extra(self) -> dict[str, Any]:
        out: dict[str, Any] = {"guide_result": self.guide_result()}
        if self.offset_noted:
            out["label_offset"] = 1
        return out

    def guide_line(self, metrics: dict[str, Any]) -> str:
        import json

        return json.dumps(self.guide_result())


SCORERS: dict[str, type[Scorer]] = {
    "icnet_segmentation": ICNetSegmentation,
    "mmseg_segmentation": MMSegSegmentation,
    "iou_raw_logits": IoURawLogits,
    "iou_sigmoid_batch": IoUSigmoidBatch,
    "topk": TopK,
}


def make_scorer(name: str, *, num_classes: int, batch: int = 16, class_names: Sequence[str] = ()) -> Scorer:
    """The scorer called ``name`` for a task with ``num_classes`` classes.

    Raises:
        UsageError: an unknown metric.
    """
    from surgery.errors import UnknownNameError

    if name not in SCORERS:
        raise UnknownNameError("metric", name, SCORERS)
    cls = SCORERS[name]
    if cls in (ICNetSegmentation, MMSegSegmentation):
        return cls(num_classes, class_names)
    if cls is IoUSigmoidBatch:
        return IoUSigmoidBatch(batch)
    if cls is TopK:
        return TopK(num_classes)
    return cls()
