"""Point-forecast accuracy metrics. Each takes truth and forecast of the same shape (..., H) and
returns a float averaged over every entry.

    MAE   = mean |y - f|
    RMSE  = sqrt(mean (y - f)^2)
    sMAPE = 100 * mean 2|y - f| / (|y| + |f|)        (a term with y = f = 0 counts as 0)
    MASE  = MAE / mean_t |x_t - x_{t-m}|              x: the training history, m: season length
"""
from __future__ import annotations

import numpy as np

from lstmkit.errors import LstmkitError


def _pair(y, f) -> tuple[np.ndarray, np.ndarray]:
    y, f = np.asarray(y, dtype=np.float64), np.asarray(f, dtype=np.float64)
    if y.shape != f.shape:
        raise LstmkitError(f"metrics expect truth and forecast of the same shape, got {y.shape} and "
                           f"{f.shape}")
    if y.size == 0:
        raise LstmkitError("metrics need at least one value, got none")
    return y, f


def mae(y, f) -> float:
    y, f = _pair(y, f)
    return float(np.mean(np.abs(y - f)))


def rmse(y, f) -> float:
    y, f = _pair(y, f)
    return float(np.sqrt(np.mean((y - f) ** 2)))


def smape(y, f) -> float:
    y, f = _pair(y, f)
    den = np.abs(y) + np.abs(f)
    terms = np.divide(2 * np.abs(y - f), den, out=np.zeros_like(den), where=den > 0)
    return float(100 * np.mean(terms))


def mase(y, f, history, season: int = 1) -> float:
    """MAE scaled by the in-sample MAE of the seasonal naive forecast on `history` (T,)."""
    history = np.asarray(history, dtype=np.float64)
    if history.ndim != 1 or len(history) <= season:
        raise LstmkitError(f"MASE needs a 1-D history longer than the season ({season}), got shape "
                           f"{history.shape}")
    scale = np.mean(np.abs(history[season:] - history[:-season]))
    if scale == 0:
        return float("nan")
    return mae(y, f) / float(scale)


def all_metrics(y, f, history, season: int = 1) -> dict[str, float]:
    """{"MAE", "RMSE", "sMAPE", "MASE"} for one series: y, f (H,), history (T,)."""
    return {"MAE": mae(y, f), "RMSE": rmse(y, f), "sMAPE": smape(y, f),
            "MASE": mase(y, f, history, season)}
