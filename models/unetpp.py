"""UNet++ / NestedUNet (4uiiurz1/pytorch-nested-unet@557ea02), 3 input channels, 1 class, no deep supervision.

A grid of VGG blocks ``conv{i}_{j}``: row i works at stride 2**i; node (i, j) reads every
earlier node of its row plus the upsampled node (i+1, j-1), concatenated in that order
(the order fixes the weight layout). The output is the 1-channel logits of ``final``.

Variant ``upsample``: ``bilinear`` (upstream, ``align_corners=True``, what the checkpoint
was trained with) or ``nearest`` (the Ascend ``nested_unet.diff``; the recipe gets the same
graph from the bilinear export with the ``resize_nearest`` pass).
"""

from __future__ import annotations

import torch
from torch import nn

NB_FILTER = (32, 64, 128, 256, 512)
DEPTH = len(NB_FILTER)


class VGGBlock(nn.Module):
    """(3×3 conv with bias → BN → ReLU) twice."""

    def __init__(self, in_channels: int, middle_channels: int, out_channels: int):
        super().__init__()
        self.relu = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_channels, middle_channels, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(middle_channels)
        self.conv2 = nn.Conv2d(middle_channels, out_channels, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(x)))


class NestedUNet(nn.Module):
    """NestedUNet(num_classes=1, input_channels=3, deep_supervision=False) with upstream key names."""

    def __init__(self, num_classes: int = 1, input_channels: int = 3, upsample: str = "bilinear"):
        super().__init__()
        if upsample not in ("bilinear", "nearest"):
            raise ValueError(f"unknown upsample mode {upsample!r}")
        self.pool = nn.MaxPool2d(2, 2)
        self.up = (nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True) if upsample == "bilinear"
                   else nn.Upsample(scale_factor=2, mode="nearest"))
        f = NB_FILTER
        for j in range(DEPTH):
            for i in range(DEPTH - j):
                # node (i, j) concatenates j nodes of width f[i] and one upsampled node of width f[i+1]
                inp = input_channels if (i, j) == (0, 0) else (f[i - 1] if j == 0 else f[i] * j + f[i + 1])
                self.add_module(f"conv{i}_{j}", VGGBlock(inp, f[i], f[i]))
        self.final = nn.Conv2d(f[0], num_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes: dict[tuple[int, int], torch.Tensor] = {}
        # upstream's order: column 0 of row i, then the diagonal that it completes
        for i in range(DEPTH):
            nodes[i, 0] = getattr(self, f"conv{i}_0")(x if i == 0 else self.pool(nodes[i - 1, 0]))
            for j in range(1, i + 1):
                row = i - j
                inputs = [nodes[row, k] for k in range(j)] + [self.up(nodes[row + 1, j - 1])]
                nodes[row, j] = getattr(self, f"conv{row}_{j}")(torch.cat(inputs, 1))
        return self.final(nodes[0, DEPTH - 1])


def build(variants: dict[str, str]) -> nn.Module:
    """NestedUNet in eval mode; ``variants['upsample']`` is ``bilinear`` (default) or ``nearest``."""
    return NestedUNet(upsample=variants.get("upsample", "bilinear")).eval()
