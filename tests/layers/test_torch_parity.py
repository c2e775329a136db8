"""lstmkit.LSTM / GRU against torch.nn.LSTM / GRU with torch's state dict loaded: outputs, final states
and the gradients of inputs, initial states and every parameter, over a grid of configurations and
input forms, on every backend that computes vanilla math."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import lstmkit

from .helpers import backends, check_pair, twin

T, N, I, H = 5, 3, 3, 4

LSTM_STRUCTURES = [
    dict(num_layers=1),
    dict(num_layers=2, bidirectional=True),
    dict(num_layers=2, batch_first=True, proj_size=2),
    dict(num_layers=1, bidirectional=True, batch_first=True, proj_size=3, bias=False),
    dict(num_layers=2, bidirectional=True, proj_size=2, dropout=0.4),  # eval: dropout is off
    dict(num_layers=3, batch_first=True, bias=False, dropout=0.2),
    dict(num_layers=2, bidirectional=True, dtype=torch.float64),
]
GRU_STRUCTURES = [
    dict(num_layers=1),
    dict(num_layers=2, bidirectional=True),
    dict(num_layers=1, bidirectional=True, batch_first=True, bias=False),
    dict(num_layers=3, batch_first=True, dropout=0.3),
    dict(num_layers=2, bidirectional=True, dtype=torch.float64),
]
FORMS = ["plain", "hx", "lengths", "lengths_hx", "packed_sorted", "packed_unsorted_hx",
         "unbatched", "unbatched_hx"]
SORTED, UNSORTED = [5, 4, 1], [2, 5, 4]


def _ids(structures):
    return ["-".join(f"{k}={v}" for k, v in s.items()) or "default" for s in structures]


def check_layer_vs_torch(torch_cls, ours_cls, structure: dict, form: str, backend: str):
    """One configuration and input form through the shared checker."""
    torch.manual_seed(0)
    theirs, ours = twin(torch_cls, ours_cls, I, H, **structure)
    theirs.eval()
    ours.eval()
    dtype = structure.get("dtype", torch.float32)
    bf = structure.get("batch_first", False)
    LD = structure.get("num_layers", 1) * (2 if structure.get("bidirectional") else 1)
    unbatched = form.startswith("unbatched")
    shape = (T, I) if unbatched else ((N, T, I) if bf else (T, N, I))
    x = torch.randn(shape, dtype=dtype, requires_grad=True)
    state_leaves = []
    hx = None
    if form.endswith("hx"):
        lead = (LD,) if unbatched else (LD, N)
        sizes = (ours.output_size, H) if ours_cls is lstmkit.LSTM else (H,)
        state_leaves = [torch.randn(lead + (s,), dtype=dtype, requires_grad=True) for s in sizes]
        hx = tuple(state_leaves) if ours_cls is lstmkit.LSTM else state_leaves[0]

    if form.startswith("lengths"):
        lens = torch.tensor(UNSORTED)

        def run_ours():
            return ours(x, hx, lengths=lens)

        def run_ref():
            packed = pack_padded_sequence(x, lens, batch_first=bf, enforce_sorted=False)
            y, fin = theirs(packed, hx)
            return pad_packed_sequence(y, batch_first=bf, total_length=T)[0], fin
    elif form.startswith("packed"):
        sort = form.startswith("packed_sorted")

        def pack():  # one packing per graph: each side back-propagates through its own
            return pack_padded_sequence(x, torch.tensor(SORTED if sort else UNSORTED),
                                        batch_first=bf, enforce_sorted=sort)

        def run_ours():
            return ours(pack(), hx)

        def run_ref():
            return theirs(pack(), hx)
    else:
        def run_ours():
            return ours(x, hx)

        def run_ref():
            return theirs(x, hx)

    names = [n for n, _ in ours.named_parameters()]
    tp = dict(theirs.named_parameters())
    tol = 1e-5 if dtype == torch.float32 else 1e-10
    with lstmkit.use_backend(backend):
        check_pair(run_ours, run_ref,
                            leaves=[x, *state_leaves, *ours.parameters()],
                            ref_leaves=[x, *state_leaves, *(tp[n] for n in names)],
                            names=["x", *(f"state{k}" for k in range(len(state_leaves))), *names],
                            atol=tol, grad_atol=tol)
    if form.startswith("packed"):
        packed = pack()
        with lstmkit.use_backend(backend):
            y = ours(packed, hx)[0]
        assert torch.equal(y.batch_sizes, packed.batch_sizes)
        assert (y.sorted_indices is None) == sort


@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")
@pytest.mark.parametrize("backend", backends(vanilla=True))
@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("structure", LSTM_STRUCTURES, ids=_ids(LSTM_STRUCTURES))
def test_lstm_matches_torch(structure, form, backend):
    check_layer_vs_torch(torch.nn.LSTM, lstmkit.LSTM, structure, form, backend)


@pytest.mark.parametrize("backend", backends(vanilla=True))
@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("structure", GRU_STRUCTURES, ids=_ids(GRU_STRUCTURES))
def test_gru_matches_torch(structure, form, backend):
    check_layer_vs_torch(torch.nn.GRU, lstmkit.GRU, structure, form, backend)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_dropout_between_layers_matches_torch_in_training(kind):
    """Native path in training: torch's own dropout, so the same seed gives the same numbers."""
    cls = (torch.nn.LSTM, lstmkit.LSTM) if kind == "lstm" else (torch.nn.GRU, lstmkit.GRU)
    theirs, ours = twin(*cls, I, H, 3, dropout=0.5)
    x = torch.randn(T, N, I)
    torch.manual_seed(7)
    want = theirs(x)[0]
    torch.manual_seed(7)
    with lstmkit.use_backend("native"):
        got = ours(x)[0]
    assert torch.equal(got, want)
    theirs.eval()
    assert not torch.allclose(want, theirs(x)[0], atol=1e-3), "dropout had no effect in training"


