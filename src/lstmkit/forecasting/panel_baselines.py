"""Classical baselines for many series, from Nixtla's statsforecast (Garza et al.; numba-compiled
AutoETS, AutoARIMA, AutoTheta: Hyndman & Khandakar 2008's automatic ARIMA, Hyndman et al. 2008's ETS,
Fiorucci et al. 2016's Theta family), each fitted per series on the history before the origin.

    panel_baselines(histories, horizon, season, names) -> {name: (N, horizon)}

The first call in a process compiles statsforecast's numba kernels (cached on disk by numba; see
docs/forecasting.md for the measured times). `fast` = naive, seasonal naive, ETS and Theta (no
ARIMA, the slowest).
"""
from __future__ import annotations

import os
import time
import warnings
from typing import Callable, Optional, Sequence

import numpy as np
import pandas as pd

from lstmkit.errors import LstmkitError

ALL = ("naive", "seasonal naive", "ETS", "ARIMA", "Theta")
CHOICES = {"none": (), "fast": ("naive", "seasonal naive", "ETS", "Theta"), "all": ALL}


def resolve(choice) -> tuple[str, ...]:
    """'none' | 'fast' | 'all' or a list of names -> the names."""
    if isinstance(choice, str):
        if choice not in CHOICES:
            raise LstmkitError(f"baselines must be one of {sorted(CHOICES)} or a list of {list(ALL)}, "
                               f"got {choice!r}")
        return CHOICES[choice]
    names = tuple(choice)
    bad = [n for n in names if n not in ALL]
    if bad:
        raise LstmkitError(f"unknown baseline(s) {bad}; known: {list(ALL)}")
    return names


def _models(names: Sequence[str], season: int):
    os.environ.setdefault("NIXTLA_ID_AS_COL", "1")
    from statsforecast.models import AutoARIMA, AutoETS, AutoTheta, Naive, SeasonalNaive
    make = {"naive": lambda: Naive(alias="naive"),
            "seasonal naive": lambda: SeasonalNaive(season_length=season, alias="seasonal naive"),
            "ETS": lambda: AutoETS(season_length=season, alias="ETS"),
            "ARIMA": lambda: AutoARIMA(season_length=season, alias="ARIMA"),
            "Theta": lambda: AutoTheta(season_length=season, alias="Theta")}
    return [make[n]() for n in names]


def panel_baselines(histories: Sequence[np.ndarray], horizon: int, season: int,
                    names: Sequence[str] = ALL, progress: Optional[Callable[[str], None]] = None
                    ) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Forecast `horizon` steps beyond each history (T_i,) with each named baseline.

    Returns ({name: (N, horizon)}, {name: seconds}). A model that fails on a series gives NaN there
    (statsforecast's fallback is not used, so a failure is visible); seasonal models need more than
    two seasons of history, shorter series fall back to the model without season."""
    if not names:
        return {}, {}
    N = len(histories)
    out, seconds = {}, {}
    os.environ.setdefault("NIXTLA_ID_AS_COL", "1")
    from statsforecast import StatsForecast
    frame = pd.DataFrame({"unique_id": np.repeat(np.arange(N), [len(h) for h in histories]),
                          "ds": np.concatenate([np.arange(len(h)) for h in histories]),
                          "y": np.concatenate(histories).astype(np.float64)})
    long_enough = np.array([len(h) > 2 * season for h in histories])
    for name in names:
        if progress:
            progress(f"baseline {name} on {N} series")
        start = time.perf_counter()
        result = np.full((N, horizon), np.nan)
        groups = ([(np.ones(N, dtype=bool), 1)] if season == 1 else
                  [(long_enough, season), (~long_enough, 1)])
        for mask, m in groups:
            if not mask.any():
                continue
            sub = frame[np.isin(frame["unique_id"], np.flatnonzero(mask))]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    sf = StatsForecast(models=_models([name], m), freq=1, n_jobs=1)
                    fc = sf.forecast(df=sub, h=horizon)
                except Exception as e:    # noqa: BLE001 - a library failure must not kill the run
                    if progress:
                        progress(f"baseline {name} failed: {type(e).__name__}: {e}")
                    continue
            fc = fc.reset_index() if "unique_id" not in fc.columns else fc
            for uid, g in fc.groupby("unique_id", sort=False):
                result[int(uid)] = g[name].to_numpy(dtype=np.float64)[:horizon]
        out[name] = result
        seconds[name] = time.perf_counter() - start
    return out, seconds
