"""Fused kernels vs the reference loop: every output and every gradient, every option and preset,
float32 and float64 (the contract of lstmkit/kernels/reference.py)."""
from __future__ import annotations

import pytest
import torch

import lstmkit
from lstmkit.cells.lstm import PRESETS, LSTMOptions
from lstmkit.kernels import dispatch, fused, reference

from .helpers import TOL, assert_close, call, check_against, gru_case, lstm_case, needs_fused, run

pytestmark = needs_fused

DTYPES = [torch.float32, torch.float64]
# what a direction call may carry besides its cell options
SITUATIONS = {
    "plain": {},
    "lengths": {"lengths": [5, 2, 4]},
    "recurrent_dropout+zoneout": {"rec": True, "zoneout_c": True, "zoneout_h": True},
    "projection": {"P": 4},
    "everything": {"P": 4, "lengths": [3, 5, 1], "rec": True, "zoneout_c": True, "zoneout_h": True},
}


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("situation", SITUATIONS)
@pytest.mark.parametrize("preset", list(PRESETS) + ["LN", "V+LN"])
def test_lstm_presets(preset, situation, dtype):
    opts = {"LN": LSTMOptions(layer_norm=True),
            "V+LN": LSTMOptions(peephole=True, layer_norm=True)}.get(preset) or PRESETS.get(preset)
    check_against(lstm_case(opts, dtype, **SITUATIONS[situation]))


OPTION_MIXES = {
    "activations": LSTMOptions(gate_activation="hard_sigmoid", input_activation="relu",
                               output_activation="softsign"),
    "identity acts": LSTMOptions(input_activation="identity", output_activation="identity"),
    "relu gates": LSTMOptions(gate_activation="relu", output_activation="hard_sigmoid"),
    "CIFG+FGR+LN": LSTMOptions(peephole=True, coupled=True, gate_recurrence=True, layer_norm=True),
    "NIG+NOG": LSTMOptions(input_gate=False, output_gate=False),
    "NFG+LN": LSTMOptions(forget_gate=False, layer_norm=True),
    "FGR no peephole": LSTMOptions(gate_recurrence=True),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("mix", OPTION_MIXES)
def test_lstm_option_mixes(mix, dtype):
    opts = OPTION_MIXES[mix]
    tol = None
    if dtype == torch.float64 and opts.gate_activation == "hard_sigmoid":
        tol = (1e-7, 1e-7)  # torch's own hardsigmoid backward uses the float constant 1/6f
    check_against(lstm_case(opts, dtype, P=4, lengths=[5, 3, 1], rec=True, zoneout_c=True,
                            zoneout_h=True), tol=tol)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", [(7, 9, 5, 70, 0), (4, 13, 3, 16, 8), (3, 1, 2, 130, 0)],
                         ids=["wide", "proj-many-rows", "batch1"])
@pytest.mark.parametrize("preset", ["NP", "V", "CIFG", "LN"])
def test_lstm_shapes_across_threads_and_panels(preset, shape, dtype):
    """Sizes that split rows over two threads unevenly and cross the GEMM's 64-column panels (the
    one-thread fixture of conftest.py is restored after the test)."""
    torch.set_num_threads(2)
    T, N, I, H, P = shape
    opts = LSTMOptions(layer_norm=True) if preset == "LN" else PRESETS[preset]
    lengths = list(range(T, 0, -1))[:N] + [T] * max(0, N - T)
    check_against(lstm_case(opts, dtype, T=T, N=N, I=I, H=H, P=P, lengths=lengths[:N]))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("x_grad", [True, False], ids=["dx", "no-dx"])
@pytest.mark.parametrize("situation", ["plain", "V+proj+lengths", "CIFG+FGR+masks", "no-bias", "wide",
                                       "many-rows", "many-rows+masks", "many-rows+wide-A", "one-row"])
