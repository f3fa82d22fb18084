"""Reading images as the guides' scripts do, and the resizes and crops they run.

Two readers: ``rgb`` is PIL's ``Image.open(...).convert('RGB')`` (ICNet, timm, HRNet);
``bgr`` is ``cv2.imread(path, IMREAD_COLOR)`` (UNet++, mmseg): BGR channel order, EXIF
orientation applied, alpha dropped, grey replicated, 16-bit scaled down by 256.

Two bilinear resizes, because they differ: PIL's (what torchvision runs on PIL images)
antialiases when it shrinks, OpenCV's ``INTER_LINEAR`` does not. PIL's is Pillow itself;
OpenCV's is reimplemented here (its 11-bit fixed-point weights and the rounding of its
vector row pass), since OpenCV is not a dependency; it was checked equal to opencv-python
4.5.5 and 5.0.0 on random images of many sizes, before the tests pinned hand-worked values.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from surgery.errors import UsageError, first_line
from surgery.eval.errors import DatasetError

READ_ORDERS = ("rgb", "bgr")
INTERPOLATIONS = ("pil_bilinear", "cv2_linear")
_COEF_BITS = 11  # OpenCV's INTER_RESIZE_COEF_BITS
_COEF_SCALE = 1 << _COEF_BITS


def _open(path: str | os.PathLike, what: str):
    from PIL import Image, UnidentifiedImageError

    try:
        img = Image.open(path)
        img.load()
    except FileNotFoundError:
        raise DatasetError(f"{what} not found: {path}") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise DatasetError(f"cannot read {what} {path}: {first_line(exc)}") from None
    return img


def read_image(path: str | os.PathLike, order: str = "rgb") -> np.ndarray:
    """An H×W×3 uint8 image in ``order`` (``rgb``: PIL convert('RGB'); ``bgr``: as cv2.imread).

    Raises:
        DatasetError: a missing or unreadable file (one line naming it).
    """
    check_choice(order, READ_ORDERS, "read order")
    img = _open(path, "image")
    if order == "rgb":
        return np.asarray(img.convert("RGB"))
    from PIL import ImageOps

    img = ImageOps.exif_transpose(img)  # cv2.imread applies the EXIF orientation; PIL does not
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        grey = (np.asarray(img).astype(np.int64) >> 8).clip(0, 255).astype(np.uint8)  # IMREAD_COLOR: 16 → 8 bit
        return np.repeat(grey[..., None], 3, axis=2)
    return np.ascontiguousarray(np.asarray(img.convert("RGB"))[..., ::-1])


def read_label(path: str | os.PathLike, what: str = "label") -> np.ndarray:
    """A single-channel image's values as an H×W array (labels, masks); palette images give their indices.

    Raises:
        DatasetError: missing, unreadable, or a colour image.
    """
    img = _open(path, what)
    if img.mode in ("RGB", "RGBA", "CMYK", "YCbCr", "LAB", "HSV"):
        arr = np.asarray(img.convert("RGB"))
        if not (np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 0], arr[..., 2])):
            raise DatasetError(f"{what} {path} is a colour image ({img.mode}); expected one channel of ids or values")
        return arr[..., 0]
    if img.mode == "LA":
        img = img.getchannel("L")
    return np.asarray(img)


def write_png(path: str | os.PathLike, array: np.ndarray, compress_level: int = 1) -> Path:
    """Save an H×W or H×W×3 uint8 array as PNG atomically (fast compression: these are test data)."""
    import io

    from PIL import Image

    from surgery.atomic import write_bytes_atomic

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buf, format="PNG", compress_level=compress_level)
    return write_bytes_atomic(path, buf.getvalue())


# ---------------------------------------------------------------------------
# geometry


def short_side_size(height: int, width: int, short: int) -> tuple[int, int]:
    """(H, W) after torchvision's ``Resize(short)``: the shorter side to ``short``, the other ``int(short*long/short)``.

    The Ascend ``imagenet_torch_preprocess.py`` resize computes the same.
    """
    if width <= height:
        return int(short * height / width), short
    return short, int(short * width / height)


def keep_ratio_size(height: int, width: int, scale: tuple[int, int]) -> tuple[int, int]:
    """(H, W) after mmcv's ``imrescale(img, (long, short))``: the largest size fitting both edges, rounded half up."""
    long_edge, short_edge = max(scale), min(scale)
    factor = min(long_edge / max(height, width), short_edge / min(height, width))
    return int(height * factor + 0.5), int(width * factor + 0.5)


def center_crop(image: np.ndarray, size: int) -> np.ndarray:
    """torchvision's ``CenterCrop(size)``: offsets ``int(round((H - size) / 2))`` (Python's round, half to even).

    Raises:
        ValueError: the image is smaller than the crop (torchvision would pad; no guide relies on it).
    """
    h, w = image.shape[:2]
    if h < size or w < size:
        raise ValueError(f"image {h}x{w} is smaller than the {size}x{size} crop")
    top, left = round((h - size) / 2.0), round((w - size) / 2.0)
    return image[top:top + size, left:left + size]


