"""Every bad input fails early with ValueError/TypeError naming the layer, what it expected and what
arrived (STYLE rule 10). Each case asserts on all three parts of the message."""
from __future__ import annotations

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

import lstmkit

T, N, I, H = 6, 4, 3, 5


def lstm(**kw):
    return lstmkit.LSTM(I, H, 2, bidirectional=True, **kw)  # L*D = 4


def gru(**kw):
    return lstmkit.GRU(I, H, **kw)


X = torch.randn(T, N, I)
S = lambda *shape: torch.zeros(*shape)  # noqa: E731

FORWARD_ERRORS = [
    # (id, layer factory, call, exception, message pattern)
    ("rank-4", lstm, lambda m: m(torch.randn(1, T, N, I)), ValueError,
     r"^LSTM: expected a 3-D input \(L, N, H_in\) or a 2-D unbatched input \(L, H_in\), "
     r"got tensor of shape \(1, 6, 4, 3\)"),
    ("rank-1", gru, lambda m: m(torch.randn(I)), ValueError,
     r"^GRU: expected a 3-D input .* got tensor of shape \(3,\)"),
    ("rank-batch_first", lambda: lstmkit.LSTM(I, H, batch_first=True),
     lambda m: m(torch.randn(2, 2, 2, I)), ValueError, r"^LSTM: expected a 3-D input \(N, L, H_in\)"),
    ("features", lstm, lambda m: m(torch.randn(T, N, I + 1)), ValueError,
     r"^LSTM: expected input with 3 features \(input_size\), got 4"),
    ("features-gru-unbatched", gru, lambda m: m(torch.randn(T, 7)), ValueError,
     r"^GRU: expected input with 3 features \(input_size\), got 7"),
    ("dtype", lstm, lambda m: m(X.double()), TypeError,
     r"^LSTM: expected input of dtype torch\.float32 .*got torch\.float64"),
    ("int-dtype", gru, lambda m: m(X.long()), TypeError,
     r"^GRU: expected input of dtype torch\.float32 .*got torch\.int64"),
    ("not-a-tensor", lstm, lambda m: m(X.tolist()), TypeError,
     r"^LSTM: expected input to be a Tensor or PackedSequence, got list"),
    ("device", lstm, lambda m: m(torch.empty(T, N, I, device="meta")), ValueError,
     r"^LSTM: expected input on device cpu .*got meta"),
    ("h0-device", lstm, lambda m: m(X, (torch.empty(4, N, H, device="meta"), S(4, N, H))),
     ValueError, r"^LSTM: expected h_0 on device cpu .*got meta"),
    ("empty", lstm, lambda m: m(torch.randn(0, N, I)), ValueError,
     r"^LSTM: expected a sequence length L >= 1, got tensor of shape \(0, 4, 3\)"),
    ("h0-shape", lstm, lambda m: m(X, (S(4, N, H + 1), S(4, N, H))), ValueError,
     r"^LSTM: expected h_0 of shape \(4, 4, 5\) .*got tensor of shape \(4, 4, 6\)"),
    ("c0-shape", lstm, lambda m: m(X, (S(4, N, H), S(2, N, H))), ValueError,
     r"^LSTM: expected c_0 of shape \(4, 4, 5\) .*got tensor of shape \(2, 4, 5\)"),
    ("h0-proj-shape", lambda: lstmkit.LSTM(I, H, proj_size=2),
     lambda m: m(X, (S(1, N, H), S(1, N, H))), ValueError,
     r"^LSTM: expected h_0 of shape \(1, 4, 2\) \(num_layers \* num_directions, N, P\), "
     r"got tensor of shape \(1, 4, 5\)"),
    ("h0-unbatched", lstm, lambda m: m(X[:, 0], (S(4, N, H), S(4, N, H))), ValueError,
     r"^LSTM: expected h_0 of shape \(4, 5\) .*got tensor of shape \(4, 4, 5\)"),
    ("h0-dtype", lstm, lambda m: m(X, (S(4, N, H).double(), S(4, N, H))), TypeError,
     r"^LSTM: expected h_0 of dtype torch\.float32 .*got torch\.float64"),
    ("hx-not-tuple", lstm, lambda m: m(X, S(4, N, H)), TypeError,
     r"^LSTM: expected hx to be a tuple \(h, c\), got Tensor"),
    ("hx-one-tuple", lstm, lambda m: m(X, (S(4, N, H),)), TypeError,
     r"^LSTM: expected hx to be a tuple \(h, c\), got tuple of length 1"),
    ("gru-hx-tuple", gru, lambda m: m(X, (S(1, N, H),)), TypeError,
     r"^GRU: expected hx to be a Tensor h_0, got tuple"),
    ("gru-h0-shape", gru, lambda m: m(X, S(2, N, H)), ValueError,
     r"^GRU: expected h_0 of shape \(1, 4, 5\) \(num_layers \* num_directions, N, H\), "
     r"got tensor of shape \(2, 4, 5\)"),
    ("lengths-zero", lstm, lambda m: m(X, lengths=[6, 0, 3, 2]), ValueError,
     r"^LSTM: expected every length >= 1, got \[6, 0, 3, 2\]"),
    ("lengths-too-long", gru, lambda m: m(X, lengths=[7, 1, 3, 2]), ValueError,
     r"^GRU: expected every length <= the sequence length 6, got \[7, 1, 3, 2\]"),
    ("lengths-shape", lstm, lambda m: m(X, lengths=[6, 1, 3]), ValueError,
     r"^LSTM: expected lengths of shape \(4,\) \(one per sequence\), got shape \(3,\)"),
    ("lengths-2d", lstm, lambda m: m(X, lengths=torch.ones(N, 1, dtype=torch.long)), ValueError,
     r"^LSTM: expected lengths of shape \(4,\) .*got shape \(4, 1\)"),
    ("lengths-float", lstm, lambda m: m(X, lengths=torch.tensor([6.0, 1, 3, 2])), TypeError,
     r"^LSTM: expected integer lengths, got dtype torch\.float32"),
    ("lengths-bool", gru, lambda m: m(X, lengths=torch.ones(N, dtype=torch.bool)), TypeError,
     r"^GRU: expected integer lengths, got dtype torch\.bool"),
    ("lengths-str", lstm, lambda m: m(X, lengths="abcd"), TypeError,
     r"^LSTM: expected lengths as a 1-D integer tensor or sequence of ints, got str"),
    ("lengths-unbatched", lstm, lambda m: m(X[:, 0], lengths=[T]), ValueError,
     r"^LSTM: lengths apply to batched input; got an unbatched \(L, H_in\) input"),
    ("lengths-and-packed", lstm,
     lambda m: m(pack_padded_sequence(X, [6, 5, 3, 1]), lengths=[6, 5, 3, 1]), ValueError,
     r"^LSTM: lengths must not be given with a PackedSequence input"),
    ("packed-dtype", gru, lambda m: m(pack_padded_sequence(X.double(), [6, 5, 3, 1])), TypeError,
     r"^GRU: expected input\.data of dtype torch\.float32 .*got torch\.float64"),
    ("native-forced-for-a-variant", lambda: lstmkit.LSTM(I, H, preset="V"),
     lambda m: _forced_native(m), ValueError,
     r"^LSTM: backend 'native' was forced but torch's kernel cannot compute this call: variant"),
    ("native-forced-for-a-trace", gru, lambda m: _forced_native(m, return_trace=True), ValueError,
     r"^GRU: backend 'native' was forced .*a gate trace was asked for"),
]


