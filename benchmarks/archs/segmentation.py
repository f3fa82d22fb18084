"""Dense prediction: a UNet with bilinear upsampling, LR-ASPP on MobileNetV3-Small."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .cnn import MobileNetV3Small


def _double_conv(inp: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(inp, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU(),
                         nn.Conv2d(out, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU())


class UNet(nn.Module):
    """milesial/Pytorch-UNet with bilinear=True (widths 64..512, align_corners=True upsampling), 2 classes."""

    def __init__(self, classes: int = 2):
        super().__init__()
        self.inc = _double_conv(3, 64)
        self.downs = nn.ModuleList([_double_conv(64, 128), _double_conv(128, 256), _double_conv(256, 512),
                                    _double_conv(512, 512)])
        self.ups = nn.ModuleList([_double_conv(1024, 256), _double_conv(512, 128), _double_conv(256, 64),
                                  _double_conv(128, 64)])
        self.outc = nn.Conv2d(64, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.inc(x)]
        for down in self.downs:
            skips.append(down(F.max_pool2d(skips[-1], 2)))
        y = skips.pop()
        for up in self.ups:
            skip = skips.pop()
            y = F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=True)
            y = up(torch.cat([skip, y], 1))
        return self.outc(y)


class LRASPP(nn.Module):
    """torchvision's lraspp_mobilenet_v3 head on MobileNetV3-Small (dilated last stage), 21 classes."""

    def __init__(self, classes: int = 21):
        super().__init__()
        self.backbone = MobileNetV3Small(dilate_last=True).features
        self.low_index = 3  # stride 8 features (24 channels)
        self.cbr = nn.Sequential(nn.Conv2d(576, 128, 1, bias=False), nn.BatchNorm2d(128), nn.ReLU())
        self.scale = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(576, 128, 1, bias=False), nn.Sigmoid())
        self.low_classifier = nn.Conv2d(24, classes, 1)
        self.high_classifier = nn.Conv2d(128, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        low = x
        for i, layer in enumerate(self.backbone):
            low = layer(low) if i <= self.low_index else low
            if i == self.low_index:
                break
        high = low
        for layer in list(self.backbone)[self.low_index + 1:]:
            high = layer(high)
        y = self.cbr(high) * self.scale(high)
        y = F.interpolate(y, size=low.shape[-2:], mode="bilinear", align_corners=False)
        y = self.low_classifier(low) + self.high_classifier(y)
        return F.interpolate(y, size=size, mode="bilinear", align_corners=False)


def unet_bilinear() -> nn.Module:
    return UNet().eval()


def lraspp_mobilenet_v3() -> nn.Module:
    return LRASPP().eval()
