"""M1 yearly: lstmkit's default global LSTM beside naive, ETS, ARIMA and Theta, measured in one run.

    python benchmarks/bench_m1.py                 # seeds 0-4 (one LSTM fit per seed, baselines once)
    python benchmarks/bench_m1.py --seeds 0 --json m1.json

Data: the 181 yearly series of the 1982 M1 competition in Monash .tsf form, shipped in the aeon wheel
(aeon/datasets/data/m1_yearly_dataset/m1_yearly_dataset.tsf). Split: the last 6 values of every
series are held out, horizon 6; MASE scaled by the in-sample one-step naive MAE (season 1), averaged
over the series. Baselines: statsforecast's Naive, AutoETS, AutoARIMA, AutoTheta (season length 1),
fitted per series on the same history. The LSTM is GlobalForecaster(GlobalConfig(horizon=6)) with
every other setting at its default, train.seed = the seed. One thread (torch and BLAS).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402


def m1_path() -> Path:
    import aeon
    return Path(aeon.__file__).parent / "datasets/data/m1_yearly_dataset/m1_yearly_dataset.tsf"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--json", help="also write the numbers to this JSON file")
    ap.add_argument("--no-baselines", action="store_true",
                    help="only the LSTM (e.g. to spread seeds over several processes)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    from lstmkit.data.panel import read_tsf
    from lstmkit.forecasting import GlobalConfig, GlobalForecaster

    panel = read_tsf(m1_path())
    print(f"M1 yearly: {len(panel)} series, lengths {panel.lengths.min()}-{panel.lengths.max()}, "
          f"horizon {panel.horizon}, last {panel.horizon} held out", flush=True)
    baselines, lstm = None, {}
    for k, seed in enumerate(args.seeds):
        cfg = GlobalConfig(horizon=6)
        cfg.train.seed = seed
        start = time.perf_counter()
        gf = GlobalForecaster(cfg).fit(panel)
        fit_s = time.perf_counter() - start
        ev = gf.evaluate(baselines="all" if baselines is None and not args.no_baselines else "none",
                         progress=lambda m: print(f"  {m}", file=sys.stderr, flush=True))
        if baselines is None and not args.no_baselines:
            baselines = {m: v for m, v in ev.summary.items() if m != "LSTM"}
            base_s = {m: s for m, s in ev.seconds.items() if m != "LSTM"}
        lstm[seed] = {**ev.summary["LSTM"], "fit seconds": fit_s}
        print(f"seed {seed}: LSTM mean MASE {ev.summary['LSTM']['mean MASE']:.3f} "
              f"(median {ev.summary['LSTM']['median MASE']:.3f}, sMAPE "
              f"{ev.summary['LSTM']['mean sMAPE']:.2f}), trained in {fit_s:.0f} s", flush=True)
    c = gf.config
    print(f"\nLSTM: {c.layers}x{c.hidden} global, lookback {c.lookback}, scaling {c.scaling}, "
          f"{c.train.restarts} initialisations averaged, {c.train.epochs} epochs")
    print(f"{'model':<22}{'mean MASE':>11}{'median MASE':>13}{'mean sMAPE':>12}{'seconds':>9}")
    if baselines is None:
        baselines, base_s = {}, {}
    for m, v in baselines.items():
        print(f"{m:<22}{v['mean MASE']:>11.3f}{v['median MASE']:>13.3f}{v['mean sMAPE']:>12.2f}"
              f"{base_s.get(m, float('nan')):>9.1f}")
    for seed, v in lstm.items():
        print(f"{'LSTM seed ' + str(seed):<22}{v['mean MASE']:>11.3f}{v['median MASE']:>13.3f}"
              f"{v['mean sMAPE']:>12.2f}{v['fit seconds']:>9.1f}")
    vals = np.array([v["mean MASE"] for v in lstm.values()])
    line = (f"LSTM over {len(vals)} seed(s): mean {vals.mean():.3f}, "
            f"sd {vals.std(ddof=1) if len(vals) > 1 else 0:.3f}, range {vals.min():.3f}-{vals.max():.3f}")
    if baselines:
        best = min(baselines, key=lambda m: baselines[m]["mean MASE"])
        below = int((vals < baselines[best]["mean MASE"]).sum())
        line += (f"; below the best baseline ({best} {baselines[best]['mean MASE']:.3f}) in {below} of "
                 f"{len(vals)}")
    print(line)
    if args.json:
        Path(args.json).write_text(json.dumps({"baselines": baselines, "baseline_seconds": base_s,
                                               "lstm": lstm, "config": c.to_dict()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
