"""Zoo-test fixtures: checkpoints written by the tests."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="the zoo networks need torch (pip install torch==2.13.0)")

from zoo_helpers import build, randomize  # noqa: E402


@pytest.fixture
def unetpp_checkpoint(tmp_path):
    """A randomized UNet++ and its plain state_dict on disk (the smallest model: fast to build and save)."""
    model = randomize(build("unetpp"))
    path = tmp_path / "unetpp.pth"
    torch.save(model.state_dict(), path)
    return model, path
