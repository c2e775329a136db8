"""Many series from the command line: `lstmkit forecast FILE` where FILE is a long-format CSV
(`unique_id, ds, y`; names set by --id-col, --time-col, --target) or a Monash `.tsf` file trains one
global LSTM (lstmkit.forecasting.GlobalForecaster), scores it per series beside the statsforecast
baselines on the last --holdout steps (--backtest K rolling origins), and writes

    holdout.csv   unique_id, ds, model, forecast, actual (+ window for backtests); ds is the step
                  index for .tsf files without time stamps
    metrics.json  per-model summary (mean / median MASE, sMAPE), coverage of quantile intervals,
                  per-series scores, the resolved config
    series.png    a grid of a few series with their holdout forecasts
    mase.png      per-series MASE of every model, and the LSTM against the best baseline
    loss.png      training loss of every initialisation
    model/        the global model (lstmkit predict --model OUT/model forecasts every series)

Under `torchrun --nproc_per_node N -m lstmkit.cli.main forecast FILE` the training runs data
parallel (DDP, gloo on CPU); process 0 scores and writes.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from lstmkit.data import read_csv
from lstmkit.data.panel import read_tsf, to_panel
from lstmkit.errors import LstmkitError
from lstmkit.training import atomic
from lstmkit.training.checkpoint import json_bytes

_GLOBAL_FLAGS = ("horizon", "lookback", "holdout", "val", "season", "hidden", "layers", "dropout")
_TRAIN_FLAGS = {"epochs": "epochs", "lr": "lr", "head_lr": "head_lr", "batch_size": "batch_size",
                "clip": "clip_norm", "patience": "patience", "restarts": "restarts",
                "combine": "combine", "seed": "seed"}
_SINGLE_ONLY = ("log", "diff", "tbptt", "interval")


def _quantiles(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected quantile levels like '0.05,0.5,0.95', got {text!r}")


def add_panel_options(p: argparse.ArgumentParser) -> None:
    """Flags of the many-series mode (long CSV or .tsf input) and the shared --layer-option."""
    g = p.add_argument_group("many series (a long CSV with an id column, or a .tsf file)")
    g.add_argument("--id-col", help="series id column of a long CSV (default unique_id)")
    g.add_argument("--backtest", type=int, help="rolling origins, each --holdout steps apart (default 1)")
    g.add_argument("--refit", action=argparse.BooleanOptionalAction, default=None,
                   help="retrain the LSTM at every backtest origin (default: train once before the first)")
    g.add_argument("--quantiles", type=_quantiles, help="quantile levels to forecast with the pinball "
                   "loss, e.g. 0.05,0.5,0.95; coverage is reported beside the nominal level")
    g.add_argument("--scaling", choices=("last", "level"), help="per-series normalisation: relative to "
                   "an exponentially smoothed level (ES-RNN; default) or to the last value")
    g.add_argument("--id-embedding", type=int, help="size of a learned series-id embedding (default 0: none)")
    g.add_argument("--layer-option", action="append", metavar="NAME=VALUE",
                   help="any lstmkit.LSTM option, e.g. layer_norm=true, zoneout=0.1, peephole=true "
                   "(repeatable)")


def is_panel_file(path: str, id_col: str | None) -> bool:
    """A .tsf file, or a CSV whose header has the id column."""
    if str(path).lower().endswith(".tsf"):
        return True
    p = Path(path)
    if not p.is_file():
        return False
    try:
        header = pd.read_csv(p, nrows=0).columns
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError):
        return False
    return (id_col or "unique_id") in [str(c).strip() for c in header]


def layer_options(args) -> dict:
    from lstmkit.forecasting.factory import parse_layer_option
    opts = dict(parse_layer_option(t) for t in (getattr(args, "layer_option", None) or []))
    if getattr(args, "preset", None):
        opts["preset"] = args.preset
    return opts


def config_from_args(args):
    from lstmkit.forecasting.global_config import GlobalConfig
    given = [f for f in _SINGLE_ONLY if getattr(args, f, None) is not None]
    if given:
        raise LstmkitError(f"--{given[0].replace('_', '-')} applies to one series; it is not used "
                           f"with many series")
    cfg = GlobalConfig()
    for name in _GLOBAL_FLAGS:
        if getattr(args, name, None) is not None:
            setattr(cfg, name, getattr(args, name))
    for flag, name in _TRAIN_FLAGS.items():
        if getattr(args, flag, None) is not None:
            setattr(cfg.train, name, getattr(args, flag))
    if args.target:
        if len(args.target) != 1:
            raise LstmkitError(f"many series: --target names one value column, got {args.target}")
        cfg.target = args.target[0]
    if args.time_col:
        cfg.time_col = args.time_col
    if args.id_col:
        cfg.id_col = args.id_col
    if args.covariates:
        cfg.covariates = list(args.covariates)
    for name in ("backtest", "refit", "quantiles", "scaling"):
        if getattr(args, name, None) is not None:
            setattr(cfg, name, getattr(args, name))
    if args.id_embedding is not None:
        cfg.id_embedding = args.id_embedding
    cfg.layer_options = layer_options(args)
    return cfg


def _progress(msg: str) -> None:
    print(f"[lstmkit] {msg}", file=sys.stderr, flush=True)


def load_panel(path: str, cfg):
    if str(path).lower().endswith(".tsf"):
        return read_tsf(path)
    return to_panel(read_csv(path), cfg.id_col, cfg.time_col, cfg.target, cfg.covariates)


def write_outputs(gf, ev, out: Path, name: str) -> list[Path]:
    from lstmkit.plotting import plot_loss, plot_mase_comparison, plot_series_grid
    out.mkdir(parents=True, exist_ok=True)
    cfg, panel = gf.config, gf.panel
    paths = []
    if ev is not None:
        rows = ev.rows if ev.windows > 1 else ev.rows.drop(columns="window")
        rows = rows.rename(columns={"unique_id": cfg.id_col}) if cfg.id_col != "unique_id" else rows
        paths.append(atomic.write_text(out / "holdout.csv", rows.to_csv(index=False, float_format="%.6g")))
        per_series = ev.scores.to_dict(orient="list")
        paths.append(atomic.write_bytes(out / "metrics.json", json_bytes(
            {**ev.to_dict(), "per_series": per_series, "config": cfg.to_dict()})))
        last = ev.rows[ev.rows.window == ev.windows - 1]
        pick = _examples(ev)
        items = []
        base = [m for m in ev.summary if m != "LSTM"]
        best = min(base, key=lambda m: ev.summary[m]["mean MASE"]) if base else None
        for i in pick:
            sid = panel.ids[i]
            r = last[last.unique_id == sid]
            n_hist = len(panel.values[i]) - (ev.windows) * cfg.holdout
            show = max(0, n_hist - 4 * cfg.horizon)
            fc = {m: r[r.model == m]["forecast"].to_numpy() for m in ["LSTM", best] if m}
            band = None
            if cfg.levels and len(cfg.levels) >= 3:
                lo, hi = cfg.levels[0], cfg.levels[-1]
                band = (r[r.model == f"LSTM q{lo:g}"]["forecast"].to_numpy(),
                        r[r.model == f"LSTM q{hi:g}"]["forecast"].to_numpy(), f"LSTM {lo:g}-{hi:g}")
            items.append({"name": sid, "x_hist": np.arange(show, n_hist),
                          "history": panel.values[i][show:n_hist],
                          "x_future": np.arange(n_hist, n_hist + cfg.holdout),
                          "truth": r[r.model == "LSTM"]["actual"].to_numpy(), "forecasts": fc,
                          "band": band})
        paths.append(plot_series_grid(out / "series.png", items, title=f"{name}: holdout of a few series"))
        mase = {m: g.sort_values("unique_id")["MASE"].to_numpy()
                for m, g in ev.scores.groupby("model", sort=False)}
        paths.append(plot_mase_comparison(out / "mase.png", mase, title=f"{name}: MASE per series"))
    if gf.result is not None:
        paths.append(plot_loss(out / "loss.png", [r.history for r in gf.result.runs],
                               [r.best_epoch for r in gf.result.runs],
                               title=f"loss per epoch ({len(gf.result.runs)} initialisations)"))
    paths.append(gf.save(out / "model"))
    return paths


def _examples(ev, n: int = 6) -> list[int]:
    """Series shown in the grid: spread over the LSTM's MASE ranking (best, median, worst...)."""
    s = ev.scores[(ev.scores.model == "LSTM") & (ev.scores.window == ev.windows - 1)]
    order = np.argsort(s["MASE"].fillna(np.inf).to_numpy())
    pos = np.unique(np.linspace(0, len(order) - 1, num=min(n, len(order))).astype(int))
    ids = s["unique_id"].to_numpy()[order[pos]]
    index = {name: i for i, name in enumerate(ev.rows["unique_id"].unique())}
    return [index[x] for x in ids]


