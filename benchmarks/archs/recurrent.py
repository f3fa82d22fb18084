"""Sequences and control flow: an LSTM classifier, a bidirectional GRU, a TorchScript Loop with an If inside."""

from __future__ import annotations

import torch
from torch import nn


class LSTMClassifier(nn.Module):
    """Two stacked LSTM layers (batch_first), a linear head on the last step."""

    def __init__(self, features: int = 16, hidden: int = 32, classes: int = 5):
        super().__init__()
        self.lstm = nn.LSTM(features, hidden, num_layers=2, batch_first=True)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, _ = self.lstm(x)
        return self.head(y[:, -1])


class BiGRU(nn.Module):
    """A bidirectional GRU tagger: per-step logits from both directions."""

    def __init__(self, features: int = 16, hidden: int = 24, classes: int = 7):
        super().__init__()
        self.gru = nn.GRU(features, hidden, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, _ = self.gru(x)
        return self.head(y)


class LoopIf(nn.Module):
    """A data-dependent loop (one step per row) with a branch on the running sum, scripted: ONNX Loop and If."""

    def __init__(self, width: int = 8):
        super().__init__()
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.proj(x)
        for _ in range(x.shape[1]):
            if bool(y.sum() > 0):  # noqa: SIM108 - a branch statement, as users write it
                y = torch.tanh(y) * 2
            else:
                y = y - 1
        return y + x


def lstm_classifier() -> nn.Module:
    return LSTMClassifier().eval()


def gru_bidirectional() -> nn.Module:
    return BiGRU().eval()


def scripted_loop_if() -> nn.Module:
    return torch.jit.script(LoopIf().eval())
