"""Calibrate seeded zoo weights so the network's activations keep unit scale, as a trained one's do.

Seeded (untrained) weights with BatchNorm at its initial statistics (mean 0, variance 1)
shrink activations layer after layer: the seeded UNet++ gives an output of std 0.003, the
same value at every pixel, and ``cos 1.000000`` after an inexact rewrite then proves
nothing. Two data-dependent steps, on a few generated images, fix that:

1. BatchNorm statistics: every BatchNorm runs in train mode over the images (cumulative
   average, ``momentum=None``), so its running mean and variance are those of its inputs
   and each normalises to unit scale at inference, through the whole depth;
2. layers no BatchNorm follows (the classifier heads): each output channel is
   standardised on the images (Salimans & Kingma's data-dependent init), so logits vary
   across pixels and classes the way a trained network's do (argmax maps with several
   classes) instead of one class winning everywhere on its bias.

The images are verification's ``image`` samples (blocks of colour plus grain,
ImageNet-normalised), seeded like the weights: the same export gives the same bytes. Accuracy
figures still mean nothing; the notice says so.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Mapping
from typing import Any

CALIBRATION_VERSION = 2  # part of the zoo cache key: bump when the calibrated weights change (1: a draft)
IMAGES = 4
MAX_PIXELS = 256 * 512  # calibrate at most at this size (aspect kept, multiples of 32): BN statistics barely move


def calibration_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """The trace shape with the batch set to :data:`IMAGES` and large pictures scaled down."""
    if len(shape) != 4:
        return (IMAGES, *shape[1:])
    _, c, h, w = shape
    if h * w > MAX_PIXELS:
        scale = math.sqrt(MAX_PIXELS / (h * w))
        h, w = max(32, round(h * scale / 32) * 32), max(32, round(w * scale / 32) * 32)
    return (IMAGES, c, h, w)


def calibration_images(shape: tuple[int, ...], seed: int) -> Any:
    """``shape[0]`` generated pictures as a torch tensor: verification's ``image`` samples, one per seed.

    The same generator as :func:`surgery.parity.random_feed` (blocks of colour plus grain,
    ImageNet-normalised), so the heads are centred on the pictures verification feeds.
    """
    import numpy as np
    import torch

    from surgery.parity import random_feed
    from surgery.shapes import InputSpec

    one = (1, *shape[1:])
    spec = [InputSpec("x", one)]
    rows = [random_feed(spec, {"x": one}, seed * 1000 + k, "image")["x"] for k in range(shape[0])]
    return torch.from_numpy(np.concatenate(rows).astype(np.float32))


def _unnormalised_layers(model: Any, args: tuple) -> list[Any]:
    """Conv and Linear layers whose output no BatchNorm takes, in the order they run (one eval pass)."""
    import torch
    from torch import nn

    order: list[Any] = []
    outputs: dict[int, tuple[Any, Any]] = {}  # id(output) -> (layer, weakref to the output)
    followed: set[int] = set()
    hooks = []

    def on_layer(module: Any, _inputs: Any, output: Any) -> None:
        if isinstance(output, torch.Tensor):
            order.append(module)
            outputs[id(output)] = (module, weakref.ref(output))

    def on_norm(_module: Any, inputs: Any) -> None:
        x = inputs[0]
        entry = outputs.get(id(x))
        if entry is not None and entry[1]() is x:  # the very tensor a layer produced, not a reused id
            followed.add(id(entry[0]))

    for m in model.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
            hooks.append(m.register_forward_hook(on_layer))
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            hooks.append(m.register_forward_pre_hook(on_norm))
    try:
        with torch.no_grad():
            model(*args)
    finally:
        for h in hooks:
            h.remove()
    seen: set[int] = set()
    layers = []
    for m in order:
        if id(m) not in followed and id(m) not in seen:
            seen.add(id(m))
            layers.append(m)
    return layers


def _standardise(module: Any, output: Any) -> Any:
    """Rescale a layer's weights (and shift its bias) so this output has mean 0, std 1 per channel; the new output.

    The channel axis is 1 for a conv and the last for a Linear (over tokens too); with fewer than 16 values
    per channel (a classifier's few images) one scale and shift serve every channel.
    """
    import torch
    from torch import nn

    with torch.no_grad():
        axis = output.dim() - 1 if isinstance(module, nn.Linear) else 1
        channels = output.shape[axis]
        view = [1] * output.dim()
        view[axis] = -1
        if output.numel() // max(1, channels) >= 16:
            dims = [d for d in range(output.dim()) if d != axis]
            mean, std = output.mean(dim=dims), output.std(dim=dims)
        else:
            mean, std = output.mean().expand(channels), output.std().expand(channels)
        std = torch.where(std > 1e-8, std, torch.ones_like(std))
        weight = module.weight
        weight.div_(std.view(-1, *([1] * (weight.dim() - 1))))
        if module.bias is not None:
            module.bias.sub_(mean).div_(std)
            return (output - mean.view(view)) / std.view(view)
        return output / std.view(view)


def calibrate(model: Any, shapes: Mapping[str, tuple[int, ...]], seed: int = 0) -> str:
    """Set BatchNorm statistics and standardise the heads of a seeded network, in place; what was done, in words.

    Args:
        model: the torch network (left in eval mode).
        shapes: its inputs' trace shapes, in order (the batch is replaced by :data:`IMAGES`).
        seed: the images' seed (the weights' seed: one export, one set of bytes).
    """
    import torch
    from torch import nn

    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    args = tuple(calibration_images(calibration_shape(tuple(s)), seed + k) for k, s in enumerate(shapes.values()))
    model.eval()
    try:
        heads = _unnormalised_layers(model, args)
    except RuntimeError:  # a network that needs its trace size (fixed pooling kernels): calibrate there
        args = tuple(calibration_images((IMAGES, *tuple(s)[1:]), seed + k) for k, s in enumerate(shapes.values()))
        heads = _unnormalised_layers(model, args)
    saved = [(m, m.momentum) for m in norms]
    pending = {id(m) for m in heads}

    def on_head(module: Any, _inputs: Any, output: Any) -> Any:
        if id(module) in pending and isinstance(output, torch.Tensor):
            pending.discard(id(module))
            return _standardise(module, output)
        return None

    hooks = [m.register_forward_hook(on_head) for m in heads]
    try:
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # a cumulative average: the statistics of exactly these images
            m.train()
        with torch.no_grad():
            model(*args)
    finally:
        for h in hooks:
            h.remove()
        for m, momentum in saved:
            m.momentum = momentum
        model.eval()
    size = "x".join(map(str, args[0].shape[1:])) if args else "?"
    return (f"calibrated on {IMAGES} generated {size} images (BatchNorm statistics set in train mode, "
            f"{len(heads)} un-normalised layer{'s' if len(heads) != 1 else ''} standardised) so outputs vary like "
            "a trained network's")
