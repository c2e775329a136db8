"""The generic runner: RNN(any cell), Bidirectional, Stacked, checked against torch.nn.LSTM / GRU and
lstmkit.LSTM with copied weights, and against a toy cell whose exact outputs are known."""
import pickle

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import lstmkit
from lstmkit.cells import PRESETS, GRUCell, LSTMCell
from lstmkit.kernels import use_backend
from lstmkit.layers import RNN, Bidirectional, Stacked

I, H, T, N = 3, 5, 6, 4
LENGTHS = torch.tensor([6, 2, 4, 1])



def copy_into(cell: nn.Module, layer_module: nn.Module, layer: int = 0, reverse: bool = False):
    """Copy one (layer, direction) of a torch-named layer (weight_ih_l0_reverse...) into a cell."""
    sfx = f"_l{layer}" + ("_reverse" if reverse else "")
    with torch.no_grad():
        for name, p in cell.named_parameters():
            p.copy_(getattr(layer_module, name + sfx))
    return cell


def torch_run(module, x, lengths=None, hx=None):
    """torch.nn.LSTM/GRU over time-first x, with lengths through a PackedSequence."""
    if lengths is None:
        return module(x, hx)
    packed = pack_padded_sequence(x, lengths, enforce_sorted=False)
    y, state = module(packed, hx)
    return pad_packed_sequence(y, total_length=x.shape[0])[0], state


def padded_input(batch_first=False):
    x = torch.randn(T, N, I)
    return x.transpose(0, 1).contiguous() if batch_first else x


# -- against torch.nn.LSTM / GRU -----------------------------------------------------------------

@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("lengths", [None, LENGTHS])
def test_rnn_lstmcell_equals_torch_lstm(batch_first, lengths):
    ref = nn.LSTM(I, H)
    rnn = RNN(copy_into(LSTMCell(I, H), ref), batch_first=batch_first)
    x = torch.randn(T, N, I)
    h0, c0 = torch.randn(1, N, H), torch.randn(1, N, H)
    y_ref, (h_ref, c_ref) = torch_run(ref, x, lengths, (h0, c0))
    y, (h, c) = rnn(x.transpose(0, 1) if batch_first else x, (h0[0], c0[0]), lengths=lengths)
    y = y.transpose(0, 1) if batch_first else y
    torch.testing.assert_close(y, y_ref)
    torch.testing.assert_close(h, h_ref[0])
    torch.testing.assert_close(c, c_ref[0])


@pytest.mark.parametrize("lengths", [None, LENGTHS])
def test_rnn_reverse_equals_torch_reverse_direction(lengths):
    ref = nn.LSTM(I, H, bidirectional=True)
    rnn = RNN(copy_into(LSTMCell(I, H), ref, reverse=True), reverse=True)
    x = torch.randn(T, N, I)
    y_ref, (h_ref, c_ref) = torch_run(ref, x, lengths)
    y, (h, c) = rnn(x, lengths=lengths)
    torch.testing.assert_close(y, y_ref[..., H:])
    torch.testing.assert_close(h, h_ref[1])
    torch.testing.assert_close(c, c_ref[1])


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("lengths", [None, LENGTHS])
def test_bidirectional_equals_torch_bidirectional(batch_first, lengths):
    ref = nn.LSTM(I, H, bidirectional=True)
    bi = Bidirectional(RNN(copy_into(LSTMCell(I, H), ref), batch_first=batch_first),
                       RNN(copy_into(LSTMCell(I, H), ref, reverse=True), batch_first=batch_first,
                           reverse=True))
    x = torch.randn(T, N, I)
    y_ref, (h_ref, c_ref) = torch_run(ref, x, lengths)
    y, ((hf, cf), (hb, cb)) = bi(x.transpose(0, 1) if batch_first else x, lengths=lengths)
    y = y.transpose(0, 1) if batch_first else y
    torch.testing.assert_close(y, y_ref)
    torch.testing.assert_close(torch.stack([hf, hb]), h_ref)
    torch.testing.assert_close(torch.stack([cf, cb]), c_ref)


