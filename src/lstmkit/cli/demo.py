"""`lstmkit demo sine|seasonal|prices`: the notes' examples on generated data, through the same
pipeline as `lstmkit forecast` (same flags, same outputs).

    sine      seed 001's practical: continue the damped sine 0.5 + 0.5 sin(2 pi i / P) exp(-d i),
              102 steps, P = 20, d = 0.05 (change with --length, --period, --decay); the last 20
              steps are the test, forecast 10 at a time
    seasonal  seed 004's ice-cream sales: monthly, lowest in December, highest in June, 10 years
    prices    seed 004's "tomorrow's price from the last 30 days" on a random walk, scored one day
              ahead over the last 60 days; on a random walk the honest winner is usually naive
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from lstmkit.data import damped_sine, random_walk_prices, seasonal_sales
from lstmkit.forecasting import ForecastConfig, Forecaster

from .forecast import add_model_options, check_output_folder, config_from_args, finish, set_threads


def _sine(args):
    cfg = ForecastConfig(target=["value"], lookback=20, horizon=10, holdout=20, val=10,
                         season=args.period, log=False, diff=[], hidden=16)
    data = damped_sine(args.length, args.period, args.decay)
    return data, cfg, (f"damped sine (seed 001: length {args.length}, period {args.period}, "
                       f"decay {args.decay}): test forecast vs truth")


def _seasonal(args):
    # additive season and trend: no log; first differences leave the 12-month pattern to the LSTM
    cfg = ForecastConfig(log=False, diff=[1])
    return seasonal_sales(years=10), cfg, "ice-cream sales (seed 004): holdout forecasts"


def _prices(args):
    cfg = ForecastConfig(lookback=30, horizon=1, holdout=60, val=60, season=1, log=True, diff=[1])
    cfg.train.restarts, cfg.train.batch_size, cfg.train.epochs, cfg.train.patience = 3, 64, 100, 20
    return random_walk_prices(), cfg, "random-walk prices (seed 004): one day ahead"


DEMOS = {"sine": _sine, "seasonal": _seasonal, "prices": _prices}


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="run the notes' examples on generated data", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", choices=sorted(DEMOS), help="which example")
    p.add_argument("--out", help="output folder (default: forecast_out/demo_NAME)")
    g = p.add_argument_group("sine wave (demo sine only)")
    g.add_argument("--length", type=int, default=102, help="steps (default 102)")
    g.add_argument("--period", type=int, default=20, help="period in steps (default 20)")
    g.add_argument("--decay", type=float, default=0.05, help="damping per step (default 0.05)")
    add_model_options(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    set_threads(args.threads)
    out = Path(args.out or f"forecast_out/demo_{args.name}")
    check_output_folder(out)
    data, base, title = DEMOS[args.name](args)
    fc = Forecaster(config_from_args(args, base)).fit(data)
    finish(fc, out, title, args.baselines, start)
    return 0
