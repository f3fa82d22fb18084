from __future__ import annotations

import numpy as np
import pytest
from int8_nets import conv_net
from surgery.models.recipes import CSPRESNEXT50, UNETPP
from surgery.passes import QuantizeInt8

from surgery.calibration import (
    ArrayFolder,
    Generated,
    dataset_arrays,
    distribution_for,
    distribution_for_recipe,
    is_dataset,
    normalise,
    synthetic_images,
    write_bins,
)
from surgery.errors import UsageError
from surgery.shapes import InputSpec

SPEC = InputSpec("x", ("N", 3, 16, 16))


def test_synthetic_images_are_seeded_and_photo_like():
    a, b = synthetic_images(2, 32, 48, seed=1), synthetic_images(2, 32, 48, seed=1)
    assert a.shape == (2, 32, 48, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, synthetic_images(2, 32, 48, seed=2))
    assert a.std() > 20  # colour fields and shapes, not a flat grey


def test_distributions_normalise_as_the_recipes_do():
    images = np.full((1, 4, 4, 3), 255, np.uint8)
    imagenet = normalise(images, "imagenet")
    np.testing.assert_allclose(imagenet[0, :, 0, 0], [(1 - 0.485) / 0.229, (1 - 0.456) / 0.224, (1 - 0.406) / 0.225],
                               rtol=1e-6)
    np.testing.assert_allclose(normalise(images, "imagenet_div255"), imagenet / 255, rtol=1e-6)
    assert normalise(images, "unit").max() == 1.0 and normalise(images, "pixels").max() == 255.0
    assert distribution_for("dsb2018_bgr_imagenet_norm_div255") == "imagenet_div255"
    assert distribution_for_recipe(UNETPP) == "imagenet_div255"  # the UNet++ guide divides by 255 twice
    assert distribution_for_recipe(CSPRESNEXT50) == "imagenet"
    assert distribution_for_recipe(None) == "auto"


def test_generated_auto_picks_images_for_image_inputs_only():
    feed = next(Generated(seed=0).feeds([SPEC], {"x": (1, 3, 16, 16)}, 1))
    assert feed["x"].min() < -1.0 and feed["x"].dtype == np.float32  # ImageNet-normalised pixels
    tokens = InputSpec("ids", ("N", 7), "int64")
    feed = next(Generated(seed=0).feeds([tokens], {"ids": (1, 7)}, 1))
    assert feed["ids"].dtype == np.int64
    with pytest.raises(UsageError, match="for float NCHW images"):
        next(Generated("imagenet").feeds([tokens], {"ids": (1, 7)}, 1))


def test_array_folders_of_npz_npy_and_bin(tmp_path):
    feeds = list(Generated(seed=0).feeds([SPEC], {"x": (1, 3, 16, 16)}, 3))
    write_bins(feeds, tmp_path / "bins", [SPEC])
    got = list(ArrayFolder(str(tmp_path / "bins")).feeds([SPEC], {"x": (1, 3, 16, 16)}, 10))
    assert len(got) == 3
    np.testing.assert_array_equal(got[1]["x"], feeds[1]["x"])
    (tmp_path / "npz").mkdir()
    np.savez(tmp_path / "npz" / "all.npz", x=np.concatenate([f["x"] for f in feeds])[:, None])
    assert len(list(ArrayFolder(str(tmp_path / "npz")).feeds([SPEC], {"x": (1, 3, 16, 16)}, 2))) == 2
    two = [SPEC, InputSpec("y", ("N", 2))]
    with pytest.raises(UsageError, match="one sub-folder per input"):
        list(ArrayFolder(str(tmp_path / "bins")).feeds(two, {"x": (1, 3, 16, 16), "y": (1, 2)}, 1))


def test_calibration_on_a_generated_dataset_in_the_real_layout(tmp_path):
    """`surgery data make imagenet` layout → the recipe's preprocessing → quantize_int8 calib=."""
    from surgery.eval.generate import make_dataset

    make_dataset("imagenet", tmp_path / "imagenet", 4, seed=3, size=(120, 160))
    assert is_dataset(CSPRESNEXT50, tmp_path / "imagenet")
    assert not is_dataset(CSPRESNEXT50, tmp_path)
    folder = dataset_arrays(CSPRESNEXT50, tmp_path / "imagenet", 4, tmp_path / "arrays")
    arrays = sorted(folder.glob("*.npy"))
    assert len(arrays) == 4 and np.load(arrays[0]).shape == (1, 3, 224, 224)  # squash 256, crop 224
    model = conv_net(size=224)
    result = QuantizeInt8(calib=str(folder), samples=4)(model)
    assert result.counts["int8 Conv"] == 3
    assert f"calibrated with minmax on 4 samples: arrays from {folder}" in result.notes