def test_layer_norm_input_side_both_ways(situation, x_grad, dtype):
    """Layer norm's input-side backward has two forms: with dx wanted and I^2 <= 8H it is rewritten
    through x (xw is not kept, the operand is dz); otherwise ("wide", or no dx) the row's LayerNorm
    backward runs in the loop from the kept xw (the operand is dxw). Either form's products over all
    rows run in the time loop while each block's operand is in L1 (here: the accumulator takes at
    most half of L2); test_input_side_after_the_loop covers the other case. All must equal the reference,
    padding included (I = 5 and 33 are not whole vectors)."""
    ln = LSTMOptions(layer_norm=True)
    case = {
        "plain": lambda: lstm_case(ln, dtype, x_grad=x_grad),
        "V+proj+lengths": lambda: lstm_case(LSTMOptions(peephole=True, layer_norm=True), dtype, P=4,
                                            lengths=[5, 2, 4], x_grad=x_grad),
        "CIFG+FGR+masks": lambda: lstm_case(
            LSTMOptions(peephole=True, coupled=True, gate_recurrence=True, layer_norm=True), dtype,
            lengths=[3, 5, 1], rec=True, zoneout_c=True, zoneout_h=True, x_grad=x_grad),
        "no-bias": lambda: lstm_case(ln, dtype, bias=False, x_grad=x_grad),
        "wide": lambda: lstm_case(ln, dtype, T=6, N=9, I=33, H=70, lengths=[6, 1, 6, 5, 6, 2, 6, 6, 3],
                                  x_grad=x_grad),
        "many-rows": lambda: lstm_case(ln, dtype, T=4, N=13, I=5, H=6, x_grad=x_grad),
        "many-rows+masks": lambda: lstm_case(
            LSTMOptions(peephole=True, coupled=True, gate_recurrence=True, layer_norm=True), dtype,
            T=5, N=16, I=5, H=6, P=3, lengths=[5, 1, 3, 5, 2, 5, 4, 5, 5, 1, 2, 3, 4, 5, 5, 5], rec=True,
            zoneout_c=True, zoneout_h=True, x_grad=x_grad),
        "many-rows+wide-A": lambda: lstm_case(ln, dtype, T=3, N=8, I=40, H=512,
                                              lengths=[3, 1, 3, 2, 3, 3, 1, 3], x_grad=x_grad),
        "one-row": lambda: lstm_case(ln, dtype, T=6, N=1, I=5, H=6, x_grad=x_grad),
    }[situation]()
    check_against(case)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("x_grad", [True, False], ids=["dx", "no-dx"])
@pytest.mark.parametrize("preset", ["NP", "LN"])
def test_input_side_after_the_loop(preset, x_grad, dtype):
    """The input side's products after the time loop, over the kept operand (rows_pass, and layer
    norm's ln_input_rows): taken where the (4H, I) accumulator takes more than half the core's
    L2 cache (1.5 MiB and more here, I^2 <= 8H so that layer norm rewrites through x)."""
    opts = LSTMOptions(layer_norm=True) if preset == "LN" else PRESETS[preset]
    check_against(lstm_case(opts, dtype, T=3, N=3, I=90, H=1024, lengths=[3, 1, 2], x_grad=x_grad))


@needs_fused
@pytest.mark.parametrize("offset", ["ih", "hh", "both"])
@pytest.mark.parametrize("I", [24, 40], ids=["dx-through-x", "xw-kept"])
def test_layer_norm_with_offset_projections(I, offset):
    """float32, projections with a mean far from zero (every row of the weight shares a component,
    and x has an offset): the fused kernels take both products through centred weights (csrc
    pointwise.h, centre_rows) and treat the rows' means as 0; outputs and gradients (the weights'
    centred again) stay within the reference's tolerance. I = 24 runs the input side's backward
    through x after the loop (I^2 <= 8H), I = 40 from the kept x W_ih^T."""
    case = lstm_case(LSTMOptions(layer_norm=True), torch.float32, T=8, N=6, I=I, H=40,
                     lengths=[8, 3, 8, 1, 6, 8])
    with torch.no_grad():
        case.x.add_(1.5)
        if offset in ("ih", "both"):
            case.params.weight_ih.add_(0.3)
        if offset in ("hh", "both"):
            case.params.weight_hh.add_(0.5)
    check_against(case)


