"""JapaneseVowels (UEA archive: 9 speakers, 12 LPC cepstrum channels, lengths 7-29, 270 train / 370
test sequences), read from the files the `aeon` wheel ships, classified by `lstmkit classify` with its
DEFAULT settings for seeds 0-4, beside the 1-NN DTW baseline of the same run.

    python benchmarks/classify_japanese_vowels.py [--seeds 0,1,2,3,4] [--out jv_runs] [--threads 1]

Each seed runs exactly `lstmkit classify JapaneseVowels_TRAIN.ts --test JapaneseVowels_TEST.ts --seed S
--out OUT/seed_S`; the table is printed as Markdown (docs/classification.md records it). Target:
LSTM test accuracy >= 0.98 for every seed.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from lstmkit.cli.main import main as lstmkit_main


def data_files() -> tuple[str, str]:
    try:
        import aeon
    except ImportError:
        sys.exit("this benchmark reads JapaneseVowels from the aeon wheel: pip install aeon")
    folder = Path(aeon.__file__).parent / "datasets" / "data" / "JapaneseVowels"
    return str(folder / "JapaneseVowels_TRAIN.ts"), str(folder / "JapaneseVowels_TEST.ts")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--out", default="jv_runs")
    ap.add_argument("--threads", default="1")
    args = ap.parse_args()
    train, test = data_files()
    rows = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        out = Path(args.out) / f"seed_{seed}"
        code = lstmkit_main(["classify", train, "--test", test, "--seed", str(seed), "--out", str(out),
                             "--threads", args.threads])
        if code:
            return code
        rows.append((seed, json.loads((out / "metrics.json").read_text())))
    print()
    print("| seed | LSTM accuracy | LSTM balanced accuracy | 1-NN DTW accuracy | training (s) | run (s) |")
    print("|---:|---:|---:|---:|---:|---:|")
    for seed, m in rows:
        print(f"| {seed} | {m['accuracy']:.4f} | {m['balanced_accuracy']:.4f} | "
              f"{m['baselines']['1-NN DTW']['accuracy']:.4f} | {m['train_seconds']:.0f} | {m['seconds']:.0f} |")
    accs = [m["accuracy"] for _, m in rows]
    print(f"\nmin {min(accs):.4f}, mean {sum(accs) / len(accs):.4f}; target >= 0.98 for every seed: "
          f"{'met' if min(accs) >= 0.98 else 'NOT met'}  (cpu: {os.cpu_count()} cores, threads {args.threads})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
