"""lstmkit.ConvLSTM against a hand loop written here: per-gate F.conv2d with the equations of Shi et
al. (2015), each sequence run alone over its real steps, layers and directions spelled out."""
import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from lstmkit.layers import ConvLSTM

C, K, HH, WW = 2, 3, 4, 5  # input channels, hidden channels, frame height, width
T, N = 4, 3
LENGTHS = torch.tensor([4, 1, 3])



def gate_step(cell, x, h, c):
    """i, f, g, o from W_x * x + W_h * h + b (separate convolutions), peepholes p_i, p_f on c_{t-1}
    and p_o on c_t."""
    Cin, hid = x.shape[1], h.shape[1]
    kh, kw = cell.weight.shape[-2:]
    W, b = cell.weight, cell.bias
    p = cell.weight_peephole if cell.peephole else torch.zeros(3, 1, 1, 1, dtype=x.dtype)

    def pre(k):
        rows = slice(k * hid, (k + 1) * hid)
        return (F.conv2d(x, W[rows, :Cin], b[rows], padding=(kh // 2, kw // 2))
                + F.conv2d(h, W[rows, Cin:], padding=(kh // 2, kw // 2)))

    i = torch.sigmoid(pre(0) + p[0] * c)
    f = torch.sigmoid(pre(1) + p[1] * c)
    c = f * c + i * torch.tanh(pre(2))
    o = torch.sigmoid(pre(3) + p[2] * c)
    return o * torch.tanh(c), c


def reference(m, x, lengths, h0, c0):
    """x (T, N, C, H, W) time-first; h0, c0 (D*layers, N, K, H, W) -> output, (h_n, c_n)."""
    D = m.num_directions
    out = x.new_zeros(x.shape[0], x.shape[1], D * m.hidden_size, *x.shape[-2:])
    h_n, c_n = torch.zeros_like(h0), torch.zeros_like(c0)
    for n in range(x.shape[1]):
        L = int(lengths[n])
        seq = x[:L, n:n + 1]  # (L, 1, C, H, W): this sequence alone, no padding
        for layer in range(m.num_layers):
            outs = []
            for d in range(D):
                k = layer * D + d
                h, c = h0[k, n:n + 1], c0[k, n:n + 1]
                ys = [None] * L
                for t in (reversed(range(L)) if d else range(L)):
                    h, c = gate_step(m.cell(layer, d), seq[t], h, c)
                    ys[t] = h
                outs.append(torch.stack(ys))
                h_n[k, n], c_n[k, n] = h[0], c[0]
            seq = torch.cat(outs, dim=2)
        out[:L, n] = seq[:, 0]
    return out, (h_n, c_n)


CASES = [
    dict(),
    dict(peephole=True),
    dict(peephole=True, frame_size=(HH, WW), bidirectional=True),
    dict(num_layers=2, bidirectional=True, kernel_size=(1, 3)),
    dict(num_layers=2, peephole=True, batch_first=True),
]


@pytest.mark.parametrize("kw", CASES, ids=lambda kw: "-".join(f"{k}={v}" for k, v in kw.items()) or "plain")
@pytest.mark.parametrize("lengths", [None, LENGTHS], ids=["full", "lengths"])
def test_convlstm_equals_hand_loop(kw, lengths):
    m = ConvLSTM(C, K, **kw)
    LD = m.num_layers * m.num_directions
    x = torch.randn(T, N, C, HH, WW)
    h0, c0 = torch.randn(LD, N, K, HH, WW), torch.randn(LD, N, K, HH, WW)
    y_ref, (h_ref, c_ref) = reference(m, x, LENGTHS if lengths is not None else [T] * N, h0, c0)
    xin = x.transpose(0, 1) if m.batch_first else x
    y, (h, c) = m(xin, (h0, c0), lengths=lengths)
    y = y.transpose(0, 1) if m.batch_first else y
    assert y.shape == (T, N, m.num_directions * K, HH, WW)
    torch.testing.assert_close(y, y_ref)
    torch.testing.assert_close(h, h_ref)
    torch.testing.assert_close(c, c_ref)
    # zero initial state by default
    y0, _ = m(xin, lengths=lengths)
    y0_ref, _ = reference(m, x, LENGTHS if lengths is not None else [T] * N,
                          torch.zeros_like(h0), torch.zeros_like(c0))
    torch.testing.assert_close(y0.transpose(0, 1) if m.batch_first else y0, y0_ref)


def test_padding_never_changes_a_result():
    m = ConvLSTM(C, K, num_layers=2, bidirectional=True, batch_first=True)
    x = torch.randn(N, T, C, HH, WW)
    garbage = x.clone()
    for n, L in enumerate(LENGTHS.tolist()):
        garbage[n, L:] = 100 * torch.randn_like(garbage[n, L:])
    y, (h, c) = m(x, lengths=LENGTHS)
    yg, (hg, cg) = m(garbage, lengths=LENGTHS)
    torch.testing.assert_close((yg, hg, cg), (y, h, c))
    for n, L in enumerate(LENGTHS.tolist()):
        assert (y[n, L:] == 0).all()
        y1, (h1, c1) = m(x[n:n + 1, :L])
        torch.testing.assert_close(y[n:n + 1, :L], y1)
        torch.testing.assert_close(h[:, n:n + 1], h1)


def test_unbatched_dropout_and_state_dict():
    m = ConvLSTM(C, K, num_layers=2, dropout=0.5)
    x = torch.randn(T, N, C, HH, WW)
    m.eval()
    y, (h, c) = m(x)
    yu, (hu, cu) = m(x[:, 0])  # unbatched (L, C, H, W)
    torch.testing.assert_close((yu, hu, cu), (y[:, 0], h[:, 0], c[:, 0]))
    m2 = ConvLSTM(C, K, num_layers=2, dropout=0.5).eval()
    m2.load_state_dict(m.state_dict())
    torch.testing.assert_close(m2(x)[0], y)
    m.train()
    assert not torch.allclose(m(x)[0], y)  # dropout between the layers in training


def test_gradcheck_float64():
    m = ConvLSTM(1, 2, kernel_size=3, bidirectional=True, peephole=True, frame_size=(3, 3),
                 dtype=torch.float64)
    names = [n for n, _ in m.named_parameters()]
    params = [p.detach().clone().requires_grad_() for p in m.parameters()]
    x = torch.randn(3, 2, 1, 3, 3, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 2, 2, 3, 3, dtype=torch.float64, requires_grad=True)

    def f(x, h0, *ps):
        y, (h, c) = functional_call(m, dict(zip(names, ps)), (x, (h0, torch.zeros_like(h0))),
                                    {"lengths": [3, 2]})
        return y, h, c

    assert torch.autograd.gradcheck(f, (x, h0, *params))


def test_bad_inputs_say_what_was_expected():
    m = ConvLSTM(C, K, batch_first=True, peephole=True, frame_size=(HH, WW))
    x = torch.randn(N, T, C, HH, WW)
    with pytest.raises(ValueError, match=r"ConvLSTM: expected a 5-D input \(N, L, C, H, W\)"):
        m(torch.randn(N, T, C * HH * WW))
    with pytest.raises(ValueError, match="ConvLSTM: expected input with 2 channels"):
        m(torch.randn(N, T, C + 1, HH, WW))
    with pytest.raises(ValueError, match=r"ConvLSTM: expected frames of size \(4, 5\)"):
        m(torch.randn(N, T, C, HH + 1, WW))
    with pytest.raises(TypeError, match="ConvLSTM: expected input of dtype torch.float32"):
        m(x.double())
    with pytest.raises(ValueError, match=r"ConvLSTM: expected h_0 of shape \(1, 3, 3, 4, 5\)"):
        m(x, (torch.zeros(2, N, K, HH, WW), torch.zeros(2, N, K, HH, WW)))
    with pytest.raises(TypeError, match=r"ConvLSTM: expected hx to be a tuple \(h_0, c_0\)"):
        m(x, torch.zeros(1, N, K, HH, WW))
    with pytest.raises(ValueError, match="ConvLSTM: expected every length <= the sequence length 4"):
        m(x, lengths=[5, 1, 1])
    with pytest.raises(ValueError, match="lengths apply to batched input"):
        m(x[0], lengths=[1])
    with pytest.raises(ValueError, match="ConvLSTM: expected num_layers to be a positive int"):
        ConvLSTM(C, K, num_layers=0)
    with pytest.raises(IndexError, match="ConvLSTM: expected 0 <= layer < 1"):
        m.cell(1)
