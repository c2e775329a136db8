"""Reference forecasts the LSTM must be compared with: naive, seasonal naive, ARIMA and exponential
smoothing (Holt-Winters), the last two from statsmodels.

Each baseline is fitted once on the history before the holdout (`fit(x, season, log)`, x (T,)) and then
forecasts from any longer prefix of the same series with the fitted parameters
(`forecast(x_upto, steps)` -> (steps,)), so a holdout longer than the horizon is scored block by block
without refitting.

Bounded on long series: ARIMA and Holt-Winters see only the last `window(season)` steps of the
history (TAIL_WINDOW = 1000, or 6 seasons if more), and once the baselines have taken BUDGET_S
seconds the remaining slow ones are skipped, as are ARIMA's remaining candidate orders once it has
one fit (a note says so). `baselines="fast"` runs only naive and
seasonal naive; "none" runs none.
"""
from __future__ import annotations

import time
import warnings
from typing import Optional

import numpy as np

from lstmkit.errors import LstmkitError
from lstmkit.training.progress import phase

TAIL_WINDOW = 1000       # most history steps the statsmodels baselines are fitted on (or 6 seasons)
BUDGET_S = 120.0         # seconds after which the remaining slow baselines are skipped


class Naive:
    """Repeat the last value."""

    def fit(self, x: np.ndarray, season: int, log: bool) -> "Naive":
        return self

    def forecast(self, x: np.ndarray, steps: int) -> np.ndarray:
        return np.full(steps, float(x[-1]))


class SeasonalNaive:
    """Repeat the last full season: f_{T+h} = x_{T+h-m*ceil(h/m)}."""

    def fit(self, x: np.ndarray, season: int, log: bool) -> "SeasonalNaive":
        self.season = max(1, season)
        return self

    def forecast(self, x: np.ndarray, steps: int) -> np.ndarray:
        m = min(self.season, len(x))
        return np.resize(np.asarray(x[-m:], dtype=np.float64), steps)


