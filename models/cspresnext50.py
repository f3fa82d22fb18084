"""CSPResNeXt50 as timm builds it (rwightman/pytorch-image-models cspnet.py@d584e7f), ImageNet 1000 classes.

A 7×7 stem and four cross-stage-partial stages of grouped (32) ResNeXt bottlenecks. Each
stage expands with a linear 1×1 (``cross_linear``), splits the channels in two halves,
runs the blocks on the second half only, and fuses both halves with 1×1 transitions.
Every activation is LeakyReLU(0.01), timm's CspNet default. Key names are timm's
(``ConvBnAct`` → ``.conv`` / ``.bn``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

STAGE_OUT = (256, 512, 1024, 2048)
STAGE_DEPTH = (3, 3, 5, 2)
STAGE_STRIDE = (1, 2, 2, 2)
GROUPS = 32
NEGATIVE_SLOPE = 0.01


class BatchNormAct2d(nn.BatchNorm2d):
    """BatchNorm2d followed by its activation (timm keeps the activation inside the norm, as ``.act``)."""

    def __init__(self, channels: int, apply_act: bool = True):
        super().__init__(channels)
        self.act = nn.LeakyReLU(NEGATIVE_SLOPE, inplace=True) if apply_act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(super().forward(x))


class ConvBnAct(nn.Module):
    """Conv (no bias, symmetric static padding) → BN → LeakyReLU."""

    def __init__(self, inp: int, out: int, kernel_size: int, stride: int = 1, groups: int = 1,
                 apply_act: bool = True):
        super().__init__()
        padding = ((stride - 1) + (kernel_size - 1)) // 2  # timm's get_padding for dilation 1
        self.conv = nn.Conv2d(inp, out, kernel_size, stride, padding, groups=groups, bias=False)
        self.bn = BatchNormAct2d(out, apply_act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class ResBottleneck(nn.Module):
    """1×1 → grouped 3×3 → linear 1×1, plus the identity, then LeakyReLU."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.conv1 = ConvBnAct(channels, channels, 1)
        self.conv2 = ConvBnAct(channels, channels, 3, groups=groups)
        self.conv3 = ConvBnAct(channels, channels, 1, apply_act=False)
        self.act3 = nn.LeakyReLU(NEGATIVE_SLOPE, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act3(self.conv3(self.conv2(self.conv1(x))) + x)


class CrossStage(nn.Module):
    """Optional strided grouped 3×3, linear 1×1 expansion, split in halves, blocks on one, 1×1 fusion."""

    def __init__(self, inp: int, out: int, stride: int, depth: int):
        super().__init__()
        if stride != 1:
            self.conv_down = ConvBnAct(inp, inp, 3, stride, groups=GROUPS)
        else:
            self.conv_down = None  # stage 0 has no conv_down key
        self.conv_exp = ConvBnAct(inp, out, 1, apply_act=False)
        half = out // 2
        self.blocks = nn.Sequential(*[ResBottleneck(half, GROUPS) for _ in range(depth)])
        self.conv_transition_b = ConvBnAct(half, half, 1)
        self.conv_transition = ConvBnAct(out, out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.conv_down is not None:
            x = self.conv_down(x)
        x = self.conv_exp(x)
        split = x.shape[1] // 2
        xs, xb = x[:, :split], x[:, split:]
        xb = self.conv_transition_b(self.blocks(xb))
        return self.conv_transition(torch.cat([xs, xb], dim=1))


class ClassifierHead(nn.Module):
    """Global average pool (timm's SelectAdaptivePool2d 'avg', flattened) → Linear."""

    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class CspResNeXt50(nn.Module):
    """timm ``cspresnext50`` with its key names: ``stem.conv1``, ``stages.{0..3}``, ``head.fc``."""

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self.stem = nn.Sequential()
        self.stem.add_module("conv1", ConvBnAct(3, 64, 7, 2))
        self.stem.add_module("pool", nn.MaxPool2d(3, 2, 1))
        stages, inp = [], 64
        for out, depth, stride in zip(STAGE_OUT, STAGE_DEPTH, STAGE_STRIDE, strict=True):
            stages.append(CrossStage(inp, out, stride, depth))
            inp = out
        self.stages = nn.Sequential(*stages)
        self.head = ClassifierHead(inp, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)))


def build(variants: dict[str, str]) -> nn.Module:
    """CSPResNeXt50 in eval mode (no variants)."""
    return CspResNeXt50().eval()
