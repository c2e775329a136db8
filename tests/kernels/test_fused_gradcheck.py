"""gradcheck in float64 on the fused path: the hand-written backward through time against finite
differences of the fused forward, for every preset and option (fixed masks), traces included."""
from __future__ import annotations

import pytest
import torch

from lstmkit.cells.lstm import PRESETS, LSTMOptions

from .helpers import gru_case, leaf_fn, lstm_case, needs_fused

pytestmark = needs_fused

SMALL = dict(dtype=torch.float64, T=4, N=3, I=2, H=3)

CASES = {f"preset {k}": (v, {}) for k, v in PRESETS.items()}
CASES.update({
    "layer_norm": (LSTMOptions(layer_norm=True), {}),
    "layer_norm+V+proj": (LSTMOptions(peephole=True, layer_norm=True), {"P": 2}),
    "proj": (LSTMOptions(), {"P": 2}),
    "lengths": (PRESETS["V"], {"lengths": [4, 1, 3]}),
    "zoneout": (PRESETS["CIFG"], {"zoneout_c": True, "zoneout_h": True}),
    "recurrent dropout": (PRESETS["NP"], {"rec": True}),
    "FGR+LN+all masks": (LSTMOptions(peephole=True, gate_recurrence=True, layer_norm=True),
                         {"P": 2, "lengths": [2, 4, 3], "rec": True, "zoneout_c": True,
                          "zoneout_h": True}),
    "softsign/relu": (LSTMOptions(gate_activation="softsign", input_activation="relu"), {}),
})


@pytest.mark.parametrize("name", CASES)
def test_lstm_gradcheck(name):
    opts, kw = CASES[name]
    case = lstm_case(opts, **SMALL, **kw)
    assert torch.autograd.gradcheck(leaf_fn(case, want_trace=True), tuple(case.leaves()),
                                    eps=1e-6, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("kw", [{}, {"lengths": [4, 2, 1], "rec": True, "zoneout_h": True}],
                         ids=["plain", "masks"])
def test_gru_gradcheck(kw):
    case = gru_case(**SMALL, **kw)
    assert torch.autograd.gradcheck(leaf_fn(case, want_trace=True), tuple(case.leaves()),
                                    eps=1e-6, atol=1e-6, rtol=1e-5)