def test_stacked_bidirectional_equals_torch_two_layers_with_initial_state():
    ref = nn.LSTM(I, H, num_layers=2, bidirectional=True)
    layers = []
    for layer in range(2):
        size = I if layer == 0 else 2 * H
        layers.append(Bidirectional(RNN(copy_into(LSTMCell(size, H), ref, layer)),
                                    RNN(copy_into(LSTMCell(size, H), ref, layer, True), reverse=True)))
    stack = Stacked(layers)
    x = torch.randn(T, N, I)
    h0, c0 = torch.randn(4, N, H), torch.randn(4, N, H)
    y_ref, (h_ref, c_ref) = torch_run(ref, x, LENGTHS, (h0, c0))
    state = [((h0[2 * k], c0[2 * k]), (h0[2 * k + 1], c0[2 * k + 1])) for k in range(2)]
    y, finals = stack(x, state, lengths=LENGTHS)
    torch.testing.assert_close(y, y_ref)
    torch.testing.assert_close(torch.stack([s[0] for pair in finals for s in pair]), h_ref)
    torch.testing.assert_close(torch.stack([s[1] for pair in finals for s in pair]), c_ref)


@pytest.mark.parametrize("lengths", [None, LENGTHS])
def test_rnn_grucell_equals_torch_gru(lengths):
    ref = nn.GRU(I, H, num_layers=2)
    stack = Stacked([RNN(copy_into(GRUCell(I, H), ref, 0)), RNN(copy_into(GRUCell(H, H), ref, 1))])
    x = torch.randn(T, N, I)
    y_ref, h_ref = torch_run(ref, x, lengths)
    y, finals = stack(x, lengths=lengths)
    torch.testing.assert_close(y, y_ref)
    torch.testing.assert_close(torch.stack([f[0] for f in finals]), h_ref)


# -- against lstmkit.LSTM for every variant ------------------------------------------------------

VARIANTS = [dict(preset=p) for p in PRESETS] + [dict(proj_size=2), dict(layer_norm=True)]


@pytest.mark.parametrize("kw", VARIANTS, ids=lambda kw: "-".join(f"{k}={v}" for k, v in kw.items()))
def test_rnn_equals_lstmkit_lstm_for_every_variant(kw):
    ref = lstmkit.LSTM(I, H, bidirectional=True, batch_first=True, **kw)
    bi = Bidirectional(RNN(copy_into(LSTMCell(I, H, **kw), ref), batch_first=True),
                       RNN(copy_into(LSTMCell(I, H, **kw), ref, reverse=True), batch_first=True,
                           reverse=True))
    x = padded_input(batch_first=True)
    with use_backend("reference"):
        y_ref, (h_ref, c_ref) = ref(x, lengths=LENGTHS)
    y, (sf, sb) = bi(x, lengths=LENGTHS)
    torch.testing.assert_close(y, y_ref)
    torch.testing.assert_close(torch.stack([sf[0], sb[0]]), h_ref)
    torch.testing.assert_close(torch.stack([sf[1], sb[1]]), c_ref)


# -- any cell: a toy cell with known outputs -----------------------------------------------------

class SumCell(nn.Module):
    """y_t = s_t = s_{t-1} + x_t; the state is one tensor (not a tuple)."""

    def step(self, x, s):
        s = s + x
        return s, s

    def initial_state(self, n, like):
        return like.new_zeros(n, *like.shape[1:])


def test_user_cell_padding_and_reverse_semantics():
    x = torch.randn(T, N, 2, 3)  # two feature dimensions
    y, s = RNN(SumCell())(x, lengths=LENGTHS)
    yr, sr = RNN(SumCell(), reverse=True)(x, lengths=LENGTHS)
    for n, L in enumerate(LENGTHS.tolist()):
        torch.testing.assert_close(y[:L, n], x[:L, n].cumsum(0))
        torch.testing.assert_close(yr[:L, n], x[:L, n].flip(0).cumsum(0).flip(0))
        assert (y[L:, n] == 0).all() and (yr[L:, n] == 0).all()
        torch.testing.assert_close(s[n], x[:L, n].sum(0))
        torch.testing.assert_close(sr[n], x[:L, n].sum(0))
    y0, _ = RNN(SumCell())(x, torch.ones(N, 2, 3))
    torch.testing.assert_close(y0, x.cumsum(0) + 1)


