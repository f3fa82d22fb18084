"""Reads and resizes as the guides' scripts run them, checked on values worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from surgery.errors import UsageError
from surgery.eval import images
from surgery.eval.errors import DatasetError


def row(values: list[int]) -> np.ndarray:
    return np.array([values], np.uint8)


# ---------------------------------------------------------------------------
# OpenCV INTER_LINEAR (half-pixel, no antialiasing, fixed point rounding half up)


def test_cv2_halving_a_row_averages_neighbours_and_rounds_half_up():
    # 1x4 -> 1x2: x = (dx + 0.5) * 2 - 0.5 = 0.5, 2.5: the mean of pixels (0, 1) and (2, 3)
    assert images.resize_cv2_linear(row([0, 100, 200, 50]), (1, 2)).tolist() == [[50, 125]]
    # 0.5 and 1.5 round up, as OpenCV's fixed-point rounding does
    assert images.resize_cv2_linear(row([0, 1, 1, 2]), (1, 2)).tolist() == [[1, 2]]


def test_cv2_upscaling_clamps_at_the_edges():
    # 1x2 -> 1x4: x = -0.25, 0.25, 0.75, 1.25 -> edge, 3/4·a + 1/4·b, 1/4·a + 3/4·b, edge
    assert images.resize_cv2_linear(row([0, 200]), (1, 4)).tolist() == [[0, 50, 150, 200]]


def test_cv2_weights_thirds():
    # 1x4 -> 1x3: x = 1/6, 1.5, 17/6; 11-bit weights 1707/341, 1024/1024, 341/1707
    out = images.resize_cv2_linear(row([0, 60, 120, 240]), (1, 3))
    expected = [round((1707 * 0 + 341 * 60) / 2048), round((60 + 120) / 2), round((341 * 120 + 1707 * 240) / 2048)]
    assert out.tolist() == [expected] == [[10, 90, 220]]


def test_cv2_exact_half_is_a_box_average_and_same_size_a_copy():
    img = np.array([[0, 2, 10, 10], [1, 1, 10, 11]], np.uint8)
    # OpenCV switches to INTER_AREA for an exact 2x shrink: (0+2+1+1+2)>>2 = 1, (10+10+10+11+2)>>2 = 10
    assert images.resize_cv2_linear(img, (1, 2)).tolist() == [[1, 10]]
    same = images.resize_cv2_linear(img, (2, 4))
    assert np.array_equal(same, img) and same is not img


def test_cv2_matches_float_bilinear_within_one_level_on_random_images():
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (13, 17, 3), dtype=np.uint8)
    out = images.resize_cv2_linear(img, (29, 11)).astype(float)
    # an independent float bilinear with half-pixel centres and clamped taps
    def taps(n_in, n_out):
        x = (np.arange(n_out) + 0.5) * n_in / n_out - 0.5
        x0 = np.floor(x).astype(int)
        f = x - x0
        return np.clip(x0, 0, n_in - 1), np.clip(x0 + 1, 0, n_in - 1), f
    y0, y1, fy = taps(13, 29)
    x0, x1, fx = taps(17, 11)
    fx = np.where((np.arange(11) + 0.5) * 17 / 11 - 0.5 < 0, 0, fx)[None, :, None]
    a = img.astype(float)
    top = a[y0][:, x0] * (1 - fx) + a[y0][:, x1] * fx
    bottom = a[y1][:, x0] * (1 - fx) + a[y1][:, x1] * fx
    ref = top * (1 - fy[:, None, None]) + bottom * fy[:, None, None]
    assert np.abs(out - ref).max() <= 1.0


# ---------------------------------------------------------------------------
# PIL bilinear (what torchvision's Resize runs): antialiased when shrinking


def test_pil_halving_a_row_is_antialiased():
    # support 2 around centres 1.0 and 3.0; taps clipped at the edges and renormalised:
    # out0 = (0·.75 + 70·.75 + 140·.25) / 1.75 = 50; out1 = (70·.25 + 140·.75 + 210·.75) / 1.75 = 160
    assert images.resize_pil(row([0, 70, 140, 210]), (1, 2)).tolist() == [[50, 160]]
    # where OpenCV takes the plain neighbour means
    assert images.resize(row([0, 70, 140, 210]), (1, 2), "cv2_linear").tolist() == [[35, 175]]


def test_pil_nearest_for_labels():
    label = np.array([[1, 2], [3, 4]], np.uint8)
    assert images.resize_pil(label, (4, 4), nearest=True).tolist() == [
        [1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]]


def test_unknown_interpolation_is_a_usage_error():
    with pytest.raises(UsageError, match="interpolation must be one of pil_bilinear, cv2_linear"):
        images.resize(row([1, 2]), (1, 1), "lanczos")


# ---------------------------------------------------------------------------
# geometry


def test_short_side_sizes_as_torchvision():
    assert images.short_side_size(300, 500, 256) == (256, 426)  # int(256 * 500 / 300) = int(426.67)
    assert images.short_side_size(500, 300, 256) == (426, 256)
    assert images.short_side_size(256, 256, 256) == (256, 256)


def test_keep_ratio_sizes_as_mmcv_imrescale():
    assert images.keep_ratio_size(1024, 2048, (2048, 1024)) == (1024, 2048)
    assert images.keep_ratio_size(512, 1024, (2048, 1024)) == (1024, 2048)
    # min(2048/800, 1024/600) = 1.70667: 600 -> 1024, 800 -> int(1365.33 + .5) = 1365
    assert images.keep_ratio_size(600, 800, (2048, 1024)) == (1024, 1365)


def test_center_crop_uses_pythons_round_half_to_even():
    img = np.arange(5 * 8).reshape(5, 8)
    crop = images.center_crop(img, 2)
    # (5-2)/2 = 1.5 -> 2 and (8-2)/2 = 3 -> 3; int() truncation would give row 1
    assert crop.tolist() == [[19, 20], [27, 28]]
    img = np.arange(7 * 7).reshape(7, 7)
    assert images.center_crop(img, 2)[0, 0] == img[2, 2]  # 2.5 -> 2 (half to even)
    with pytest.raises(ValueError, match="smaller than the 9x9 crop"):
        images.center_crop(img, 9)


# ---------------------------------------------------------------------------
# readers


def save(path, array, mode=None, **kw):
    Image.fromarray(array, mode=mode).save(path, **kw) if mode else Image.fromarray(array).save(path, **kw)
    return path


def test_rgb_and_bgr_reads(tmp_path):
    rgb = np.array([[[10, 20, 30], [40, 50, 60]]], np.uint8)
    path = save(tmp_path / "c.png", rgb)
    assert images.read_image(path, "rgb").tolist() == rgb.tolist()
    assert images.read_image(path, "bgr").tolist() == [[[30, 20, 10], [60, 50, 40]]]


def test_bgr_read_replicates_grey_drops_alpha_and_scales_16_bit(tmp_path):
    grey = save(tmp_path / "g.png", np.array([[7, 200]], np.uint8))
    assert images.read_image(grey, "bgr").tolist() == [[[7, 7, 7], [200, 200, 200]]]
    rgba = save(tmp_path / "a.png", np.array([[[1, 2, 3, 0]]], np.uint8))
    assert images.read_image(rgba, "bgr").tolist() == [[[3, 2, 1]]]
    deep = save(tmp_path / "d.png", np.array([[65535, 256, 255]], np.uint16))
    assert images.read_image(deep, "bgr")[..., 0].tolist() == [[255, 1, 0]]  # cv2: value >> 8


def test_bgr_read_applies_exif_orientation_as_cv2_does(tmp_path):
    img = Image.fromarray(np.array([[[255, 0, 0], [0, 0, 255]]], np.uint8))  # 1x2: red, blue
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    path = tmp_path / "o.jpg"
    img.save(path, exif=exif, quality=100)
    assert images.read_image(path, "rgb").shape == (1, 2, 3)  # PIL ignores the tag
    assert images.read_image(path, "bgr").shape == (2, 1, 3)  # cv2.imread applies it


def test_unreadable_and_missing_images_name_the_file(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(DatasetError, match=r"cannot read image .*broken\.png"):
        images.read_image(bad)
    with pytest.raises(DatasetError, match=r"image not found: .*nope\.png"):
        images.read_image(tmp_path / "nope.png")


def test_label_reader_refuses_colour_images(tmp_path):
    colour = save(tmp_path / "l.png", np.array([[[1, 2, 3]]], np.uint8))
    with pytest.raises(DatasetError, match=r"l\.png is a colour image"):
        images.read_label(colour)
    grey3 = save(tmp_path / "g.png", np.array([[[5, 5, 5]]], np.uint8))
    assert images.read_label(grey3).tolist() == [[5]]
