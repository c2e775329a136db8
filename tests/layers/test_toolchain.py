"""lstmkit layers under the PyTorch toolchain: torch.compile (fullgraph, inductor), torch.export,
torch.func, double backward (gradgradcheck), and torch's edge cases (empty batch, dropout with one
layer, float16/bfloat16, the meta device, every form of ``lengths``).

The quick suite compiles a representative subset (compiling is slow on 2 cores); every preset runs
under ``--run-slow``.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import lstmkit
from lstmkit.cells.lstm import PRESETS
from lstmkit.kernels import fused

needs_fused = pytest.mark.skipif(not fused.available(), reason="fused kernels not built here")

ALL_VARIANTS = {name: dict(preset=name) for name in PRESETS} | {
    "LN+proj": dict(layer_norm=True, proj_size=3),
    "V-bi-2layer": dict(preset="V", bidirectional=True, num_layers=2),
}
QUICK = ["V"]


def _pair(kw, seed=0):
    torch.manual_seed(seed)
    m = lstmkit.LSTM(4, 5, batch_first=True, **kw)
    x = torch.randn(3, 6, 4)
    return m, x


def _outputs_and_grads(m, x, lengths=None):
    x = x.clone().requires_grad_()
    out, (h, c) = m(x, lengths=lengths)
    loss = out.pow(2).sum() + h.sum() + 0.5 * c.pow(2).sum()
    grads = torch.autograd.grad(loss, [x] + list(m.parameters()))
    return [out, h, c, *grads]


class _Several(torch.nn.Module):
    """Several layers side by side on one input: one compiled graph covers them all."""

    def __init__(self, names):
        super().__init__()
        torch.manual_seed(0)
        self.layers = torch.nn.ModuleList(lstmkit.LSTM(4, 5, batch_first=True, **ALL_VARIANTS[n])
                                          for n in names)

    def forward(self, x, lengths):
        return [t for m in self.layers for t in (m(x, lengths=lengths)[0], *m(x, lengths=lengths)[1])]


def _compiled_parity(names, backend="inductor"):
    m = _Several(names)
    x = torch.randn(3, 6, 4)
    lengths = torch.tensor([6, 2, 4])
    torch._dynamo.reset()
    compiled = torch.compile(m, fullgraph=True, backend=backend)

    def run(f):
        xg = x.clone().requires_grad_()
        outs = f(xg, lengths)
        loss = sum((k + 1) * o.pow(2).sum() for k, o in enumerate(outs))
        return outs + list(torch.autograd.grad(loss, [xg] + list(m.parameters())))

    for got, want in zip(run(compiled), run(m)):
        torch.testing.assert_close(got, want, atol=2e-5, rtol=2e-4)


@needs_fused
def test_compiled_fullgraph_matches_eager():
    """torch.compile(fullgraph=True) with inductor: outputs and every gradient as eager."""
    _compiled_parity(QUICK)


@pytest.mark.slow
@needs_fused
def test_compiled_fullgraph_matches_eager_every_preset():
    """Every preset (and layer norm, projection, bidirectional 2-layer) in one graph compiled by
    inductor with fullgraph=True: outputs and every gradient as eager (one graph keeps inductor's
    code generation to one compile, about 15-40 s on 2 cores)."""
    _compiled_parity([n for n in ALL_VARIANTS if n not in QUICK])


@needs_fused
def test_vanilla_and_gru_compile_with_fullgraph():
    """torch.nn.LSTM itself cannot be traced with fullgraph=True (dynamo refuses RNN modules);
    lstmkit's vanilla layer and GRU compile, running the fused operator in the graph."""
    for m in (lstmkit.LSTM(4, 5), lstmkit.GRU(4, 5)):
        x = torch.randn(6, 2, 4)
        torch._dynamo.reset()
        got = torch.compile(m, fullgraph=True, backend="aot_eager")(x)
        want = m(x)
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


@needs_fused
def test_export_round_trip():
    m, x = _pair(dict(preset="CIFG", layer_norm=True))
    m.eval()
    ep = torch.export.export(m, (x,))
    ops = {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}
    assert "lstmkit.lstm_forward.default" in ops
    torch.testing.assert_close(ep.module()(x), m(x))
    x2 = torch.randn(3, 6, 4)
    torch.testing.assert_close(ep.module()(x2), m(x2))


@needs_fused
def test_torch_func_grad_and_vjp():
    m, x = _pair(dict(preset="V"))
    params = dict(m.named_parameters())

    def loss(p, x):
        out, _ = torch.func.functional_call(m, p, (x,))
        return out.pow(2).sum()

    got = torch.func.grad(loss)(params, x)
    want = torch.autograd.grad(loss(params, x), list(params.values()))
    for g, w in zip(got.values(), want):
        torch.testing.assert_close(g, w)


