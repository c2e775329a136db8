"""Sliding windows and the strict time split.

Shape symbols: T time steps, F input features, K targets, L lookback, H horizon, N windows.

A window with *origin* o (the last step the model sees) pairs
    inputs  x[o - L + 1 .. o]        (L, F)
    targets y[o + 1 .. o + H]        (H, K)
The time split cuts the T steps into consecutive blocks train | validation | test; a window belongs
to a block when all of its targets lie in that block, so no target is ever seen by two blocks.
Inputs may reach back into earlier blocks: the past is always known at a forecast origin.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lstmkit.errors import LstmkitError


def inputs_at(x: np.ndarray, lookback: int, origins: np.ndarray) -> np.ndarray:
    """The input windows ending at each origin: x (T, F) -> (N, L, F); needs lookback - 1 <= o < T."""
    origins = np.asarray(origins, dtype=np.int64)
    if origins.size and (origins.min() < lookback - 1 or origins.max() > len(x) - 1):
        raise LstmkitError(f"input windows of {lookback} steps need origins in [{lookback - 1}, "
                           f"{len(x) - 1}], got [{origins.min()}, {origins.max()}]")
    return x[origins[:, None] + np.arange(-lookback + 1, 1)[None, :]]


def targets_at(y: np.ndarray, horizon: int, origins: np.ndarray) -> np.ndarray:
    """The `horizon` steps after each origin: y (T, K) -> (N, H, K); needs o <= T - 1 - horizon."""
    origins = np.asarray(origins, dtype=np.int64)
    if origins.size and (origins.min() < -1 or origins.max() > len(y) - 1 - horizon):
        raise LstmkitError(f"targets of {horizon} steps need origins in [-1, {len(y) - 1 - horizon}], "
                           f"got [{origins.min()}, {origins.max()}]")
    return y[origins[:, None] + np.arange(1, horizon + 1)[None, :]]


def windows(x: np.ndarray, y: np.ndarray, lookback: int, horizon: int,
            origins: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cut windows at the given origins.

    x (T, F), y (T, K), origins (N,) ints with lookback - 1 <= o <= T - 1 - horizon
    returns inputs (N, L, F) and targets (N, H, K)
    """
    return inputs_at(x, lookback, origins), targets_at(y, horizon, origins)


@dataclass(frozen=True)
class TimeSplit:
    """Block boundaries over T steps: train [0, train_end), validation [train_end, val_end),
    test [val_end, T)."""
    train_end: int
    val_end: int
    total: int

    def origins(self, block: str, lookback: int, horizon: int) -> np.ndarray:
        """Origins of the windows whose targets all lie in `block` ("train", "val" or "test")."""
        start, end = {"train": (0, self.train_end), "val": (self.train_end, self.val_end),
                      "test": (self.val_end, self.total)}[block]
        first = max(lookback - 1, start - 1)
        last = end - 1 - horizon
        return np.arange(first, last + 1, dtype=np.int64)


def time_split(total: int, lookback: int, horizon: int, val: int, test: int) -> TimeSplit:
    """Split `total` steps into train | val | test blocks of the last `val` and `test` steps.

    Checks that training gets at least one window and validation (when val > 0) at least one.
    """
    for name, value in (("lookback", lookback), ("horizon", horizon)):
        if value < 1:
            raise LstmkitError(f"{name} must be at least 1, got {value}")
    if val < 0 or test < 0:
        raise LstmkitError(f"validation and holdout lengths must be >= 0, got {val} and {test}")
    if 0 < val < horizon:
        raise LstmkitError(f"validation length must be 0 or at least the horizon ({horizon}), "
                           f"got {val}")
    split = TimeSplit(train_end=total - val - test, val_end=total - test, total=total)
    need = lookback + horizon + val + test
    if split.origins("train", lookback, horizon).size == 0:
        raise LstmkitError(f"too few rows: {total} rows, but lookback {lookback} + horizon {horizon} "
                           f"+ validation {val} + holdout {test} needs at least {need}")
    return split