@needs_fused
@pytest.mark.parametrize("case_", ["offset-30", "shift-far", "shift-far-peephole"])
def test_layer_norm_cell_statistics_with_a_far_shift(case_):
    """float32 fused against the float64 reference for the cell's LayerNorm statistics, which the
    fast path sums in the gate loop shifted by c_{t-1}[0] (csrc lstm_cell.h, cell_ln_stats_from).
    offset-30: c_t near 30 with a spread of 0.05 (forget gates open). shift-far: c_0[0] = -2000
    and the forget gates shut, so that the first step's shift is far from c_1's mean and its
    one-pass variance would be lost to cancellation (NaN outputs without the guard that takes such
    a row again)."""
    opts = LSTMOptions(layer_norm=True, peephole=case_.endswith("peephole"))
    case = lstm_case(opts, torch.float64, T=5, N=4, I=6, H=32, lengths=[5, 2, 4, 5])
    with torch.no_grad():
        c = case.state[1]
        if case_ == "offset-30":
            case.params.bias_ih[32:64].fill_(12.0)  # forget gates open: c_t stays near c_0
            c.mul_(0.05).add_(30.0)
        else:
            case.params.bias_ih[32:64].fill_(-12.0)  # forget gates shut: c_1 = i g
            c[:, 0] = -2000.0
    want_o, _ = _run_with_float64_cotangents(reference, case)
    got_o, _ = _run_with_float64_cotangents(fused, _as_float32(case))
    atol, rtol = TOL[torch.float32]
    for k, (a, b) in enumerate(zip(got_o, want_o)):
        assert_close(a.double(), b, f"output {k}", atol * 10, rtol * 10)


@needs_fused
@pytest.mark.parametrize("H", [1024, 4096])
@pytest.mark.parametrize("case_", ["shift-0.6-sqrt(H)-deviations", "unit-0-an-outlier"])
def test_layer_norm_cell_statistics_keep_float32_accuracy(case_, H):
    """One forward step, float32 fused against the float64 reference, where one-pass statistics of
    c_1 would lose up to a factor of H of its variance (found by a newcomer): the shift of the gate
    loop's sums, c_0[0], placed 0.6 sqrt(H) standard deviations from c_1's mean with the forget gates
    shut (3.0e-4 relative error with a guard at H var), or unit 0 an outlier of c_1 itself, its
    forget gate open on c_0[0] = 30 (8.5e-5 with the old one-pass statistics shifted by c_t[0]). Both
    within the float32 reference's own error (about 3e-7) now."""
    torch.manual_seed(0)
    m = lstmkit.LSTM(4, H, layer_norm=True).double()
    with torch.no_grad():
        m.bias_ih_l0[H:2 * H] = -30.0  # forget gates shut: c_1 = i g
        if case_ == "unit-0-an-outlier":
            m.bias_ih_l0[H] = 30.0
    x = torch.randn(1, 2, 4, dtype=torch.float64)
    h0 = torch.zeros(1, 2, H, dtype=torch.float64)
    c0 = torch.zeros(1, 2, H, dtype=torch.float64)
    if case_ == "unit-0-an-outlier":
        c0[..., 0] = 30.0
    else:
        with torch.no_grad(), lstmkit.use_backend("reference"):
            _, (_, c1) = m(x, (h0, c0))
        c0[..., 0] = c1.mean(-1) - 0.6 * H ** 0.5 * c1.std(-1, unbiased=False)
    with torch.no_grad(), lstmkit.use_backend("reference"):
        want, _ = m(x, (h0, c0))
    m32 = m.float()
    with torch.no_grad(), lstmkit.use_backend("fused"):
        got, _ = m32(x.float(), (h0.float(), c0.float()))
    err = ((got.double() - want).abs().max() / want.abs().max()).item()
    assert err < 3e-6, f"relative error {err:.3g}"


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_lstm_no_bias_and_partial_gradients(dtype):
    check_against(lstm_case(PRESETS["V"], dtype, bias=False, lengths=[2, 5, 5]))
    check_against(lstm_case(PRESETS["CIFG"], dtype), grad_outputs={1})  # only h_n used
    check_against(lstm_case(LSTMOptions(layer_norm=True), dtype), grad_outputs={2, 7})  # c_n, c trace
    check_against(lstm_case(PRESETS["V"], dtype), want_trace=False)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("situation", ["plain", "lengths", "masks", "wide"])
def test_gru(situation, dtype):
    kw = {"plain": {}, "lengths": {"lengths": [5, 1, 3]},
          "masks": {"rec": True, "zoneout_h": True, "lengths": [4, 5, 2]},
          "wide": {"N": 9, "H": 70, "T": 4}}[situation]
    check_against(gru_case(dtype, **kw))
    check_against(gru_case(dtype, bias=False, **kw), want_trace=False)


