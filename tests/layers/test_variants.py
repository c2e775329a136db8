"""Each variant does what its equation says, read off ``return_trace`` and gradients: NFG has f == 1,
CIFG f == 1 - i, NOG o == 1, NIAF a linear g, NOAF h == o * c; removed gates' rows get no gradient;
recurrent dropout and zoneout act in training only (zoneout in eval is its expectation)."""
from __future__ import annotations

import pytest
import torch

import lstmkit
from lstmkit import PRESETS
from lstmkit.cells.lstm import LSTMParams
from lstmkit.kernels import reference

from .helpers import assert_close, backends, cell_of, check_pair, randomize_

T, N, I, H = 6, 3, 3, 4
DT = torch.float64
LENGTHS = [6, 3, 4]
BACKENDS = backends(vanilla=False)


def _traced(preset, backend, seed=0, **kw):
    torch.manual_seed(seed)
    m = randomize_(lstmkit.LSTM(I, H, preset=preset, dtype=DT, **kw).eval(), scale=1.5, seed=seed)
    x = torch.randn(T, N, I, dtype=DT) * 2
    with lstmkit.use_backend(backend):
        y, (h, c), tr = m(x, lengths=LENGTHS, return_trace=True)
    real = (torch.arange(T).unsqueeze(1) < torch.tensor(LENGTHS)).unsqueeze(-1)  # (T, N, 1)
    return m, x, {k: v[0].detach() for k, v in tr.items()}, real


def _prev(v):
    """v_{t-1} along time (T, N, F), zeros before the first step."""
    return torch.cat([torch.zeros_like(v[:1]), v[:-1]])


def _on_real(a, real):
    return torch.where(real, a, torch.zeros_like(a))


