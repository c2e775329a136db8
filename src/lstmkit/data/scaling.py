"""Per-column standard scaling, fitted on the training block only and saved with the model as JSON."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lstmkit.errors import LstmkitError


@dataclass
class StandardScaler:
    """x' = (x - mean) / std per column. mean, std: (C,) arrays; a column with std 0 keeps std 1."""
    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray) -> "StandardScaler":
        """x (T, C) -> scaler of its column means and standard deviations (ddof 0)."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or len(x) == 0:
            raise LstmkitError(f"StandardScaler.fit expects an array of shape (T, C) with T >= 1, "
                               f"got shape {x.shape}")
        with np.errstate(over="ignore", invalid="ignore"):
            mean, std = x.mean(axis=0), x.std(axis=0)
        if not (np.isfinite(mean).all() and np.isfinite(std).all()):
            raise LstmkitError("StandardScaler.fit: the values are too large to scale (their mean or "
                               "standard deviation overflows float64); rescale the data")
        return cls(mean=mean, std=np.where(std > 0, std, 1.0))

    def transform(self, x: np.ndarray) -> np.ndarray:
        """(..., C) -> (..., C)"""
        return (x - self.mean) / self.std

    def inverse(self, x: np.ndarray) -> np.ndarray:
        """(..., C) -> (..., C)"""
        return x * self.std + self.mean

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> "StandardScaler":
        try:
            mean = np.asarray(d["mean"], dtype=np.float64)
            std = np.asarray(d["std"], dtype=np.float64)
        except (KeyError, TypeError, ValueError, OverflowError) as e:
            raise LstmkitError(f"scaler: expected {{'mean': [...], 'std': [...]}}, got {d!r:.80}") from e
        if (mean.shape != std.shape or mean.ndim != 1 or not (std > 0).all()
                or not (np.isfinite(mean).all() and np.isfinite(std).all())):
            raise LstmkitError(f"scaler: expected equal-length mean and positive std lists, got "
                               f"shapes {mean.shape} and {std.shape}")
        return cls(mean=mean, std=std)
