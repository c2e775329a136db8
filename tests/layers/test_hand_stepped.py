"""The layer against its own cell stepped by hand (Flax's test pattern): for every preset and option,
stacked and bidirectional, with lengths and initial states, the layer's outputs, final states and
``return_trace`` values (i, f, g, o, c, h / r, z, n, h) equal those of ``LSTMCell``/``GRUCell`` with the
same weights, stepped one sequence and one step at a time in a Python loop. Gradients with respect to
the input and initial states are compared too."""
from __future__ import annotations

import pytest
import torch

import lstmkit
from lstmkit import PRESETS

from .helpers import backends, check_pair, randomize_, step_by_hand

T, N, I, H = 5, 3, 3, 4
LENGTHS = [5, 2, 3]
DT = torch.float64

LSTM_CASES = [(p, {}) for p in PRESETS] + [
    ("V", dict(layer_norm=True)),
    ("CIFG", dict(layer_norm=True, proj_size=0)),
    ("FGR", dict(layer_norm=True)),
    ("NP", dict(gate_activation="hard_sigmoid", input_activation="relu",
                output_activation="softsign")),
    ("NIG", dict(output_activation="identity", proj_size=0)),
]


def _layer_and_inputs(cls, kw, batch_first=False, seed=0):
    torch.manual_seed(seed)
    m = randomize_(cls(I, H, num_layers=2, bidirectional=True, batch_first=batch_first, dtype=DT,
                       **kw).eval(), seed=seed)
    x = torch.randn(T, N, I, dtype=DT, requires_grad=True)
    states = [torch.randn(4, N, s, dtype=DT, requires_grad=True) for s in m.state_sizes]
    return m, x, states


def _check(m, x, states, lengths, backend, batch_first=False):
    hx = tuple(states) if len(states) > 1 else states[0]

    def ours():
        xin = x.transpose(0, 1) if batch_first else x
        with lstmkit.use_backend(backend):
            y, fin, tr = m(xin, hx, lengths=lengths, return_trace=True)
        if batch_first:  # back to time-major: y (N, L, .) and trace (L*D, N, L, .)
            y, tr = y.transpose(0, 1), {k: v.transpose(1, 2) for k, v in tr.items()}
        return y, fin, tr

    def by_hand():
        return step_by_hand(m, x, hx, lengths)

    check_pair(ours, by_hand, leaves=[x, *states], ref_leaves=[x, *states],
               names=["x"] + [f"{n}_0" for n in m.state_names], atol=1e-12, grad_atol=1e-10)


@pytest.mark.parametrize("backend", backends(vanilla=False))
@pytest.mark.parametrize("preset,kw", LSTM_CASES,
                         ids=[p + "".join(f"-{k}={v}" for k, v in kw.items()) for p, kw in LSTM_CASES])
def test_lstm_layer_equals_cell_stepped_by_hand(preset, kw, backend):
    kw = {"proj_size": 2, **kw}  # projection unless a case turns it off
    m, x, states = _layer_and_inputs(lstmkit.LSTM, dict(preset=preset, **kw))
    _check(m, x, states, LENGTHS, backend)


@pytest.mark.parametrize("backend", backends(vanilla=False))
@pytest.mark.parametrize("lengths", [None, LENGTHS], ids=["full", "lengths"])
def test_gru_layer_equals_cell_stepped_by_hand(lengths, backend):
    m, x, states = _layer_and_inputs(lstmkit.GRU, {})
    _check(m, x, states, lengths, backend)


@pytest.mark.parametrize("backend", backends(vanilla=False))
@pytest.mark.parametrize("cls,kw", [(lstmkit.LSTM, dict(preset="CIFG", proj_size=2)),
                                    (lstmkit.GRU, {})], ids=["lstm", "gru"])
def test_trace_batch_first_layout(cls, kw, backend):
    """batch_first: output (N, L, .) and trace (L*D, N, L, .), same numbers."""
    m, x, states = _layer_and_inputs(cls, kw, batch_first=True, seed=1)
    _check(m, x, states, LENGTHS, backend, batch_first=True)


@pytest.mark.parametrize("backend", backends(vanilla=False))
@pytest.mark.parametrize("cls,kw", [(lstmkit.LSTM, dict(preset="V")), (lstmkit.GRU, {})],
                         ids=["lstm", "gru"])
def test_unbatched_trace(cls, kw, backend):
    """Unbatched (L, H_in) input: output (L, D*P), states (L*D, .), trace (L*D, L, .)."""
    m, x, states = _layer_and_inputs(cls, kw, seed=2)
    x1 = x[:, 0].detach().requires_grad_()
    s1 = [s[:, 0].detach().requires_grad_() for s in states]
    hx = tuple(s1) if len(s1) > 1 else s1[0]

    def ours():
        with lstmkit.use_backend(backend):
            return m(x1, hx, return_trace=True)

    def by_hand():
        y, fin, tr = step_by_hand(m, x1.unsqueeze(1), tuple(s.unsqueeze(1) for s in s1))
        return (y.squeeze(1), tuple(f.squeeze(1) for f in fin),
                {k: v.squeeze(2) for k, v in tr.items()})

    check_pair(ours, by_hand, leaves=[x1, *s1], ref_leaves=[x1, *s1], atol=1e-12, grad_atol=1e-10)


@pytest.mark.parametrize("backend", backends(vanilla=False))
def test_lstm_cell_stepped_by_hand_over_a_sequence_matches_layer_without_lengths(backend):
    """The plain case too: one layer, one direction, zero initial state, every step real."""
    torch.manual_seed(3)
    m = randomize_(lstmkit.LSTM(I, H, preset="FGR", dtype=DT).eval(), seed=3)
    x = torch.randn(T, N, I, dtype=DT, requires_grad=True)
    check_pair(lambda: _trace_of(m, x, backend), lambda: step_by_hand(m, x), leaves=[x],
               ref_leaves=[x], atol=1e-12, grad_atol=1e-10)


def _trace_of(m, x, backend):
    with lstmkit.use_backend(backend):
        return m(x, return_trace=True)
