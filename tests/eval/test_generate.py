"""Synthetic datasets: the real layouts, exact labels, the same bytes for the same seed."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from surgery.errors import UsageError
from surgery.eval import generate
from surgery.eval.datasets import SYNTHETIC_MARKER, open_dataset


def digest(root):
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(root).as_posix().encode() + p.read_bytes())
    return h.hexdigest()


def test_each_kind_is_readable_by_its_reader(datasets):
    for kind, root in datasets.items():
        ds = open_dataset(kind, root)
        assert ds.synthetic and (root / SYNTHETIC_MARKER).is_file() and len(ds.samples) >= 3, kind
        label = ds.read_label(ds.samples[0])
        if kind == "imagenet":
            assert 0 <= label < 1000
        else:
            assert label.shape == (16, 32) if kind == "cityscapes" else (16, 16)


def test_same_seed_same_bytes_and_a_new_seed_differs(tmp_path):
    a = generate.make_dataset("dsb2018", tmp_path / "a", 3, seed=5, size=(16, 16)).root
    b = generate.make_dataset("dsb2018", tmp_path / "b", 3, seed=5, size=(16, 16)).root
    c = generate.make_dataset("dsb2018", tmp_path / "c", 3, seed=6, size=(16, 16)).root
    assert digest(a) == digest(b) != digest(c)


def test_street_scenes_label_what_they_draw():
    rgb, label = generate.street_scene(generate.image_rng(0, 0), 64, 128)
    assert rgb.shape == (64, 128, 3) and rgb.dtype == np.uint8
    present = set(np.unique(label).tolist())
    assert {0, 1, 10, 255} <= present  # road, sidewalk, sky, the ignored ego vehicle
    sky = rgb[label == 10].mean(axis=0)
    road = rgb[label == 0].mean(axis=0)
    assert sky[2] > road[2] + 50  # the sky is blue, the road grey


def test_nuclei_masks_cover_the_bright_blobs():
    rgb, mask = generate.nuclei_picture(np.random.default_rng(1), 96, 96)
    assert set(np.unique(mask).tolist()) <= {0, 255}
    if mask.any():
        assert abs(float(rgb[mask > 0].mean()) - float(rgb[mask == 0].mean())) > 30


def test_folders_that_hold_something_else_are_refused(tmp_path):
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("mine")
    with pytest.raises(UsageError, match="not empty and holds no dataset made by `surgery data make`"):
        generate.make_dataset("imagenet", tmp_path / "other", 1)
    made = generate.make_dataset("imagenet", tmp_path / "ours", 2, size=(20, 30)).root
    generate.make_dataset("imagenet", made, 2, size=(20, 30))  # regenerating our own is fine
    with pytest.raises(UsageError, match="dataset must be one of"):
        generate.make_dataset("coco", tmp_path / "x", 1)
