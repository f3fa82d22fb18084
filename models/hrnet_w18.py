"""HRNet-W18-C (HRNet/HRNet-Image-Classification ``cls_hrnet.py``, config w18), ImageNet 1000 classes.

Four stages keep parallel branches at strides 4, 8, 16 and 32 (18/36/72/144 channels) and
exchange information after every module (sum fusion: nearest upsampling from coarser
branches, strided 3×3 convs from finer ones). The classification head widens each branch
with a Bottleneck, folds them from fine to coarse with strided convs, and ends with a
1×1 to 2048, a global mean and a 1000-way Linear.

Index positions of absent modules are kept as ``None`` entries, as upstream does, so the
keys match (``transition2.2.0.0.weight`` exists, ``transition2.0`` does not). The global
pool is ``mean((2, 3))`` (upstream switches between that and ``avg_pool2d`` when tracing).
"""

from __future__ import annotations

import torch
from torch import nn

from ._resnet import Bottleneck as ResNetBottleneck

BN_MOMENTUM = 0.1
STAGE1_BLOCKS, STAGE1_CHANNELS = 4, 64
# (modules, blocks per branch, channels per branch) for stages 2..4
STAGES = ((1, (4, 4), (18, 36)),
          (4, (4, 4, 4), (18, 36, 72)),
          (3, (4, 4, 4, 4), (18, 36, 72, 144)))
HEAD_CHANNELS = (32, 64, 128, 256)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, momentum=BN_MOMENTUM)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = _bn(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = _bn(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class Bottleneck(ResNetBottleneck):
    """The ResNet bottleneck (same keys; torch's default BN momentum is HRNet's 0.1)."""

    expansion = 4


def _make_layer(block: type[BasicBlock | Bottleneck], inplanes: int, planes: int, blocks: int) -> nn.Sequential:
    downsample = None
    if inplanes != planes * block.expansion:
        downsample = nn.Sequential(nn.Conv2d(inplanes, planes * block.expansion, 1, bias=False),
                                   _bn(planes * block.expansion))
    layers = [block(inplanes, planes, downsample=downsample)]
    layers += [block(planes * block.expansion, planes) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


def _conv_bn(inp: int, out: int, relu: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(inp, out, 3, 2, 1, bias=False), _bn(out)]
    if relu:
        layers.append(nn.ReLU(inplace=False))
    return nn.Sequential(*layers)


class HighResolutionModule(nn.Module):
    """Parallel branches of BasicBlocks, then every output branch sums all inputs brought to its resolution."""

    def __init__(self, num_blocks: tuple[int, ...], channels: tuple[int, ...]):
        super().__init__()
        n = len(channels)
        self.branches = nn.ModuleList(_make_layer(BasicBlock, c, c, b) for b, c in zip(num_blocks, channels,
                                                                                         strict=True))
        fuse_layers = []
        for i in range(n):
            row: list[nn.Module | None] = []
            for j in range(n):
                if j > i:  # coarser → finer: 1×1 to C_i, BN, nearest upsample
                    row.append(nn.Sequential(nn.Conv2d(channels[j], channels[i], 1, 1, 0, bias=False),
                                             _bn(channels[i]),
                                             nn.Upsample(scale_factor=2 ** (j - i), mode="nearest")))
                elif j == i:
                    row.append(None)
                else:  # finer → coarser: (i-j) strided 3×3 convs, ReLU between them, the last one maps to C_i
                    steps = [_conv_bn(channels[j], channels[j], relu=True) for _ in range(i - j - 1)]
                    steps.append(_conv_bn(channels[j], channels[i], relu=False))
                    row.append(nn.Sequential(*steps))
            fuse_layers.append(nn.ModuleList(row))
        self.fuse_layers = nn.ModuleList(fuse_layers)
        self.relu = nn.ReLU(inplace=False)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs, strict=True)]
        fused = []
        for i, row in enumerate(self.fuse_layers):
            y = xs[0] if i == 0 else row[0](xs[0])
            for j in range(1, len(xs)):
                y = y + (xs[j] if i == j else row[j](xs[j]))
            fused.append(self.relu(y))
        return fused


class _Stage(nn.Sequential):
    """HighResolutionModules in sequence, passing the list of branch tensors along."""

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:  # type: ignore[override]
        for module in self:
            xs = module(xs)
        return xs


def _make_transition(pre: tuple[int, ...], cur: tuple[int, ...]) -> nn.ModuleList:
    layers: list[nn.Module | None] = []
    for i, c in enumerate(cur):
        if i < len(pre):
            layers.append(None if c == pre[i] else nn.Sequential(
                nn.Conv2d(pre[i], c, 3, 1, 1, bias=False), _bn(c), nn.ReLU(inplace=True)))
        else:  # a new, coarser branch from the coarsest existing one; nested Sequential as upstream
            steps = []
            for k in range(i + 1 - len(pre)):
                out = c if k == i - len(pre) else pre[-1]
                steps.append(nn.Sequential(nn.Conv2d(pre[-1], out, 3, 2, 1, bias=False), _bn(out),
                                           nn.ReLU(inplace=True)))
            layers.append(nn.Sequential(*steps))
    return nn.ModuleList(layers)


class HighResolutionNet(nn.Module):
    """cls_hrnet ``HighResolutionNet`` for the w18 config, with upstream's key names."""

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, 2, 1, bias=False)
        self.bn1 = _bn(64)
        self.conv2 = nn.Conv2d(64, 64, 3, 2, 1, bias=False)
        self.bn2 = _bn(64)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = _make_layer(Bottleneck, 64, STAGE1_CHANNELS, STAGE1_BLOCKS)
        pre: tuple[int, ...] = (STAGE1_CHANNELS * Bottleneck.expansion,)
        for k, (modules, blocks, channels) in enumerate(STAGES, start=1):
            setattr(self, f"transition{k}", _make_transition(pre, channels))
            setattr(self, f"stage{k + 1}", _Stage(*[HighResolutionModule(blocks, channels) for _ in range(modules)]))
            pre = channels
        self.incre_modules = nn.ModuleList(_make_layer(Bottleneck, c, h, 1)
                                           for c, h in zip(pre, HEAD_CHANNELS, strict=True))
        self.downsamp_modules = nn.ModuleList(
            nn.Sequential(nn.Conv2d(HEAD_CHANNELS[i] * 4, HEAD_CHANNELS[i + 1] * 4, 3, 2, 1),
                          _bn(HEAD_CHANNELS[i + 1] * 4), nn.ReLU(inplace=True))
            for i in range(len(HEAD_CHANNELS) - 1))
        self.final_layer = nn.Sequential(nn.Conv2d(HEAD_CHANNELS[-1] * 4, 2048, 1, 1, 0), _bn(2048),
                                         nn.ReLU(inplace=True))
        self.classifier = nn.Linear(2048, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        ys = [self.layer1(x)]
        for k in range(1, len(STAGES) + 1):
            transition, stage = getattr(self, f"transition{k}"), getattr(self, f"stage{k + 1}")
            # a new branch grows from the coarsest previous output (upstream's y_list[-1])
            xs = [ys[i] if t is None else t(ys[i] if i < len(ys) else ys[-1]) for i, t in enumerate(transition)]
            ys = stage(xs)
        y = self.incre_modules[0](ys[0])
        for i, down in enumerate(self.downsamp_modules):
            y = self.incre_modules[i + 1](ys[i + 1]) + down(y)
        y = self.final_layer(y)
        return self.classifier(y.mean((2, 3)))


def build(variants: dict[str, str]) -> nn.Module:
    """HRNet-W18-C in eval mode (no variants)."""
    return HighResolutionNet().eval()
