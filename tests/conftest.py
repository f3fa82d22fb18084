"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from graph_builders import two_heads


@pytest.fixture
def model_path(tmp_path: Path) -> Path:
    path = tmp_path / "m.onnx"
    onnx.save(two_heads(), path)
    return path
