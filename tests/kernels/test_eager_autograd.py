"""Plain eager training calls of the forward operators take ops._EagerAutograd (the registered
setup_context and backward, without torch's per-call fill_defaults); it must give exactly what the
operator's own registered autograd gives, and traced calls must keep the operator's autograd."""
from __future__ import annotations

import pytest
import torch

import lstmkit
from lstmkit.cells.lstm import LSTMOptions
from lstmkit.kernels import ops
from lstmkit.kernels import schema as S

from .helpers import needs_fused


def _lstm_kwargs(layer_norm: bool, lengths=None):
    g = torch.Generator().manual_seed(0)
    T, N, I, H = 6, 3, 4, 5
    r = lambda *s: (0.4 * torch.randn(*s, generator=g, dtype=torch.float64)).requires_grad_()  # noqa: E731
    kw = dict(x=r(T, N, I), h0=r(N, H), c0=r(N, H), weight_ih=r(4 * H, I), weight_hh=r(4 * H, H),
              bias_ih=r(4 * H), bias_hh=r(4 * H), weight_peephole=r(3, H))
    if layer_norm:
        kw.update(ln_ih=r(4 * H), ln_hh=r(4 * H), ln_c_weight=r(H), ln_c_bias=r(H))
    if lengths is not None:
        kw["lengths"] = torch.tensor(lengths)
    opts = LSTMOptions(peephole=True, layer_norm=layer_norm).to_dict()
    return kw, {**opts, "need_backward": True, "input_grad": True}


def _grads(out_fn, kw):
    for t in kw.values():
        if isinstance(t, torch.Tensor):
            t.grad = None
    out = out_fn()
    (out[0][1:].pow(2).sum() + out[1].sum() + out[2].sum() + out[3].sum()).backward()
    return out, {k: t.grad.clone() for k, t in kw.items() if isinstance(t, torch.Tensor) and t.requires_grad}


@needs_fused
def test_the_eager_path_is_taken_and_matches_the_operators_own_autograd():
    for layer_norm, lengths in ((False, None), (True, None), (True, [6, 2, 4])):
        kw, opts = _lstm_kwargs(layer_norm, lengths)
        assert ops._plain_eager(kw.values()) == (True, True)
        eager, g_eager = _grads(lambda: ops._forward("lstm", {**kw, **opts}), kw)
        assert type(eager[0].grad_fn).__name__ == "_EagerAutogradBackward"
        own, g_own = _grads(lambda: torch.ops.lstmkit.lstm_forward(**kw, **opts), kw)
        assert "GeneratedBackwardFor" in type(own[0].grad_fn).__name__
        for a, b in zip(eager[:5], own[:5]):  # h_all, h_n, c_n, gates, c (the rest: work buffers)
            assert torch.equal(a, b)
        assert g_eager.keys() == g_own.keys() and len(g_own) == len([v for v in kw.values()
                                                                     if isinstance(v, torch.Tensor)
                                                                     and v.requires_grad])
        for k in g_own:
            assert torch.equal(g_eager[k], g_own[k]), k


@needs_fused
def test_second_derivatives_through_the_eager_path():
    kw, opts = _lstm_kwargs(True)
    x = kw["x"]
    y = ops._forward("lstm", {**kw, **opts})[0]
    (gx,) = torch.autograd.grad(y.pow(2).sum(), x, create_graph=True)
    assert gx.requires_grad  # a graph of the gradient (the differentiable recompute), not a constant
    torch.autograd.gradgradcheck(lambda x_: ops._forward("lstm", {**kw, "x": x_, **opts})[0], (x,))


