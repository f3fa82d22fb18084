"""ICNet (liminn/ICNet-pytorch@da394fc) on a dilated ``resnet50_v1s``, Cityscapes 19 classes.

Three branches: full resolution through three stride-2 convs (``conv_sub1``), half
resolution through the backbone up to layer2, quarter resolution through the whole
backbone and a parameter-free pyramid pooling module; two cascade feature fusion units
merge them. Four outputs, full resolution first: the logits at strides 1, 4, 8 and 16.
Every resize is bilinear with ``align_corners=True``, as upstream.

Variant ``ppm``:
- ``exact``: adaptive average pooling as torch computes it, written with ops the opset-11
  exporter handles for any feature size (AveragePool where the bin divides the size,
  otherwise per-bin Slice + ReduceMean).
- ``ascend``: the Ascend ``icnet.diff`` approximation, ``avg_pool2d`` with
  kernel ``in-(out-1)*floor(in/out)`` and stride ``floor(in/out)``; equal to ``exact`` only
  where the bin divides the size (bins 1 and 2 at 1024×2048).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._resnet import DilatedResNet50

NUM_CLASSES = 19
PYRAMID_BINS = (1, 2, 3, 6)
# upstream checkpoints trained without the Ascend patch still hold the ImageNet classifier
CHECKPOINT_DROP = ("pretrained.fc.",)


def _up(x: torch.Tensor, size: tuple[int, int] | None = None, scale: float | None = None) -> torch.Tensor:
    return F.interpolate(x, size=size, scale_factor=scale, mode="bilinear", align_corners=True)


class ConvBNReLU(nn.Module):
    def __init__(self, inp: int, out: int, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(inp, out, 3, stride, 1, bias=False)
        self.bn = nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))


class CascadeFeatureFusion(nn.Module):
    """CFF: upsample the coarse input, dilated 3×3 on it, 1×1 on the fine one, add, ReLU; classify the coarse."""

    def __init__(self, low_channels: int, high_channels: int, out_channels: int, nclass: int):
        super().__init__()
        self.conv_low = nn.Sequential(nn.Conv2d(low_channels, out_channels, 3, padding=2, dilation=2, bias=False),
                                      nn.BatchNorm2d(out_channels))
        self.conv_high = nn.Sequential(nn.Conv2d(high_channels, out_channels, 1, bias=False),
                                       nn.BatchNorm2d(out_channels))
        self.conv_low_cls = nn.Conv2d(out_channels, nclass, 1, bias=False)

    def forward(self, x_low: torch.Tensor, x_high: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x_low = self.conv_low(_up(x_low, size=x_high.shape[2:]))
        fused = F.relu(x_low + self.conv_high(x_high))
        return fused, self.conv_low_cls(x_low)  # the classifier reads the pre-ReLU low branch, as upstream


class ICHead(nn.Module):
    def __init__(self, nclass: int):
        super().__init__()
        self.cff_12 = CascadeFeatureFusion(128, 64, 128, nclass)
        self.cff_24 = CascadeFeatureFusion(2048, 512, 128, nclass)
        self.conv_cls = nn.Conv2d(128, nclass, 1, bias=False)

    def forward(self, x_sub1: torch.Tensor, x_sub2: torch.Tensor,
                x_sub4: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x_cff_24, x_24_cls = self.cff_24(x_sub4, x_sub2)
        x_cff_12, x_12_cls = self.cff_12(x_cff_24, x_sub1)
        up_x2 = self.conv_cls(_up(x_cff_12, scale=2))
        up_x8 = _up(up_x2, scale=4)
        return up_x8, up_x2, x_12_cls, x_24_cls


def _adaptive_mean_exact(x: torch.Tensor, bins: int) -> torch.Tensor:
    """``adaptive_avg_pool2d(x, bins)`` in opset-11 ops, for the static spatial size of ``x``.

    Bin i of an axis of length n covers [floor(i*n/b), ceil((i+1)*n/b)); the mean over a
    rectangle is the mean over rows of the mean over columns, so the two axes pool separately.
    """
    h, w = int(x.shape[2]), int(x.shape[3])
    if h % bins == 0 and w % bins == 0:
        return F.avg_pool2d(x, (h // bins, w // bins))
    for axis, n in ((2, h), (3, w)):
        if n % bins == 0:
            kernel = (n // bins, 1) if axis == 2 else (1, n // bins)
            x = F.avg_pool2d(x, kernel)
            continue
        cells = []
        for i in range(bins):
            start, end = (i * n) // bins, -((-(i + 1) * n) // bins)
            cells.append(x.narrow(axis, start, end - start).mean(axis, keepdim=True))
        x = torch.cat(cells, axis)
    return x


def _adaptive_mean_ascend(x: torch.Tensor, bins: int) -> torch.Tensor:
    """The Ascend patch: one fixed-kernel ``avg_pool2d`` per bin (inexact where ``bins`` does not divide)."""
    h, w = int(x.shape[2]), int(x.shape[3])
    stride = (h // bins, w // bins)
    kernel = (h - (bins - 1) * stride[0], w - (bins - 1) * stride[1])
    return F.avg_pool2d(x, kernel, stride)


class PyramidPooling(nn.Module):
    """``x + Σ_b upsample(avgpool_b(x))`` over bins 1, 2, 3, 6; no parameters."""

    def __init__(self, mode: str = "exact", bins: tuple[int, ...] = PYRAMID_BINS):
        super().__init__()
        if mode not in ("exact", "ascend"):
            raise ValueError(f"unknown ppm mode {mode!r}")
        self.mode, self.bins = mode, bins

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pool = _adaptive_mean_exact if self.mode == "exact" else _adaptive_mean_ascend
        size = (int(x.shape[2]), int(x.shape[3]))
        feat = x
        for b in self.bins:
            feat = feat + _up(pool(x, b), size=size)
        return feat


class ICNet(nn.Module):
    """ICNet with upstream's module names: ``pretrained`` (backbone), ``conv_sub1``, ``head``; ``ppm`` has no keys."""

    def __init__(self, nclass: int = NUM_CLASSES, ppm: str = "exact"):
        super().__init__()
        self.pretrained = DilatedResNet50("v1s")
        self.conv_sub1 = nn.Sequential(ConvBNReLU(3, 32, 2), ConvBNReLU(32, 32, 2), ConvBNReLU(32, 64, 2))
        self.ppm = PyramidPooling(ppm)
        self.head = ICHead(nclass)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x_sub1 = self.conv_sub1(x)
        x_sub2 = self.pretrained(_up(x, scale=0.5), depth=2)[1]
        x_sub4 = self.pretrained(_up(x, scale=0.25), depth=4)[3]
        return self.head(x_sub1, x_sub2, self.ppm(x_sub4))


def build(variants: dict[str, str]) -> nn.Module:
    """ICNet in eval mode; ``variants['ppm']`` is ``exact`` (default) or ``ascend``."""
    return ICNet(ppm=variants.get("ppm", "exact")).eval()
