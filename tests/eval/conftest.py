"""Tiny datasets in the real layouts, made once per session (tests that change one copy it first)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from surgery.eval.generate import make_dataset

SIZES = {"cityscapes": (16, 32), "imagenet": (40, 52), "dsb2018": (16, 16)}
COUNTS = {"cityscapes": 3, "imagenet": 6, "dsb2018": 5}


@pytest.fixture(scope="session")
def datasets(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("datasets")
    return {kind: make_dataset(kind, root / kind, COUNTS[kind], seed=1, size=SIZES[kind]).root for kind in SIZES}


@pytest.fixture
def copy_of(datasets, tmp_path):
    """A writable copy of one of the session's datasets."""
    def copy(kind: str) -> Path:
        dest = tmp_path / kind
        shutil.copytree(datasets[kind], dest)
        return dest
    return copy
