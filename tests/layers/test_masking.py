"""Masking invariants as properties (hypothesis), for every LSTM preset and the GRU, stacked and
bidirectional, on every backend that computes the variant:

1. padding never changes a result: garbage written after each sequence's length leaves the outputs at
   real steps, the final states (and the trace at real steps) unchanged;
2. outputs (and trace values) at padded steps are exactly zero;
3. the final states and real-step outputs equal those of running each sequence alone, unpadded.
"""
from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lstmkit
from lstmkit import PRESETS

from .helpers import assert_close, backends, randomize_

I, H = 2, 3
DT = torch.float64
TOL = 1e-12

CASES = [("LSTM", dict(preset=p)) for p in PRESETS] + [
    ("LSTM", dict(preset="CIFG", layer_norm=True, proj_size=2)),
    ("GRU", {}),
]
PARAMS = [pytest.param(cls, kw, b, id=f"{cls}-" + "-".join(f"{v}" for v in kw.values()) + f"-{b}")
          for cls, kw in CASES
          for b in backends(vanilla=cls == "GRU" or kw == {"preset": "NP"})]


@st.composite
def batches(draw):
    N = draw(st.integers(1, 3))
    T = draw(st.integers(1, 5))
    lengths = draw(st.lists(st.integers(1, T), min_size=N, max_size=N))
    return dict(N=N, T=T, lengths=lengths, bidirectional=draw(st.booleans()),
                num_layers=draw(st.integers(1, 2)), batch_first=draw(st.booleans()),
                seed=draw(st.integers(0, 2**16)), garbage=draw(st.sampled_from([1.0, 1e3, -7.0])),
                with_hx=draw(st.booleans()))


def _time_major(t, batch_first):
    return t.transpose(0, 1) if batch_first else t


@pytest.mark.parametrize("cls,kw,backend", PARAMS)
@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(b=batches())
def test_padding_never_changes_a_result(cls, kw, backend, b):
    torch.manual_seed(b["seed"])
    layer_cls = getattr(lstmkit, cls)
    m = layer_cls(I, H, num_layers=b["num_layers"], bidirectional=b["bidirectional"],
                  batch_first=b["batch_first"], dtype=DT, **kw).eval()
    randomize_(m, seed=b["seed"])
    N, T, lengths, bf = b["N"], b["T"], b["lengths"], b["batch_first"]
    LD = m.num_layers * m.num_directions
    x = torch.randn(T, N, I, dtype=DT)  # time-major here; transposed for batch_first
    pad = torch.arange(T).unsqueeze(1) >= torch.tensor(lengths).unsqueeze(0)  # (T, N)
    x_garbage = torch.where(pad.unsqueeze(-1), torch.full_like(x, b["garbage"]) + x * 50, x)
    x_zeros = torch.where(pad.unsqueeze(-1), torch.zeros_like(x), x)
    states = [torch.randn(LD, N, s, dtype=DT) for s in m.state_sizes] if b["with_hx"] else None

    def hx_of(sl=slice(None)):
        if states is None:
            return None
        s = tuple(t[:, sl] for t in states)
        return s if len(s) > 1 else s[0]

    trace = backend != "native"

    def run(xin, hx, lengths):
        with lstmkit.use_backend(backend):
            out = m(_time_major(xin, bf), hx, lengths=lengths, return_trace=trace)
        y, fin = _time_major(out[0], bf), out[1]
        fin = fin if isinstance(fin, tuple) else (fin,)
        tr = {k: (v.transpose(1, 2) if bf else v) for k, v in out[2].items()} if trace else {}
        return y, fin, tr

    y0, fin0, tr0 = run(x_zeros, hx_of(), lengths)
    y1, fin1, tr1 = run(x_garbage, hx_of(), lengths)
    real = ~pad
    # 1. garbage after the lengths changes nothing
    assert_close(y1, y0, "outputs with garbage padding", TOL)
    for k, (a, c) in enumerate(zip(fin1, fin0)):
        assert_close(a, c, f"final state {k} with garbage padding", TOL)
    for k in tr0:
        assert_close(tr1[k], tr0[k], f"trace {k} with garbage padding", TOL)
    # 2. padded steps are exactly zero
    assert int(torch.count_nonzero(y1[pad])) == 0, "outputs nonzero at padding"
    for k, v in tr1.items():
        assert int(torch.count_nonzero(v[:, pad])) == 0, f"trace {k} nonzero at padding"
    # 3. each sequence alone, unpadded
    for n, L in enumerate(lengths):
        yn, finn, trn = run(x_garbage[:L, n:n + 1], hx_of(slice(n, n + 1)), None)
        assert_close(y1[:L, n], yn[:, 0], f"outputs of sequence {n} alone", TOL)
        for k, (a, c) in enumerate(zip(fin1, finn)):
            assert_close(a[:, n], c[:, 0], f"final state {k} of sequence {n} alone", TOL)
        for k in tr1:
            assert_close(tr1[k][:, :L, n], trn[k][:, :, 0], f"trace {k} of sequence {n} alone", TOL)
    assert bool(real.any())
