"""Figures for lstmkit's tasks, drawn with matplotlib's object API on the Agg canvas (no pyplot, no
display needed) and written atomically as PNG.

    plot_forecast   history, holdout truth, each model's forecast and a prediction interval
    plot_loss       training and validation loss per epoch for every run
    plot_confusion  a classifier's confusion matrix
    plot_gates      a recurrent layer's gates and cell state over one sequence (the gate viewer)
    plot_attention  an encoder-decoder's attention weights (target steps x source steps)
    gates_html      one self-contained HTML page (PNG images embedded as base64)
"""
from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from lstmkit.training import atomic

PNG_SOFTWARE = "lstmkit"

# One fixed colour per model so every plot reads the same way.
COLORS = {"LSTM": "#d62728", "naive": "#7f7f7f", "seasonal naive": "#bcbd22", "ARIMA": "#1f77b4",
          "Holt-Winters": "#2ca02c"}
_CYCLE = ["#9467bd", "#8c564b", "#e377c2", "#17becf", "#ff7f0e"]


def save_figure(fig: Figure, path: str | Path, dpi: int = 120) -> Path:
    FigureCanvasAgg(fig)
    # the Software tag lets lstmkit recognise its own figures before it replaces one (cli/forecast.py)
    return atomic.write_with(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format="png",
                                                         metadata={"Software": PNG_SOFTWARE}))


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
              best_epochs: Optional[Sequence[int]] = None, title: str = "training loss",
              ylabel: str = "loss (MSE, scaled)") -> Path:
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
    ax.set_ylabel(ylabel)
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


# What each traced quantity is called, in the order the gate viewer draws it (the notes' order: the
# forget gate first, then input and output gates, the candidate, and the cell state they produce).
GATE_ROWS = {
    "lstm": [("f", "forget gate f"), ("i", "input gate i"), ("o", "output gate o"),
             ("g", "candidate g"), ("c", "cell state c"), ("h", "hidden state h")],
    "gru": [("r", "reset gate r"), ("z", "update gate z"), ("n", "candidate n"),
            ("h", "hidden state h")],
}


def gate_trace(layer, x, layer_index: int = 0, direction: int = 0) -> dict[str, np.ndarray]:
    """Run `layer` (lstmkit.LSTM or GRU) over one sequence x (1, L, H_in), batch-first whatever the
    layer's own batch_first, in eval mode without gradients; returns {name: (L, H)} numpy arrays of
    the traced gates, cell state and hidden state of one layer and direction (keys as in
    GATE_ROWS)."""
    import torch

    kind = getattr(layer, "cell_kind", "")
    if kind not in GATE_ROWS:
        raise TypeError(f"plot_gates: expected an lstmkit.LSTM or lstmkit.GRU layer, got "
                        f"{type(layer).__name__}")
    if not isinstance(x, torch.Tensor) or x.dim() != 3 or x.shape[0] != 1:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"plot_gates: expected one input sequence x of shape (1, L, H_in), got {got}")
    if not 0 <= layer_index < layer.num_layers or not 0 <= direction < layer.num_directions:
        raise ValueError(f"plot_gates: layer_index must be in [0, {layer.num_layers}) and direction in "
                         f"[0, {layer.num_directions}), got {layer_index} and {direction}")
    was_training = layer.training
    layer.eval()
    try:
        with torch.no_grad():
            xin = x if layer.batch_first else x.transpose(0, 1)
            *_, trace = layer(xin, return_trace=True)
    finally:
        layer.train(was_training)
    k = layer_index * layer.num_directions + direction
    out = {}
    for name, _ in GATE_ROWS[kind]:
        v = trace[name][k]                                    # (N, L, F) or (L, N, F)
        v = v[0] if layer.batch_first else v[:, 0]
        out[name] = v.detach().cpu().double().numpy()         # (L, F)
    return out