class Arima:
    """Seasonal ARIMA (p,1,q)(0,1,1)_m with p, q in {0, 1} chosen by AIC, on log(x) when log is True.
    Without the seasonal part when m = 1 or the history is shorter than three seasons."""

    deadline: Optional[float] = None    # time.monotonic() after which no further order is tried

    def fit(self, x: np.ndarray, season: int, log: bool) -> "Arima":
        from statsmodels.tsa.statespace.sarimax import SARIMAX

        self.log = log
        self.tried = 0
        seasonal = (0, 1, 1, season) if season > 1 and len(x) >= 3 * season else (0, 0, 0, 0)
        self.result = None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for p in (0, 1):
                for q in (0, 1):
                    if self.result is not None and self.deadline is not None and time.monotonic() > self.deadline:
                        continue
                    self.tried += 1
                    try:
                        fit = SARIMAX(self._in(x), order=(p, 1, q), seasonal_order=seasonal).fit(disp=False)
                    except (ValueError, np.linalg.LinAlgError):
                        continue
                    if np.isfinite(fit.aic) and (self.result is None or fit.aic < self.result.aic):
                        self.result = fit
        return self

    def _in(self, x):
        return np.log(x) if self.log else np.asarray(x, dtype=np.float64)

    def forecast(self, x: np.ndarray, steps: int) -> np.ndarray:
        if self.result is None:
            return np.full(steps, np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = self.result if len(x) == self.result.nobs else self.result.apply(self._in(x))
            f = np.asarray(res.forecast(steps))
        return np.exp(f) if self.log else f


class HoltWinters:
    """Exponential smoothing with additive trend and a multiplicative season for positive data
    (additive otherwise; no season when m = 1 or fewer than two seasons of history)."""

    def fit(self, x: np.ndarray, season: int, log: bool) -> "HoltWinters":
        from statsmodels.tsa.holtwinters import ExponentialSmoothing

        x = np.asarray(x, dtype=np.float64)
        self.seasonal = None
        if season > 1 and len(x) >= 2 * season:
            self.seasonal = "mul" if (x > 0).all() else "add"
        self.kw = dict(trend="add", seasonal=self.seasonal,
                       seasonal_periods=season if self.seasonal else None)
        self.nobs = len(x)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                self.result = ExponentialSmoothing(x, **self.kw).fit()
            except (ValueError, np.linalg.LinAlgError):
                self.result = None
        return self

    def forecast(self, x: np.ndarray, steps: int) -> np.ndarray:
        from statsmodels.tsa.holtwinters import ExponentialSmoothing

        if self.result is None:
            return np.full(steps, np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if len(x) == self.nobs:
                return np.asarray(self.result.forecast(steps))
            # Same smoothing parameters and initial states, filtered over the longer prefix.
            p = self.result.params
            init = dict(initial_level=p["initial_level"], initial_trend=p["initial_trend"])
            if self.seasonal:
                init["initial_seasonal"] = p["initial_seasons"]
            model = ExponentialSmoothing(np.asarray(x, dtype=np.float64), initialization_method="known",
                                         **init, **self.kw)
            res = model.fit(smoothing_level=p["smoothing_level"], smoothing_trend=p["smoothing_trend"],
                            smoothing_seasonal=p["smoothing_seasonal"] if self.seasonal else None,
                            optimized=False)
            return np.asarray(res.forecast(steps))


BASELINES = {"naive": Naive, "seasonal naive": SeasonalNaive, "ARIMA": Arima,
             "Holt-Winters": HoltWinters}
FAST = ("naive", "seasonal naive")
SETS = {"all": tuple(BASELINES), "fast": FAST, "none": ()}


def baseline_names(which) -> tuple[str, ...]:
    """"all" | "fast" | "none" (True / False: "all" / "none") -> the baselines' names."""
    if isinstance(which, bool):
        which = "all" if which else "none"
    if which not in SETS:
        raise LstmkitError(f"baselines must be one of {sorted(SETS)}, got {which!r}")
    return SETS[which]


def window(season: int) -> int:
    """History steps the statsmodels baselines are fitted on."""
    return max(TAIL_WINDOW, 6 * season)


def run_baselines(y: np.ndarray, cut: int, horizon: int, season: int, log: bool,
                  names=tuple(BASELINES), notes: Optional[list] = None,
                  budget_s: Optional[float] = None) -> dict[str, np.ndarray]:
    """Forecast y[cut:] block by block (`horizon` steps from the true data before each block).

    y (T, K) -> {name: (T - cut, K)}; each baseline is fitted on y[:cut] of each column (ARIMA and
    Holt-Winters on its last window(season) steps). Slow baselines that would start after `budget_s`
    seconds (default BUDGET_S) are left out; `notes` gets a line for each thing left out."""
    budget = BUDGET_S if budget_s is None else budget_s
    start_time = time.monotonic()
    out = {}
    for name in names:
        slow = name not in FAST
        if slow and time.monotonic() - start_time > budget:
            if notes is not None:
                notes.append(f"{name} skipped: the baselines took over {budget:.0f} s")
            continue
        start = max(0, cut - window(season)) if slow else 0
        if slow and start and notes is not None:
            notes.append(f"{name} fitted on the last {cut - start} steps of the history")
        cols = []
        with phase(f"{name} baseline"):
            for k in range(y.shape[1]):
                x = y[start:, k]
                c = cut - start
                model = BASELINES[name]()
                if hasattr(model, "deadline"):
                    model.deadline = start_time + budget
                model.fit(x[:c], season, log and bool((x[:c] > 0).all()))
                if getattr(model, "tried", 4) < 4 and notes is not None:
                    notes.append(f"{name}: {model.tried} of 4 orders tried within the {budget:.0f} s budget")
                cols.append(np.concatenate([model.forecast(x[:b], min(horizon, len(x) - b))
                                            for b in range(c, len(x), horizon)]))
        out[name] = np.stack(cols, axis=1)
    return out
