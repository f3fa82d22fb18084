"""Inputs in a model's own distribution: for calibrating a quantizer and for judging it.

Static INT8 quantization sets each tensor's range from the activations that calibration
inputs produce, so those inputs must look like what the model sees in use. Polygraphy's
uniform [0, 1) noise (what parity feeds) is the wrong distribution for an image model
normalised with ImageNet statistics: its ranges come out several times too narrow. This
module makes inputs two ways:

- **generated**: synthetic images (smooth colour fields, shapes with hard edges, sensor
  noise: the statistics of photos, not of white noise) run through a named input
  *distribution*, the last step of a recipe's preprocessing (``imagenet``: RGB/255 then
  ImageNet mean/std; ``imagenet_div255``: the UNet++ guide's extra /255; ``unit``;
  ``pixels``; ``uniform``: Polygraphy's noise). ``auto`` picks ``imagenet`` for float
  NCHW inputs with 1 or 3 channels and ``uniform`` otherwise;
- **read from a folder** of arrays that are already model inputs: ``*.npz`` (one array per
  input name), ``*.npy`` (single-input models), or the guides' headerless ``*.bin``
  (float32 of the input's shape; multi-input models keep one sub-folder per input, the
  layout AMCT's ``--data_dir`` takes), files taken in sorted order.

A :class:`CalibrationSource` is anything with ``feeds(specs, shapes, count)``; the
quantizer and the budget take one, so a dataset reader can stand in for these.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from surgery.errors import UsageError
from surgery.parity import random_feed
from surgery.shapes import InputSpec, format_shape

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DISTRIBUTIONS = ("auto", "imagenet", "imagenet_div255", "unit", "pixels", "uniform")
ARRAY_SUFFIXES = (".npz", ".npy", ".bin")

Feed = dict[str, np.ndarray]


class CalibrationSource(Protocol):
    """Something that yields model inputs (one dict per sample) for given input specs and shapes."""

    def feeds(self, specs: Sequence[InputSpec], shapes: dict[str, tuple[int, ...]], count: int) -> Iterator[Feed]:
        """Up to ``count`` feeds, each ``{input name: array of shapes[name]}``."""
        ...

    def describe(self) -> str:
        """One line for notes and records: what the inputs are."""
        ...


def distribution_for(preprocessing: str | None) -> str:
    """The input distribution a recipe's preprocessing name ends in (``auto`` when it says nothing known)."""
    name = (preprocessing or "").lower()
    if "div255" in name:
        return "imagenet_div255"
    if "imagenet" in name:
        return "imagenet"
    return "auto"


def distribution_for_recipe(recipe: object | None) -> str:
    """The input distribution of a zoo recipe's guide preprocessing (``auto`` without one).

    ImageNet mean/std after ``/255`` is ``imagenet``; the UNet++ guide's extra ``/255`` is
    ``imagenet_div255``. Channel order (RGB or BGR reads) does not matter for synthetic images.
    """
    evaluation = getattr(recipe, "evaluation", None)
    if evaluation is None:
        return distribution_for(getattr(recipe, "preprocessing", None))
    pre = evaluation.guide.preprocessing
    if tuple(pre.mean) != IMAGENET_MEAN or tuple(pre.std) != IMAGENET_STD:
        return "auto"
    return "imagenet_div255" if float(pre.divide) == 255.0 else "imagenet" if float(pre.divide) == 1.0 else "auto"


