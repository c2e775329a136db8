"""`lstmkit forecast [CSV]`: train, compare with baselines on the holdout, write plots, metrics and
the model. Without a CSV it runs on the bundled airline passengers data (1949-1960)."""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import torch

from lstmkit.data import airline_passengers, read_csv
from lstmkit.errors import LstmkitError
from lstmkit.forecasting import ForecastConfig, Forecaster
from lstmkit.forecasting.report import Evaluation
from lstmkit.plotting import PNG_SOFTWARE, plot_forecast, plot_loss
from lstmkit.training import atomic
from lstmkit.training.checkpoint import is_bundle, json_bytes
from lstmkit.training.progress import phase

OUTPUTS = ("forecast.png", "loss.png", "metrics.json")   # besides model/
MIN_FREE_BYTES = 32 << 20                                  # refuse to start with less free space

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
    g.add_argument("--batch-size", type=int, help=f"windows per step; 0 = all windows in one step (default {t.batch_size})")
    g.add_argument("--clip", type=float, help=f"gradient norm clip (default {t.clip_norm})")
    g.add_argument("--patience", type=int, help=f"early-stopping patience in epochs (default {t.patience})")
    g.add_argument("--restarts", type=int, help=f"initialisations to train (default {t.restarts})")
    g.add_argument("--combine", choices=("mean", "best"),
                   help=f"average all runs or keep the best (default {t.combine})")
    g.add_argument("--seed", type=int, help=f"random seed (default {t.seed})")
    g.add_argument("--tbptt", type=int, help="train statefully on the whole series in chunks of this "
                   "many steps (truncated backpropagation through time; 0 = off, the default)")
    g.add_argument("--interval", type=float, help=f"prediction interval coverage (default {d.interval})")
    g.add_argument("--baselines", choices=("all", "fast", "none"), default="all",
                   help="baselines scored beside the LSTM: all (naive, seasonal naive, ARIMA and "
                   "Holt-Winters, the last two fitted on at most the last 1000 steps (or 6 seasons)), fast (naive and "
                   "seasonal naive), none (default all); many series: statsforecast's naive, seasonal "
                   "naive, ETS, ARIMA, Theta, and fast leaves out ARIMA")
    g.add_argument("--threads", type=int, default=1, help="CPU threads for torch and for numpy's BLAS "
                   "(default 1: small recurrent models run fastest on one thread, and do not slow down "
                   "on a busy machine)")


_BLAS_LIMIT = []        # keeps threadpoolctl's limit alive for the rest of the process


def set_threads(n: int) -> None:
    """Use `n` CPU threads in torch and in the BLAS / OpenMP libraries numpy and statsmodels call."""
    if n < 1 or n > 1024:
        raise LstmkitError(f"--threads must be from 1 to 1024, got {n}")
    torch.set_num_threads(n)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:                # optional: without it only torch is limited
        return
    _BLAS_LIMIT[:] = [threadpool_limits(limits=n)]


def _is_ours(path: Path) -> bool:
    """Whether an existing output file was written by lstmkit (so it may be replaced)."""
    try:
        if path.suffix == ".png":
            with open(path, "rb") as f:
                return f"Software\x00{PNG_SOFTWARE}".encode() in f.read(1 << 16)
        if path.suffix == ".json":
            if path.stat().st_size > 64 << 20:
                return False
            doc = json.loads(path.read_bytes())
            return isinstance(doc, dict) and "config" in doc and ("summary" in doc or "accuracy" in doc)
        if path.suffix == ".csv":  # lstmkit classify's predictions.csv
            with open(path, "rb") as f:
                head = f.read(1 << 10).split(b"\n", 1)[0]
            return head.startswith((b"id,label,predicted", b"id,step,label,predicted"))
    except (OSError, ValueError, UnicodeDecodeError, RecursionError):
        return False
    return False


def check_output_folder(out: Path, outputs=OUTPUTS, command: str = "forecast") -> None:
    """Before any training: `out` must be a folder lstmkit may write (or create), with free space,
    whose existing outputs (model/ and `outputs`: figures, metrics.json...) were written by lstmkit."""
    if out.exists() and not out.is_dir():
        raise LstmkitError(f"--out {out} is a file; expected a folder (new, or written by lstmkit)")
    if out.is_dir():
        model = out / "model"
        if model.is_symlink() or (model.exists() and not model.is_dir()):
            raise LstmkitError(f"--out {out}: {model} exists and is not a model folder; choose another --out")
        if model.is_dir() and any(model.iterdir()) and not is_bundle(model):
            raise LstmkitError(f"--out {out}: {model} holds files lstmkit did not write; choose another "
                               f"--out, or move them away")
        for name in outputs:
            p = out / name
            if p.is_symlink() or (p.exists() and (not p.is_file() or not _is_ours(p))):
                raise LstmkitError(f"--out {out}: {p} exists and was not written by lstmkit {command}; "
                                   f"choose another --out, or move it away")
    base = out
    while not base.exists():
        if base.parent == base:
            break
        base = base.parent
    if not base.is_dir():
        raise LstmkitError(f"--out {out}: {base} is a file, so the folder cannot be created")
    try:
        with tempfile.TemporaryFile(dir=base):
            pass
        free = shutil.disk_usage(base).free
    except OSError as e:
        raise LstmkitError(f"--out {out}: cannot write in {base} ({e.strerror or e})") from None
    if free < MIN_FREE_BYTES:
        raise LstmkitError(f"--out {out}: only {free >> 20} MiB free in {base}; need at least "
                           f"{MIN_FREE_BYTES >> 20} MiB")


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