@pytest.mark.parametrize("backend", BACKENDS)
def test_vanilla_trace_obeys_the_equations(backend):
    _, _, tr, real = _traced("V", backend)
    i, f, g, o, c, h = (tr[k] for k in "ifgoch")
    assert_close(c, _on_real(f * _prev(c) + i * g, real), "c = f c' + i g", 1e-12)
    assert_close(h, _on_real(o * torch.tanh(c), real), "h = o tanh(c)", 1e-12)
    for k in "ifo":  # genuine gates: strictly inside (0, 1) at real steps
        v = tr[k][real.expand_as(tr[k])]
        assert float(v.min()) > 0 and float(v.max()) < 1 and float(v.std()) > 0.05, k


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("preset,check", [
    ("NIG", lambda i, f, g, o, c, h: (i, torch.ones_like(i))),
    ("NFG", lambda i, f, g, o, c, h: (f, torch.ones_like(f))),
    ("NOG", lambda i, f, g, o, c, h: (o, torch.ones_like(o))),
    ("CIFG", lambda i, f, g, o, c, h: (f, 1 - i)),
    ("NOAF", lambda i, f, g, o, c, h: (h, o * c)),
    ("NOG", lambda i, f, g, o, c, h: (h, torch.tanh(c))),
], ids=["NIG-i=1", "NFG-f=1", "NOG-o=1", "CIFG-f=1-i", "NOAF-h=oc", "NOG-h=tanh(c)"])
def test_variant_changes_its_equation(preset, check, backend):
    _, _, tr, real = _traced(preset, backend)
    got, want = check(*(tr[k] for k in "ifgoch"))
    assert_close(got, _on_real(want, real), preset, 1e-12)
    assert_close(tr["c"], _on_real(tr["f"] * _prev(tr["c"]) + tr["i"] * tr["g"], real), "c", 1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_niaf_candidate_is_linear(backend):
    """NIAF: g is the pre-activation itself, W_ig x + W_hg h' + biases (no tanh)."""
    m, x, tr, real = _traced("NIAF", backend)
    p = m.params_of(0, 0)
    sl = slice(2 * H, 3 * H)
    want = (x @ p.weight_ih[sl].t() + _prev(tr["h"]) @ p.weight_hh[sl].t() + p.bias_ih[sl]
            + p.bias_hh[sl]).detach()
    assert_close(tr["g"], _on_real(want, real), "NIAF g", 1e-12)
    assert float(tr["g"].abs().max()) > 1.0  # genuinely outside tanh's range


@pytest.mark.parametrize("backend", BACKENDS)
def test_projection_in_trace(backend):
    m, _, tr, real = _traced("V", backend, proj_size=2)
    want = (tr["o"] * torch.tanh(tr["c"])) @ m.weight_hr_l0.detach().t()
    assert_close(tr["h"], _on_real(want, real), "h = W_hr (o tanh c)", 1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("preset", [p for p in PRESETS if p != "V"])
def test_every_preset_differs_from_vanilla_with_the_same_weights(preset, backend):
    v, x, _, _ = _traced("V", backend)
    m = lstmkit.LSTM(I, H, preset=preset, dtype=DT).eval()
    missing, unexpected = m.load_state_dict(v.state_dict(), strict=False)
    assert set(unexpected) <= {"weight_peephole_l0"} and set(missing) <= {"weight_gr_l0"}
    with lstmkit.use_backend(backend):
        y_v = v(x, lengths=LENGTHS)[0]
        y_m = m(x, lengths=LENGTHS)[0]
    assert float((y_v - y_m).detach().abs().max()) > 1e-3


@pytest.mark.parametrize("backend", BACKENDS)
def test_fgr_with_zero_gate_recurrence_is_vanilla(backend):
    v, x, _, _ = _traced("V", backend)
    m = lstmkit.LSTM(I, H, preset="FGR", dtype=DT).eval()
    m.load_state_dict(v.state_dict(), strict=False)
    with lstmkit.use_backend(backend):
        assert float((v(x, lengths=LENGTHS)[0] - m(x, lengths=LENGTHS)[0]).detach().abs().max()) > 1e-3
        torch.nn.init.zeros_(m.weight_gr_l0)
        check_pair(lambda: v(x, lengths=LENGTHS), lambda: m(x, lengths=LENGTHS), atol=0)


# rows of the packed (4H, .) weights per gate, peephole row per gate
ROWS = {"i": slice(0, H), "f": slice(H, 2 * H), "g": slice(2 * H, 3 * H), "o": slice(3 * H, 4 * H)}
PEEP = {"i": 0, "f": 1, "o": 2}
REMOVED = {"NIG": "i", "NFG": "f", "NOG": "o", "CIFG": "f"}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("layer_norm", [False, True], ids=["plain", "layer_norm"])
@pytest.mark.parametrize("preset", list(REMOVED))
def test_removed_gate_rows_get_zero_gradient(preset, layer_norm, backend):
    """The rows of a removed gate stay in the layout, unused: zero gradient. Under layer_norm the
    weight rows still enter the LayerNorm statistics of the whole 4H projection (documented in
    lstmkit.cells.lstm), so there only the bias rows and the peephole are unused."""
    m, x, _, _ = _traced(preset, backend, layer_norm=layer_norm)
    with lstmkit.use_backend(backend):
        y, (h, c) = m(x, lengths=LENGTHS)
    (y.pow(2).sum() + c.sum()).backward()
    gate = REMOVED[preset]
    other = "g"  # a gate that is used, to make sure gradients flow at all
    for name in ("bias_ih_l0", "bias_hh_l0") + (() if layer_norm else ("weight_ih_l0", "weight_hh_l0")):
        grad = getattr(m, name).grad
        assert int(torch.count_nonzero(grad[ROWS[gate]])) == 0, f"{name} rows of {gate}"
        assert float(grad[ROWS[other]].abs().max()) > 0
    if layer_norm:
        assert float(m.weight_ih_l0.grad[ROWS[gate]].abs().max()) > 0
    pg = m.weight_peephole_l0.grad
    assert int(torch.count_nonzero(pg[PEEP[gate]])) == 0
    assert float(pg[[k for k in range(3) if k != PEEP[gate]]].abs().max()) > 0


# -- recurrent dropout and zoneout ---------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cls,kw", [(lstmkit.LSTM, dict(preset="CIFG", proj_size=2)),
                                    (lstmkit.GRU, {})], ids=["lstm", "gru"])