def test_float32_gemm_paths_agree(monkeypatch):
    """lstmkit's own GEMM kernel and the BLAS's packed GEMM give the same results."""
    case = lstm_case(PRESETS["V"], torch.float32, N=8, H=40, P=24, lengths=[5, 4, 5, 3, 5, 1, 2, 5])
    own = run(fused, case)
    monkeypatch.setenv("LSTMKIT_OWN_GEMM_ROWS", "0")
    blas = run(fused, case)
    for a, b in zip(own[0] + own[1], blas[0] + blas[1]):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


_THREAD_CASES = {
    "CIFG": lambda: lstm_case(PRESETS["CIFG"], torch.float64, N=7, H=12, lengths=[5, 1, 2, 3, 4, 5, 5]),
    # layer norm's per-thread sums of the input side (A, C: dx through x; the kept xw without dx)
    # and of the LayerNorm parameters' gradients, summed after the loop
    "LN-dx": lambda: lstm_case(LSTMOptions(layer_norm=True), torch.float64, N=7, I=5, H=12,
                               lengths=[5, 1, 2, 3, 4, 5, 5]),
    "LN-no-dx": lambda: lstm_case(LSTMOptions(layer_norm=True), torch.float64, N=7, I=5, H=12,
                                  lengths=[5, 1, 2, 3, 4, 5, 5], x_grad=False),
    "LN-wide": lambda: lstm_case(LSTMOptions(peephole=True, layer_norm=True), torch.float64, N=6,
                                 I=33, H=20, lengths=[5, 5, 2, 4, 1, 5]),
    "GRU": lambda: gru_case(torch.float64, N=7, H=12, lengths=[5, 1, 2, 3, 4, 5, 5], rec=True),
}


@pytest.mark.parametrize("preset", list(_THREAD_CASES))
def test_thread_count_does_not_change_results(preset):
    """Two threads (each its own block of rows and its own accumulators of the sums over rows,
    added after the loop) give the one-thread results, and both equal the reference. Most other
    tests run on one thread (conftest.py)."""
    case = _THREAD_CASES[preset]()
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = run(fused, case)
        torch.set_num_threads(2)
        two = run(fused, case)
        check_against(case)
    finally:
        torch.set_num_threads(old)
    for a, b in zip(one[0] + one[1], two[0] + two[1]):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-12)


def test_results_survive_later_calls():
    """Outputs live in pooled memory; a later call must never reuse a block still in use."""
    case = lstm_case(PRESETS["V"], torch.float32, T=30, N=40, H=32)
    with torch.no_grad():
        y1, *_ = fused.lstm_direction(case.x, *case.state, case.params, case.opts)
        keep = y1.clone()
        for _ in range(3):
            fused.lstm_direction(case.x * 2, *case.state, case.params, case.opts)
    assert torch.equal(y1, keep)


def test_output_is_an_ordinary_tensor_for_autograd():
    """y can be used and even changed in place; as with torch.nn.LSTM, an in-place change to y
    before backward is caught by autograd's version check instead of giving wrong gradients."""
    case = lstm_case(PRESETS["V"], torch.float64, T=3, N=2, I=2, H=3)
    y, *_ = fused.lstm_direction(case.x, *case.state, case.params, case.opts)
    (y + 1).sum().backward()
    y, *_ = fused.lstm_direction(case.x, *case.state, case.params, case.opts)
    y += 1
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


def test_gradient_penalty_matches_the_reference():
    """The issue's example: a gradient penalty (grad with create_graph=True, then backward) through a
    variant gives exactly the reference's weight gradient (it used to be silently wrong)."""
    grads = []
    for module in (fused, reference):
        case = lstm_case(PRESETS["V"], torch.float64, T=3, N=2, I=2, H=3, lengths=[3, 2])
        y, *_ = module.lstm_direction(case.x, *case.state, case.params, case.opts, case.lengths)
        (gw,) = torch.autograd.grad(y.pow(2).sum(), case.params.weight_hh, create_graph=True)
        (gw.pow(2).sum() + y.sum()).backward()
        grads.append([t.grad for t in case.leaves()])
    for got, want in zip(*grads):
        assert_close(got, want, "second-order gradient", 1e-10, 1e-9)


# ---- through the layers: dispatch, directions, depth, input forms ----------------------------------
def _layer_pair(cls, seed=0, **kw):
    torch.manual_seed(seed)
    a = cls(**kw)
    b = cls(**kw)
    b.load_state_dict(a.state_dict())
    return a, b