@pytest.mark.parametrize("backend", backends(vanilla=False))
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_dropout_between_layers_only_in_training(kind, backend):
    """Non-native backends: dropout acts between layers (not after the last) and only in training;
    in training the result is layer 0, then F.dropout with the same random stream, then layer 1."""
    cls = lstmkit.LSTM if kind == "lstm" else lstmkit.GRU
    m = cls(I, H, 2, dropout=0.5)
    l0, l1 = cls(I, H, 1), cls(H, H, 1)
    sd = m.state_dict()
    l0.load_state_dict({k: v for k, v in sd.items() if k.endswith("_l0")})
    l1.load_state_dict({k.replace("_l1", "_l0"): v for k, v in sd.items() if k.endswith("_l1")})
    x = torch.randn(T, N, I)
    with lstmkit.use_backend(backend):
        torch.manual_seed(3)
        got, fin = m(x)
        torch.manual_seed(3)
        y0, f0 = l0(x)
        want, f1 = l1(F.dropout(y0, 0.5, True))
        torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
        h = fin[0] if kind == "lstm" else fin
        torch.testing.assert_close(h[0], (f0[0] if kind == "lstm" else f0)[0], atol=1e-6, rtol=0)
        m.eval()
        y_eval = m(x)[0]
        want_eval = l1(l0(x)[0])[0]
    torch.testing.assert_close(y_eval, want_eval, atol=1e-6, rtol=0)
    assert not torch.allclose(got, y_eval, atol=1e-3)


@pytest.mark.parametrize("make", [lambda: lstmkit.LSTM(I, 16, 2, preset="FGR", layer_norm=True),
                                  lambda: lstmkit.LSTMCell(I, 16, preset="FGR", layer_norm=True),
                                  lambda: lstmkit.GRU(I, 16, bidirectional=True),
                                  lambda: lstmkit.GRUCell(I, 16)],
                         ids=["LSTM", "LSTMCell", "GRU", "GRUCell"])
def test_initialisation_like_torch(make):
    """torch's U(-1/sqrt(H), 1/sqrt(H)) for every weight; LayerNorm gains 1 and biases 0."""
    m = make()
    bound = 1 / 16 ** 0.5
    for name, p in m.named_parameters():
        p = p.detach()
        if name.startswith("ln_"):
            assert torch.equal(p, torch.zeros_like(p) if "bias" in name else torch.ones_like(p)), name
        else:
            assert float(p.abs().max()) <= bound and float(p.std()) > bound / 4, name
