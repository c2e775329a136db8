"""Peephole, coupled-gate and activation variants against an independent implementation: the ONNX
``LSTM`` operator as run by onnxruntime (gate order i, o, f, c; peephole input P = [p_i, p_o, p_f]).

ONNX's ``input_forget=1`` (checked below, onnxruntime 1.31): the forget gate is ``f = 1 - i``, where
``i`` already includes its peephole term; the f rows of W, R, B and the peephole p_f are ignored.
That is exactly lstmkit's CIFG (``coupled=True``), so CIFG is compared with it directly.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import lstmkit

from .helpers import backends, check_pair, onnx_inputs, onnx_lstm, randomize_

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

T, N, I, H = 6, 3, 3, 4

# (id, layer keywords, input_forget)
VARIANTS = [
    ("V", dict(preset="V"), 0),
    ("CIFG", dict(preset="CIFG"), 1),
    ("NIAF", dict(preset="NIAF"), 0),
    ("NOAF", dict(preset="NOAF"), 0),
    ("NP", dict(preset="NP"), 0),
    ("V-hard_sigmoid", dict(preset="V", gate_activation="hard_sigmoid"), 0),
    ("V-relu-softsign", dict(preset="V", input_activation="relu", output_activation="softsign"), 0),
    ("CIFG-hard_sigmoid-identity", dict(preset="CIFG", gate_activation="hard_sigmoid",
                                        input_activation="identity"), 1),
    ("V-nobias", dict(preset="V", bias=False), 0),
]


def _run_both(m, x, h0, c0, lengths, input_forget, backend):
    """(ours, onnx) as (y (T, N, D*H), h_n, c_n) numpy-comparable tuples."""
    o = m.options
    Y, Yh, Yc = onnx_lstm(x.numpy(), **onnx_inputs(m), H0=h0.numpy(), C0=c0.numpy(),
                          seq_lens=lengths, input_forget=input_forget,
                          activations=(o.gate_activation, o.input_activation, o.output_activation))
    D = m.num_directions
    want = (torch.from_numpy(Y).transpose(1, 2).reshape(T, N, D * H), torch.from_numpy(Yh),
            torch.from_numpy(Yc))
    with lstmkit.use_backend(backend):
        got = m(x, (h0, c0), lengths=lengths)
    return got, want


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("lengths", [None, [4, 6, 1]], ids=["full", "lengths"])
@pytest.mark.parametrize("name,kw,input_forget", VARIANTS, ids=[v[0] for v in VARIANTS])
def test_lstm_matches_onnx(name, kw, input_forget, lengths, bidirectional):
    kw = dict(kw)
    bias = kw.pop("bias", True)
    m = randomize_(lstmkit.LSTM(I, H, bias=bias, bidirectional=bidirectional, **kw).eval())
    D = m.num_directions
    x, h0, c0 = torch.randn(T, N, I), torch.randn(D, N, H), torch.randn(D, N, H)
    for backend in backends(vanilla=m.options.is_vanilla):
        got, want = _run_both(m, x, h0, c0, lengths, input_forget, backend)
        check_pair(lambda: got, lambda: want, atol=1e-5)
    if lengths is not None:  # padded steps are zero in both
        assert float(got[0][4:, 0].detach().abs().max()) == 0.0


def test_onnx_input_forget_is_one_minus_i_and_ignores_forget_weights():
    """What onnxruntime's input_forget means, established on the operator itself."""
    m = randomize_(lstmkit.LSTM(I, H, preset="V").eval())
    x, h0, c0 = torch.randn(T, N, I), torch.randn(1, N, H), torch.randn(1, N, H)
    inp = onnx_inputs(m)
    base = onnx_lstm(x.numpy(), **inp, H0=h0.numpy(), C0=c0.numpy(), input_forget=1)
    # scramble everything that feeds f: its rows of W, R, both biases (ONNX order i, o, f, c), p_f
    rng = np.random.default_rng(0)
    other = {k: v.copy() for k, v in inp.items()}
    for k in ("W", "R"):
        other[k][0, 2 * H:3 * H] = rng.normal(size=other[k][0, 2 * H:3 * H].shape)
    for off in (0, 4 * H):
        other["B"][0, off + 2 * H:off + 3 * H] = rng.normal(size=H)
    other["P"][0, 2 * H:3 * H] = rng.normal(size=H)
    scrambled = onnx_lstm(x.numpy(), **other, H0=h0.numpy(), C0=c0.numpy(), input_forget=1)
    for a, b in zip(base, scrambled):
        np.testing.assert_array_equal(a, b)
    # and it is lstmkit's CIFG with the same weights (f = 1 - i, i with its peephole)
    cifg = lstmkit.LSTM(I, H, preset="CIFG").eval()
    cifg.load_state_dict(m.state_dict())
    with lstmkit.use_backend("reference"):
        y, (h, c) = cifg(x, (h0, c0))
    np.testing.assert_allclose(base[0][:, 0], y.detach().numpy(), atol=1e-5, rtol=0)
    np.testing.assert_allclose(base[2], c.detach().numpy(), atol=1e-5, rtol=0)
    # without the flag the operator is version V, which differs from CIFG
    plain = onnx_lstm(x.numpy(), **inp, H0=h0.numpy(), C0=c0.numpy(), input_forget=0)
    assert np.abs(plain[0] - base[0]).max() > 1e-2