def resize(image: np.ndarray, size: tuple[int, int], interpolation: str = "pil_bilinear") -> np.ndarray:
    """Resize an H×W(×C) uint8 image to ``size`` = (H, W) with PIL's bilinear or OpenCV's INTER_LINEAR."""
    if interpolation == "pil_bilinear":
        return resize_pil(image, size)
    if interpolation == "cv2_linear":
        return resize_cv2_linear(image, size)
    check_choice(interpolation, INTERPOLATIONS, "interpolation")
    raise AssertionError(interpolation)


def resize_pil(image: np.ndarray, size: tuple[int, int], nearest: bool = False) -> np.ndarray:
    """PIL ``Image.resize((W, H), BILINEAR | NEAREST)``, what torchvision's Resize runs on a PIL image."""
    from PIL import Image

    h, w = size
    if image.shape[:2] == (h, w):
        return image
    resample = Image.Resampling.NEAREST if nearest else Image.Resampling.BILINEAR
    return np.asarray(Image.fromarray(np.ascontiguousarray(image)).resize((w, h), resample))


def _cv2_taps(src: int, dst: int, clamp_weights: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per output index: the two source indices and their 11-bit weights, as cv::resize computes them.

    Along x OpenCV moves an out-of-range tap onto the edge pixel with all the weight; along y
    it keeps the weights and only clips the row indices (the rounding differs, so both are kept).
    """
    d = np.arange(dst, dtype=np.float64)
    f = ((d + 0.5) * (src / dst) - 0.5).astype(np.float32)  # computed in double, stored as float
    s = np.floor(f).astype(np.int64)
    f = (f - s.astype(np.float32)).astype(np.float32)
    if clamp_weights:
        low = s < 0
        f[low], s[low] = 0, 0
        high = s >= src - 1
        f[high], s[high] = 0, src - 1
    w1 = np.rint(f * np.float32(_COEF_SCALE)).astype(np.int64)  # saturate_cast<short>: round half to even
    w0 = np.rint((np.float32(1) - f) * np.float32(_COEF_SCALE)).astype(np.int64)
    return s.clip(0, src - 1), (s + 1).clip(0, src - 1), w0, w1


def resize_cv2_linear(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``cv2.resize(image, (W, H), interpolation=cv2.INTER_LINEAR)`` on uint8, reproduced in numpy.

    Half-pixel centres, no antialiasing, edges clamped; 11-bit weights, an exact horizontal
    pass, and the vertical pass rounded as OpenCV's vector path does. An exact 2x shrink is a
    2x2 box average (OpenCV switches to INTER_AREA there); the same size is a copy.
    """
    if image.dtype != np.uint8:
        raise ValueError(f"cv2_linear resize expects uint8, got {image.dtype}")
    h, w = size
    sh, sw = image.shape[:2]
    if (sh, sw) == (h, w):
        return image.copy()
    squeeze = image.ndim == 2
    src = image[..., None] if squeeze else image
    if sh == 2 * h and sw == 2 * w:
        acc = src.astype(np.int32)
        out = (acc[0::2, 0::2] + acc[0::2, 1::2] + acc[1::2, 0::2] + acc[1::2, 1::2] + 2) >> 2
        out = out.astype(np.uint8)
        return out[..., 0] if squeeze else out
    xs0, xs1, xa0, xa1 = _cv2_taps(sw, w, clamp_weights=True)
    ys0, ys1, yb0, yb1 = _cv2_taps(sh, h, clamp_weights=False)
    rows = src.astype(np.int64)
    horizontal = rows[:, xs0] * xa0[None, :, None] + rows[:, xs1] * xa1[None, :, None]  # (sh, w, C), exact ints
    channels = src.shape[2]
    width = w * channels
    top = horizontal[ys0].reshape(h, width)
    bottom = horizontal[ys1].reshape(h, width)
    b0, b1 = yb0[:, None], yb1[:, None]
    # the vertical pass as OpenCV's vector code rounds it: ((S0>>4)*b0 >> 16) + ((S1>>4)*b1 >> 16), then (+2) >> 2
    out = ((((top >> 4) * b0) >> 16) + (((bottom >> 4) * b1) >> 16) + 2) >> 2
    out = out.clip(0, 255).astype(np.uint8).reshape(h, w, channels)
    return out[..., 0] if squeeze else out


def check_choice(value: str, choices: tuple[str, ...], what: str) -> str:
    """``value`` if it is one of ``choices``, else a one-line UsageError naming ``what``."""
    if value not in choices:
        raise UsageError(f"{what} must be one of {', '.join(choices)}, got {value!r}")
    return value
