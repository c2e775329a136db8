"""Scoring a global model beside the classical baselines, per series and summarised.

Per series and origin: MASE (MAE over the in-sample MAE of the seasonal naive forecast on the history
before the origin; season 1 = the one-step naive scale of the M competitions), sMAPE (0-200) and
MAE. Summary per model: mean and median MASE (undefined MASE, a constant history, left out and
counted), mean sMAPE. With quantiles: the empirical coverage of each central interval
(q, 1 - q) beside its nominal level 1 - 2q.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import pandas as pd

from lstmkit.errors import LstmkitError
from lstmkit.metrics import mae, smape

from .panel_baselines import panel_baselines, resolve


def mase_scale(history: np.ndarray, season: int) -> float:
    """In-sample MAE of the seasonal naive forecast (one-step naive when the history is too short
    for the season); NaN when it is 0 or the history has one value."""
    m = season if len(history) > season else 1
    if len(history) <= m:
        return float("nan")
    s = float(np.mean(np.abs(history[m:] - history[:-m])))
    return s if s > 0 else float("nan")


@dataclass
class GlobalEvaluation:
    rows: pd.DataFrame                 # long: unique_id, ds, model, forecast, actual, window
    scores: pd.DataFrame               # unique_id, window, model, MASE, sMAPE, MAE
    summary: dict[str, dict[str, float]]    # model -> {"mean MASE", "median MASE", "mean sMAPE", ...}
    coverage: dict[str, dict[str, float]]   # "90%" -> {"nominal", "empirical"}
    seconds: dict[str, float]          # model -> fit/forecast seconds
    season: int
    horizon: int
    windows: int
    notes: list[str] = field(default_factory=list)

    @property
    def winner(self) -> str:
        defined = {m: v["mean MASE"] for m, v in self.summary.items() if np.isfinite(v["mean MASE"])}
        return min(defined, key=defined.get) if defined else "none (MASE undefined everywhere)"

    def table(self) -> str:
        cols = ["mean MASE", "median MASE", "mean sMAPE", "seconds"]
        width = max(len(m) for m in self.summary) + 2
        lines = [f"{'model':<{width}}" + "".join(f"{c:>13}" for c in cols)]
        for m, v in self.summary.items():
            vals = [v["mean MASE"], v["median MASE"], v["mean sMAPE"], self.seconds.get(m, np.nan)]
            lines.append(f"{m:<{width}}" + "".join(f"{x:>13.3f}" for x in vals)
                         + (" *" if m == self.winner else ""))
        return "\n".join(lines)

    def summary_line(self) -> str:
        lstm = self.summary.get("LSTM", {}).get("mean MASE", float("nan"))
        base = {m: v["mean MASE"] for m, v in self.summary.items()
                if m != "LSTM" and np.isfinite(v["mean MASE"])}
        if not base:
            return f"LSTM mean MASE {lstm:.3f} (no baseline could be scored)"
        best = min(base, key=base.get)
        verdict = "below" if lstm < base[best] else "not below"
        return (f"LSTM mean MASE {lstm:.3f}, {verdict} the best baseline {best} ({base[best]:.3f}) over "
                f"{self.scores['unique_id'].nunique()} series x {self.windows} origin(s)")

    def to_dict(self) -> dict:
        return {"summary": self.summary, "winner": self.winner, "line": self.summary_line(),
                "coverage": self.coverage, "seconds": self.seconds, "season": self.season,
                "horizon": self.horizon, "windows": self.windows, "notes": self.notes,
                "series": int(self.scores["unique_id"].nunique())}


def evaluate_panel(gf, baselines=("naive", "seasonal naive", "ETS", "ARIMA", "Theta"),
                   progress: Optional[Callable[[str], None]] = None) -> GlobalEvaluation:
    """Forecast the last `holdout` steps before each of `backtest` rolling origins (the last origin
    `holdout` steps before the end, the others `holdout` apart) with the fitted global model (refitted
    at each origin when config.refit) and the baselines; score every series."""
    from .global_forecaster import GlobalForecaster
    cfg, panel = gf.config, gf.panel
    names = list(resolve(baselines))
    if cfg.season == 1 and "seasonal naive" in names:
        names.remove("seasonal naive")            # identical to naive without a season
    H, K = cfg.holdout, cfg.backtest
    if H > cfg.horizon:
        raise LstmkitError(f"holdout {H} is longer than the horizon {cfg.horizon}; score more steps "
                           f"with --backtest K (K origins, {H} steps each) or a longer --horizon")
    rows, scores, seconds, notes = [], [], {}, []
    levels = cfg.levels
    for k in range(K):
        cut = (K - k) * H
        hist = [v[:len(v) - cut] for v in panel.values]
        truth = [v[len(v) - cut:len(v) - cut + H] for v in panel.values]
        covs = [c[:len(c) - cut + H] for c in panel.cov_values] if cfg.covariates else None
        model = gf
        start = time.perf_counter()
        if cfg.refit and k < K - 1:
            if progress:
                progress(f"origin {k + 1}/{K}: refitting the LSTM")
            sub = GlobalForecaster(_with(cfg, holdout=cut, backtest=1))
            model = sub.fit(panel)
            model.panel = panel
        point, quant = model.forecast_from(hist, covs, list(range(len(panel))), H)
        seconds["LSTM"] = seconds.get("LSTM", 0.0) + time.perf_counter() - start
        forecasts = {"LSTM": point}
        if quant is not None:
            for j, q in enumerate(levels):
                forecasts[f"LSTM q{q:g}"] = quant[:, :, j]
        base, secs = panel_baselines(hist, H, cfg.season, names, progress)
        forecasts.update(base)
        for n, s in secs.items():
            seconds[n] = seconds.get(n, 0.0) + s
        for i, name in enumerate(panel.ids):
            ds = panel.times(i, H, len(hist[i]))
            scale = mase_scale(hist[i], cfg.season)
            for model_name, f in forecasts.items():
                rows.append(pd.DataFrame({"unique_id": name, "ds": ds, "model": model_name,
                                          "forecast": f[i], "actual": truth[i], "window": k}))
                if " q" in model_name:
                    continue
                ok = np.isfinite(f[i]).all()
                scores.append((name, k, model_name,
                               mae(truth[i], f[i]) / scale if ok else np.nan,
                               smape(truth[i], f[i]) if ok else np.nan,
                               mae(truth[i], f[i]) if ok else np.nan))
    rows = pd.concat(rows, ignore_index=True)
    if panel.starts is not None:
        rows["ds"] = pd.DatetimeIndex(rows["ds"]).strftime("%Y-%m-%d")
    scores = pd.DataFrame(scores, columns=["unique_id", "window", "model", "MASE", "sMAPE", "MAE"])
    summary = {}
    for m, g in scores.groupby("model", sort=False):
        mase_v = g["MASE"].to_numpy()
        ok = np.isfinite(mase_v)
        summary[m] = {"mean MASE": float(mase_v[ok].mean()) if ok.any() else float("nan"),
                      "median MASE": float(np.median(mase_v[ok])) if ok.any() else float("nan"),
                      "mean sMAPE": float(np.nanmean(g["sMAPE"])) if g["sMAPE"].notna().any() else float("nan"),
                      "scored": int(ok.sum()), "undefined MASE": int((~ok).sum())}
        if (~ok).any():
            notes.append(f"{m}: MASE undefined for {int((~ok).sum())} series/origin(s) (constant "
                         f"history or a failed fit); left out of the MASE summary")
    coverage = {}
    for q in levels:
        if q < 0.5 and (1 - q) in levels:
            lo = rows[rows.model == f"LSTM q{q:g}"]
            hi = rows[rows.model == f"LSTM q{1 - q:g}"]
            inside = (lo["actual"].to_numpy() >= lo["forecast"].to_numpy()) & \
                     (hi["actual"].to_numpy() <= hi["forecast"].to_numpy())
            coverage[f"{100 * (1 - 2 * q):g}%"] = {"nominal": 1 - 2 * q, "empirical": float(inside.mean()),
                                                 "lower": q, "upper": 1 - q}
    if K > 1:
        notes.append(f"{K} rolling origins, {H} steps each; LSTM "
                     f"{'refitted at each origin' if cfg.refit else 'fitted once before the first origin'}; "
                     f"baselines fitted at each origin")
    return GlobalEvaluation(rows, scores, summary, coverage, seconds, cfg.season, H, K, notes)


def _with(cfg, **changes):
    import copy
    c = copy.deepcopy(cfg)
    for k, v in changes.items():
        setattr(c, k, v)
    return c