def _run_layer(m, backend, x, seed, **call):
    with lstmkit.use_backend(backend):
        torch.manual_seed(seed)  # the same dropout / zoneout masks on both backends
        out = m(x, **call)
    return out


def _flat(o):
    if isinstance(o, torch.nn.utils.rnn.PackedSequence):
        return [o.data]
    if isinstance(o, torch.Tensor):
        return [o]
    if isinstance(o, dict):
        return [t for k in sorted(o) for t in _flat(o[k])]
    return [t for e in o for t in _flat(e)]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("layer", [
    dict(cls="LSTM", preset="V", num_layers=2, bidirectional=True, proj_size=3, dropout=0.3,
         recurrent_dropout=0.2, zoneout=(0.1, 0.2), batch_first=True),
    dict(cls="LSTM", layer_norm=True, coupled=True, peephole=True, num_layers=2, bidirectional=True),
    dict(cls="GRU", num_layers=2, bidirectional=True, recurrent_dropout=0.25, zoneout=0.1),
], ids=["lstm-V-bi-stacked-proj-masks", "lstm-LN-CIFG-bi", "gru-bi-masks"])
@pytest.mark.parametrize("lengths", [None, [6, 2, 5, 1]], ids=["full", "lengths"])
def test_layers_fused_vs_reference(layer, lengths, dtype):
    kw = dict(layer)
    cls = getattr(lstmkit, kw.pop("cls"))
    a, b = _layer_pair(cls, input_size=3, hidden_size=5, dtype=dtype, **kw)
    a.train(), b.train()
    x = torch.randn(4, 6, 3, dtype=dtype) if kw.get("batch_first") else torch.randn(6, 4, 3, dtype=dtype)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    call = {"lengths": lengths, "return_trace": True}
    oa = _flat(_run_layer(a, "fused", xa, 7, **call))
    ob = _flat(_run_layer(b, "reference", xb, 7, **call))
    atol, rtol = (2e-5, 2e-4) if dtype == torch.float32 else (1e-10, 1e-9)
    for k, (u, v) in enumerate(zip(oa, ob)):
        assert_close(u.detach(), v.detach(), f"output {k}", atol, rtol)
    g = torch.Generator().manual_seed(1)
    cot = [torch.randn(v.shape, generator=g, dtype=dtype) for v in ob]
    sum((u * c).sum() for u, c in zip(oa, cot)).backward()
    sum((v * c).sum() for v, c in zip(ob, cot)).backward()
    assert_close(xa.grad, xb.grad, "grad input", atol * 10, rtol * 10)
    for (n, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        assert_close(pa.grad, pb.grad, f"grad {n}", atol * 10, rtol * 10)


def test_packed_sequence_input():
    a, b = _layer_pair(lstmkit.LSTM, input_size=3, hidden_size=4, preset="CIFG", bidirectional=True)
    seqs = [torch.randn(n, 3) for n in (5, 2, 4)]
    packed = torch.nn.utils.rnn.pack_sequence(seqs, enforce_sorted=False)
    oa = _flat(_run_layer(a, "fused", packed, 0))
    ob = _flat(_run_layer(b, "reference", packed, 0))
    for u, v in zip(oa, ob):
        torch.testing.assert_close(u, v, atol=1e-5, rtol=1e-4)


def test_auto_runs_every_variant_on_fused_and_vanilla_on_native(monkeypatch):
    calls = []
    real = fused.lstm_direction
    monkeypatch.setattr(fused, "lstm_direction", lambda *a, **k: calls.append(1) or real(*a, **k))
    x = torch.randn(4, 2, 3)
    with lstmkit.use_backend("auto"):
        lstmkit.LSTM(3, 5)(x)
        assert calls == []
        lstmkit.LSTM(3, 5, preset="V")(x)
        lstmkit.LSTM(3, 5, layer_norm=True)(x)
        lstmkit.LSTM(3, 5)(x, return_trace=True)
        assert len(calls) == 3
        # vanilla with lengths: torch's packed-sequence path is measured slower (dispatch.py)
        lstm = lstmkit.LSTM(3, 5)
        y = lstm(x, lengths=torch.tensor([4, 2]))[0]
        assert len(calls) == 4
        with lstmkit.use_backend("native"):
            torch.testing.assert_close(y, lstm(x, lengths=torch.tensor([4, 2]))[0], atol=1e-5, rtol=1e-4)
    assert dispatch.select("LSTM", False, "variant") == "fused"
    assert dispatch.select("LSTM", True, "", packed=True) == "fused"  # the measured lengths rule
    assert dispatch.select("LSTM", True, "", packed=False) == "native"
    with lstmkit.use_backend("fused"):
        assert dispatch.select("LSTM", True, "") == "fused"
    with lstmkit.use_backend("reference"):
        assert dispatch.select("LSTM", False, "variant") == "reference"


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("preset", ["V", "CIFG", "LN", "LN+GR"])
def test_lstm_forward_only_matches_the_reference(preset, dtype):
    """Under no_grad the kernel keeps nothing for backward (layer norm: xw, hw in per-thread
    buffers); its outputs must be those of the reference, with lengths, masks and thread splits."""
    opts = {"LN": LSTMOptions(layer_norm=True),
            "LN+GR": LSTMOptions(layer_norm=True, gate_recurrence=True)}.get(preset) or PRESETS[preset]
    atol, rtol = TOL[dtype]
    for kw in ({"N": 13, "H": 70, "lengths": list(range(5, 0, -1)) + [5] * 8},
               {"N": 3, "rec": True, "zoneout_c": True, "zoneout_h": True}, {"N": 1, "P": 4}):
        case = lstm_case(opts, dtype, **kw)
        with torch.no_grad():
            got = call(fused, case, True)
            want = call(reference, case, True)
        for k, (a, b) in enumerate(zip(got, want)):
            assert_close(a, b, f"output {k}", atol, rtol)


def _run_with_float64_cotangents(module, case):
    """run() with the cotangents drawn in float64 whatever the case's dtype, so that a float32 run
    and a float64 run differentiate the same loss."""
    outs = call(module, case, True)
    g = torch.Generator().manual_seed(123)
    loss = sum((o * torch.randn(o.shape, generator=g, dtype=torch.float64).to(o.dtype)).sum() for o in outs)
    leaves = case.leaves()
    grads = torch.autograd.grad(loss, leaves)
    return [o.detach() for o in outs], [d.detach() for d in grads]


def _as_float32(case):
    """The same case in float32 (fresh leaves)."""
    conv = lambda t: None if t is None else t.detach().float().requires_grad_(t.requires_grad)  # noqa: E731
    return type(case)(case.kind, conv(case.x), tuple(conv(s) for s in case.state),
                      type(case.params)(*[conv(p) for p in case.params]), case.opts, case.lengths,
                      {k: None if v is None else v.float() for k, v in case.masks.items()})


@needs_fused
@pytest.mark.parametrize("weights", ["ih-constant", "ih-rows-equal", "offset-20"])
@pytest.mark.parametrize("I", [24, 40], ids=["dx-through-x", "xw-kept"])
def test_layer_norm_float32_against_float64_with_common_row_components(I, weights):
    """Weights whose rows share a large component, float32 fused against the float64 reference (the
    float32 reference itself loses digits to the cancellation here). The fused kernels centre the
    weights over their rows and take the products' means as 0, so the centring must leave no
    common component behind: with the means summed in float32, every entry 5.7 put the outputs off
    by 0.17 (a newcomer's test). Identical rows make x W_ih^T constant over the 4H outputs, so its
    LayerNorm is exactly 0; there only the outputs are compared (the gradients of a zero-variance
    LayerNorm are ill-conditioned in float32 on either backend)."""
    case = lstm_case(LSTMOptions(layer_norm=True), torch.float64, T=6, N=3, I=I, H=40, lengths=[6, 2, 5])
    with torch.no_grad():
        w = case.params.weight_ih
        if weights == "ih-constant":
            w.fill_(5.7)
        elif weights == "ih-rows-equal":
            w.copy_(w[0].expand_as(w))
        else:
            w.add_(20.0)
            case.params.weight_hh.add_(20.0)
    want_o, want_g = _run_with_float64_cotangents(reference, case)
    got_o, got_g = _run_with_float64_cotangents(fused, _as_float32(case))
    atol, rtol = TOL[torch.float32]
    for k, (a, b) in enumerate(zip(got_o, want_o)):
        assert_close(a.double(), b, f"output {k}", atol, rtol)
    if weights == "offset-20":
        for k, (a, b) in enumerate(zip(got_g, want_g)):
            if b is not None:
                assert_close(a.double(), b, f"grad {k}", atol * 10, rtol * 10)
