"""onnxruntime speed of lstmkit layers exported with ``torch.onnx.export(..., dynamo=True)``.

    python benchmarks/bench_onnx.py                   # (N, T, I, H) = (32, 100, 16, 64), 1 thread
    python benchmarks/bench_onnx.py --size 8,200,8,128 --threads 2

Each variant is exported once with dynamic batch and time axes and run by onnxruntime (CPU) on a
new length; the ONNX ``LSTM`` node (vanilla, V) against the ``Scan`` of the reference step (NOG,
layer norm). Prints the median of the rounds and the ratio to ``torch.nn.LSTM`` in eager PyTorch
(no grad), both with the same number of threads. Nothing here asserts timing.
"""
from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
import warnings

import torch

import lstmkit

VARIANTS = {"vanilla (LSTM node)": dict(), "V (LSTM node)": dict(preset="V"),
            "NOG (Scan)": dict(preset="NOG"), "layer norm (Scan)": dict(layer_norm=True)}


def _median(fn, reps: int) -> float:
    fn()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="32,100,16,64", help="N,T,I,H")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=11)
    args = ap.parse_args(argv)
    import onnxruntime as ort

    N, T, I, H = (int(v) for v in args.size.split(","))
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    x = torch.randn(T, N, I)
    ref = torch.nn.LSTM(I, H).eval()
    with torch.no_grad():
        base = _median(lambda: ref(x), args.reps)
    print(f"(N, T, I, H) = ({N}, {T}, {I}, {H}), {args.threads} thread(s); "
          f"torch.nn.LSTM eager {base * 1e3:.2f} ms")
    logging.disable(logging.WARNING)  # the exporter's progress lines
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    dims = ({0: torch.export.Dim("T", min=1), 1: torch.export.Dim("N", min=1)},)
    with tempfile.TemporaryDirectory() as tmp:
        for name, kw in VARIANTS.items():
            m = lstmkit.LSTM(I, H, **kw).eval()
            path = os.path.join(tmp, "m.onnx")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(m, (torch.randn(7, 2, I),), path, dynamo=True,
                                  dynamic_shapes=dims)
            sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
            feeds = {sess.get_inputs()[0].name: x.numpy()}
            t = _median(lambda: sess.run(None, feeds), args.reps)
            with torch.no_grad():
                e = _median(lambda: m(x), args.reps)
            print(f"{name:22s} onnxruntime {t * 1e3:7.2f} ms ({t / base:5.2f}x torch.nn.LSTM)"
                  f"   lstmkit eager {e * 1e3:7.2f} ms ({e / base:5.2f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
