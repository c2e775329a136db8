"""residual=True: a stack whose layer k+1 reads h_k + x_k, checked against single torch.nn layers
composed by hand with copied weights."""
import pytest
import torch

import lstmkit
from lstmkit.kernels import use_backend


def _single(torch_cls, layer, k, width, bidirectional):
    one = torch_cls(width, layer.hidden_size, bidirectional=bidirectional).double()
    for name, _ in one.named_parameters():
        src = name.replace("_l0", f"_l{k}")
        getattr(one, name).data.copy_(getattr(layer, src))
    return one


@pytest.mark.parametrize("backend", ["reference", "fused"])
@pytest.mark.parametrize("kind,bidirectional", [("lstm", False), ("lstm", True), ("gru", False)])
def test_residual_stack_equals_single_layers_composed_by_hand(kind, bidirectional, backend):
    torch.manual_seed(1)
    H, D, T, N = 4, 2 if bidirectional else 1, 7, 3
    cls, torch_cls = ((lstmkit.LSTM, torch.nn.LSTM) if kind == "lstm" else (lstmkit.GRU, torch.nn.GRU))
    layer = cls(D * H, H, num_layers=3, bidirectional=bidirectional, residual=True).double()
    x = torch.randn(T, N, D * H, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([7, 4, 2])
    with use_backend(backend):
        y, state = layer(x, lengths=lengths)
    finals, inp = [], x
    for k in range(3):
        one = _single(torch_cls, layer, k, D * H, bidirectional)
        packed = torch.nn.utils.rnn.pack_padded_sequence(inp, lengths, enforce_sorted=False)
        out, st = one(packed)
        out = torch.nn.utils.rnn.pad_packed_sequence(out, total_length=T)[0]
        finals.append(st)
        if k < 2:
            inp = out + inp                                 # the residual connection
    torch.testing.assert_close(y, out)
    if kind == "lstm":
        torch.testing.assert_close(state[0], torch.cat([s[0] for s in finals]))
        torch.testing.assert_close(state[1], torch.cat([s[1] for s in finals]))
    else:
        torch.testing.assert_close(state, torch.cat(finals))
    g_ours = torch.autograd.grad(y.sum(), x)[0]
    g_hand = torch.autograd.grad(out.sum(), x)[0]
    torch.testing.assert_close(g_ours, g_hand)


def test_residual_changes_the_result_and_is_in_repr():
    torch.manual_seed(0)
    plain = lstmkit.LSTM(5, 5, num_layers=2)
    res = lstmkit.LSTM(5, 5, num_layers=2, residual=True)
    res.load_state_dict(plain.state_dict())              # same parameters: residual adds none
    x = torch.randn(6, 2, 5)
    assert not torch.allclose(plain(x)[0], res(x)[0])
    assert "residual=True" in repr(res)


def test_residual_refuses_unequal_widths_and_a_single_layer():
    with pytest.raises(ValueError, match=r"equal width: expected input_size == hidden_size = 8, got "
                                         r"input_size=3"):
        lstmkit.LSTM(3, 8, num_layers=2, residual=True)
    with pytest.raises(ValueError, match=r"2\*hidden_size = 16"):
        lstmkit.GRU(8, 8, num_layers=2, bidirectional=True, residual=True)
    with pytest.raises(ValueError, match="num_layers >= 2"):
        lstmkit.LSTM(8, 8, residual=True)
    with pytest.raises(TypeError, match="residual to be a bool"):
        lstmkit.LSTM(8, 8, num_layers=2, residual="yes")
