"""``torch.autograd.gradcheck`` in float64 on the reference backend (and fused when built): the
analytic gradients of every preset and option, with respect to the input, the initial states and every
parameter, equal finite differences. Recurrent dropout and zoneout are checked with fixed masks
through the per-direction kernels, and through the layer in eval mode (their expectation)."""
from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck
from torch.func import functional_call

import lstmkit
from lstmkit import PRESETS
from lstmkit.kernels import reference

from .helpers import backends, randomize_

T, N, I, H = 3, 2, 2, 3
DT = torch.float64
BACKENDS = backends(vanilla=False)


def gradcheck_layer(m, *, lengths=None, batch_first=False, unbatched=False, backend="reference",
                    fast=False, seed=0):
    """gradcheck of (output, final states) w.r.t. x, every initial state and every parameter."""
    torch.manual_seed(seed)
    randomize_(m, scale=0.7, seed=seed)
    LD = m.num_layers * m.num_directions
    shape = (T, I) if unbatched else ((N, T, I) if batch_first else (T, N, I))
    x = torch.randn(shape, dtype=DT, requires_grad=True)
    lead = (LD,) if unbatched else (LD, N)
    states = [torch.randn(lead + (s,), dtype=DT, requires_grad=True) for s in m.state_sizes]
    names = [n for n, _ in m.named_parameters()]
    params = [p.detach().clone().requires_grad_() for p in m.parameters()]

    def f(x, *rest):
        st, ps = rest[: len(states)], rest[len(states):]
        hx = tuple(st) if len(st) > 1 else st[0]
        with lstmkit.use_backend(backend):
            y, fin = functional_call(m, dict(zip(names, ps)), (x, hx), {"lengths": lengths})
        return (y, *(fin if isinstance(fin, tuple) else (fin,)))

    assert gradcheck(f, (x, *states, *params), eps=1e-6, atol=1e-6, rtol=1e-4, fast_mode=fast)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("preset", list(PRESETS))
def test_gradcheck_every_preset(preset, backend):
    gradcheck_layer(lstmkit.LSTM(I, H, preset=preset, dtype=DT), lengths=[3, 2], backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("preset", ["V", "CIFG", "FGR", "NIG"])
def test_gradcheck_stacked_bidirectional(preset, backend):
    m = lstmkit.LSTM(I, H, num_layers=2, bidirectional=True, proj_size=2, preset=preset, dtype=DT)
    gradcheck_layer(m, lengths=[2, 3], backend=backend, fast=True)


OPTIONS = [
    dict(layer_norm=True),
    dict(preset="V", layer_norm=True, proj_size=2),
    dict(proj_size=1),
    dict(gate_activation="hard_sigmoid"),
    dict(input_activation="relu", output_activation="softsign"),
    dict(input_activation="identity", output_activation="identity"),
    dict(preset="CIFG", gate_activation="softsign"),
    dict(preset="NOG", bias=False),
    dict(peephole=True, coupled=True, gate_recurrence=True, layer_norm=True),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kw", OPTIONS, ids=lambda kw: "-".join(f"{k}={v}" for k, v in kw.items()))
def test_gradcheck_options(kw, backend):
    gradcheck_layer(lstmkit.LSTM(I, H, dtype=DT, **kw), lengths=[1, 3], backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("form", ["batch_first", "unbatched", "no_lengths"])
def test_gradcheck_input_forms(form, backend):
    m = lstmkit.LSTM(I, H, preset="V", batch_first=form == "batch_first", dtype=DT)
    gradcheck_layer(m, lengths=[2, 3] if form == "batch_first" else None,
                    batch_first=form == "batch_first", unbatched=form == "unbatched",
                    backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_gradcheck_gru(bidirectional, backend):
    gradcheck_layer(lstmkit.GRU(I, H, bidirectional=bidirectional, dtype=DT), lengths=[3, 1],
                    backend=backend, fast=bidirectional)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cls,kw", [(lstmkit.LSTM, dict(preset="V", zoneout=(0.3, 0.6),
                                                        recurrent_dropout=0.4)),
                                    (lstmkit.GRU, dict(zoneout=0.5, recurrent_dropout=0.4))],
                         ids=["lstm", "gru"])
def test_gradcheck_eval_mode_zoneout_and_recurrent_dropout(cls, kw, backend):
    """In eval, zoneout is its expectation and recurrent dropout is off: deterministic, smooth."""
    gradcheck_layer(cls(I, H, dtype=DT, **kw).eval(), lengths=[3, 2], backend=backend)


def _fixed_masks(P, seed=0):
    g = torch.Generator().manual_seed(seed)
    rec = (torch.rand(N, P, generator=g, dtype=DT) > 0.4).to(DT) / 0.6  # scaled by 1/(1-p)
    zc = (torch.rand(T, N, H, generator=g, dtype=DT) < 0.3).to(DT)  # 1 = keep previous
    zh = (torch.rand(T, N, P, generator=g, dtype=DT) < 0.5).to(DT)
    assert 0 < float(zc.sum()) < zc.numel() and 0 < float(zh.sum()) < zh.numel()
    return rec, zc, zh


@pytest.mark.parametrize("preset", ["V", "CIFG", "FGR"])
@pytest.mark.parametrize("proj_size", [0, 2])
def test_gradcheck_lstm_direction_with_fixed_masks(preset, proj_size):
    """Training-mode recurrent dropout and zoneout, with the random masks fixed, on the reference."""
    cell = randomize_(lstmkit.LSTMCell(I, H, proj_size=proj_size, preset=preset, dtype=DT))
    P = proj_size or H
    rec, zc, zh = _fixed_masks(P)
    x = torch.randn(T, N, I, dtype=DT, requires_grad=True)
    h0 = torch.randn(N, P, dtype=DT, requires_grad=True)
    c0 = torch.randn(N, H, dtype=DT, requires_grad=True)
    names = [n for n, _ in cell.named_parameters()]
    params = [p.detach().clone().requires_grad_() for p in cell.parameters()]

    def f(x, h0, c0, *ps):
        p = lstmkit.cells.LSTMParams(**dict(zip(names, ps)))
        y, h, c, _ = reference.lstm_direction(x, h0, c0, p, cell.options, torch.tensor([3, 2]),
                                              rec, zc, zh)
        return y, h, c

    assert gradcheck(f, (x, h0, c0, *params), eps=1e-6, atol=1e-6, rtol=1e-4)


def test_gradcheck_gru_direction_with_fixed_masks():
    cell = randomize_(lstmkit.GRUCell(I, H, dtype=DT))
    rec, _, zh = _fixed_masks(H)
    x = torch.randn(T, N, I, dtype=DT, requires_grad=True)
    h0 = torch.randn(N, H, dtype=DT, requires_grad=True)
    names = [n for n, _ in cell.named_parameters()]
    params = [p.detach().clone().requires_grad_() for p in cell.parameters()]

    def f(x, h0, *ps):
        p = lstmkit.cells.GRUParams(**dict(zip(names, ps)))
        y, h, _ = reference.gru_direction(x, h0, p, torch.tensor([2, 3]), rec, zh)
        return y, h

    assert gradcheck(f, (x, h0, *params), eps=1e-6, atol=1e-6, rtol=1e-4)
