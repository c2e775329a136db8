"""Losses that skip missing targets (NaN values, IGNORE class indices), so windows and streams can mark
steps with no target."""
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


IGNORE = -100  # class index of a step without a label (padding in per-step labelling)


def cross_entropy(weight: Tensor | None = None):
    """Loss for class indices: logits (..., C) and targets (...) int64, averaged over the targets
    that are not IGNORE (padded steps), each weighted by its class's `weight` (C,) when given
    (torch.nn.functional.cross_entropy's weighted mean)."""
    def loss(logits: Tensor, target: Tensor) -> Tensor:
        flat = target.reshape(-1)
        if not (flat != IGNORE).any():
            return (logits * 0).sum()
        return torch.nn.functional.cross_entropy(logits.reshape(flat.shape[0], -1), flat,
                                                 weight=weight, ignore_index=IGNORE)
    return loss