@settings(max_examples=15, deadline=None)
@given(lengths=st.lists(st.integers(1, 5), min_size=1, max_size=4), reverse=st.booleans(),
       seed=st.integers(0, 2**16))
def test_padding_never_changes_a_result(lengths, reverse, seed):
    torch.manual_seed(seed)
    rnn = RNN(LSTMCell(2, 3, preset="V"), batch_first=True, reverse=reverse)
    Tm = max(lengths)
    x = torch.randn(len(lengths), Tm, 2)
    y, (h, c) = rnn(x, lengths=lengths)
    garbage = x.clone()
    for n, L in enumerate(lengths):
        garbage[n, L:] = 1e3 * torch.randn_like(garbage[n, L:])
        y1, (h1, c1) = rnn(x[n:n + 1, :L])  # the sequence alone, without padding
        torch.testing.assert_close(y[n:n + 1, :L], y1)
        assert (y[n, L:] == 0).all()
        torch.testing.assert_close(h[n:n + 1], h1)
        torch.testing.assert_close(c[n:n + 1], c1)
    yg, (hg, cg) = rnn(garbage, lengths=lengths)
    torch.testing.assert_close((yg, hg, cg), (y, h, c))


# -- options ---------------------------------------------------------------------------------------

def test_return_sequences_false_and_return_state_false():
    cell_f, cell_b = LSTMCell(I, H), LSTMCell(I, H)
    x = torch.randn(T, N, I)
    y, (h, _) = RNN(cell_f)(x, lengths=LENGTHS)
    last = RNN(cell_f, return_sequences=False, return_state=False)(x, lengths=LENGTHS)
    torch.testing.assert_close(last, y[LENGTHS - 1, torch.arange(N)])
    torch.testing.assert_close(last, h)
    yr, (hr, _) = RNN(cell_b, reverse=True)(x, lengths=LENGTHS)
    last_r, _ = RNN(cell_b, reverse=True, return_sequences=False)(x, lengths=LENGTHS)
    torch.testing.assert_close(last_r, yr[0])
    torch.testing.assert_close(last_r, hr)
    bi = Bidirectional(RNN(cell_f, return_sequences=False),
                       RNN(cell_b, reverse=True, return_sequences=False))
    y_bi, _ = bi(x, lengths=LENGTHS)
    torch.testing.assert_close(y_bi, torch.cat([h, hr], dim=1))
    stack = Stacked([RNN(LSTMCell(I, I)), RNN(cell_f, return_sequences=False, return_state=False)])
    assert stack(x).shape == (N, H)


@pytest.mark.parametrize("merge,fn", [("sum", lambda a, b: a + b), ("mean", lambda a, b: (a + b) / 2),
                                      ("mul", lambda a, b: a * b), (torch.maximum, torch.maximum)])
def test_merge_modes(merge, fn):
    fwd, bwd = RNN(LSTMCell(I, H), batch_first=True), RNN(LSTMCell(I, H), batch_first=True, reverse=True)
    x = padded_input(batch_first=True)
    y, _ = Bidirectional(fwd, bwd, merge=merge)(x, lengths=LENGTHS)
    torch.testing.assert_close(y, fn(fwd(x, lengths=LENGTHS)[0], bwd(x, lengths=LENGTHS)[0]))


def test_runners_pickle_whole():
    bi = Bidirectional(RNN(LSTMCell(I, H)), RNN(LSTMCell(I, H), reverse=True), merge="mean")
    stack = Stacked([bi, RNN(GRUCell(H, H))])
    again = pickle.loads(pickle.dumps(stack))
    x = torch.randn(T, N, I)
    torch.testing.assert_close(again(x, lengths=LENGTHS)[0], stack(x, lengths=LENGTHS)[0])


