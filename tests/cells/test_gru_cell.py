"""GRUCell: torch.nn.GRUCell parity (values and gradients), gradcheck, the step contract, errors."""
from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck
from torch.func import functional_call

from lstmkit import GRUCell
from layers.helpers import check_pair, randomize_, twin

N, I, H = 3, 4, 5


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["fp32", "fp64"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("form", ["batched", "batched_hx", "unbatched", "unbatched_hx"])
def test_matches_torch_gru_cell(form, bias, dtype):
    theirs, ours = twin(torch.nn.GRUCell, GRUCell, I, H, bias=bias, dtype=dtype)
    lead = () if form.startswith("unbatched") else (N,)
    x = torch.randn(lead + (I,), dtype=dtype, requires_grad=True)
    h = torch.randn(lead + (H,), dtype=dtype, requires_grad=True) if form.endswith("hx") else None
    names = [n for n, _ in ours.named_parameters()]
    tp = dict(theirs.named_parameters())
    tol = 1e-6 if dtype == torch.float32 else 1e-12
    check_pair(lambda: ours(x, h), lambda: theirs(x, h),
               leaves=[x, *([h] if h is not None else []), *ours.parameters()],
               ref_leaves=[x, *([h] if h is not None else []), *(tp[n] for n in names)], atol=tol)


def test_step_contract():
    cell = randomize_(GRUCell(I, H))
    x = torch.randn(N, I)
    (h0,) = cell.initial_state(N, x)
    assert cell.state_size == (H,) and tuple(h0.shape) == (N, H)
    y, (h1,) = cell.step(x, (h0,))
    (h1b,), gates = cell.gates(x, (h0,))
    assert torch.equal(y, h1) and torch.equal(h1, h1b) and torch.equal(cell(x, h0), h1)
    assert torch.allclose(h1, (1 - gates.z) * gates.n + gates.z * h0, atol=1e-7)


@pytest.mark.parametrize("bias", [True, False])
def test_gru_cell_gradcheck(bias):
    cell = randomize_(GRUCell(2, 3, bias=bias, dtype=torch.float64))
    x = torch.randn(2, 2, dtype=torch.float64, requires_grad=True)
    h = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    names = [n for n, _ in cell.named_parameters()]
    params = [p.detach().clone().requires_grad_() for p in cell.parameters()]
    f = lambda x, h, *ps: functional_call(cell, dict(zip(names, ps)), (x, h))  # noqa: E731
    assert gradcheck(f, (x, h, *params), eps=1e-6, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("call,exc,pattern", [
    (lambda c: c(torch.randn(2, N, I)), ValueError,
     r"^GRUCell: expected input of shape \(N, 4\) or \(4,\), got tensor of shape \(2, 3, 4\)"),
    (lambda c: c(torch.randn(N, 2)), ValueError,
     r"^GRUCell: expected input with 4 features \(input_size\), got 2"),
    (lambda c: c(torch.randn(N, I).double()), TypeError,
     r"^GRUCell: expected input of dtype torch\.float32 .*got torch\.float64"),
    (lambda c: c(torch.empty(N, I, device="meta")), ValueError,
     r"^GRUCell: expected input on device cpu .*got meta"),
    (lambda c: c(torch.randn(N, I), torch.zeros(N, H + 1)), ValueError,
     r"^GRUCell: expected state\[0\] of shape \(3, 5\), got tensor of shape \(3, 6\)"),
    (lambda c: c(torch.randn(N, I), (torch.zeros(N, H),)), TypeError,
     r"^GRUCell: expected state\[0\] to be a torch\.Tensor, got tuple"),
], ids=["rank", "features", "dtype", "device", "state-shape", "state-tuple"])
def test_gru_cell_rejects_bad_input(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call(GRUCell(I, H))


def test_gru_cell_rejects_bad_sizes():
    with pytest.raises(ValueError, match=r"^GRUCell: expected ints input_size > 0 and hidden_size > 0, "
                                         r"got 4, 0"):
        GRUCell(I, 0)
    with pytest.raises(ValueError, match=r"^GRUCell: expected ints .*got 4\.0, 5"):
        GRUCell(4.0, H)