def synthetic_images(count: int, height: int, width: int, *, seed: int, channels: int = 3) -> np.ndarray:
    """``count`` uint8 images (N, H, W, C) with photo-like statistics, deterministic in ``seed``.

    Each is a smooth random colour field (a coarse grid upsampled bilinearly), a few flat
    rectangles and discs with hard edges, and Gaussian noise of a few grey levels.
    """
    rng = np.random.default_rng(seed)
    out = np.empty((count, height, width, channels), np.uint8)
    ys = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    xs = np.linspace(0, 1, width, dtype=np.float32)[None, :]
    for k in range(count):
        grid = int(rng.integers(2, 6))
        coarse = rng.uniform(20, 235, size=(grid, grid, channels)).astype(np.float32)
        image = _bilinear(coarse, height, width)
        for _ in range(int(rng.integers(2, 7))):
            colour = rng.uniform(0, 255, size=channels).astype(np.float32)
            cy, cx = rng.uniform(0, 1, size=2)
            ry, rx = rng.uniform(0.05, 0.35, size=2)
            if rng.random() < 0.5:
                mask = (np.abs(ys - cy) < ry) & (np.abs(xs - cx) < rx)
            else:
                mask = ((ys - cy) / ry) ** 2 + ((xs - cx) / rx) ** 2 < 1.0
            image[mask] = colour
        image += rng.normal(0.0, float(rng.uniform(2, 10)), size=image.shape).astype(np.float32)
        out[k] = np.clip(image, 0, 255).astype(np.uint8)
    return out


def _bilinear(coarse: np.ndarray, height: int, width: int) -> np.ndarray:
    gy, gx = coarse.shape[:2]
    fy = np.linspace(0, gy - 1, height, dtype=np.float32)
    fx = np.linspace(0, gx - 1, width, dtype=np.float32)
    y0 = np.minimum(fy.astype(int), gy - 2) if gy > 1 else np.zeros(height, int)
    x0 = np.minimum(fx.astype(int), gx - 2) if gx > 1 else np.zeros(width, int)
    wy = (fy - y0)[:, None, None]
    wx = (fx - x0)[None, :, None]
    y1, x1 = np.minimum(y0 + 1, gy - 1), np.minimum(x0 + 1, gx - 1)
    top = coarse[y0][:, x0] * (1 - wx) + coarse[y0][:, x1] * wx
    bottom = coarse[y1][:, x0] * (1 - wx) + coarse[y1][:, x1] * wx
    return (top * (1 - wy) + bottom * wy).astype(np.float32)


def is_image_input(spec: InputSpec, shape: tuple[int, ...]) -> bool:
    """A float NCHW input with 1 or 3 channels and at least 8x8 pixels."""
    return (np.issubdtype(spec.dtype, np.floating) and len(shape) == 4 and shape[1] in (1, 3)
            and shape[2] >= 8 and shape[3] >= 8)


def normalise(images: np.ndarray, distribution: str) -> np.ndarray:
    """uint8 (N, H, W, C) images → float32 NCHW model inputs in ``distribution``."""
    x = images.astype(np.float32).transpose(0, 3, 1, 2)
    channels = x.shape[1]
    if distribution == "pixels":
        return np.ascontiguousarray(x)
    x /= 255.0
    if distribution == "unit":
        return np.ascontiguousarray(x)
    mean = np.array(IMAGENET_MEAN if channels == 3 else [np.mean(IMAGENET_MEAN)] * channels, np.float32)
    std = np.array(IMAGENET_STD if channels == 3 else [np.mean(IMAGENET_STD)] * channels, np.float32)
    x = (x - mean[None, :, None, None]) / std[None, :, None, None]
    if distribution == "imagenet_div255":
        x /= 255.0  # the UNet++ guide normalises on the 0-255 scale and divides by 255 again
    return np.ascontiguousarray(x)