def test_stacked_dropout_only_in_training():
    stack = Stacked([RNN(LSTMCell(I, H)), RNN(LSTMCell(H, H))], dropout=0.5)
    plain = Stacked(list(stack.layers))
    x = torch.randn(T, N, I)
    stack.eval()
    torch.testing.assert_close(stack(x)[0], plain(x)[0])
    stack.train()
    assert not torch.allclose(stack(x)[0], plain(x)[0])


def test_gradients_flow_to_cell_and_input():
    cell = LSTMCell(I, H)
    x = torch.randn(T, N, I, requires_grad=True)
    y, (h, c) = RNN(cell)(x, lengths=LENGTHS)
    (y.sum() + c.sum()).backward()
    assert cell.weight_ih.grad is not None and x.grad is not None
    assert (x.grad[LENGTHS[1]:, 1] == 0).all()  # padding gets no gradient


# -- errors ----------------------------------------------------------------------------------------

def test_bad_inputs_say_what_was_expected():
    rnn = RNN(LSTMCell(I, H))
    with pytest.raises(ValueError, match=r"RNN\(LSTMCell\): expected input of rank 3"):
        rnn(torch.randn(T, I))
    with pytest.raises(ValueError, match="expected 3 input features"):
        rnn(torch.randn(T, N, I + 1))
    with pytest.raises(TypeError, match="dtype torch.float32"):
        rnn(torch.randn(T, N, I, dtype=torch.float64))
    with pytest.raises(TypeError, match="expected input to be a torch.Tensor"):
        rnn([[1.0]])
    with pytest.raises(ValueError, match="every length >= 1"):
        rnn(torch.randn(T, N, I), lengths=[0, 1, 2, 3])
    with pytest.raises(ValueError, match=f"every length <= the sequence length {T}"):
        rnn(torch.randn(T, N, I), lengths=[T + 1, 1, 2, 3])
    with pytest.raises(ValueError, match=r"lengths of shape \(4,\)"):
        rnn(torch.randn(T, N, I), lengths=[1, 2])
    with pytest.raises(TypeError, match="integer lengths"):
        rnn(torch.randn(T, N, I), lengths=torch.ones(N))
    with pytest.raises(ValueError, match=r"expected state\[1\] of shape \(4, 5\)"):
        rnn(torch.randn(T, N, I), (torch.zeros(N, H), torch.zeros(N, H + 1)))
    with pytest.raises(TypeError, match="state of 2 tensor"):
        rnn(torch.randn(T, N, I), torch.zeros(N, H))
    with pytest.raises(ValueError, match="non-empty"):
        rnn(torch.randn(0, N, I))
    with pytest.raises(ValueError, match=r"rank at least 3"):
        RNN(SumCell())(torch.randn(T, N))


def test_bad_compositions_say_what_was_expected():
    with pytest.raises(TypeError, match="step"):
        RNN(nn.Linear(2, 2))
    f, b = RNN(LSTMCell(I, H)), RNN(LSTMCell(I, H), reverse=True)
    with pytest.raises(ValueError, match="backward_rnn with reverse=True"):
        Bidirectional(f, RNN(LSTMCell(I, H)))
    with pytest.raises(ValueError, match="agree on batch_first"):
        Bidirectional(f, RNN(LSTMCell(I, H), reverse=True, batch_first=True))
    with pytest.raises(ValueError, match="unknown merge 'max'"):
        Bidirectional(f, b, merge="max")
    with pytest.raises(ValueError, match="layer 0 has return_sequences=False"):
        Stacked([RNN(LSTMCell(I, H), return_sequences=False), RNN(LSTMCell(H, H))])
    with pytest.raises(ValueError, match="share batch_first"):
        Stacked([f, RNN(LSTMCell(H, H), batch_first=True)])
    with pytest.raises(ValueError, match=r"Stacked layer 1.*expected 4 input features"):
        Stacked([f, RNN(LSTMCell(4, H))])(torch.randn(T, N, I))
    with pytest.raises(TypeError, match="list of 2 per-layer states"):
        Stacked([f, RNN(LSTMCell(H, H))])(torch.randn(T, N, I), [None])
