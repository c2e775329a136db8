"""Focused timing of lstmkit's layer-norm cell against its vanilla cell (fused backend), and torch.nn.LSTM.

Interleaved rounds, minima. Usage: python benchmarks/bench_ln.py [rounds]
"""
import sys
import time

import torch
from torch import nn

import lstmkit

torch.set_num_threads(2)
ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 60
SIZES = [(32, 100, 16, 64), (64, 100, 32, 128)]


def contenders(B, T, I, H):
    torch.manual_seed(0)
    x = torch.randn(T, B, I)
    xg = x.clone().requires_grad_()
    native = nn.LSTM(I, H)
    van = lstmkit.LSTM(I, H)
    van.load_state_dict(native.state_dict())
    ln = lstmkit.LSTM(I, H, layer_norm=True)
    out = {}
    for name, m, forced in (("torch", native, False), ("vanilla", van, True), ("layer norm", ln, True)):
        def fwd(m=m, forced=forced):
            with torch.no_grad():
                if forced:
                    with lstmkit.use_backend("fused"):
                        m(x)
                else:
                    m(x)

        def fb(m=m, forced=forced):
            m.zero_grad(set_to_none=True)
            xg.grad = None
            if forced:
                with lstmkit.use_backend("fused"):
                    y, _ = m(xg)
            else:
                y, _ = m(xg)
            y.sum().backward()

        out[name] = (fwd, fb)
    return out


for B, T, I, H in SIZES:
    c = contenders(B, T, I, H)
    best = {(n, k): float("inf") for n in c for k in (0, 1)}
    for f in c.values():
        for k in (0, 1):
            for _ in range(3):
                f[k]()
    for _ in range(ROUNDS):
        for n, f in c.items():
            for k in (0, 1):
                t0 = time.perf_counter()
                f[k]()
                best[n, k] = min(best[n, k], time.perf_counter() - t0)
    for k, mode in ((0, "forward"), (1, "fwd+bwd")):
        v, l, t = best["vanilla", k] * 1e3, best["layer norm", k] * 1e3, best["torch", k] * 1e3
        print(f"{(B, T, I, H)} {mode:8s} torch {t:7.2f}  vanilla {v:7.2f}  LN {l:7.2f}  "
              f"LN/van {l / v:.3f}  van/torch {v / t:.3f}")