@dataclass(frozen=True)
class Generated:
    """Generated inputs: synthetic images in a named distribution for image inputs, seeded noise otherwise.

    Attributes:
        distribution: one of :data:`DISTRIBUTIONS`.
        seed: the first sample's seed; sample ``k`` uses ``seed + k``, so two sources with
            different seeds give different images (calibration vs judging sets).
    """

    distribution: str = "auto"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.distribution not in DISTRIBUTIONS:
            raise UsageError(f"input distribution {self.distribution!r} is not one of {', '.join(DISTRIBUTIONS)}")

    def resolved(self, spec: InputSpec, shape: tuple[int, ...]) -> str:
        """The distribution one input gets (``auto`` decided)."""
        if self.distribution != "auto":
            if self.distribution != "uniform" and not is_image_input(spec, shape):
                raise UsageError(f"input distribution {self.distribution} is for float NCHW images with 1 or 3 "
                                 f"channels; input {spec.name!r} is {spec.dtype} {format_shape(shape)}")
            return self.distribution
        return "imagenet" if is_image_input(spec, shape) else "uniform"

    def feeds(self, specs: Sequence[InputSpec], shapes: dict[str, tuple[int, ...]], count: int) -> Iterator[Feed]:
        kinds = {s.name: self.resolved(s, shapes[s.name]) for s in specs}
        for k in range(count):
            seed = self.seed + k
            feed = random_feed(list(specs), shapes, seed)  # non-image inputs: Polygraphy's seeded noise
            for spec in specs:
                kind, shape = kinds[spec.name], shapes[spec.name]
                if kind == "uniform":
                    continue
                batch, channels, height, width = shape
                # one seed stream per (sample, input) so inputs of a multi-input model differ
                images = synthetic_images(batch, height, width, seed=seed * 7919 + specs.index(spec),
                                          channels=channels)
                feed[spec.name] = normalise(images, kind).astype(spec.dtype, copy=False)
            yield feed

    def describe(self) -> str:
        what = "synthetic images" if self.distribution not in ("uniform",) else "uniform [0, 1) noise"
        return f"generated {what} ({self.distribution}, seed {self.seed})"


@dataclass(frozen=True)
class ArrayFolder:
    """Model inputs stored as arrays in a folder (``.npz`` / ``.npy`` / ``.bin``), read in sorted order."""

    path: str

    def _files(self, folder: Path) -> list[Path]:
        return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in ARRAY_SUFFIXES)

    def check(self) -> None:
        """Raise UsageError when the folder is missing or holds no array files (one line)."""
        folder = Path(self.path)
        if not folder.is_dir():
            raise UsageError(f"calibration folder not found: {folder}")
        if not self._files(folder) and not any(p.is_dir() for p in folder.iterdir()):
            raise UsageError(f"calibration folder {folder} has no .npz, .npy or .bin files")

    def feeds(self, specs: Sequence[InputSpec], shapes: dict[str, tuple[int, ...]], count: int) -> Iterator[Feed]:
        self.check()
        folder = Path(self.path)
        files = self._files(folder)
        npz = [f for f in files if f.suffix == ".npz"]
        if npz:
            n = 0
            for f in npz:
                for feed in _npz_feeds(f, specs, shapes):
                    if n >= count:
                        return
                    n += 1
                    yield feed
            return
        per_input = _per_input_files(folder, files, specs)
        total = min(len(v) for v in per_input.values())
        if total == 0:
            names = ", ".join(s.name for s in specs)
            raise UsageError(f"calibration folder {folder} has no samples for every input "
                             f"(expected .npy/.bin files, or one sub-folder per input: {names})")
        for k in range(min(total, count)):
            yield {s.name: _read_array(per_input[s.name][k], s, shapes[s.name]) for s in specs}

    def describe(self) -> str:
        return f"arrays from {self.path}"


def _npz_feeds(path: Path, specs: Sequence[InputSpec], shapes: dict[str, tuple[int, ...]]) -> Iterator[Feed]:
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise UsageError(f"calibration file {path} is not a readable .npz ({exc})") from None
    missing = [s.name for s in specs if s.name not in data.files]
    if missing:
        raise UsageError(f"calibration file {path} has no array for input {missing[0]!r} (arrays: "
                         f"{', '.join(data.files)})")
    arrays = {s.name: np.asarray(data[s.name]) for s in specs}
    stacked = all(a.ndim == len(shapes[n]) + 1 for n, a in arrays.items())
    rows = [arrays] if not stacked else [{n: a[k] for n, a in arrays.items()} for k in range(
        min(a.shape[0] for a in arrays.values()))]
    for row in rows:
        yield {s.name: _fit(row[s.name], s, shapes[s.name], path) for s in specs}


def _per_input_files(folder: Path, files: list[Path], specs: Sequence[InputSpec]) -> dict[str, list[Path]]:
    if len(specs) == 1 and files:
        return {specs[0].name: files}
    out: dict[str, list[Path]] = {}
    for spec in specs:
        sub = folder / spec.name
        if not sub.is_dir():
            raise UsageError(f"calibration folder {folder}: a model with several inputs needs one sub-folder per "
                             f"input; {sub} is missing")
        out[spec.name] = sorted(p for p in sub.iterdir() if p.is_file() and p.suffix in (".npy", ".bin"))
    return out


