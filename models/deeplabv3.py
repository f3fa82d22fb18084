"""DeepLabV3 r50-d8 (mmsegmentation ``deeplabv3_r50-d8_512x1024_40k_cityscapes``), Cityscapes 19 classes.

mmseg's ``EncoderDecoder``: a ``ResNetV1c`` backbone (output stride 8), an ``ASPPHead``
(image pool + rates 1, 12, 24, 36) and an ``FCNHead`` auxiliary head that inference never
runs but the checkpoint holds, kept so that the official file loads strictly. Key names are
mmseg's (``ConvModule`` → ``.conv`` / ``.bn``). Resizes are bilinear, ``align_corners=False``.

Variant ``head``:
- ``logits`` (default): the 19-channel logits at input resolution, N×19×H×W.
- ``argmax``: what mmseg's ``pytorch2onnx.py`` exports: the logits resized once more to
  the input size (an identity resize), softmax, argmax over classes as int64, then
  ``unsqueeze(0)``: shape (1, N, H, W), the batch in dimension 1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._resnet import DilatedResNet50

NUM_CLASSES = 19
ASPP_DILATIONS = (1, 12, 24, 36)


def _resize(x: torch.Tensor, size: torch.Size | tuple[int, int]) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class ConvModule(nn.Module):
    """mmcv ConvModule with a norm: conv (no bias) → BN → ReLU."""

    def __init__(self, inp: int, out: int, kernel_size: int, padding: int = 0, dilation: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(inp, out, kernel_size, padding=padding, dilation=dilation, bias=False)
        self.bn = nn.BatchNorm2d(out)
        self.activate = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activate(self.bn(self.conv(x)))


class ASPPHead(nn.Module):
    """Image pool and four atrous branches, concatenated (pool first), 3×3 bottleneck, 1×1 classifier."""

    def __init__(self, in_channels: int = 2048, channels: int = 512, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.image_pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), ConvModule(in_channels, channels, 1))
        self.aspp_modules = nn.ModuleList(
            ConvModule(in_channels, channels, 1 if d == 1 else 3, padding=0 if d == 1 else d, dilation=d)
            for d in ASPP_DILATIONS)
        self.bottleneck = ConvModule((len(ASPP_DILATIONS) + 1) * channels, channels, 3, padding=1)
        self.dropout = nn.Dropout2d(0.1)  # identity at eval; kept for mmseg's module tree
        self.conv_seg = nn.Conv2d(channels, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [_resize(self.image_pool(x), x.shape[2:])]
        outs += [branch(x) for branch in self.aspp_modules]
        return self.conv_seg(self.dropout(self.bottleneck(torch.cat(outs, dim=1))))


class FCNHead(nn.Module):
    """The auxiliary head (on layer3): 3×3 ConvModule → 1×1 classifier. Training only."""

    def __init__(self, in_channels: int = 1024, channels: int = 256, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.convs = nn.Sequential(ConvModule(in_channels, channels, 3, padding=1))
        self.dropout = nn.Dropout2d(0.1)
        self.conv_seg = nn.Conv2d(channels, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_seg(self.dropout(self.convs(x)))


class DeepLabV3(nn.Module):
    """EncoderDecoder(ResNetV1c-50-d8, ASPPHead, FCNHead) with mmseg's key names."""

    def __init__(self, head: str = "logits"):
        super().__init__()
        if head not in ("logits", "argmax"):
            raise ValueError(f"unknown head {head!r}")
        self.head_mode = head
        self.backbone = DilatedResNet50("v1c")
        self.decode_head = ASPPHead()
        self.auxiliary_head = FCNHead()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = _resize(self.decode_head(self.backbone(x)[3]), x.shape[2:])
        if self.head_mode == "logits":
            return logits
        # mmseg's whole_inference resizes to the original shape again, then softmax → argmax → unsqueeze(0)
        prob = F.softmax(_resize(logits, x.shape[2:]), dim=1)
        return prob.argmax(dim=1).unsqueeze(0)


def build(variants: dict[str, str]) -> nn.Module:
    """DeepLabV3 in eval mode; ``variants['head']`` is ``logits`` (default) or ``argmax``."""
    return DeepLabV3(head=variants.get("head", "logits")).eval()


def batch_axes(variants: dict[str, str]) -> dict[str, int]:
    """The batch dimension of each output: 1 for the argmax map (mmseg's unsqueeze(0)), else 0."""
    return {"output": 1 if variants.get("head", "logits") == "argmax" else 0}