def _writing(out: Path):
    """OSError while writing outputs (disk full, permissions) -> one-line LstmkitError."""
    class _Guard:
        def __enter__(self):
            return self

        def __exit__(self, kind, e, tb):
            if isinstance(e, OSError):
                where = f" {e.filename}" if e.filename else ""
                raise LstmkitError(f"cannot write the outputs in {out}:{where} {e.strerror or e}; files "
                                   f"already there are unchanged (every write is atomic)") from None
            return False
    return _Guard()


def write_outputs(fc: Forecaster, ev: Evaluation, out: Path, title: str) -> list[Path]:
    """forecast.png, loss.png, metrics.json and model/ in `out`; returns the paths written."""
    with _writing(out), phase(f"writing {out}"):
        out.mkdir(parents=True, exist_ok=True)
        return _write_outputs(fc, ev, out, title)


def write_deployment(fc: Forecaster, out: Path, title: str) -> list[Path]:
    """Without a holdout: model/, loss.png and forecast.png of the steps after the data."""
    cfg, series = fc.config, fc.series
    table = fc.predict()
    y = series.values(cfg.target)
    if series.time is not None:
        x_hist, x_future = series.time, fc._future_index(series, cfg.horizon)
    else:
        x_hist, x_future = list(range(len(y))), list(range(len(y), len(y) + cfg.horizon))
    mean = table[cfg.target].to_numpy()
    lower = table[[f"{t}_lower" for t in cfg.target]].to_numpy()
    upper = table[[f"{t}_upper" for t in cfg.target]].to_numpy()
    with _writing(out), phase(f"writing {out}"):
        out.mkdir(parents=True, exist_ok=True)
        return [
            plot_forecast(out / "forecast.png", x_hist, y, x_future, {"LSTM": mean}, None, lower, upper,
                          names=cfg.target, title=title, interval_label=f"{100 * cfg.interval:.0f}% interval",
                          show_last=max(4 * cfg.season, 4 * cfg.horizon, 48)),
            plot_loss(out / "loss.png", [r.history for r in fc.result.runs],
                      [r.best_epoch for r in fc.result.runs],
                      title=f"loss per epoch ({len(fc.result.runs)} initialisations; dot = kept weights)"),
            fc.save(out / "model"),
        ]


def finish(fc: Forecaster, out: Path, title: str, baselines: str, start: float) -> None:
    """Score on the holdout and write everything, or (holdout 0) save the model for deployment."""
    if fc.config.holdout == 0:
        paths = write_deployment(fc, out, title.replace("holdout forecasts", "forecast"))
        print(f"no holdout: trained on all {len(fc.series)} steps, nothing left to score; the model is "
              f"saved for deployment (lstmkit predict --model {out / 'model'})")
        print("wrote " + ", ".join(str(p) for p in paths) + f"  ({time.perf_counter() - start:.0f} s)")
        return
    with phase("scoring the holdout"):
        ev = fc.evaluate(baselines=baselines)
    paths = write_outputs(fc, ev, out, title=title)
    report(fc, ev, paths, time.perf_counter() - start)


def _write_outputs(fc: Forecaster, ev: Evaluation, out: Path, title: str) -> list[Path]:
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
    out = Path(args.out)
    check_output_folder(out)
    if args.csv and panel.is_panel_file(args.csv, args.id_col):
        return panel.run(args)                   # many series: one global model
    if args.csv and args.id_col:
        raise LstmkitError(f"--id-col {args.id_col!r}: {args.csv} has no such column (a long-format "
                           "file needs its series id column; leave --id-col out for one series)")
    if args.csv:
        data, name = read_csv(args.csv), Path(args.csv).name
    else:
        data, name = airline_passengers(), "airline passengers 1949-1960 (thousands)"
    fc = Forecaster(config_from_args(args)).fit(data)
    finish(fc, out, f"{name}: holdout forecasts", args.baselines, start)
    return 0