def test_plain_eager_calls_are_told_apart_from_traced_ones():
    kw, opts = _lstm_kwargs(False)
    assert ops._plain_eager(kw.values()) == (True, True)
    with torch.no_grad():
        assert ops._plain_eager(kw.values()) == (True, False)  # plain, no autograd: straight to the kernel
    plain_data = {k: (v.detach() if isinstance(v, torch.Tensor) else v) for k, v in kw.items()}
    assert ops._plain_eager(plain_data.values()) == (True, False)
    params = {k: (torch.nn.Parameter(v.detach()) if isinstance(v, torch.Tensor) else v)
              for k, v in kw.items()}
    assert ops._plain_eager(params.values()) == (True, True)  # parameters are plain tensors too
    from torch._subclasses.fake_tensor import FakeTensorMode
    with FakeTensorMode():
        assert ops._plain_eager(kw.values()) == (False, False)  # a dispatch mode is active: the operator
    assert S.OPERATORS["lstm_forward"]  # the schema the eager path binds by


@needs_fused
@pytest.mark.parametrize("layer_norm", [False, True])
def test_a_no_grad_call_below_autograd_matches_the_operator(layer_norm):
    """A plain call that needs no autograd runs the kernel below the operator's registered autograd
    (its Python wrapper costs about 40 us a call): same results, and nothing for autograd to record."""
    kw, opts = _lstm_kwargs(layer_norm, [6, 2, 4])
    opts = {**opts, "need_backward": False}
    with torch.no_grad():
        direct = ops._forward("lstm", {**kw, **opts})
        own = torch.ops.lstmkit.lstm_forward(**kw, **opts)
    for a, b in zip(direct[:5], own[:5]):
        assert torch.equal(a, b)
        assert a.grad_fn is None and not a.requires_grad
    data = {k: (v.detach() if isinstance(v, torch.Tensor) else v) for k, v in kw.items()}
    out = ops._forward("lstm", {**data, **opts})  # grad on, but nothing requires it
    assert all(t.grad_fn is None for t in out if isinstance(t, torch.Tensor))


@needs_fused
def test_layers_train_through_the_eager_path():
    m = lstmkit.LSTM(4, 5, layer_norm=True, num_layers=2, bidirectional=True)
    x = torch.randn(7, 3, 4, requires_grad=True)
    with lstmkit.use_backend("fused"):
        y, _ = m(x)
    fn = y.grad_fn
    seen, stack = set(), [fn]
    while stack:  # the graph reaches the eager Function
        f = stack.pop()
        if f is None or f in seen:
            continue
        seen.add(f)
        stack += [n for n, _ in f.next_functions]
    assert any(type(f).__name__ == "_EagerAutogradBackward" for f in seen)
    y.sum().backward()
    assert x.grad is not None and all(p.grad is not None for p in m.parameters())


@needs_fused
def test_calls_the_operator_would_refuse_are_refused_the_same_way_with_grad():
    """(From the newcomer pass: the eager path had filled a missing tensor with None, which crashed the
    kernel, dropped misspelt names, and kept only the options given.)"""
    kw, _ = _lstm_kwargs(False)
    kw.pop("weight_peephole")
    for name in ("x", "h0", "c0", "weight_ih", "weight_hh"):
        partial = {k: v for k, v in kw.items() if k != name}
        with pytest.raises(RuntimeError, match=f"missing value for argument '{name}'"):
            ops.lstm_forward(**partial)
    with pytest.raises(RuntimeError, match="Unknown keyword argument 'layernorm'"):
        ops.lstm_forward(**kw, layernorm=True)
    with pytest.raises(ValueError, match="c0: expected a tensor, got None"):
        torch.ops.lstmkit.lstm_forward(*(kw[k].detach() for k in ("x", "h0")), None,
                                       *(kw[k].detach() for k in ("weight_ih", "weight_hh")))
    # only some options given: the others take the operator's defaults, second derivatives included
    y = ops.lstm_forward(**kw, peephole=False)["h_all"]
    assert type(y.grad_fn).__name__ == "_EagerAutogradBackward"
    (gx,) = torch.autograd.grad(y.pow(2).sum(), kw["x"], create_graph=True)
    (gw,) = torch.autograd.grad(gx.sum(), kw["weight_ih"])
    assert torch.isfinite(gw).all() and gw.abs().sum() > 0