def test_recurrent_dropout_only_in_training(cls, kw, backend):
    torch.manual_seed(0)
    m = cls(I, H, 2, bidirectional=True, recurrent_dropout=0.5, dtype=DT, **kw)
    plain = cls(I, H, 2, bidirectional=True, dtype=DT, **kw)
    plain.load_state_dict(m.state_dict())
    x = torch.randn(T, N, I, dtype=DT)
    with lstmkit.use_backend(backend):
        train_a, train_b = m(x, lengths=LENGTHS)[0], m(x, lengths=LENGTHS)[0]
        m.eval()
        check_pair(lambda: m(x, lengths=LENGTHS), lambda: plain(x, lengths=LENGTHS), atol=0)
        y_eval = m(x, lengths=LENGTHS)[0]
    assert float((train_a - train_b).detach().abs().max()) > 1e-3, "training masks are not random"
    assert float((train_a - y_eval).detach().abs().max()) > 1e-3


def _hand_zoneout(m, x, zc, zh):
    """Single-layer zoneout by hand with keep-probabilities/masks zc (T, N, H), zh (T, N, P)."""
    cell = cell_of(m, 0, 0)
    state = cell.initial_state(x.shape[1], x)
    ys = []
    for t in range(x.shape[0]):
        new, _ = cell.gates(x[t], state)
        if len(state) == 1:
            h = zh[t] * state[0] + (1 - zh[t]) * new[0]
            state = (h,)
        else:
            c = zc[t] * state[1] + (1 - zc[t]) * new[1]
            h = zh[t] * state[0] + (1 - zh[t]) * new[0]
            state = (h, c)
        ys.append(state[0])
    return torch.stack(ys), state


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cls,kw", [(lstmkit.LSTM, dict(preset="V", zoneout=(0.3, 0.6))),
                                    (lstmkit.LSTM, dict(zoneout=0.25, proj_size=2)),
                                    (lstmkit.GRU, dict(zoneout=0.4))], ids=["lstm", "lstm-proj", "gru"])
def test_zoneout_in_eval_is_its_expectation(cls, kw, backend):
    torch.manual_seed(0)
    m = randomize_(cls(I, H, dtype=DT, **kw).eval())
    x = torch.randn(T, N, I, dtype=DT)
    zc_p, zh_p = m.zoneout
    zc = torch.full((T, N, H), zc_p, dtype=DT)
    zh = torch.full((T, N, m.output_size), zh_p, dtype=DT)
    y_h, st = _hand_zoneout(m, x, zc, zh)
    with lstmkit.use_backend(backend):
        check_pair(lambda: m(x), lambda: (y_h, tuple(s.unsqueeze(0) for s in st) if len(st) > 1
                                          else st[0].unsqueeze(0)), atol=1e-12)
        assert torch.equal(m(x)[0], m(x)[0])  # deterministic


@pytest.mark.parametrize("backend", BACKENDS)
def test_zoneout_in_training_keeps_previous_values_at_its_rate(backend):
    """In training each unit of h keeps exactly its previous value with probability zoneout."""
    torch.manual_seed(0)
    m = randomize_(lstmkit.LSTM(I, H, zoneout=(0.0, 0.5), dtype=DT))
    x = torch.randn(40, 8, I, dtype=DT)
    with lstmkit.use_backend(backend):
        y = m(x)[0].detach()
        y2 = m(x)[0].detach()
    kept = (y[1:] == y[:-1]).double().mean()
    assert 0.4 < float(kept) < 0.6, f"kept fraction {float(kept):.3f}, expected about 0.5"
    assert not torch.equal(y, y2)
    m.eval()
    with lstmkit.use_backend(backend):
        assert float((m(x)[0][1:] == m(x)[0][:-1]).double().mean()) < 0.01


def test_reference_direction_with_fixed_training_masks_matches_hand_loop():
    """lstm_direction with 0/1 zoneout masks and a recurrent-dropout mask equals a hand loop."""
    torch.manual_seed(0)
    m = randomize_(lstmkit.LSTM(I, H, preset="V", proj_size=2, dtype=DT))
    P = 2
    g = torch.Generator().manual_seed(5)
    rec = (torch.rand(N, P, generator=g, dtype=DT) > 0.5).to(DT) * 2
    zc = (torch.rand(T, N, H, generator=g, dtype=DT) < 0.3).to(DT)
    zh = (torch.rand(T, N, P, generator=g, dtype=DT) < 0.5).to(DT)
    x = torch.randn(T, N, I, dtype=DT)
    cell = cell_of(m, 0, 0)

    def by_hand():
        h, c = cell.initial_state(N, x)
        ys = []
        for t in range(T):
            (h_new, c_new), _ = cell.gates(x[t], (h * rec, c))
            c = zc[t] * c + (1 - zc[t]) * c_new
            h = zh[t] * h + (1 - zh[t]) * h_new
            ys.append(h)
        return torch.stack(ys), h, c

    p = LSTMParams(**{k: v for k, v in cell.named_parameters()})
    h0, c0 = cell.initial_state(N, x)
    ours = lambda: reference.lstm_direction(x, h0, c0, p, cell.options, None, rec, zc, zh)[:3]  # noqa: E731
    check_pair(ours, by_hand, atol=1e-12)


