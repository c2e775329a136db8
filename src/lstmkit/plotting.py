"""Figures for lstmkit's tasks, drawn with matplotlib's object API on the Agg canvas (no pyplot, no
display needed) and written atomically as PNG.

    plot_forecast   history, holdout truth, each model's forecast and a prediction interval
    plot_loss       training and validation loss per epoch for every run
    plot_confusion  a classifier's confusion matrix
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from lstmkit.training import atomic

# One fixed colour per model so every plot reads the same way.
COLORS = {"LSTM": "#d62728", "naive": "#7f7f7f", "seasonal naive": "#bcbd22", "ARIMA": "#1f77b4",
          "Holt-Winters": "#2ca02c"}
_CYCLE = ["#9467bd", "#8c564b", "#e377c2", "#17becf", "#ff7f0e"]


def save_figure(fig: Figure, path: str | Path, dpi: int = 120) -> Path:
    FigureCanvasAgg(fig)
    return atomic.write_with(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format="png"))


def plot_forecast(path: str | Path, x_hist: Sequence, history: np.ndarray, x_future: Sequence,
                  forecasts: Mapping[str, np.ndarray], truth: Optional[np.ndarray] = None,
                  lower: Optional[np.ndarray] = None, upper: Optional[np.ndarray] = None,
                  names: Sequence[str] = ("y",), title: str = "", interval_label: str = "interval",
                  show_last: Optional[int] = None) -> Path:
    """One panel per target. history (T, K), truth/forecasts/lower/upper (H, K); x_hist (T,) and
    x_future (H,) are the time stamps or step numbers. show_last: plot only the last steps of history."""
    k = history.shape[1]
    fig = Figure(figsize=(10, 3.6 * k), layout="constrained")
    axes = fig.subplots(k, 1, squeeze=False)[:, 0]
    start = 0 if show_last is None else max(0, len(history) - show_last)
    for j, ax in enumerate(axes):
        ax.plot(x_hist[start:], history[start:, j], color="black", lw=1.4, label="history")
        if truth is not None:
            # join the truth to the last observed point so the line is continuous
            ax.plot([x_hist[-1], *x_future], [history[-1, j], *truth[:, j]], color="black", lw=1.4,
                    ls="--", label="holdout (truth)")
        if lower is not None and upper is not None:
            ax.fill_between(x_future, lower[:, j], upper[:, j], color=COLORS["LSTM"], alpha=0.15,
                            lw=0, label=f"LSTM {interval_label}")
        extra = iter(_CYCLE)
        for name, f in forecasts.items():
            color = COLORS.get(name) or next(extra)
            lw = 2.2 if name == "LSTM" else 1.2
            ax.plot(x_future, f[:, j], color=color, lw=lw, marker="o" if name == "LSTM" else None,
                    ms=3, label=name, zorder=3 if name == "LSTM" else 2)
        if truth is not None or len(forecasts) > 0:
            ax.axvline(x_hist[-1], color="0.6", lw=0.8, ls=":")
        ax.set_ylabel(names[j])
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", fontsize=8, ncol=2, frameon=False)
    if title:
        axes[0].set_title(title)
    return save_figure(fig, path)


def plot_loss(path: str | Path, histories: Sequence[Mapping[str, Sequence[float]]],
              best_epochs: Optional[Sequence[int]] = None, title: str = "training loss") -> Path:
    """Training (solid) and validation (dashed) loss per epoch of each run, log scale; a dot marks the
    epoch whose weights were kept."""
    fig = Figure(figsize=(8, 4), layout="constrained")
    ax = fig.subplots()
    for r, hist in enumerate(histories):
        color = f"C{r % 10}"
        epochs = np.arange(1, len(hist["train"]) + 1)
        ax.plot(epochs, hist["train"], color=color, lw=1.2, label=f"run {r + 1} train")
        if "val" in hist:
            ax.plot(epochs, hist["val"], color=color, lw=1.2, ls="--", label=f"run {r + 1} validation")
            if best_epochs is not None:
                b = best_epochs[r]
                ax.plot([b + 1], [hist["val"][b]], "o", color=color, ms=5)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (MSE, scaled)")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, ncol=2, frameon=False)
    return save_figure(fig, path)


def plot_confusion(path: str | Path, confusion, labels: Sequence[str], title: str = "confusion matrix",
                   normalise: bool = True) -> Path:
    """Confusion matrix (rows: true class, columns: predicted), coloured by the share of each true
    class (row-normalised) and annotated with the counts when there are at most 30 classes."""
    m = np.asarray(confusion, dtype=np.float64)
    rows = m.sum(1, keepdims=True)
    share = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0) if normalise else m
    k = len(labels)
    size = min(3 + 0.45 * k, 14)
    fig = Figure(figsize=(size + 1, size), layout="constrained")
    ax = fig.subplots()
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1 if normalise else None)
    fig.colorbar(im, ax=ax, label="share of the true class" if normalise else "count")
    ax.set_xticks(range(k), [str(l) for l in labels], rotation=90 if k > 8 else 0)
    ax.set_yticks(range(k), [str(l) for l in labels])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if k <= 30:
        for i in range(k):
            for j in range(k):
                if m[i, j]:
                    ax.text(j, i, f"{int(m[i, j])}", ha="center", va="center", fontsize=8,
                            color="white" if share[i, j] > 0.5 else "black")
    ax.set_title(title)
    return save_figure(fig, path)


def plot_series_grid(path: str | Path, series: Sequence[Mapping], title: str = "",
                     cols: int = 3) -> Path:
    """A grid of a few series of a panel, one panel per series. Each item of `series` is a mapping
    with "name", "x_hist", "history", "x_future", "truth" and "forecasts" {model: (H,)}, optionally
    "band" (lower (H,), upper (H,), label) for the LSTM's quantile interval."""
    n = max(1, len(series))
    cols = min(cols, n)
    rows = (n + cols - 1) // cols
    fig = Figure(figsize=(4.2 * cols, 2.8 * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax, item in zip(axes, series):
        ax.plot(list(item["x_hist"]), item["history"], color="black", lw=1.2, label="history")
        xf = list(item["x_future"])
        ax.plot([list(item["x_hist"])[-1], *xf], [item["history"][-1], *item["truth"]], color="black",
                lw=1.2, ls="--", label="holdout (truth)")
        if item.get("band") is not None:
            lo, hi, label = item["band"]
            ax.fill_between(xf, lo, hi, color=COLORS["LSTM"], alpha=0.15, lw=0, label=label)
        extra = iter(_CYCLE)
        for name, f in item["forecasts"].items():
            ax.plot(xf, f, color=COLORS.get(name) or next(extra), lw=2.0 if name == "LSTM" else 1.0,
                    label=name, zorder=3 if name == "LSTM" else 2)
        ax.set_title(str(item["name"]), fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in axes[len(series):]:
        ax.set_visible(False)
    axes[0].legend(fontsize=7, frameon=False)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def plot_mase_comparison(path: str | Path, mase: Mapping[str, np.ndarray], title: str = "") -> Path:
    """Per-series MASE of each model: a box per model (log scale) and, beside it, the LSTM's MASE
    against the best baseline's on every series (points under the diagonal: the LSTM did better).
    mase: {model: (N,)} aligned by series, "LSTM" among them."""
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    names = list(mase)
    data = [np.asarray(mase[n])[np.isfinite(mase[n]) & (np.asarray(mase[n]) > 0)] for n in names]
    ax1.boxplot(data, showmeans=True)
    ax1.set_xticks(range(1, len(names) + 1), names, rotation=20, fontsize=8)
    ax1.set_yscale("log")
    ax1.set_ylabel("MASE per series (log scale; triangle = mean)")
    ax1.grid(alpha=0.3, which="both")
    base = {n: np.nanmean(v) for n, v in mase.items() if n != "LSTM" and np.isfinite(v).any()}
    if "LSTM" in mase and base:
        best = min(base, key=base.get)
        x, y = np.asarray(mase[best]), np.asarray(mase["LSTM"])
        ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
        ax2.scatter(x[ok], y[ok], s=10, color=COLORS["LSTM"], alpha=0.6)
        lim = [min(x[ok].min(), y[ok].min()), max(x[ok].max(), y[ok].max())] if ok.any() else [0.1, 10]
        ax2.plot(lim, lim, color="0.5", lw=0.8)
        ax2.set_xscale("log")
        ax2.set_yscale("log")
        ax2.set_xlabel(f"{best} MASE (best baseline by mean)")
        ax2.set_ylabel("LSTM MASE")
        ax2.set_title(f"LSTM better on {int((y[ok] < x[ok]).sum())} of {int(ok.sum())} series", fontsize=9)
        ax2.grid(alpha=0.3, which="both")
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)
