"""The holdout report: every model's forecast of the holdout, MAE / RMSE / sMAPE / MASE in one table,
and one line saying which model won (lowest MASE, averaged over the targets)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import pandas as pd

from lstmkit.metrics import all_metrics

from .baselines import run_baselines

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
    def winner(self) -> str:
        return min(self.metrics, key=lambda m: (np.nan_to_num(self.metrics[m]["MASE"], nan=np.inf),
                                                self.metrics[m]["MAE"]))

    def table(self) -> str:
        """Plain-text table, one row per model, the winner marked with *."""
        names = list(self.metrics)
        width = max(len(n) for n in names) + 2
        lines = [f"{'model':<{width}}" + "".join(f"{m:>10}" for m in METRICS)]
        for name in names:
            row = self.metrics[name]
            mark = " *" if name == self.winner else ""
            lines.append(f"{name:<{width}}" + "".join(f"{row[m]:>10.3f}" for m in METRICS) + mark)
        return "\n".join(lines)

    def summary(self) -> str:
        """One line: who won, and how the LSTM compares with the best baseline (by MASE)."""
        lstm = self.metrics["LSTM"]["MASE"]
        base = {k: v["MASE"] for k, v in self.metrics.items() if k != "LSTM" and np.isfinite(v["MASE"])}
        win = self.winner
        if not base:
            return f"winner: {win} (no baseline could be computed)"
        best = min(base, key=base.get)
        if win == "LSTM":
            return (f"winner: LSTM (MASE {lstm:.3f}; best baseline {best} {base[best]:.3f}, "
                    f"{100 * (1 - lstm / base[best]):.0f}% lower)")
        return (f"winner: {win} (MASE {base[win]:.3f}); the LSTM scored {lstm:.3f}, "
                f"{100 * (lstm / base[win] - 1):.0f}% higher")

    def to_dict(self) -> dict:
        return {"winner": self.winner, "summary": self.summary(), "season": self.season,
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
    if baselines:
        forecasts.update(run_baselines(y, cut, config.horizon, config.season, config.log))
    notes = []
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