def run(args: argparse.Namespace) -> int:
    from lstmkit.forecasting import GlobalForecaster
    from lstmkit.training import distributed
    start = time.perf_counter()
    ddp = distributed.init_from_env()
    try:
        cfg = config_from_args(args)
        panel = load_panel(args.csv, cfg)
        main = distributed.is_main()
        if main:
            _progress(f"{len(panel)} series, lengths {panel.lengths.min()}-{panel.lengths.max()}"
                      + (f", {distributed.world_size()} processes (DDP)" if ddp else ""))
        gf = GlobalForecaster(cfg).fit(panel)
        if not main:
            return 0
        ev = None
        if gf.config.holdout > 0:
            ev = gf.evaluate(baselines=args.baselines or "all", progress=_progress)
        paths = write_outputs(gf, ev, Path(args.out), Path(args.csv).name)
        c = gf.config
        print(f"{len(panel)} series; global LSTM {c.layers}x{c.hidden}, lookback {c.lookback}, horizon "
              f"{c.horizon}, scaling {c.scaling}, {len(gf.models)} member(s)"
              + (f"; holdout: last {c.holdout} steps of every series" if c.holdout else
                 "; holdout 0: trained on all the data"))
        if ev is not None:
            print(ev.table())
            print(ev.summary_line())
            for k, v in ev.coverage.items():
                print(f"interval {k}: empirical coverage {100 * v['empirical']:.1f}% "
                      f"(nominal {100 * v['nominal']:.0f}%)")
            for note in ev.notes:
                print(f"note: {note}")
        print("wrote " + ", ".join(str(p) for p in paths) + f"  ({time.perf_counter() - start:.0f} s)")
        return 0
    finally:
        if ddp:
            distributed.shutdown()


def predict(args: argparse.Namespace) -> int:
    """`lstmkit predict --model DIR [FILE]` for a global model: every series, long CSV."""
    from lstmkit.forecasting import GlobalForecaster
    gf = GlobalForecaster.load(args.model)
    data = None
    if args.csv:
        data = load_panel(args.csv, gf.config)
    if args.horizon is not None and not 1 <= args.horizon <= gf.config.horizon:
        raise LstmkitError(f"--horizon must be in 1..{gf.config.horizon} for a global model (its "
                           f"trained horizon), got {args.horizon}")
    table = gf.predict(args.horizon, data=data)
    text = table.to_csv(index=False, float_format="%.6g")
    if args.output:
        atomic.write_text(args.output, text)
        print(f"wrote {len(table)} rows ({table.iloc[:, 0].nunique()} series) to {args.output}",
              file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
