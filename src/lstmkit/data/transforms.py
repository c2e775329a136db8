"""Target transforms applied before scaling: an optional log, then differencing at given lags.

    level  u_t = log(y_t)  (or y_t without log)
    diff   z_t = u_t - u_{t-l1}, then the same at l2, ...   (for lags (l1, l2, ...))

`forward` loses the first sum(lags) steps. `integrate` undoes the differencing of a forecast given the
level history just before its origin; `to_level` / `from_level` apply and undo the log.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lstmkit.errors import LstmkitError


@dataclass
class TargetTransform:
    """log: apply log to the targets; lags: differencing lags, applied in order (e.g. (12,) or (1, 12))."""
    log: bool = False
    lags: tuple[int, ...] = field(default_factory=tuple)

    def __post_init__(self):
        self.lags = tuple(int(l) for l in self.lags)
        if any(l < 1 for l in self.lags):
            raise LstmkitError(f"differencing lags must be >= 1, got {self.lags}")

    @property
    def lost(self) -> int:
        """How many leading steps differencing consumes."""
        return sum(self.lags)

    def to_level(self, y: np.ndarray) -> np.ndarray:
        if not self.log:
            return y
        if (y <= 0).any():
            raise LstmkitError(f"log transform needs positive targets, got a minimum of {y.min():g}; "
                               f"turn the log transform off")
        return np.log(y)

    def from_level(self, u: np.ndarray) -> np.ndarray:
        return np.exp(u) if self.log else u

    def forward(self, y: np.ndarray) -> np.ndarray:
        """y (T, K) -> z (T - lost, K)"""
        z = self.to_level(np.asarray(y, dtype=np.float64))
        with np.errstate(over="ignore", invalid="ignore"):     # overflow -> inf: the caller checks
            for lag in self.lags:
                z = z[lag:] - z[:-lag]
        return z

    def integrate(self, z: np.ndarray, history: np.ndarray) -> np.ndarray:
        """Undo differencing of forecasts.

        z (..., H, K): forecast differences; history (..., S, K): level values u up to the origin,
        S >= lost. Returns levels (..., H, K).
        """
        if history.shape[-2] < self.lost:
            raise LstmkitError(f"integrating differences at lags {self.lags} needs {self.lost} past "
                               f"steps, got {history.shape[-2]}")
        # Histories of each intermediate series: hist[j] is the level differenced at lags[:j].
        hists = [history]
        for lag in self.lags[:-1] if self.lags else []:
            h = hists[-1]
            hists.append(h[..., lag:, :] - h[..., :-lag, :])
        out = z
        for lag, hist in zip(reversed(self.lags), reversed(hists)):
            ext = np.concatenate([hist, np.zeros_like(out)], axis=-2)
            start = hist.shape[-2]
            for k in range(out.shape[-2]):
                ext[..., start + k, :] = out[..., k, :] + ext[..., start + k - lag, :]
            out = ext[..., start:, :]
        return out

    def to_dict(self) -> dict:
        return {"log": self.log, "lags": list(self.lags)}

    @classmethod
    def from_dict(cls, d: dict) -> "TargetTransform":
        if (not isinstance(d, dict) or not isinstance(d.get("log", False), bool)
                or not isinstance(d.get("lags", []), list)
                or not all(isinstance(l, int) and not isinstance(l, bool) for l in d.get("lags", []))):
            raise LstmkitError(f"transform: expected {{'log': true|false, 'lags': [int, ...]}}, got {d!r:.80}")
        return cls(log=d.get("log", False), lags=tuple(d.get("lags", ())))
