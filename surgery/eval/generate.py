"""Synthetic datasets in the guides' real layouts (``surgery data make``), and images for fidelity.

The pictures imitate each dataset's statistics enough to exercise a model the way its data
does: street scenes with a horizon, road, sidewalks, buildings, vegetation, poles, cars and
people (with an ego-vehicle strip that Cityscapes ignores), objects on textured backgrounds
(ImageNet-like), bright nuclei on dark fields (DSB2018). Every label is exact by
construction, so a perfect predictor scores 1. Figures measured on them are not accuracy:
the folder carries a ``SYNTHETIC.json`` marker that ``surgery eval`` reports.

Everything is seeded (one generator per image, from ``seed`` and the image index), so the
same call writes the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from surgery.atomic import write_bytes_atomic, write_text_atomic
from surgery.errors import UsageError
from surgery.eval import images
from surgery.eval.datasets import CITYSCAPES_TRAIN_IDS, IGNORE, KINDS, SYNTHETIC_MARKER

SYNTHETIC_NOTE = ("synthetic images (`surgery data make`, `--generate`): figures measured on them show that the "
                  "pipeline runs and how two models compare; they are not accuracy")
DEFAULT_SIZES: dict[str, tuple[int, int] | None] = {"cityscapes": (1024, 2048), "imagenet": None, "dsb2018": (96, 96)}
IMAGENET_SIZES = ((375, 500), (500, 375), (333, 500), (500, 500), (480, 640), (427, 640))
CITIES = ("frankfurt", "lindau", "munster")  # the Cityscapes val cities
EGO_VEHICLE_ID = 1  # a Cityscapes labelId outside the 19 classes: ignored

# natural colours per trainId (road, sidewalk, building, wall, fence, pole, light, sign, vegetation, terrain, sky,
# person, rider, car, truck, bus, train, motorcycle, bicycle)
_PALETTE = np.array([
    (88, 86, 92), (150, 142, 135), (118, 102, 92), (140, 130, 120), (110, 110, 100), (70, 70, 75), (200, 170, 30),
    (220, 210, 40), (62, 112, 48), (120, 140, 80), (140, 178, 226), (150, 60, 60), (160, 80, 50), (40, 60, 140),
    (30, 40, 90), (200, 190, 60), (90, 80, 70), (120, 40, 120), (130, 60, 30)], np.float32)
_TRAIN_TO_LABEL_ID = np.full(256, 0, np.uint8)
for _label_id, _train_id in CITYSCAPES_TRAIN_IDS.items():
    _TRAIN_TO_LABEL_ID[_train_id] = _label_id
_TRAIN_TO_LABEL_ID[IGNORE] = EGO_VEHICLE_ID


def image_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of image ``index``: independent of how many images are made."""
    return np.random.default_rng([seed, index])


# ---------------------------------------------------------------------------
# pictures


