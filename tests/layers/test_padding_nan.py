"""NaN or inf in padded steps (past `lengths`) reaches no result and no gradient, on every backend:
the gradients equal those with clean (zero) padding, and are all finite."""
import pytest
import torch

import lstmkit
from lstmkit.kernels.dispatch import fused_available

BACKENDS = ["reference", "auto", pytest.param("fused", marks=pytest.mark.skipif(
    not fused_available(), reason="fused kernels not built here"))]
LAYERS = {
    "LSTM": lambda: lstmkit.LSTM(3, 4, num_layers=2, batch_first=True, bidirectional=True),
    "LSTM-V-proj": lambda: lstmkit.LSTM(3, 4, batch_first=True, preset="V", proj_size=2),
    "LSTM-LN": lambda: lstmkit.LSTM(3, 4, batch_first=True, layer_norm=True),
    "GRU": lambda: lstmkit.GRU(3, 4, batch_first=True, bidirectional=True),
    "RNN(cell)": lambda: lstmkit.RNN(lstmkit.LSTMCell(3, 4, preset="CIFG"), batch_first=True),
}


def run(layer, x, lengths):
    x = x.clone().requires_grad_(True)
    out = layer(x, lengths=lengths)
    y = out[0] if isinstance(out, tuple) else out
    loss = y.square().sum()
    if isinstance(out, tuple):
        fin = out[1]
        for s in (fin if isinstance(fin, tuple) else (fin,)):
            loss = loss + s.square().sum()
    loss.backward()
    grads = {n: p.grad.clone() for n, p in layer.named_parameters()}
    layer.zero_grad(set_to_none=True)
    return y.detach(), grads, x.grad


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(LAYERS))
@pytest.mark.parametrize("poison", [float("nan"), float("inf")], ids=["nan", "inf"])
def test_padding_never_reaches_results_or_gradients(backend, name, poison):
    torch.manual_seed(0)
    layer = LAYERS[name]().double()
    lengths = torch.tensor([5, 2, 4])
    clean = torch.randn(3, 5, 3, dtype=torch.float64)
    pad = torch.arange(5)[None, :] >= lengths[:, None]            # (N, L) True at padding
    clean[pad] = 0.0
    dirty = clean.clone()
    dirty[pad] = poison
    with lstmkit.use_backend(backend):
        y0, g0, dx0 = run(layer, clean, lengths)
        y1, g1, dx1 = run(layer, dirty, lengths)
    assert torch.isfinite(y1).all() and torch.equal(y0, y1)
    for n in g0:
        assert torch.isfinite(g1[n]).all(), f"{n}: non-finite gradient from padding"
        torch.testing.assert_close(g1[n], g0[n], rtol=0, atol=1e-12, msg=n)
    assert torch.isfinite(dx1).all() and (dx1[pad] == 0).all()
    torch.testing.assert_close(dx1, dx0, rtol=0, atol=1e-12)
