"""Helpers of the zoo tests: build a network, give it non-trivial weights, run it in torch and onnxruntime."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the zoo networks need torch (pip install torch==2.13.0)")
from torch import nn  # noqa: E402


def build(name: str, variants: dict[str, str] | None = None) -> nn.Module:
    from surgery.models import get_recipe, resolve_variants

    recipe = get_recipe(name)
    return importlib.import_module(recipe.module).build(resolve_variants(recipe, variants))


def randomize(model: nn.Module, seed: int = 1) -> nn.Module:
    """Give every BatchNorm non-trivial statistics, so outputs vary and parity means something."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return model.eval()


def run_onnx(path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def run_torch(model: nn.Module, x: np.ndarray) -> list[np.ndarray]:
    with torch.no_grad():
        out = model(torch.from_numpy(x))
    return [t.numpy() for t in (out if isinstance(out, tuple) else (out,))]
