"""`lstmkit demo sine|seasonal|prices`: the notes' examples on generated data, through the same
pipeline as `lstmkit forecast` (same flags, same outputs).

    sine      seed 001's practical: continue the damped sine 0.5 + 0.5 sin(2 pi i / 20) exp(-0.05 i),
              102 steps; the last 20 are the test, forecast 10 at a time
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
from lstmkit.forecasting.config import default_training

from .forecast import add_model_options, config_from_args, report, write_outputs


def _sine():
    cfg = ForecastConfig(target=["value"], lookback=20, horizon=10, holdout=20, val=10, season=20,
                         log=False, diff=[],
                         hidden=16, train=default_training())
    return damped_sine(102, 20, 0.05), cfg, "damped sine (seed 001): test forecast vs truth"


def _seasonal():
    # additive season and trend: no log; first differences leave the 12-month pattern to the LSTM
    cfg = ForecastConfig(log=False, diff=[1])
    return seasonal_sales(years=10), cfg, "ice-cream sales (seed 004): holdout forecasts"


def _prices():
    cfg = ForecastConfig(lookback=30, horizon=1, holdout=60, val=60, season=1, log=True, diff=[1],
                         train=default_training())
    cfg.train.restarts, cfg.train.batch_size, cfg.train.epochs, cfg.train.patience = 3, 64, 100, 20
    return random_walk_prices(), cfg, "random-walk prices (seed 004): one day ahead"


DEMOS = {"sine": _sine, "seasonal": _seasonal, "prices": _prices}


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="run the notes' examples on generated data", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", choices=sorted(DEMOS), help="which example")
    p.add_argument("--out", help="output folder (default: forecast_out/demo_NAME)")
    add_model_options(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    data, base, title = DEMOS[args.name]()
    fc = Forecaster(config_from_args(args, base)).fit(data)
    ev = fc.evaluate()
    out = Path(args.out or f"forecast_out/demo_{args.name}")
    paths = write_outputs(fc, ev, out, title=title)
    report(fc, ev, paths, time.perf_counter() - start)
    return 0
