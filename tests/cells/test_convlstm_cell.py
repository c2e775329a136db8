"""ConvLSTMCell: one step against the gate equations written out with separate convolutions, against
torch.nn.LSTMCell at every pixel for a 1x1 kernel, gradcheck in float64, and its errors."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from lstmkit.cells import ConvLSTMCell

C, K, HH, WW, N = 2, 3, 5, 6, 2  # input channels, hidden channels, frame height, width, batch



def reference_step(cell, x, h, c):
    """Shi et al. (2015) with W_x and W_h as separate convolutions, explicit symmetric padding."""
    Cin, hid = cell.input_size, cell.hidden_size
    kh, kw = cell.kernel_size
    pad = (kh // 2, kw // 2)  # "same" for odd kernels
    W = cell.weight
    b = cell.bias if cell.bias is not None else torch.zeros(4 * hid, dtype=x.dtype)
    p = cell.weight_peephole if cell.peephole else torch.zeros(3, hid, 1, 1, dtype=x.dtype)

    def pre(gate):  # W_x* x + W_h* h + b for gate 0..3 = i, f, g, o
        rows = slice(gate * hid, (gate + 1) * hid)
        return (F.conv2d(x, W[rows, :Cin], b[rows], padding=pad)
                + F.conv2d(h, W[rows, Cin:], padding=pad))

    i = torch.sigmoid(pre(0) + p[0] * c)
    f = torch.sigmoid(pre(1) + p[1] * c)
    g = torch.tanh(pre(2))
    c_new = f * c + i * g
    o = torch.sigmoid(pre(3) + p[2] * c_new)
    return o * torch.tanh(c_new), c_new


CASES = [dict(), dict(peephole=True), dict(peephole=True, frame_size=(HH, WW)),
         dict(kernel_size=(3, 5), bias=False), dict(kernel_size=1, peephole=True)]


@pytest.mark.parametrize("kw", CASES, ids=lambda kw: "-".join(f"{k}={v}" for k, v in kw.items()) or "plain")
def test_step_equals_the_written_out_equations(kw):
    cell = ConvLSTMCell(C, K, **kw)
    x, h, c = torch.randn(N, C, HH, WW), torch.randn(N, K, HH, WW), torch.randn(N, K, HH, WW)
    y, (h1, c1) = cell.step(x, (h, c))
    h_ref, c_ref = reference_step(cell, x, h, c)
    torch.testing.assert_close(h1, h_ref)
    torch.testing.assert_close(c1, c_ref)
    assert y is h1
    torch.testing.assert_close(cell(x, (h, c)), (h_ref, c_ref))


def test_one_by_one_kernel_is_torch_lstmcell_at_every_pixel():
    cell = ConvLSTMCell(C, K, kernel_size=1)
    ref = nn.LSTMCell(C, K)
    with torch.no_grad():
        ref.weight_ih.copy_(cell.weight[:, :C, 0, 0])
        ref.weight_hh.copy_(cell.weight[:, C:, 0, 0])
        ref.bias_ih.copy_(cell.bias)
        ref.bias_hh.zero_()
    x, h, c = torch.randn(N, C, HH, WW), torch.randn(N, K, HH, WW), torch.randn(N, K, HH, WW)
    pix = lambda t: t.permute(0, 2, 3, 1).reshape(-1, t.shape[1])  # (N*H*W, channels)
    h_ref, c_ref = ref(pix(x), (pix(h), pix(c)))
    h1, c1 = cell(x, (h, c))
    torch.testing.assert_close(pix(h1), h_ref)
    torch.testing.assert_close(pix(c1), c_ref)


def test_layout_shapes_and_forms():
    cell = ConvLSTMCell(C, K, kernel_size=(3, 5), peephole=True, frame_size=(HH, WW))
    assert cell.weight.shape == (4 * K, C + K, 3, 5)
    assert cell.bias.shape == (4 * K,)
    assert cell.weight_peephole.shape == (3, K, HH, WW)  # per position, as in the paper
    assert ConvLSTMCell(C, K, peephole=True).weight_peephole.shape == (3, K, 1, 1)  # per channel
    assert ConvLSTMCell(C, K, bias=False).bias is None
    assert cell.state_size == (K, K)
    x = torch.randn(N, C, HH, WW)
    h0, c0 = cell.initial_state(N, x)
    assert h0.shape == c0.shape == (N, K, HH, WW) and not h0.any()
    assert cell.initial_state(1, torch.zeros(1))[0].shape == (1, K, HH, WW)  # from frame_size
    # default state is zeros; unbatched input is one sample
    torch.testing.assert_close(cell(x), cell(x, (h0, c0)))
    h1, c1 = cell(x[0])
    torch.testing.assert_close((h1, c1), tuple(s[0] for s in cell(x)))


def test_gradcheck_float64():
    cell = ConvLSTMCell(1, 2, kernel_size=3, peephole=True, frame_size=(3, 4), dtype=torch.float64)
    names = [n for n, _ in cell.named_parameters()]
    params = [p.detach().clone().requires_grad_() for p in cell.parameters()]
    x = torch.randn(2, 1, 3, 4, dtype=torch.float64, requires_grad=True)
    h = torch.randn(2, 2, 3, 4, dtype=torch.float64, requires_grad=True)
    c = torch.randn(2, 2, 3, 4, dtype=torch.float64, requires_grad=True)

    def f(x, h, c, *ps):
        return functional_call(cell, dict(zip(names, ps)), (x, (h, c)))

    assert torch.autograd.gradcheck(f, (x, h, c, *params))


def test_bad_inputs_say_what_was_expected():
    cell = ConvLSTMCell(C, K, peephole=True, frame_size=(HH, WW))
    with pytest.raises(ValueError, match=r"ConvLSTMCell: expected input with 2 channels"):
        cell(torch.randn(N, C + 1, HH, WW))
    with pytest.raises(ValueError, match=r"expected frames of size \(5, 6\)"):
        cell(torch.randn(N, C, HH, WW + 1))
    with pytest.raises(ValueError, match=r"expected input of shape \(N, C, H, W\)"):
        cell(torch.randn(C, HH * WW))
    with pytest.raises(TypeError, match="dtype torch.float32"):
        cell(torch.randn(N, C, HH, WW, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"expected c of shape \(2, 3, 5, 6\)"):
        cell(torch.randn(N, C, HH, WW), (torch.zeros(N, K, HH, WW), torch.zeros(N, K, HH, 1)))
    with pytest.raises(TypeError, match=r"expected hx to be a tuple \(h, c\)"):
        cell(torch.randn(N, C, HH, WW), torch.zeros(N, K, HH, WW))
    with pytest.raises(ValueError, match="initial_state needs the frame size"):
        ConvLSTMCell(C, K).initial_state(N, torch.zeros(N))
    with pytest.raises(ValueError, match="kernel_size to be a positive int"):
        ConvLSTMCell(C, K, kernel_size=0)
    with pytest.raises(ValueError, match="expected odd kernel sizes"):
        ConvLSTMCell(C, K, kernel_size=(3, 2))
    with pytest.raises(ValueError, match="hidden_size to be a positive int"):
        ConvLSTMCell(C, 0)
