"""Each recipe's preprocessing, guide and upstream modes, against values worked out independently."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from surgery.models import RECIPES

from surgery.errors import UsageError
from surgery.eval.preprocess import Preprocessor
from surgery.recipe import Preprocessing

MEAN = np.array([0.485, 0.456, 0.406])
STD = np.array([0.229, 0.224, 0.225])


def pre(name: str, mode: str) -> Preprocessor:
    return Preprocessor(RECIPES[name].evaluation.mode(mode).preprocessing)


def png(tmp_path, array: np.ndarray, name: str = "x.png"):
    path = tmp_path / name
    Image.fromarray(array).save(path)
    return path


def test_icnet_guide_is_totensor_and_imagenet_normalize_at_full_size(tmp_path):
    img = np.zeros((4, 8, 3), np.uint8)
    img[0, 0] = (255, 0, 128)
    out = pre("icnet", "guide")(png(tmp_path, img))
    assert out.shape == (3, 4, 8) and out.dtype == np.float32
    expected = (np.array([255, 0, 128]) / 255 - MEAN) / STD
    np.testing.assert_allclose(out[:, 0, 0], expected, rtol=1e-6)
    np.testing.assert_allclose(out[:, 1, 1], -MEAN / STD, rtol=1e-6)


def test_icnet_upstream_resizes_the_short_side_to_the_base_size_and_labels_by_nearest():
    p = pre("icnet", "upstream")
    assert p.output_size(1024, 2048) == (1024, 2048)  # a no-op on Cityscapes
    assert p.output_size(512, 1024) == (1024, 2048)
    label = np.array([[1, 2], [3, 255]], np.uint8)
    # a 2x2 label whose short side is 2 goes to 1024x1024 by nearest: blocks of one value
    big = p.apply_geometry(label, nearest=True)
    assert big.shape == (1024, 1024) and set(np.unique(big)) == {1, 2, 3, 255}


def test_cspresnext50_guide_squashes_and_upstream_keeps_the_aspect(tmp_path):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (200, 400, 3), dtype=np.uint8)
    path = png(tmp_path, img)
    guide, upstream = pre("cspresnext50", "guide")(path), pre("cspresnext50", "upstream")(path)
    assert guide.shape == upstream.shape == (3, 224, 224)
    # guide: resize((256, 256)) then the centre 224 (offset 16); upstream: 256x512 then offsets (16, 144)
    squashed = np.asarray(Image.fromarray(img).resize((256, 256), Image.Resampling.BILINEAR))[16:240, 16:240]
    short = np.asarray(Image.fromarray(img).resize((512, 256), Image.Resampling.BILINEAR))[16:240, 144:368]
    for out, ref in ((guide, squashed), (upstream, short)):
        np.testing.assert_allclose(out, ((ref / 255 - MEAN) / STD).transpose(2, 0, 1), rtol=1e-5, atol=1e-5)
    assert not np.allclose(guide, upstream)


def test_hrnet_guide_and_upstream_agree():
    assert RECIPES["hrnet_w18"].evaluation.guide.preprocessing == RECIPES["hrnet_w18"].evaluation.upstream.preprocessing
    assert pre("hrnet_w18", "guide").output_size(375, 500) == (224, 224)


def test_unetpp_reads_bgr_normalizes_with_rgb_constants_and_divides_by_255_again(tmp_path):
    img = np.zeros((96, 96, 3), np.uint8)
    img[0, 0] = (10, 20, 30)  # R, G, B
    out = pre("unetpp", "guide")(png(tmp_path, img))
    # cv2 order puts B (30) first; albumentations' R mean/std apply to it; then /255 once more
    bgr = np.array([30, 20, 10])
    expected = (bgr - MEAN * 255) / (STD * 255) / 255
    np.testing.assert_allclose(out[:, 0, 0], expected, rtol=1e-5)
    assert np.abs(out).max() < 0.01  # the network sees values of about ±0.01
    np.testing.assert_array_equal(out, pre("unetpp", "upstream")(png(tmp_path, img)))


def test_unetpp_resizes_other_sizes_with_cv2_linear(tmp_path):
    img = np.full((192, 192, 3), 100, np.uint8)
    assert pre("unetpp", "guide")(png(tmp_path, img)).shape == (3, 96, 96)


def test_deeplabv3_mmcv_normalization_on_the_255_scale(tmp_path):
    img = np.zeros((2, 4, 3), np.uint8)
    img[0, 0] = (200, 100, 50)
    out = pre("deeplabv3", "guide")(png(tmp_path, img))
    expected = (np.array([200, 100, 50]) - np.array([123.675, 116.28, 103.53])) / np.array([58.395, 57.12, 57.375])
    np.testing.assert_allclose(out[:, 0, 0], expected, rtol=1e-5)
    assert pre("deeplabv3", "upstream").output_size(1024, 2048) == (1024, 2048)
    assert pre("deeplabv3", "upstream").output_size(600, 800) == (1024, 1365)


def test_without_geometry_only_normalizes():
    p = Preprocessor(RECIPES["cspresnext50"].evaluation.guide.preprocessing, geometry=False)
    img = np.full((64, 48, 3), 255, np.uint8)
    out = p.from_array(img)
    assert out.shape == (3, 64, 48)
    np.testing.assert_allclose(out[:, 0, 0], (1 - MEAN) / STD, rtol=1e-6)


@pytest.mark.parametrize("spec, message", [
    (Preprocessing(read="yuv"), "preprocessing read must be one of rgb, bgr"),
    (Preprocessing(resize="short"), "resize short takes 1 sizes"),
    (Preprocessing(normalize="caffe"), "normalize must be one of torch, albumentations, mmcv"),
    (Preprocessing(std=(1.0, 0.0, 1.0)), "std > 0"),
])
def test_bad_specs_are_usage_errors(spec, message):
    with pytest.raises(UsageError, match=message):
        Preprocessor(spec)


def test_every_recipe_has_both_modes_and_a_known_metric():
    from surgery.eval.metrics import SCORERS

    for recipe in RECIPES.values():
        spec = recipe.evaluation
        assert spec is not None, recipe.name
        for mode in ("guide", "upstream"):
            Preprocessor(spec.mode(mode).preprocessing)
            assert spec.mode(mode).metric in SCORERS
        assert set(spec.published) <= set(recipe.published.accuracy), recipe.name
    with pytest.raises(UsageError, match="--mode must be guide or upstream"):
        RECIPES["icnet"].evaluation.mode("best")