def _forced_native(m, **kw):
    with lstmkit.use_backend("native"):
        return m(X, **kw)


@pytest.mark.parametrize("make,call,exc,pattern", [c[1:] for c in FORWARD_ERRORS],
                         ids=[c[0] for c in FORWARD_ERRORS])
def test_forward_rejects_bad_input(make, call, exc, pattern):
    m = make()
    with pytest.raises(exc, match=pattern):
        call(m)


CONSTRUCTOR_ERRORS = [
    ("unknown-preset", lambda: lstmkit.LSTM(I, H, preset="XYZ"), ValueError,
     r"^LSTM: unknown preset 'XYZ'; expected one of \['V', 'NIG', .*'FGR'\]"),
    ("preset-not-str", lambda: lstmkit.LSTM(I, H, preset=3), ValueError,
     r"^LSTM: unknown preset 3; expected one of"),
    ("unknown-option", lambda: lstmkit.LSTM(I, H, peepholes=True), TypeError,
     r"^LSTM: unknown argument\(s\) \['peepholes'\]; LSTM options are \[.*'peephole'.*\]"),
    ("options-type", lambda: lstmkit.LSTM(I, H, options={"peephole": True}), TypeError,
     r"^LSTM: options must be an LSTMOptions, got dict"),
    ("coupled-without-input-gate", lambda: lstmkit.LSTM(I, H, coupled=True, input_gate=False),
     ValueError, r"^LSTM: coupled=True derives f from i, so it needs input_gate=True and "
                 r"forget_gate=True; got input_gate=False, forget_gate=True"),
    ("CIFG-preset-without-input-gate", lambda: lstmkit.LSTM(I, H, preset="CIFG", input_gate=False),
     ValueError, r"^LSTM: coupled=True .*got input_gate=False"),
    ("coupled-without-forget-gate", lambda: lstmkit.LSTM(I, H, coupled=True, forget_gate=False),
     ValueError, r"^LSTM: coupled=True .*got input_gate=True, forget_gate=False"),
    ("unknown-activation", lambda: lstmkit.LSTM(I, H, gate_activation="swish"), ValueError,
     r"^LSTM: unknown activation 'swish'; expected one of \[.*'sigmoid'.*\]"),
    ("proj-equal-hidden", lambda: lstmkit.LSTM(I, H, proj_size=H), ValueError,
     r"^LSTM: expected 0 <= proj_size < hidden_size \(5\), got 5"),
    ("proj-negative", lambda: lstmkit.LSTM(I, H, proj_size=-1), ValueError,
     r"^LSTM: expected 0 <= proj_size < hidden_size \(5\), got -1"),
    ("proj-float", lambda: lstmkit.LSTM(I, H, proj_size=2.0), ValueError,
     r"^LSTM: expected 0 <= proj_size < hidden_size \(5\), got 2\.0"),
    ("proj-bool", lambda: lstmkit.LSTM(I, H, proj_size=True), ValueError,
     r"^LSTM: expected 0 <= proj_size < hidden_size \(5\), got True"),
    ("dropout-one", lambda: lstmkit.LSTM(I, H, 2, dropout=1.0), ValueError,
     r"^LSTM: expected dropout in \[0, 1\), got 1\.0"),
    ("dropout-negative", lambda: lstmkit.GRU(I, H, 2, dropout=-0.1), ValueError,
     r"^GRU: expected dropout in \[0, 1\), got -0\.1"),
    ("dropout-str", lambda: lstmkit.LSTM(I, H, 2, dropout="0.1"), ValueError,
     r"^LSTM: expected dropout in \[0, 1\), got '0\.1'"),
    ("recurrent-dropout", lambda: lstmkit.LSTM(I, H, recurrent_dropout=1.5), ValueError,
     r"^LSTM: expected recurrent_dropout in \[0, 1\), got 1\.5"),
    ("zoneout-one", lambda: lstmkit.LSTM(I, H, zoneout=1.0), ValueError,
     r"^LSTM: expected zoneout probabilities in \[0, 1\), got 1\.0"),
    ("zoneout-pair-out-of-range", lambda: lstmkit.LSTM(I, H, zoneout=(0.1, -0.2)), ValueError,
     r"^LSTM: expected zoneout probabilities in \[0, 1\), got \(0\.1, -0\.2\)"),
    ("zoneout-triple", lambda: lstmkit.LSTM(I, H, zoneout=(0.1, 0.2, 0.3)), ValueError,
     r"^LSTM: expected zoneout as one probability or a \(cell, hidden\) pair in \[0, 1\), "
     r"got \(0\.1, 0\.2, 0\.3\)"),
    ("zoneout-str", lambda: lstmkit.LSTM(I, H, zoneout="0.1"), ValueError,
     r"^LSTM: expected zoneout as one probability or a \(cell, hidden\) pair .*got '0\.1'"),
    ("gru-zoneout-pair", lambda: lstmkit.GRU(I, H, zoneout=(0.1, 0.1)), ValueError,
     r"^GRU: expected zoneout to be one probability \(GRU has no cell state\), got \(0\.1, 0\.1\)"),
    ("num-layers-zero", lambda: lstmkit.LSTM(I, H, 0), ValueError,
     r"^LSTM: expected num_layers to be a positive int, got 0"),
    ("hidden-float", lambda: lstmkit.GRU(I, 5.0), ValueError,
     r"^GRU: expected hidden_size to be a positive int, got 5\.0"),
    ("input-size-zero", lambda: lstmkit.LSTM(0, H), ValueError,
     r"^LSTM: expected input_size to be a positive int, got 0"),
]


@pytest.mark.parametrize("make,exc,pattern", [c[1:] for c in CONSTRUCTOR_ERRORS],
                         ids=[c[0] for c in CONSTRUCTOR_ERRORS])
def test_constructor_rejects_bad_arguments(make, exc, pattern):
    with pytest.raises(exc, match=pattern):
        make()


def test_lowercase_preset_is_accepted():
    assert lstmkit.LSTM(I, H, preset="cifg").options == lstmkit.PRESETS["CIFG"]
