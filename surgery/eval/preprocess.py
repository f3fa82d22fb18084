"""Each recipe's preprocessing, interpreted from its plain-data :class:`surgery.recipe.Preprocessing`.

read (PIL RGB or cv2 BGR) → geometry (resize, center crop) → normalize (the arithmetic of
the script it copies: torchvision, albumentations or mmcv, in float32) → an extra divide
(UNet++) → CHW float32. Labels follow the same geometry with nearest-neighbour resizing,
as the upstream data loaders do.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from typing import Any

import numpy as np

from surgery.errors import UsageError
from surgery.eval import images
from surgery.recipe import Preprocessing

RESIZES = ("none", "short", "squash", "keep_ratio")
NORMALIZATIONS = ("torch", "albumentations", "mmcv")


class Preprocessor:
    """One mode's preprocessing: ``pre(path)`` or ``pre.from_array(image)`` → a C×H×W float32 array.

    Args:
        spec: the recipe mode's preprocessing.
        geometry: apply its resize and crop (False: the image is already the model's input size,
            as generated inputs for fidelity are).

    Raises:
        UsageError: a spec naming an unknown reader, resize, interpolation or normalization.
    """

    def __init__(self, spec: Preprocessing, *, geometry: bool = True):
        images.check_choice(spec.read, images.READ_ORDERS, "preprocessing read")
        images.check_choice(spec.resize, RESIZES, "preprocessing resize")
        images.check_choice(spec.interpolation, images.INTERPOLATIONS, "preprocessing interpolation")
        images.check_choice(spec.normalize, NORMALIZATIONS, "preprocessing normalize")
        needs = {"short": 1, "squash": 2, "keep_ratio": 2}.get(spec.resize, 0)
        if len(spec.size) != needs:
            raise UsageError(f"preprocessing resize {spec.resize} takes {needs} sizes, got {spec.size!r}")
        if len(spec.mean) != 3 or len(spec.std) != 3 or not all(s > 0 for s in spec.std):
            raise UsageError("preprocessing mean and std need 3 values each, std > 0")
        self.spec, self.geometry = spec, geometry
        mean, std = np.asarray(spec.mean, np.float64), np.asarray(spec.std, np.float64)
        if spec.normalize == "torch":
            self._sub, self._mul = mean.astype(np.float32), None
            self._div = std.astype(np.float32)
        elif spec.normalize == "albumentations":
            m255 = mean.astype(np.float32) * np.float32(255)
            s255 = std.astype(np.float32) * np.float32(255)
            self._sub, self._mul, self._div = m255, np.reciprocal(s255, dtype=np.float32), None
        else:  # mmcv: constants given on the 0-255 scale, kept in float64, applied to float32
            m255, s255 = np.round(mean * 255, 6), np.round(std * 255, 6)
            self._sub, self._mul, self._div = m255.astype(np.float32), (1.0 / s255).astype(np.float32), None

    def describe(self) -> dict[str, Any]:
        """The spec as a dict, for records."""
        return {**asdict(self.spec), "geometry": self.geometry}

    # -- geometry
    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """The (H, W) an image of this size comes out as."""
        s = self.spec
        h, w = height, width
        if self.geometry:
            if s.resize == "short":
                h, w = images.short_side_size(h, w, s.size[0])
            elif s.resize == "squash":
                h, w = s.size
            elif s.resize == "keep_ratio":
                h, w = images.keep_ratio_size(h, w, (s.size[0], s.size[1]))
            if s.crop:
                h, w = s.crop, s.crop
        return h, w

    def _resized_size(self, height: int, width: int) -> tuple[int, int] | None:
        s = self.spec
        if not self.geometry or s.resize == "none":
            return None
        if s.resize == "short":
            return images.short_side_size(height, width, s.size[0])
        if s.resize == "squash":
            return (s.size[0], s.size[1])
        return images.keep_ratio_size(height, width, (s.size[0], s.size[1]))

    def apply_geometry(self, image: np.ndarray, *, nearest: bool = False) -> np.ndarray:
        """Resize and crop an image (``nearest``: a label map, resized with PIL NEAREST)."""
        size = self._resized_size(*image.shape[:2])
        if size is not None and size != image.shape[:2]:
            if nearest:
                image = images.resize_pil(image, size, nearest=True)
            else:
                image = images.resize(image, size, self.spec.interpolation)
        if self.geometry and self.spec.crop:
            image = images.center_crop(image, self.spec.crop)
        return image

    # -- values
    def normalize(self, image: np.ndarray) -> np.ndarray:
        """An H×W×3 uint8 image → C×H×W float32, with this mode's arithmetic."""
        x = image.astype(np.float32)
        if self.spec.normalize == "torch":
            x /= np.float32(255)
            x -= self._sub
            x /= self._div
        else:
            x -= self._sub
            x *= self._mul
        if self.spec.divide != 1.0:
            x /= np.float32(self.spec.divide)
        return np.ascontiguousarray(x.transpose(2, 0, 1))

    def from_array(self, image: np.ndarray) -> np.ndarray:
        """Geometry then normalization of an image already read in this mode's channel order."""
        return self.normalize(self.apply_geometry(image))

    def read(self, path: str | os.PathLike) -> np.ndarray:
        """The image file in this mode's channel order, as uint8 H×W×3."""
        return images.read_image(path, self.spec.read)

    def __call__(self, path: str | os.PathLike) -> np.ndarray:
        return self.from_array(self.read(path))