def street_scene(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """A Cityscapes-like frame: (RGB uint8 H×W×3, trainIds uint8 H×W with 255 on the ego vehicle)."""
    h, w = height, width
    yy = np.arange(h, dtype=np.float32)[:, None]
    xx = np.arange(w, dtype=np.float32)[None, :]
    label = np.full((h, w), 10, np.uint8)  # sky
    horizon = int(h * rng.uniform(0.36, 0.5))
    cx = w * rng.uniform(0.4, 0.6)
    below = yy >= horizon
    depth = np.clip((yy - horizon) / max(1.0, h - horizon), 0, 1)
    half = w * 0.03 + depth * w * rng.uniform(0.35, 0.55)
    dist = np.abs(xx - cx)
    label[np.broadcast_to(below, (h, w))] = 1  # sidewalk
    label[below & (dist > half * 1.5)] = 9  # terrain
    label[below & (dist < half)] = 0  # road
    # buildings along the horizon, a gap where the road leads
    x = 0
    while x < w:
        bw = max(1, int(w * rng.uniform(0.06, 0.18)))
        top = int(horizon - h * rng.uniform(0.08, 0.34))
        if abs(x + bw / 2 - cx) > w * 0.08:
            cls = 2 if rng.random() > 0.12 else 3  # building, sometimes a wall
            label[max(0, top):horizon, x:x + bw] = cls
        x += bw
    for _ in range(rng.integers(1, 4)):  # vegetation crowns
        ey, ex = horizon - h * rng.uniform(0.0, 0.15), w * rng.uniform(0, 1)
        ry, rx = h * rng.uniform(0.05, 0.15), w * rng.uniform(0.03, 0.1)
        label[((yy - ey) / ry) ** 2 + ((xx - ex) / rx) ** 2 < 1] = 8
    for _ in range(rng.integers(1, 5)):  # poles with signs or lights on sidewalks
        px = int(w * rng.uniform(0.02, 0.98))
        pw = max(1, w // 300)
        bottom = int(horizon + (h - horizon) * rng.uniform(0.1, 0.5))
        top = int(horizon - h * rng.uniform(0.1, 0.25))
        label[max(0, top):bottom, px:px + pw] = 5
        label[max(0, top):max(0, top) + max(2, h // 60), px - 3 * pw:px + 4 * pw] = 7 if rng.random() < 0.5 else 6
    for _ in range(rng.integers(1, 6)):  # cars on the road, sized by their distance
        bottom = int(horizon + (h - horizon) * rng.uniform(0.15, 0.8))
        ch = max(2, int((bottom - horizon) * rng.uniform(0.45, 0.6)))
        cw = int(ch * rng.uniform(1.4, 2.2))
        offset = (rng.uniform(-0.8, 0.8)) * (w * 0.03 + (bottom - horizon) / max(1, h - horizon) * w * 0.45)
        x0 = int(cx + offset - cw / 2)
        label[max(0, bottom - ch):bottom, max(0, x0):max(0, x0 + cw)] = 13 if rng.random() > 0.15 else 14
    for _ in range(rng.integers(0, 5)):  # people on the sidewalk
        bottom = int(horizon + (h - horizon) * rng.uniform(0.1, 0.6))
        ph = max(3, int((bottom - horizon) * rng.uniform(0.9, 1.2)))
        pw = max(1, ph // 4)
        x0 = int(w * rng.uniform(0.02, 0.98))
        label[max(0, bottom - ph):bottom, x0:x0 + pw] = 11 if rng.random() > 0.2 else 18
    ego = int(h * rng.uniform(0.04, 0.08))
    label[h - ego:, :] = IGNORE  # the ego vehicle: ignored by every metric

    colour = _PALETTE[np.minimum(label, len(_PALETTE) - 1)].copy()
    colour[label == IGNORE] = (30, 30, 35)
    windows = (label == 2)[..., None] & (((yy.astype(int) // 9) % 3 == 0) & ((xx.astype(int) // 7) % 3 == 0))[..., None]
    colour = np.where(windows, colour * 0.55, colour)
    light = rng.uniform(0.8, 1.15)
    shade = (1.05 - 0.25 * (yy / h))[..., None] * light
    noise = rng.standard_normal((h, w, 1), dtype=np.float32) * 7
    rgb = np.clip(colour * shade + noise, 0, 255).astype(np.uint8)
    return rgb, label


def object_picture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """An ImageNet-like picture: a two-colour gradient with a few shapes and grain (RGB uint8)."""
    h, w = height, width
    yy = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    xx = np.linspace(0, 1, w, dtype=np.float32)[None, :, None]
    a, b = rng.uniform(0, 255, 3).astype(np.float32), rng.uniform(0, 255, 3).astype(np.float32)
    angle = rng.uniform(0, np.pi)
    t = np.clip(np.cos(angle) * yy + np.sin(angle) * xx, 0, 1)
    img = a * (1 - t) + b * t
    for _ in range(rng.integers(1, 5)):
        colour = rng.uniform(0, 255, 3).astype(np.float32)
        cy, cx, ry, rx = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8), rng.uniform(0.08, 0.35), rng.uniform(0.08, 0.35)
        if rng.random() < 0.5:
            inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1
        else:
            inside = (np.abs(yy - cy) < ry) & (np.abs(xx - cx) < rx)
        stripes = 0.85 + 0.15 * np.sin((xx * rng.uniform(10, 60) + yy * rng.uniform(10, 60)) * np.pi)
        img = np.where(inside, colour * stripes, img)
    img = img + rng.standard_normal((h, w, 1), dtype=np.float32) * 6
    return np.clip(img, 0, 255).astype(np.uint8)


def nuclei_picture(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """A DSB2018-like field: (RGB uint8, mask uint8 0/255), nuclei bright on dark (or stained on bright)."""
    h, w = height, width
    yy = np.arange(h, dtype=np.float32)[:, None]
    xx = np.arange(w, dtype=np.float32)[None, :]
    scale = min(h, w) / 96.0
    bright_field = rng.random() < 0.2
    background = rng.uniform(200, 235) if bright_field else rng.uniform(2, 30)
    field = np.full((h, w), background, np.float32)
    mask = np.zeros((h, w), bool)
    for _ in range(rng.integers(0, 16)):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        ry, rx = rng.uniform(3, 10) * scale, rng.uniform(3, 10) * scale
        d = np.sqrt(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2)
        inside = d < 1
        level = rng.uniform(60, 140) if bright_field else rng.uniform(110, 250)
        edge = np.clip((1 - d) * 3, 0, 1)
        field = np.where(inside, background + (level - background) * (0.6 + 0.4 * edge), field)
        mask |= inside
    field = field + rng.standard_normal((h, w), dtype=np.float32) * 4
    tint = np.array((1.0, 0.85, 1.0) if bright_field else (1.0, 1.0, 1.0), np.float32)
    rgb = np.clip(field[..., None] * tint, 0, 255).astype(np.uint8)
    return rgb, mask.astype(np.uint8) * 255


def picture(kind: str, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """An RGB picture of the dataset ``kind`` at this size (for fidelity: no label needed)."""
    if kind == "cityscapes":
        return street_scene(rng, height, width)[0]
    if kind == "dsb2018":
        return nuclei_picture(rng, height, width)[0]
    return object_picture(rng, height, width)


# ---------------------------------------------------------------------------
# datasets on disk


@dataclass
class Made:
    """What ``make_dataset`` wrote."""

    kind: str
    root: Path
    samples: int
    files: int
    size: tuple[int, int] | None


def _check_folder(root: Path) -> None:
    if root.exists() and not root.is_dir():
        raise UsageError(f"{root} is a file, not a folder")
    if root.is_dir() and any(root.iterdir()) and not (root / SYNTHETIC_MARKER).is_file():
        raise UsageError(f"{root} is not empty and holds no dataset made by `surgery data make`; choose a new "
                         "or empty folder")


def make_dataset(kind: str, root: str | os.PathLike, n: int, *, seed: int = 0, size: tuple[int, int] | None = None,
                 on_image: Callable[[int], None] | None = None) -> Made:
    """Write ``n`` synthetic samples of ``kind`` in its real layout under ``root``, with the SYNTHETIC marker.

    Args:
        kind: ``cityscapes``, ``imagenet`` or ``dsb2018``.
        root: the dataset folder (created; it must be new, empty, or made by this function before).
        n: how many samples.
        seed: the seed of the first generator.
        size: (H, W) of every image (default: Cityscapes 1024×2048, DSB2018 96×96, ImageNet varied).
        on_image: called with each image's index once written.

    Raises:
        UsageError: an unknown kind, or a folder that holds something else.
    """
    images.check_choice(kind, KINDS, "dataset")
    root = Path(root)
    _check_folder(root)
    root.mkdir(parents=True, exist_ok=True)
    size = size or DEFAULT_SIZES[kind]
    writer = {"cityscapes": _write_cityscapes, "imagenet": _write_imagenet, "dsb2018": _write_dsb2018}[kind]
    files = writer(root, n, seed, size, on_image or (lambda i: None))
    marker = {"synthetic": True, "kind": kind, "samples": n, "seed": seed, "size": list(size) if size else None,
              "note": SYNTHETIC_NOTE}
    write_text_atomic(root / SYNTHETIC_MARKER, json.dumps(marker, indent=2) + "\n")
    return Made(kind=kind, root=root, samples=n, files=files + 1, size=size)


def _write_cityscapes(root: Path, n: int, seed: int, size: tuple[int, int] | None,
                      on_image: Callable[[int], None]) -> int:
    assert size is not None
    for i in range(n):
        city = CITIES[i % len(CITIES)]
        prefix = f"{city}_000000_{i:06d}"
        rgb, train_ids = street_scene(image_rng(seed, i), *size)
        left = root / "leftImg8bit" / "val" / city
        gt = root / "gtFine" / "val" / city
        left.mkdir(parents=True, exist_ok=True)
        gt.mkdir(parents=True, exist_ok=True)
        images.write_png(left / f"{prefix}_leftImg8bit.png", rgb)
        images.write_png(gt / f"{prefix}_gtFine_labelIds.png", _TRAIN_TO_LABEL_ID[train_ids])
        images.write_png(gt / f"{prefix}_gtFine_labelTrainIds.png", train_ids)
        on_image(i)
    return 3 * n


def _write_imagenet(root: Path, n: int, seed: int, size: tuple[int, int] | None,
                    on_image: Callable[[int], None]) -> int:
    import io

    from PIL import Image

    val = root / "val"
    val.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n):
        rng = image_rng(seed, i)
        h, w = size or IMAGENET_SIZES[int(rng.integers(len(IMAGENET_SIZES)))]
        name = f"ILSVRC2012_val_{i + 1:08d}.JPEG"
        buf = io.BytesIO()
        Image.fromarray(object_picture(rng, h, w)).save(buf, format="JPEG", quality=90)
        write_bytes_atomic(val / name, buf.getvalue())
        lines.append(f"{name} {int(rng.integers(1000))}")
        on_image(i)
    write_text_atomic(root / "val_label.txt", "\n".join(lines) + "\n")
    return n + 1


def _write_dsb2018(root: Path, n: int, seed: int, size: tuple[int, int] | None,
                   on_image: Callable[[int], None]) -> int:
    assert size is not None
    base = root / "dsb2018_96"
    (base / "images").mkdir(parents=True, exist_ok=True)
    (base / "masks" / "0").mkdir(parents=True, exist_ok=True)
    ids = []
    for i in range(n):
        sample_id = hashlib.sha256(f"surgery-dsb2018-{seed}-{i}".encode()).hexdigest()
        rgb, mask = nuclei_picture(image_rng(seed, i), *size)
        images.write_png(base / "images" / f"{sample_id}.png", rgb)
        images.write_png(base / "masks" / "0" / f"{sample_id}.png", mask)
        ids.append(sample_id)
        on_image(i)
    write_text_atomic(root / "val_ids.txt", "\n".join(ids) + "\n")
    return 2 * n + 1
