"""Real architectures in plain torch (no torchvision) that the tests never saw, for verify_architectures.py.

Each entry builds a network in eval mode, at its usual widths and depths (a few are trimmed
in depth, named "-ish"), and gives the input it is exported at. Small inputs keep the whole
sweep in minutes on two cores; the graphs have the same ops and structure as at full size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import cnn, recurrent, segmentation, transformers


@dataclass(frozen=True)
class Arch:
    """A network to export: how to build it, its input shape, and whether it is TorchScript-scripted."""

    name: str
    build: Callable[[], Any]
    input_shape: tuple[int, ...]
    scripted: bool = False
    input_dtype: str = "float32"


ARCHS: dict[str, Arch] = {a.name: a for a in (
    Arch("resnet18", cnn.resnet18, (1, 3, 64, 64)),
    Arch("mobilenet_v2", cnn.mobilenet_v2, (1, 3, 64, 64)),
    Arch("mobilenet_v3_small", cnn.mobilenet_v3_small, (1, 3, 64, 64)),
    Arch("efficientnet_b0", cnn.efficientnet_b0, (1, 3, 64, 64)),
    Arch("convnext_ish", cnn.convnext_ish, (1, 3, 64, 64)),
    Arch("vit_tiny", transformers.vit_tiny, (1, 3, 32, 32)),
    Arch("mobilevit_ish", transformers.mobilevit_ish, (1, 3, 64, 64)),
    Arch("swin_ish", transformers.swin_ish, (1, 3, 64, 64)),
    Arch("unet_bilinear", segmentation.unet_bilinear, (1, 3, 64, 64)),
    Arch("lraspp_mobilenet_v3", segmentation.lraspp_mobilenet_v3, (1, 3, 64, 64)),
    Arch("lstm_classifier", recurrent.lstm_classifier, (1, 12, 16)),
    Arch("gru_bidirectional", recurrent.gru_bidirectional, (1, 12, 16)),
    Arch("scripted_loop_if", recurrent.scripted_loop_if, (1, 4, 8), scripted=True),
)}
