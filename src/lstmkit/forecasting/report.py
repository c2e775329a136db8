"""The holdout report: every model's forecast of the holdout, MAE / RMSE / sMAPE / MASE in one table,
and one line saying which model won (lowest MASE, averaged over the targets).

MASE is undefined (NaN, shown as "undefined", null in metrics.json) when the seasonal naive forecast
is exact on the history (its scale is 0). The winner is then named by MAE, and the summary says so;
a ratio is only printed when its denominator is not 0 (a baseline with MASE 0 is "exact")."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import pandas as pd

from lstmkit.metrics import all_metrics

from .baselines import baseline_names, run_baselines

METRICS = ("MAE", "RMSE", "sMAPE", "MASE")


@dataclass
class Evaluation:
    history: np.ndarray                      # (T, K) data before the holdout
    truth: np.ndarray                        # (H, K) the holdout (H = holdout length here)
    forecasts: dict[str, np.ndarray]         # model name -> (H, K), "LSTM" first
    lower: np.ndarray                        # (H, K) LSTM interval
    upper: np.ndarray                        # (H, K)
    metrics: dict[str, dict[str, float]]     # model -> metric -> value (mean over targets)
    per_target: dict[str, dict[str, dict[str, float]]]  # target -> model -> metric -> value
    targets: list[str]
    season: int
    interval: float
    time: Optional[pd.DatetimeIndex] = None  # (T + H,) time stamps, when the data has them
    notes: list[str] = field(default_factory=list)

    @property
    def ranked_by(self) -> str:
        """The metric the winner is named by: MASE when it is defined for every scored model, else
        MAE (defined whenever a model produced a forecast)."""
        scored = [m for m in self.metrics.values() if np.isfinite(m["MAE"])]
        return "MASE" if scored and all(np.isfinite(m["MASE"]) for m in scored) else "MAE"

    @property
    def winner(self) -> Optional[str]:
        """The model with the lowest `ranked_by` metric (ties: lower MAE); None if none was scored."""
        key = self.ranked_by
        scored = [m for m in self.metrics if np.isfinite(self.metrics[m][key])]
        if not scored:
            return None
        return min(scored, key=lambda m: (self.metrics[m][key], self.metrics[m]["MAE"]))

    def table(self) -> str:
        """Plain-text table, one row per model, the winner marked with *; undefined values (a MASE
        whose scale is 0, a model that failed) are written "undefined"."""
        names = list(self.metrics)
        width = max(len(n) for n in names) + 2
        win = self.winner
        lines = [f"{'model':<{width}}" + "".join(f"{m:>10}" for m in METRICS)]
        for name in names:
            row = self.metrics[name]
            mark = " *" if name == win else ""
            cells = "".join(f"{row[m]:>10.3f}" if np.isfinite(row[m]) else f"{'undefined':>10}"
                            for m in METRICS)
            lines.append(f"{name:<{width}}" + cells + mark)
        return "\n".join(lines)

    def summary(self) -> str:
        """One line: who won by which metric, and how the LSTM compares with the best baseline."""
        key, win = self.ranked_by, self.winner
        if win is None:
            return "winner: none (no model produced a finite forecast)"
        why = "" if key == "MASE" else ("; MASE is undefined: the seasonal naive forecast is exact on "
                                        "the history" if not any(np.isfinite(m["MASE"]) for m in
                                                                 self.metrics.values()) else
                                        "; MASE is not defined for every model")
        lstm = self.metrics["LSTM"][key]
        base = {k: v[key] for k, v in self.metrics.items() if k != "LSTM" and np.isfinite(v[key])}
        if not np.isfinite(lstm):
            return f"winner: {win} ({key} {base[win]:.3f}); the LSTM's forecast failed{why}"
        if not base:
            return f"winner: LSTM ({key} {lstm:.3f}; no baseline was computed){why}"
        best = min(base, key=base.get)

        def rel(a: float, b: float, word: str) -> str:
            # relative difference of a to b, only when b is not 0
            if b == 0:
                return "the baseline is exact" if a > 0 else "equal"
            return f"{100 * abs(a / b - 1):.0f}% {word}"

        if win == "LSTM":
            return (f"winner: LSTM ({key} {lstm:.3f}; best baseline {best} {base[best]:.3f}, "
                    f"{rel(lstm, base[best], 'lower')}){why}")
        return (f"winner: {win} ({key} {base[win]:.3f}); the LSTM scored {lstm:.3f}, "
                f"{'higher than an exact forecast' if base[win] == 0 else rel(lstm, base[win], 'higher')}{why}")

    def to_dict(self) -> dict:
        return {"winner": self.winner, "ranked_by": self.ranked_by, "summary": self.summary(), "season": self.season,
                "holdout": int(self.truth.shape[0]), "metrics": self.metrics,
                "per_target": self.per_target, "interval": self.interval, "notes": self.notes,
                "forecasts": {k: v.tolist() for k, v in self.forecasts.items()},
                "lstm_lower": self.lower.tolist(), "lstm_upper": self.upper.tolist(),
                "truth": self.truth.tolist()}


def evaluate_forecasts(y, cut, lstm, config, time=None, baselines=True, result=None) -> Evaluation:
    """Score the LSTM's (mean, lower, upper) forecasts of y[cut:] (each (T - cut, K)) beside the
    baselines, which are fitted on y[:cut]. MASE is scaled by the seasonal naive error on y[:cut]."""
    mean, lo, hi = lstm
    history, truth = y[:cut], y[cut:]
    forecasts = {"LSTM": mean}
    notes = []
    names = baseline_names(baselines)
    if names:
        forecasts.update(run_baselines(y, cut, config.horizon, config.season, config.log, names=names,
                                       notes=notes))
    if len(truth) > config.horizon:
        notes.append(f"holdout of {len(truth)} steps forecast in blocks of {config.horizon}, each from "
                     f"the true data before it")
    per_target = {}
    for j, name in enumerate(config.target):
        per_target[name] = {}
        for model, f in forecasts.items():
            if not np.isfinite(f[:, j]).all():
                notes.append(f"{model} failed on {name!r}")
                per_target[name][model] = {m: float("nan") for m in METRICS}
                continue
            per_target[name][model] = all_metrics(truth[:, j], f[:, j], history[:, j], config.season)
    metrics = {model: {m: float(np.mean([per_target[t][model][m] for t in config.target]))
                       for m in METRICS} for model in forecasts}
    if result is not None:
        notes.append(f"trained {len(result.runs)} initialisation(s) in {result.seconds:.1f} s, kept "
                     f"{len(result.kept)} ({config.train.combine}); best epochs "
                     f"{[result.runs[i].best_epoch + 1 for i in result.kept]}")
    return Evaluation(history=history, truth=truth, forecasts=forecasts, lower=lo, upper=hi,
                      metrics=metrics, per_target=per_target, targets=list(config.target),
                      season=config.season, interval=config.interval, time=time, notes=notes)