def plot_gates(layer, x, path: str | Path | None = None, step_labels: Optional[Sequence[str]] = None,
               input_labels: Optional[Sequence[str]] = None, layer_index: int = 0, direction: int = 0,
               max_units: int = 64, title: str = ""):
    """The gate viewer: for one input sequence, every gate, the candidate and the cell state over time
    as heat maps (units x steps), with the input drawn above on the same time axis.

    Args:
        layer: an lstmkit.LSTM (rows: forget f, input i, output o, candidate g, cell state c, hidden
            h) or lstmkit.GRU (reset r, update z, candidate n, hidden h). The values come from the
            layer's own ``return_trace=True`` (the equations in lstmkit.cells), in eval mode.
        x: (1, L, H_in), batch-first, exactly what the layer receives (after any embedding/scaling).
        path: write a PNG there and return the path; None returns the matplotlib Figure.
        step_labels: L labels of the time axis (dates, characters...); default 0..L-1.
        input_labels: H_in names of the input features (default x0, x1, ...).
        layer_index, direction: which layer (0 = the one reading x) and direction to show.
        max_units: show at most this many units (the first ones) per heat map.
    Gates use a fixed 0..1 colour scale (0 = closed); candidate, cell and hidden state a symmetric
    scale around 0. Raises TypeError for another layer type and ValueError for a badly shaped x.
    """
    tr = gate_trace(layer, x, layer_index, direction)
    rows = GATE_ROWS[layer.cell_kind]
    xs = x[0].detach().cpu().double().numpy()                 # (L, H_in)
    L = xs.shape[0]
    labels = [str(s) for s in step_labels] if step_labels is not None else [str(t) for t in range(L)]
    if len(labels) != L:
        raise ValueError(f"plot_gates: expected {L} step labels (one per step of x), got {len(labels)}")
    units = min(max_units, tr[rows[0][0]].shape[1])
    heights = [1.6] + [max(1.2, 0.09 * units + 0.6)] * len(rows)
    fig = Figure(figsize=(min(3 + 0.16 * L, 24), sum(heights) + 0.8), layout="constrained")
    axes = fig.subplots(len(rows) + 1, 1, sharex=True, gridspec_kw={"height_ratios": heights})
    ax = axes[0]
    steps = np.arange(L)
    if xs.shape[1] <= 4:
        for j in range(xs.shape[1]):
            name = input_labels[j] if input_labels is not None else f"x{j}"
            ax.plot(steps, xs[:, j], lw=1.3, marker="o", ms=2.5, label=name)
        ax.legend(fontsize=7, frameon=False, loc="upper left", ncol=4)
        ax.set_xlim(-0.5, L - 0.5)
        ax.grid(alpha=0.3)
    else:
        lim = np.abs(xs).max() or 1.0
        ax.imshow(xs.T[:max_units], aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim,
                  interpolation="nearest")
    ax.set_ylabel("input x", fontsize=8)
    ax.set_title(title or f"{type(layer).__name__} layer {layer_index}"
                 + (" (reverse)" if direction else "") + ": gates over one sequence", fontsize=10)
    for ax, (key, name) in zip(axes[1:], rows):
        v = tr[key][:, :units].T                              # (units, L)
        if key in ("f", "i", "o", "r", "z"):
            im = ax.imshow(v, aspect="auto", cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
        else:
            lim = float(np.abs(v).max()) or 1.0
            im = ax.imshow(v, aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim,
                           interpolation="nearest")
        ax.set_ylabel(f"{name}\nunit", fontsize=8)
        fig.colorbar(im, ax=ax, fraction=0.025, pad=0.01)
    last = axes[-1]
    every = max(1, L // 40)
    last.set_xticks(steps[::every])
    last.set_xticklabels([_show(s) for s in labels[::every]], fontsize=7,
                         rotation=90 if max(len(s) for s in labels) > 2 else 0)
    last.set_xlabel("step")
    if path is None:
        FigureCanvasAgg(fig)
        return fig
    return save_figure(fig, path)


def _show(label: str) -> str:
    """A step label as it can be read on an axis (spaces and newlines of text made visible)."""
    return {" ": "\u2423", "\n": "\u21b5", "\t": "\u21e5", "": "\u2205"}.get(label, label)


def plot_attention(path: str | Path, weights: np.ndarray, source: Sequence[str], target: Sequence[str],
                   title: str = "") -> Path:
    """Attention weights (T_out, T_src) as a heat map: one row per produced token, one column per
    source token; each row sums to one over the real source steps."""
    w = np.asarray(weights, dtype=np.float64)
    fig = Figure(figsize=(min(2 + 0.3 * w.shape[1], 20), min(1.5 + 0.3 * w.shape[0], 20)),
                 layout="constrained")
    ax = fig.subplots()
    im = ax.imshow(w, aspect="auto", cmap="Greys", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks(range(len(source)))
    ax.set_xticklabels([_show(s) for s in source], fontsize=8)
    ax.set_yticks(range(len(target)))
    ax.set_yticklabels([_show(s) for s in target], fontsize=8)
    ax.set_xlabel("source")
    ax.set_ylabel("output")
    if title:
        ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.04)
    return save_figure(fig, path)


def gates_html(path: str | Path, title: str, sections: Sequence[tuple[str, str, bytes]]) -> Path:
    """One self-contained HTML page: a title, then per section a heading, a paragraph of text and a PNG
    (given as bytes, embedded as base64), so the page opens anywhere without other files."""
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             "<style>body{font-family:sans-serif;max-width:1200px;margin:2em auto;line-height:1.45}"
             "img{max-width:100%;border:1px solid #ddd}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>"]
    for heading, text, png in sections:
        data = base64.b64encode(png).decode("ascii")
        parts.append(f"<h2>{html.escape(heading)}</h2><p>{html.escape(text)}</p>"
                     f"<img alt='{html.escape(heading)}' src='data:image/png;base64,{data}'>")
    parts.append("</body></html>\n")
    return atomic.write_text(path, "".join(parts))


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