def _read_array(path: Path, spec: InputSpec, shape: tuple[int, ...]) -> np.ndarray:
    if path.suffix == ".npy":
        try:
            return _fit(np.load(path, allow_pickle=False), spec, shape, path)
        except (OSError, ValueError) as exc:
            raise UsageError(f"calibration file {path} is not a readable .npy ({exc})") from None
    data = np.fromfile(path, dtype=spec.dtype)  # the guides' .bin: headerless, the input's dtype
    if data.size != int(np.prod(shape)):
        raise UsageError(f"calibration file {path} holds {data.size} {spec.dtype} values; input {spec.name!r} "
                         f"{format_shape(shape)} needs {int(np.prod(shape))}")
    return data.reshape(shape)


def _fit(array: np.ndarray, spec: InputSpec, shape: tuple[int, ...], path: Path) -> np.ndarray:
    if array.shape != shape and array.shape == shape[1:] and shape[0] == 1:
        array = array[None]
    if array.shape != shape:
        raise UsageError(f"calibration file {path}: input {spec.name!r} is {format_shape(array.shape)}, the model "
                         f"runs {format_shape(shape)}")
    return np.ascontiguousarray(array.astype(spec.dtype, copy=False))


def source_for(calib: str | os.PathLike | None, *, distribution: str = "auto", seed: int = 0) -> CalibrationSource:
    """A folder of arrays when ``calib`` is given, else generated inputs in ``distribution``."""
    if calib:
        folder = ArrayFolder(str(calib))
        folder.check()
        return folder
    return Generated(distribution, seed)


def write_bins(feeds: Sequence[Feed], folder: str | os.PathLike, specs: Sequence[InputSpec]) -> dict[str, Path]:
    """Write feeds as the guides' / AMCT's headerless ``.bin`` files: one sub-folder per input, sorted names.

    Returns:
        input name → the folder its files are in.
    """
    root = Path(folder)
    dirs: dict[str, Path] = {}
    for spec in specs:
        sub = root / spec.name if len(specs) > 1 else root
        sub.mkdir(parents=True, exist_ok=True)
        dirs[spec.name] = sub
    for k, feed in enumerate(feeds):
        for spec in specs:
            np.ascontiguousarray(feed[spec.name].astype(spec.dtype, copy=False)).tofile(
                dirs[spec.name] / f"calib_{k:05d}.bin")
    return dirs


def is_dataset(recipe: object | None, root: str | os.PathLike) -> bool:
    """Whether ``root`` is in the layout of the recipe's evaluation dataset (Cityscapes, ImageNet, DSB2018)."""
    spec = getattr(recipe, "evaluation", None)
    if spec is None or not Path(root).is_dir():
        return False
    from surgery.eval.datasets import open_dataset

    try:
        open_dataset(spec.dataset, root, labels=False, limit=1)
    except UsageError:
        return False
    return True


def dataset_arrays(recipe: object, root: str | os.PathLike, count: int, out: str | os.PathLike, *,
                   mode: str = "guide") -> Path:
    """The first ``count`` images of a dataset in the recipe's layout, through its preprocessing, as ``.npy`` inputs.

    The folder ``out`` then serves as ``quantize_int8 calib=`` (an :class:`ArrayFolder`).

    Raises:
        UsageError: not the recipe's layout, or an unreadable image (one line naming the file).
    """
    from surgery.eval.datasets import open_dataset
    from surgery.eval.preprocess import Preprocessor

    spec = getattr(recipe, "evaluation", None)
    if spec is None:
        raise UsageError(f"recipe {getattr(recipe, 'name', '?')} has no evaluation spec to read {root} with")
    dataset = open_dataset(spec.dataset, root, labels=False, limit=count)
    pre = Preprocessor(spec.mode(mode).preprocessing)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    for sample in dataset.samples:
        np.save(folder / f"{sample.id}.npy", pre(sample.image)[None])
    return folder
