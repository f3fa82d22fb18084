"""The dilated ResNet-50 shared by ICNet (gluon-style ``resnet50_v1s``) and mmseg DeepLabV3 (``ResNetV1c``).

Both are Bottleneck ResNets with a three-conv deep stem, the stride on the 3×3 conv, and
output stride 8 (layer3 and layer4 dilated instead of strided; the first block of a dilated
layer uses half the dilation). Only the stem differs, in names and widths:

- ``v1s`` (ICNet): ``conv1.{0,1,3,4,6}`` 64/64/128 wide, then ``bn1`` and ``relu``.
- ``v1c`` (mmseg): ``stem.{0,1,3,4,6,7}`` 32/32/64 wide, each conv followed by BN and ReLU.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

LAYER_DEPTHS = (3, 4, 6, 3)  # ResNet-50
EXPANSION = 4


def _conv3x3(inp: int, out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(inp, out, 3, stride, 1, bias=False)


class Bottleneck(nn.Module):
    """1×1 → 3×3 (stride, dilation) → 1×1, plus the identity or a 1×1 projection."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1, dilation: int = 1,
                 downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * EXPANSION, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * EXPANSION)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


def _make_layer(inplanes: int, planes: int, blocks: int, stride: int, dilation: int) -> nn.Sequential:
    downsample = None
    if stride != 1 or inplanes != planes * EXPANSION:
        downsample = nn.Sequential(nn.Conv2d(inplanes, planes * EXPANSION, 1, stride, bias=False),
                                   nn.BatchNorm2d(planes * EXPANSION))
    # contract_dilation (mmseg) / the gluon v1b rule: the first block of a dilated layer uses half the rate
    first = dilation // 2 if dilation > 1 else 1
    layers = [Bottleneck(inplanes, planes, stride, first, downsample)]
    layers += [Bottleneck(planes * EXPANSION, planes, 1, dilation) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


class DilatedResNet50(nn.Module):
    """ResNet-50 with a deep stem and output stride 8 (layer strides 1,2,1,1; dilations 1,1,2,4).

    Args:
        stem: ``"v1s"`` for ICNet's backbone names and widths, ``"v1c"`` for mmseg's.
    """

    def __init__(self, stem: Literal["v1s", "v1c"]):
        super().__init__()
        self.stem_kind = stem
        if stem == "v1s":
            self.conv1 = nn.Sequential(
                _conv3x3(3, 64, 2), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
                _conv3x3(64, 64), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
                _conv3x3(64, 128))
            self.bn1 = nn.BatchNorm2d(128)
            self.relu = nn.ReLU(inplace=True)
            inplanes = 128
        elif stem == "v1c":
            self.stem = nn.Sequential(
                _conv3x3(3, 32, 2), nn.BatchNorm2d(32), nn.ReLU(inplace=True),
                _conv3x3(32, 32), nn.BatchNorm2d(32), nn.ReLU(inplace=True),
                _conv3x3(32, 64), nn.BatchNorm2d(64), nn.ReLU(inplace=True))
            inplanes = 64
        else:
            raise ValueError(f"unknown ResNet stem {stem!r}")
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = _make_layer(inplanes, 64, LAYER_DEPTHS[0], 1, 1)
        self.layer2 = _make_layer(256, 128, LAYER_DEPTHS[1], 2, 1)
        self.layer3 = _make_layer(512, 256, LAYER_DEPTHS[2], 1, 2)
        self.layer4 = _make_layer(1024, 512, LAYER_DEPTHS[3], 1, 4)

    def forward(self, x: torch.Tensor, depth: int = 4) -> list[torch.Tensor]:
        """The outputs of layer1..layer``depth`` (strides 4, 8, 8, 8).

        ``depth`` stops early where a caller needs only shallow features: ICNet's 1/2 branch
        uses layer2 alone (upstream computes layer3/4 there too and discards them).
        """
        x = self.relu(self.bn1(self.conv1(x))) if self.stem_kind == "v1s" else self.stem(x)
        x = self.maxpool(x)
        feats = []
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4)[:depth]:
            x = layer(x)
            feats.append(x)
        return feats
