"""Reference forecasts the LSTM must be compared with: naive, seasonal naive, ARIMA and exponential
smoothing (Holt-Winters), the last two from statsmodels.

Each function takes a history x (T,) and a number of steps H and returns a forecast (H,).
"""
from __future__ import annotations

import warnings

import numpy as np


def naive(history: np.ndarray, steps: int, season: int = 1, log: bool = False) -> np.ndarray:
    """Repeat the last value."""
    return np.full(steps, float(history[-1]))


def seasonal_naive(history: np.ndarray, steps: int, season: int = 1, log: bool = False) -> np.ndarray:
    """Repeat the last full season: f_{T+h} = x_{T+h-m*ceil(h/m)}."""
    m = max(1, min(season, len(history)))
    last = np.asarray(history[-m:], dtype=np.float64)
    return np.resize(last, steps)


def arima(history: np.ndarray, steps: int, season: int = 1, log: bool = False) -> np.ndarray:
    """Seasonal ARIMA (p,1,q)(0,1,1)_m with p, q in {0, 1} chosen by AIC (without the seasonal part
    when m = 1 or the history is shorter than three seasons), fitted on log(x) when log is True."""
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    x = np.log(history) if log else np.asarray(history, dtype=np.float64)
    seasonal = (0, 1, 1, season) if season > 1 and len(x) >= 3 * season else (0, 0, 0, 0)
    best = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for p in (0, 1):
            for q in (0, 1):
                try:
                    fit = SARIMAX(x, order=(p, 1, q), seasonal_order=seasonal).fit(disp=False)
                except (ValueError, np.linalg.LinAlgError):
                    continue
                if best is None or fit.aic < best.aic:
                    best = fit
    if best is None:
        return np.full(steps, np.nan)
    f = np.asarray(best.forecast(steps))
    return np.exp(f) if log else f


def holt_winters(history: np.ndarray, steps: int, season: int = 1, log: bool = False) -> np.ndarray:
    """Exponential smoothing with additive trend and a multiplicative season for positive data
    (additive otherwise; no season when m = 1 or fewer than two seasons of history)."""
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    x = np.asarray(history, dtype=np.float64)
    seasonal = None
    if season > 1 and len(x) >= 2 * season:
        seasonal = "mul" if (x > 0).all() else "add"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            fit = ExponentialSmoothing(x, trend="add", seasonal=seasonal,
                                       seasonal_periods=season if seasonal else None).fit()
        except (ValueError, np.linalg.LinAlgError):
            return np.full(steps, np.nan)
    return np.asarray(fit.forecast(steps))


BASELINES = {"naive": naive, "seasonal naive": seasonal_naive, "ARIMA": arima,
             "Holt-Winters": holt_winters}


def run_baselines(history: np.ndarray, steps: int, season: int, log: bool,
                  names=tuple(BASELINES)) -> dict[str, np.ndarray]:
    """history (T, K) -> {name: forecast (H, K)} for each baseline, column by column."""
    out = {}
    for name in names:
        fn = BASELINES[name]
        out[name] = np.stack([fn(history[:, k], steps, season, log and (history[:, k] > 0).all())
                              for k in range(history.shape[1])], axis=1)
    return out