@pytest.mark.parametrize("make", [lambda: lstmkit.LSTM(3, 4, batch_first=True),
                                  lambda: lstmkit.LSTM(3, 4, batch_first=True, preset="CIFG", bidirectional=True),
                                  lambda: lstmkit.LSTM(3, 4, batch_first=True, layer_norm=True),
                                  lambda: lstmkit.GRU(3, 4, batch_first=True)],
                         ids=["V", "CIFG-bi", "LN", "GRU"])
def test_torch_func_vmap_and_jacrev(make):
    """vmap over a stack of batches equals a loop (torch.nn.LSTM itself has no vmap batching rule:
    inside torch.func lstmkit runs the reference loop), and jacrev of the input equals autograd."""
    torch.manual_seed(0)
    m = make()
    xs = torch.randn(4, 2, 5, 3)                                   # 4 independent batches (2, 5, 3)
    got = torch.func.vmap(lambda x: m(x)[0])(xs)
    torch.testing.assert_close(got, torch.stack([m(x)[0] for x in xs]), atol=1e-6, rtol=1e-5)
    x = xs[0].clone().requires_grad_()
    jac = torch.func.jacrev(lambda x: m(x)[0].sum(-1))(x)          # (2, 5, 2, 5, 3)
    rows = [torch.autograd.grad(m(x)[0].sum(-1).flatten()[k], x)[0] for k in range(10)]
    torch.testing.assert_close(jac.reshape(10, 2, 5, 3), torch.stack(rows), atol=1e-6, rtol=1e-5)


# ---- double backward --------------------------------------------------------------------------------
GG_VARIANTS = {name: dict(preset=name) for name in PRESETS} | {
    "LN": dict(layer_norm=True), "proj": dict(preset="V", proj_size=2),
    "zoneout+recurrent_dropout": dict(preset="V", zoneout=(0.3, 0.2), recurrent_dropout=0.3),
}
GG_QUICK = ["V", "zoneout+recurrent_dropout"]


def _gradgradcheck(kw, lengths=None):
    torch.manual_seed(0)
    m = lstmkit.LSTM(2, 3, batch_first=True, dtype=torch.float64, **kw).eval()
    names = [n for n, _ in m.named_parameters()]
    x = torch.randn(2, 3, 2, dtype=torch.float64, requires_grad=True)
    params = tuple(p.detach().requires_grad_() for p in m.parameters())

    def f(x, *ps):
        out, (h, c) = torch.func.functional_call(m, dict(zip(names, ps)), (x,),
                                                 {"lengths": lengths})
        return out, h, c

    with lstmkit.use_backend("fused"):
        assert torch.autograd.gradgradcheck(f, (x, *params), atol=1e-6, rtol=1e-5)


@needs_fused
@pytest.mark.parametrize("name", GG_QUICK)
def test_gradgradcheck(name):
    _gradgradcheck(GG_VARIANTS[name], lengths=[3, 2] if name == "V" else None)


@pytest.mark.slow
@needs_fused
@pytest.mark.parametrize("name", [n for n in GG_VARIANTS if n not in GG_QUICK])
def test_gradgradcheck_every_preset(name):
    _gradgradcheck(GG_VARIANTS[name])


@needs_fused
def test_gru_gradgradcheck():
    torch.manual_seed(0)
    m = lstmkit.GRU(2, 3, dtype=torch.float64, zoneout=0.2).eval()
    x = torch.randn(3, 2, 2, dtype=torch.float64, requires_grad=True)
    names = [n for n, _ in m.named_parameters()]
    params = tuple(p.detach().requires_grad_() for p in m.parameters())
    with lstmkit.use_backend("fused"):
        assert torch.autograd.gradgradcheck(
            lambda x, *ps: torch.func.functional_call(m, dict(zip(names, ps)), (x,)),
            (x, *params))


# ---- edge cases like torch --------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["auto", "fused", "reference"])
@pytest.mark.parametrize("kw", [dict(), dict(preset="V", bidirectional=True)], ids=["vanilla", "V-bi"])
def test_empty_batch_returns_empty_outputs_and_backward_works(kw, backend):
    if backend == "fused" and not fused.available():
        pytest.skip("fused kernels not built here")
    if backend == "auto" and kw:
        backend = "auto"
    m = lstmkit.LSTM(4, 5, **kw)
    ref = torch.nn.LSTM(4, 5, bidirectional=m.bidirectional)
    x = torch.randn(7, 0, 4, requires_grad=True)
    with lstmkit.use_backend(backend):
        out, (h, c) = m(x)
    want, (wh, wc) = ref(x)
    assert out.shape == want.shape and h.shape == wh.shape and c.shape == wc.shape
    (out.sum() + h.sum()).backward()
    assert x.grad.shape == x.shape
    assert all(p.grad is None or float(p.grad.abs().sum()) == 0 for p in m.parameters())


