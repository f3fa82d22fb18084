"""Readers for the guides' dataset layouts: Cityscapes val, ImageNet val, DSB2018 (96×96).

Each reader lists the samples in a fixed, sorted order (the guides walk the folders in
``os.walk``/``glob`` order, which differs between file systems), checks the layout up front
and reads labels on demand. A sample's ``id`` is its image file's stem: the name of its
``.bin`` and the prefix of its outputs in an ais_bench or benchmark folder.

- Cityscapes: ``leftImg8bit/val/<city>/<x>_leftImg8bit.png`` with
  ``gtFine/val/<city>/<x>_gtFine_labelIds.png`` (mapped to the 19 trainIds, every other id
  ignored as 255) or ``<x>_gtFine_labelTrainIds.png`` (cityscapesscripts' output, 255 ignored).
- ImageNet: the images (``val/`` or the folder itself) and ``val_label.txt`` lines
  ``ILSVRC2012_val_00000001.JPEG 65`` (0-based class).
- DSB2018: ``dsb2018_96/images/<id>.png``, ``dsb2018_96/masks/0/<id>.png`` (0/255), and
  ``val_ids.txt`` (the Ascend guide's fixed split); without it, upstream's
  ``train_test_split(test_size=0.2, random_state=41)`` over the sorted ids.

Errors are one line naming the file (:class:`~surgery.eval.errors.DatasetError`, exit 2).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from surgery.eval import images
from surgery.eval.errors import DatasetError

KINDS = ("cityscapes", "imagenet", "dsb2018")
SYNTHETIC_MARKER = "SYNTHETIC.json"  # written by `surgery data make`: the figures are not accuracy
IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png", ".bmp", ".webp", ".tif", ".tiff")
IGNORE = 255

# cityscapesscripts labels.py: labelId -> trainId for the 19 evaluated classes (ICNet's _key table)
CITYSCAPES_TRAIN_IDS: dict[int, int] = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12, 26: 13, 27: 14,
    28: 15, 31: 16, 32: 17, 33: 18}
CITYSCAPES_CLASSES = ("road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
                      "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle",
                      "bicycle")
MAX_LABEL_ID = 33


def _label_id_table() -> tuple[np.ndarray, np.ndarray]:
    lut = np.full(256, IGNORE, np.uint8)
    for label_id, train_id in CITYSCAPES_TRAIN_IDS.items():
        lut[label_id] = train_id
    valid = np.zeros(256, bool)
    valid[: MAX_LABEL_ID + 1] = True
    return lut, valid


_LABEL_IDS_LUT, _LABEL_IDS_VALID = _label_id_table()
_TRAIN_IDS_VALID = np.zeros(256, bool)
_TRAIN_IDS_VALID[:19] = True
_TRAIN_IDS_VALID[IGNORE] = True


@dataclass(frozen=True)
class Sample:
    """One image of a dataset: its id (the image stem), the image file, and where its label is.

    ``label`` is a label or mask file (segmentation), a class index (classification), or None.
    """

    id: str
    image: Path
    label: Path | int | None = None


@dataclass
class Dataset:
    """A dataset's samples in a fixed order, and how to read their labels.

    Attributes:
        kind: ``cityscapes``, ``imagenet`` or ``dsb2018``.
        root: the folder the layout was found in.
        samples: sorted samples (after ``limit``).
        labels: which labels: ``labelIds``, ``labelTrainIds``, ``val_label.txt``, ``masks/0`` or ``none``.
        total: samples in the dataset before ``limit``.
        synthetic: made by ``surgery data make`` (its figures are not accuracy).
        notices: what the user should know about how the layout was read.
    """

    kind: str
    root: Path
    samples: list[Sample]
    labels: str
    total: int = 0
    synthetic: bool = False
    notices: list[str] = field(default_factory=list)

    @property
    def has_labels(self) -> bool:
        return self.labels != "none"

    def read_label(self, sample: Sample) -> Any:
        """The sample's label: trainIds uint8 H×W (255 ignored), a mask float32 H×W in [0, 1], or a class index.

        Raises:
            DatasetError: a missing or unreadable label, or values outside the layout's range.
        """
        if sample.label is None:
            raise DatasetError(f"{sample.image}: no label (the dataset was opened without labels)")
        if isinstance(sample.label, int):
            return sample.label
        path = sample.label
        if self.kind == "cityscapes":
            return read_cityscapes_label(path, self.labels)
        mask = images.read_label(path, "mask")
        return mask.astype(np.float32) / np.float32(255)  # upstream: mask.astype('float32') / 255

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "path": str(self.root), "samples": len(self.samples), "total": self.total,
                "labels": self.labels, "synthetic": self.synthetic}


def read_cityscapes_label(path: Path, labels: str) -> np.ndarray:
    """A Cityscapes label file as trainIds (uint8, 255 ignored).

    Raises:
        DatasetError: unreadable, or values no ``labelIds`` (0..33) / ``labelTrainIds`` (0..18, 255) file holds.
    """
    raw = images.read_label(path, "label")
    if raw.dtype != np.uint8:
        if raw.size and (raw.min() < 0 or raw.max() > 255):
            raise DatasetError(f"label {path} holds values outside 0..255 ({raw.min()}..{raw.max()})")
        raw = raw.astype(np.uint8)
    if labels == "labelIds":
        bad = ~_LABEL_IDS_VALID[raw]
        if bad.any():
            value = int(raw[bad][0])
            raise DatasetError(f"label {path} holds id {value}, not a Cityscapes labelId (0..{MAX_LABEL_ID}); "
                               "is it a labelTrainIds or color file?")
        return _LABEL_IDS_LUT[raw]
    bad = ~_TRAIN_IDS_VALID[raw]
    if bad.any():
        raise DatasetError(f"label {path} holds {int(raw[bad][0])}, not a Cityscapes trainId (0..18, or 255 ignored)")
    return raw


def open_dataset(kind: str, root: str | os.PathLike, *, labels: bool = True, prefer: str = "",
                 limit: int | None = None) -> Dataset:
    """Read a dataset folder's layout.

    Args:
        kind: ``cityscapes``, ``imagenet`` or ``dsb2018``.
        root: the folder (the dataset's root, or the folder holding it).
        labels: labels are needed (accuracy); False for fidelity, which needs images only.
        prefer: Cityscapes: ``labelIds`` or ``labelTrainIds`` (the other is used when only it exists).
        limit: keep the first N samples of the sorted order.

    Raises:
        DatasetError: the folder is not in the layout, or a sample lacks its label.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder not found: {root}")
    images.check_choice(kind, KINDS, "dataset")
    reader = {"cityscapes": _cityscapes, "imagenet": _imagenet, "dsb2018": _dsb2018}[kind]
    dataset = reader(root, labels, prefer)
    dataset.total = len(dataset.samples)
    if limit is not None:
        dataset.samples = dataset.samples[:limit]
    dataset.synthetic = _synthetic(root, dataset.root)
    return dataset


def _synthetic(*folders: Path) -> bool:
    for folder in folders:
        marker = folder / SYNTHETIC_MARKER
        if marker.is_file():
            try:
                return bool(json.loads(marker.read_text(encoding="utf-8")).get("synthetic", True))
            except (OSError, ValueError, AttributeError):
                return True
    return False


# ---------------------------------------------------------------------------
# Cityscapes


def _cityscapes(root: Path, labels: bool, prefer: str) -> Dataset:
    base = next((c for c in (root, root / "cityscapes") if (c / "leftImg8bit").is_dir()), None)
    if base is None:
        raise DatasetError(f"{root}: not a Cityscapes layout (no leftImg8bit/ folder; expected "
                           "leftImg8bit/val/<city>/*_leftImg8bit.png and gtFine/val/<city>/*_gtFine_labelIds.png)")
    val = base / "leftImg8bit" / "val"
    if not val.is_dir():
        raise DatasetError(f"{base / 'leftImg8bit'}: no val/ folder "
                           "(expected leftImg8bit/val/<city>/*_leftImg8bit.png)")
    files = sorted(p for p in val.glob("*/*_leftImg8bit.png") if p.is_file())
    if not files:
        raise DatasetError(f"{val}: no <city>/*_leftImg8bit.png images")
    prefer = prefer or "labelIds"
    images.check_choice(prefer, ("labelIds", "labelTrainIds"), "Cityscapes labels")
    other = "labelTrainIds" if prefer == "labelIds" else "labelIds"
    gt = base / "gtFine" / "val"

    def label_path(image: Path, which: str) -> Path:
        prefix = image.name[: -len("_leftImg8bit.png")]
        return gt / image.parent.name / f"{prefix}_gtFine_{which}.png"

    notices: list[str] = []
    which = "none"
    if labels:
        first = files[0]
        if label_path(first, prefer).is_file():
            which = prefer
        elif label_path(first, other).is_file():
            which = other
            notices.append(f"no *_gtFine_{prefer}.png labels: using *_gtFine_{other}.png (the same trainIds)")
        else:
            raise DatasetError(f"label not found: {label_path(first, prefer)} (nor *_gtFine_{other}.png)")
    samples = []
    for image in files:
        label = None
        if labels:
            label = label_path(image, which)
            if not label.is_file():
                raise DatasetError(f"label not found: {label} (for {image})")
        samples.append(Sample(id=image.stem, image=image, label=label))
    return Dataset(kind="cityscapes", root=base, samples=samples, labels=which, notices=notices)


# ---------------------------------------------------------------------------
# ImageNet


def _imagenet(root: Path, labels: bool, prefer: str) -> Dataset:
    folder = root / "val" if (root / "val").is_dir() else root
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DatasetError(f"{folder}: no images (expected ImageNet val images such as ILSVRC2012_val_00000001.JPEG, "
                           "in the folder or in val/)")
    label_file = next((p for p in (root / "val_label.txt", folder / "val_label.txt", root.parent / "val_label.txt")
                       if p.is_file()), None)
    if not labels:
        return Dataset(kind="imagenet", root=folder, samples=[Sample(p.stem, p) for p in files], labels="none")
    if label_file is None:
        raise DatasetError(f"{root}: no val_label.txt (lines '<image> <class>', beside the images or val/)")
    table = read_val_labels(label_file)
    samples = []
    for image in files:
        if image.name not in table:
            raise DatasetError(f"{image}: no line in {label_file}")
        samples.append(Sample(id=image.stem, image=image, label=table[image.name]))
    return Dataset(kind="imagenet", root=folder, samples=samples, labels="val_label.txt")


def read_val_labels(path: Path) -> dict[str, int]:
    """``val_label.txt``: image file name → 0-based class.

    Raises:
        DatasetError: a line that is not ``<image> <class>``, or an image listed twice.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from None
    table: dict[str, int] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or not parts[1].isdigit():
            raise DatasetError(f"{path}:{lineno}: expected '<image> <class>', got {line.strip()!r}")
        name = os.path.basename(parts[0])
        if name in table:
            raise DatasetError(f"{path}:{lineno}: {name} is listed twice")
        table[name] = int(parts[1])
    if not table:
        raise DatasetError(f"{path}: no labels")
    return table


# ---------------------------------------------------------------------------
# DSB2018


def _dsb2018(root: Path, labels: bool, prefer: str) -> Dataset:
    candidates = (root, root / "dsb2018_96", root / "inputs" / "dsb2018_96")
    base = next((c for c in candidates if (c / "images").is_dir()), None)
    if base is None:
        raise DatasetError(f"{root}: not a DSB2018 layout (expected dsb2018_96/images/<id>.png, "
                           "dsb2018_96/masks/0/<id>.png and val_ids.txt)")
    ids_file = next((p for p in (root / "val_ids.txt", base / "val_ids.txt", base.parent / "val_ids.txt")
                     if p.is_file()), None)
    notices: list[str] = []
    available = sorted(p.stem for p in (base / "images").glob("*.png"))
    if ids_file is not None:
        ids = read_ids(ids_file)
    else:
        if not available:
            raise DatasetError(f"{base / 'images'}: no <id>.png images")
        ids = upstream_split(available)
        notices.append(f"no val_ids.txt: the upstream split (train_test_split test_size=0.2, random_state=41) over "
                       f"the {len(available)} sorted ids gives {len(ids)}; upstream splits glob() order, which "
                       "depends on the file system")
    samples = []
    for sample_id in ids:
        image = base / "images" / f"{sample_id}.png"
        if not image.is_file():
            raise DatasetError(f"image not found: {image} (listed in {ids_file})")
        mask = None
        if labels:
            mask = base / "masks" / "0" / f"{sample_id}.png"
            if not mask.is_file():
                raise DatasetError(f"mask not found: {mask}")
        samples.append(Sample(id=sample_id, image=image, label=mask))
    return Dataset(kind="dsb2018", root=base, samples=samples, labels="masks/0" if labels else "none",
                   notices=notices)


def read_ids(path: Path) -> list[str]:
    """The ids of ``val_ids.txt``: one per line (commas, quotes and brackets of a pasted list tolerated).

    Raises:
        DatasetError: unreadable, empty, or an id listed twice.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from None
    ids = [t for t in (s.strip("'\"[]() ") for s in re.split(r"[\s,]+", text)) if t]
    if not ids:
        raise DatasetError(f"{path}: no ids")
    seen: set[str] = set()
    for sample_id in ids:
        if sample_id in seen:
            raise DatasetError(f"{path}: id {sample_id} is listed twice")
        seen.add(sample_id)
    return ids


def upstream_split(ids: Sequence[str], test_size: float = 0.2, seed: int = 41) -> list[str]:
    """The test part of sklearn's ``train_test_split(ids, test_size=0.2, random_state=41)``, in its order.

    ShuffleSplit draws one ``RandomState(seed).permutation(n)`` and takes its first
    ``ceil(test_size * n)`` indices as the test set.
    """
    n = len(ids)
    n_test = math.ceil(test_size * n)
    perm = np.random.RandomState(seed).permutation(n)
    return [ids[i] for i in perm[:n_test]]
