"""Early stopping that keeps a copy of the best weights seen so far."""
from __future__ import annotations

import math

import torch
from torch import nn


class EarlyStopping:
    """Track a validation loss; `step` returns True when training should stop.

    patience: epochs without an improvement larger than min_delta before stopping (0 = never stop).
    `best_state` holds a CPU copy of the weights at the best epoch.
    """

    def __init__(self, patience: int, min_delta: float = 0.0):
        self.patience = patience
        self.min_delta = min_delta
        self.best = math.inf
        self.best_epoch = -1
        self.best_state: dict[str, torch.Tensor] | None = None
        self._bad = 0

    def step(self, loss: float, model: nn.Module, epoch: int) -> bool:
        if loss < self.best - self.min_delta or self.best_state is None:
            self.best, self.best_epoch, self._bad = loss, epoch, 0
            self.best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            return False
        self._bad += 1
        return self.patience > 0 and self._bad >= self.patience
