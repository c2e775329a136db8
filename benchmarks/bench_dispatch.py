"""The measurements behind the rules of ``auto`` in ``lstmkit/kernels/dispatch.py``.

    python benchmarks/bench_dispatch.py            # (B, T, I, H) = (128, 110, 2, 32)
    python benchmarks/bench_dispatch.py --size 32,200,8,64

A vanilla ``lstmkit.LSTM`` with per-sequence ``lengths`` (lengths uniform in [T/2, T]), forced onto
torch's kernel (its packed-sequence path) and onto the fused kernel, interleaved, minimum of the
rounds: one training step (forward + backward + Adam) and one forward without grad. Prints times and
the ratio fused / native. Nothing here asserts timing.
"""
from __future__ import annotations

import argparse
import time

import torch

import lstmkit


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="128,110,2,32", help="B,T,I,H")
    ap.add_argument("--reps", type=int, default=7)
    args = ap.parse_args(argv)
    B, T, I, H = (int(v) for v in args.size.split(","))
    torch.manual_seed(0)
    x = torch.randn(B, T, I)
    lengths = torch.randint(T // 2, T + 1, (B,))
    model = lstmkit.LSTM(I, H, batch_first=True)
    opt = torch.optim.Adam(model.parameters(), 1e-3)

    def train(backend):
        with lstmkit.use_backend(backend):
            y, _ = model(x, lengths=lengths)
        opt.zero_grad()
        y.pow(2).mean().backward()
        opt.step()

    def infer(backend):
        with torch.no_grad(), lstmkit.use_backend(backend):
            model(x, lengths=lengths)

    print(f"# vanilla LSTM with lengths, (B, T, I, H) = {(B, T, I, H)}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    print("| mode | native (ms) | fused (ms) | fused / native |\n|---|---:|---:|---:|")
    for mode, fn in (("training step", train), ("forward, no grad", infer)):
        best = {"native": float("inf"), "fused": float("inf")}
        for b in best:
            fn(b)  # warm-up
        for _ in range(args.reps):
            for b in best:
                t = time.perf_counter()
                fn(b)
                best[b] = min(best[b], time.perf_counter() - t)
        print(f"| {mode} | {best['native'] * 1e3:.1f} | {best['fused'] * 1e3:.1f} | "
              f"{best['fused'] / best['native']:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
