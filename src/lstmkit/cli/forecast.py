"""`lstmkit forecast [CSV]`: train, compare with baselines on the holdout, write plots, metrics and
the model. Without a CSV it runs on the bundled airline passengers data (1949-1960)."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from lstmkit.data import airline_passengers, read_csv
from lstmkit.errors import LstmkitError
from lstmkit.forecasting import ForecastConfig, Forecaster
from lstmkit.forecasting.report import Evaluation
from lstmkit.plotting import plot_forecast, plot_loss
from lstmkit.training import atomic
from lstmkit.training.checkpoint import json_bytes

from . import panel


def _columns(text: str) -> list[str]:
    return [c.strip() for c in text.split(",") if c.strip()]


def _lags(text: str) -> list[int]:
    if text.lower() in ("none", "0", ""):
        return []
    try:
        return [int(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected lags like '12' or '1,12' or 'none', got {text!r}")


def add_model_options(p: argparse.ArgumentParser) -> None:
    """Flags shared by `forecast` and `demo`; each maps onto a ForecastConfig / TrainConfig field."""
    d = ForecastConfig()
    t = d.train
    g = p.add_argument_group("data")
    g.add_argument("--target", type=_columns, help="column(s) to forecast, comma-separated "
                   "(default: first numeric column)")
    g.add_argument("--covariates", type=_columns, help="extra input column(s), comma-separated")
    g.add_argument("--time-col", help="time column (default: found automatically)")
    g = p.add_argument_group("windows and split")
    g.add_argument("--lookback", type=int, help=f"steps the LSTM reads (default {d.lookback})")
    g.add_argument("--horizon", type=int, help=f"steps forecast at once (default {d.horizon})")
    g.add_argument("--holdout", type=int, help="last steps held out for the test (default: horizon)")
    g.add_argument("--val", type=int, help="validation steps before the holdout (default: horizon)")
    g.add_argument("--season", type=int, help="season length (default: from the time column)")
    g = p.add_argument_group("transforms")
    g.add_argument("--log", action=argparse.BooleanOptionalAction, default=None,
                   help="log-transform the targets (default: when all are positive)")
    g.add_argument("--diff", type=_lags, help="differencing lags, e.g. '1,12' or 'none' "
                   "(default: 1 and the season)")
    g = p.add_argument_group("model")
    g.add_argument("--layers", type=int, help=f"stacked LSTM layers (default {d.layers})")
    g.add_argument("--hidden", type=int, help=f"hidden size (default {d.hidden})")
    g.add_argument("--preset", help="LSTM variant from lstmkit.PRESETS, e.g. V, NP, CIFG (default: vanilla)")
    g.add_argument("--dropout", type=float, help=f"dropout (default {d.dropout})")
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=int, help=f"most epochs per run (default {t.epochs})")
    g.add_argument("--lr", type=float, help=f"Adam learning rate of the LSTM (default {t.lr})")
    g.add_argument("--head-lr", type=float, help=f"learning rate of the output layer (default {t.head_lr})")
    g.add_argument("--batch-size", type=int, help=f"windows per step (default {t.batch_size})")
    g.add_argument("--clip", type=float, help=f"gradient norm clip (default {t.clip_norm})")
    g.add_argument("--patience", type=int, help=f"early-stopping patience in epochs (default {t.patience})")
    g.add_argument("--restarts", type=int, help=f"initialisations to train (default {t.restarts})")
    g.add_argument("--combine", choices=("mean", "best"),
                   help=f"average all runs or keep the best (default {t.combine})")
    g.add_argument("--seed", type=int, help=f"random seed (default {t.seed})")
    g.add_argument("--tbptt", type=int, help="train statefully on the whole series in chunks of this "
                   "many steps (truncated backpropagation through time)")
    g.add_argument("--interval", type=float, help=f"prediction interval coverage (default {d.interval})")
    g.add_argument("--threads", type=int, default=1, help="CPU threads for torch (default 1: small "
                   "recurrent models run fastest on one thread, and do not slow down on a busy machine)")


def set_threads(n: int) -> None:
    if n < 1:
        raise LstmkitError(f"--threads must be >= 1, got {n}")
    torch.set_num_threads(n)


_CONFIG_FLAGS = ("target", "covariates", "time_col", "lookback", "horizon", "holdout", "val", "season",
                 "log", "diff", "layers", "hidden", "preset", "dropout", "interval")
_TRAIN_FLAGS = {"epochs": "epochs", "lr": "lr", "head_lr": "head_lr", "batch_size": "batch_size",
                "clip": "clip_norm", "patience": "patience", "restarts": "restarts",
                "combine": "combine", "seed": "seed", "tbptt": "tbptt"}


def config_from_args(args: argparse.Namespace, base: ForecastConfig | None = None) -> ForecastConfig:
    """Start from `base` (default ForecastConfig()) and set every flag that was given."""
    cfg = base or ForecastConfig()
    for name in _CONFIG_FLAGS:
        value = getattr(args, name, None)
        if value is not None:
            setattr(cfg, name, value)
    for flag, field_name in _TRAIN_FLAGS.items():
        value = getattr(args, flag, None)
        if value is not None:
            setattr(cfg.train, field_name, value)
    if getattr(args, "tbptt", None):
        cfg.stateful = True
    if getattr(args, "layer_option", None):
        from lstmkit.forecasting.factory import parse_layer_option
        cfg.layer_options = dict(parse_layer_option(t) for t in args.layer_option)
    return cfg


def add_parser(sub) -> None:
    p = sub.add_parser("forecast", help="train an LSTM forecaster and compare it with baselines",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("csv", nargs="?", help="CSV file, one row per time step (default: bundled airline "
                   "passengers 1949-1960); a long CSV with an id column (unique_id, ds, y) or a Monash "
                   ".tsf file trains one global model on many series")
    p.add_argument("--out", default="forecast_out", help="output folder (default: forecast_out)")
    add_model_options(p)
    panel.add_panel_options(p)
    p.set_defaults(run=run)


def write_outputs(fc: Forecaster, ev: Evaluation, out: Path, title: str) -> list[Path]:
    """forecast.png, loss.png, metrics.json and model/ in `out`; returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    h, n = len(ev.history), len(ev.truth)
    if ev.time is not None:
        x_hist, x_future = ev.time[:h], ev.time[h:h + n]
    else:
        x_hist, x_future = list(range(h)), list(range(h, h + n))
    paths = [
        plot_forecast(out / "forecast.png", x_hist, ev.history, x_future, ev.forecasts, ev.truth,
                      ev.lower, ev.upper, names=ev.targets, title=title,
                      interval_label=f"{100 * ev.interval:.0f}% interval",
                      show_last=max(4 * ev.season, 4 * n, 48)),
        plot_loss(out / "loss.png", [r.history for r in fc.result.runs],
                  [r.best_epoch for r in fc.result.runs],
                  title=f"loss per epoch ({len(fc.result.runs)} initialisations; dot = kept weights)"),
        atomic.write_bytes(out / "metrics.json", json_bytes({**ev.to_dict(), "config": fc.config.to_dict()})),
        fc.save(out / "model"),
    ]
    return paths


def report(fc: Forecaster, ev: Evaluation, paths: list[Path], seconds: float) -> None:
    cfg = fc.config
    print(f"holdout: last {len(ev.truth)} steps of {', '.join(cfg.target)}; LSTM {cfg.layers}x{cfg.hidden} "
          f"({cfg.preset or 'vanilla'}), lookback {cfg.lookback}, horizon {cfg.horizon}, "
          f"log={cfg.log}, diff={cfg.diff}")
    print(ev.table())
    print(ev.summary())
    for note in ev.notes:
        print(f"note: {note}")
    print("wrote " + ", ".join(str(p) for p in paths) + f"  ({seconds:.0f} s)")


def run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    set_threads(args.threads)
    if args.csv and panel.is_panel_file(args.csv, args.id_col):
        return panel.run(args)                   # many series: one global model
    if args.csv:
        data, name = read_csv(args.csv), Path(args.csv).name
    else:
        data, name = airline_passengers(), "airline passengers 1949-1960 (thousands)"
    fc = Forecaster(config_from_args(args)).fit(data)
    ev = fc.evaluate()
    paths = write_outputs(fc, ev, Path(args.out), title=f"{name}: holdout forecasts")
    report(fc, ev, paths, time.perf_counter() - start)
    return 0