def test_reference_gru_direction_with_fixed_training_masks_matches_hand_loop():
    """GRU: only the recurrent projection sees the dropout mask; the carried z * h_{t-1} term and
    zoneout use the undropped state."""
    torch.manual_seed(0)
    m = randomize_(lstmkit.GRU(I, H, dtype=DT))
    g = torch.Generator().manual_seed(6)
    rec = (torch.rand(N, H, generator=g, dtype=DT) > 0.5).to(DT) * 2
    zh = (torch.rand(T, N, H, generator=g, dtype=DT) < 0.5).to(DT)
    x = torch.randn(T, N, I, dtype=DT)
    cell = cell_of(m, 0, 0)

    def by_hand():
        (h,) = cell.initial_state(N, x)
        h = h + 0.3  # a nonzero start, so the carried term matters from the first step
        ys = []
        for t in range(T):
            _, gates = cell.gates(x[t], (h * rec,))
            h_new = (1 - gates.z) * gates.n + gates.z * h
            h = zh[t] * h + (1 - zh[t]) * h_new
            ys.append(h)
        return torch.stack(ys), h

    p = cell.params()
    h0 = torch.full((N, H), 0.3, dtype=DT)
    ours = lambda: reference.gru_direction(x, h0, p, None, rec, zh)[:2]  # noqa: E731
    check_pair(ours, by_hand, atol=1e-12)


@pytest.mark.parametrize("cls,kw", [(lstmkit.LSTM, dict(proj_size=2, zoneout=(0.2, 0.4))),
                                    (lstmkit.GRU, dict(zoneout=0.4))], ids=["lstm", "gru"])
def test_layer_passes_the_kernel_the_masks_it_documents(cls, kw, monkeypatch):
    """What the layer hands the direction kernel: in training a variational dropout mask (N, P)
    scaled by 1/(1-p) and 0/1 zoneout samples at their rates; in eval no dropout mask and the
    zoneout probabilities themselves."""
    kernel_name = f"{cls.__name__.lower()}_direction"
    original = getattr(reference, kernel_name)
    seen = []

    def spy(*args):
        seen.append(args)
        return original(*args)

    monkeypatch.setattr(reference, kernel_name, spy)
    p_rec = 0.3
    Tb, Nb = 10, 200
    m = cls(I, H, recurrent_dropout=p_rec, **kw)
    P = m.output_size
    x = torch.randn(Tb, Nb, I)
    with lstmkit.use_backend("reference"):
        m(x)
        m.eval()
        m(x)
    assert len(seen) == 2
    is_lstm = cls is lstmkit.LSTM
    for args, training in zip(seen, (True, False)):
        rec, zh = (args[6], args[8]) if is_lstm else (args[4], args[5])
        zc = args[7] if is_lstm else None
        if not training:
            assert rec is None
            assert torch.equal(zh, torch.full((Tb, Nb, P), m.zoneout[1]))
            if is_lstm:
                assert torch.equal(zc, torch.full((Tb, Nb, H), m.zoneout[0]))
            continue
        assert tuple(rec.shape) == (Nb, P)
        vals = rec.unique().tolist()
        assert len(vals) == 2 and vals[0] == 0.0 and vals[1] == pytest.approx(1 / (1 - p_rec))
        assert abs(float(rec.mean()) - 1) < 0.1
        for mask, size, prob in ((zh, P, m.zoneout[1]),) + (((zc, H, m.zoneout[0]),) if is_lstm else ()):
            assert tuple(mask.shape) == (Tb, Nb, size)
            assert set(mask.unique().tolist()) == {0.0, 1.0}
            assert abs(float(mask.mean()) - prob) < 0.05
