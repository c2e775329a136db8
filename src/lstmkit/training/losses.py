"""Losses that skip missing targets (NaN), so windows and streams can mark steps with no target."""
from __future__ import annotations

import torch
from torch import Tensor


def masked_mse(pred: Tensor, target: Tensor) -> Tensor:
    """Mean squared error over the finite entries of `target`; pred and target of the same shape.
    Returns 0 (with a gradient path) when no entry is finite."""
    mask = torch.isfinite(target)
    if not mask.any():
        return (pred * 0).sum()
    diff = pred[mask] - target[mask]
    return (diff * diff).mean()