def test_dropout_with_one_layer_warns_exactly_as_torch():
    with warnings.catch_warnings(record=True) as ours:
        warnings.simplefilter("always")
        lstmkit.LSTM(4, 5, dropout=0.3)
    with warnings.catch_warnings(record=True) as theirs:
        warnings.simplefilter("always")
        torch.nn.LSTM(4, 5, dropout=0.3)
    assert [str(w.message) for w in ours] == [str(w.message) for w in theirs]
    assert [w.category for w in ours] == [w.category for w in theirs] == [UserWarning]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lstmkit.LSTM(4, 5, dropout=0.3, num_layers=2)


@needs_fused
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_half_precision_runs_fused_in_float32(dtype, recwarn):
    torch.manual_seed(0)
    half = lstmkit.LSTM(4, 5, preset="CIFG", layer_norm=True, dtype=dtype)
    x = torch.randn(6, 3, 4).to(dtype)
    with lstmkit.use_backend("fused"):
        got, (h, c) = half(x)
    assert got.dtype == h.dtype == c.dtype == dtype
    # float32 inside: the same layer in float32 on the same (rounded) numbers differs only by the
    # rounding of the outputs to the half format (2^-11 or 2^-8 relative)
    m = lstmkit.LSTM(4, 5, preset="CIFG", layer_norm=True)
    m.load_state_dict({k: v.float() for k, v in half.state_dict().items()})
    with lstmkit.use_backend("reference"):
        want, _ = m(x.float())
    tol = {torch.float16: 1e-3, torch.bfloat16: 8e-3}[dtype]
    torch.testing.assert_close(got.float(), want, atol=tol, rtol=tol)
    got.float().sum().backward()
    assert half.weight_ih_l0.grad.dtype == dtype
    assert not [w for w in recwarn if "reference" in str(w.message)]


@pytest.mark.parametrize("kw", [dict(), dict(preset="V")], ids=["vanilla", "V"])
def test_meta_device_with_lengths_and_packed_sequence(kw):
    m = lstmkit.LSTM(4, 5, batch_first=True, device="meta", **kw)
    x = torch.randn(3, 6, 4, device="meta")
    out, (h, c) = m(x, lengths=[6, 2, 4])
    assert out.shape == (3, 6, 5) and h.shape == c.shape == (1, 3, 5) and out.is_meta
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, [6, 2, 4], batch_first=True,
                                                     enforce_sorted=False)
    out, (h, c) = m(packed)
    assert out.data.shape == (12, 5) and h.shape == (1, 3, 5)


@pytest.mark.parametrize("form", ["list", "tuple", "numpy", "numpy-uint8", "int32", "int16", "uint8"])
def test_lengths_in_every_integer_form(form):
    torch.manual_seed(0)
    m = lstmkit.LSTM(4, 5, preset="NIG", batch_first=True)
    x = torch.randn(3, 6, 4)
    lens = [6, 2, 4]
    given = {"list": lens, "tuple": tuple(lens), "numpy": np.array(lens),
             "numpy-uint8": np.array(lens, dtype=np.uint8), "int32": torch.tensor(lens, dtype=torch.int32),
             "int16": torch.tensor(lens, dtype=torch.int16),
             "uint8": torch.tensor(lens, dtype=torch.uint8)}[form]
    want = m(x, lengths=torch.tensor(lens))
    got = m(x, lengths=given)
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize("bad,err,message", [
    (np.array([6.0, 2.0, 4.0]), TypeError, "expected integer lengths, got dtype torch.float64"),
    ([6, 2.5, 4], TypeError, "expected integer lengths"),
    (torch.tensor([True, True, False]), TypeError, "expected integer lengths, got dtype torch.bool"),
    ("abc", TypeError, "expected lengths as a 1-D integer tensor or sequence of ints, got str"),
    ([6, 2], ValueError, r"expected lengths of shape \(3,\)"),
    ([6, 0, 4], ValueError, "expected every length >= 1"),
    ([6, 7, 4], ValueError, "expected every length <= the sequence length 6"),
])
def test_bad_lengths_are_refused_with_lstmkits_message(bad, err, message):
    m = lstmkit.LSTM(4, 5, batch_first=True)
    with pytest.raises(err, match=message):
        m(torch.randn(3, 6, 4), lengths=bad)


# ---- torch.jit.trace ----------------------------------------------------------------------------------
@needs_fused
@pytest.mark.parametrize("name", list(ALL_VARIANTS))
def test_jit_trace_every_variant(name):
    """The trace passes torch's own sanity check and runs at another length and batch size."""
    torch.manual_seed(0)
    m = lstmkit.LSTM(4, 5, **ALL_VARIANTS[name]).eval()
    traced = torch.jit.trace(m, (torch.randn(6, 3, 4),))
    x = torch.randn(9, 2, 4)
    torch.testing.assert_close(traced(x), m(x))
