"""The one checker of the kernel tests: a backend's direction function against the reference one.

:func:`lstm_case` / :func:`gru_case` build a small problem (inputs, parameters, fixed masks);
:func:`run` computes every output of a direction function (y, final states, the gate trace) and the
gradients of a fixed random cotangent with respect to every input and parameter; :func:`check_against`
asserts that two backends agree on all of them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import pytest
import torch
from torch import Tensor

from lstmkit.cells.gru import GRUParams, gru_parameter_shapes
from lstmkit.cells.lstm import LSTMOptions, LSTMParams, lstm_parameter_shapes
from lstmkit.kernels import fused, reference

FUSED = fused.available()
needs_fused = pytest.mark.skipif(not FUSED, reason="fused kernels not built here")

# float32: the fused kernels use vectorised exp/tanh approximations (a few ulp) and another
# summation order than the reference, so a few 1e-6 relative; float64 uses libm: round-off only.
TOL = {torch.float32: (2e-5, 2e-4), torch.float64: (1e-10, 1e-9)}  # (atol, rtol)


@dataclass
class Case:
    """One direction call: everything but the function."""

    kind: str  # "lstm" or "gru"
    x: Tensor  # (T, N, I)
    state: tuple[Tensor, ...]  # (h0, c0) or (h0,)
    params: tuple  # LSTMParams / GRUParams
    opts: Optional[LSTMOptions] = None
    lengths: Optional[Tensor] = None
    masks: dict = field(default_factory=dict)  # rec, zoneout_c, zoneout_h (fixed tensors)

    def leaves(self) -> list[Tensor]:
        return [self.x, *self.state] + [p for p in self.params if p is not None]


def lstm_case(opts: LSTMOptions, dtype=torch.float64, T=5, N=3, I=4, H=6, P=0, lengths=None,
              rec=False, zoneout_c=False, zoneout_h=False, bias=True, seed=0, x_grad=True) -> Case:
    g = torch.Generator().manual_seed(seed)
    rnd = lambda *s: torch.randn(*s, generator=g, dtype=dtype)  # noqa: E731
    Pout = P or H
    shapes = lstm_parameter_shapes(I, H, P, bias, opts)
    params = {}
    for name, s in shapes.items():
        params[name] = 1 + 0.2 * rnd(*s) if name in ("ln_ih", "ln_hh", "ln_c_weight") else 0.4 * rnd(*s)
    params = LSTMParams(**{k: v.requires_grad_() for k, v in params.items()})
    masks = {
        "rec": (torch.bernoulli(torch.full((N, Pout), 0.7, dtype=dtype), generator=g) / 0.7) if rec else None,
        "zoneout_c": torch.bernoulli(torch.full((T, N, H), 0.3, dtype=dtype), generator=g) if zoneout_c else None,
        "zoneout_h": torch.bernoulli(torch.full((T, N, Pout), 0.3, dtype=dtype), generator=g) if zoneout_h else None,
    }
    x = rnd(T, N, I).requires_grad_(x_grad)
    state = (rnd(N, Pout).requires_grad_(), rnd(N, H).requires_grad_())
    lengths = None if lengths is None else torch.tensor(lengths)
    return Case("lstm", x, state, params, opts, lengths, masks)


def gru_case(dtype=torch.float64, T=5, N=3, I=4, H=6, lengths=None, rec=False, zoneout_h=False,
             bias=True, seed=0) -> Case:
    g = torch.Generator().manual_seed(seed)
    rnd = lambda *s: torch.randn(*s, generator=g, dtype=dtype)  # noqa: E731
    params = GRUParams(**{k: (0.4 * rnd(*s)).requires_grad_()
                          for k, s in gru_parameter_shapes(I, H, bias).items()})
    masks = {
        "rec": (torch.bernoulli(torch.full((N, H), 0.7, dtype=dtype), generator=g) / 0.7) if rec else None,
        "zoneout_h": torch.bernoulli(torch.full((T, N, H), 0.3, dtype=dtype), generator=g) if zoneout_h else None,
    }
    lengths = None if lengths is None else torch.tensor(lengths)
    return Case("gru", rnd(T, N, I).requires_grad_(), (rnd(N, H).requires_grad_(),), params, None,
                lengths, masks)


def call(module, case: Case, want_trace: bool, inputs: Optional[list[Tensor]] = None):
    """module.lstm_direction / gru_direction on the case (or on replacement leaves `inputs`)."""
    leaves = inputs if inputs is not None else case.leaves()
    x, state = leaves[0], leaves[1:1 + len(case.state)]
    it = iter(leaves[1 + len(case.state):])
    params = type(case.params)(*[None if p is None else next(it) for p in case.params])
    m = case.masks
    if case.kind == "lstm":
        y, h, c, tr = module.lstm_direction(x, state[0], state[1], params, case.opts, case.lengths,
                                            m["rec"], m["zoneout_c"], m["zoneout_h"], want_trace)
        outs = [y, h, c] + ([tr[k] for k in "ifgoc"] if want_trace else [])
    else:
        y, h, tr = module.gru_direction(x, state[0], params, case.lengths, m["rec"], m["zoneout_h"],
                                        want_trace)
        outs = [y, h] + ([tr[k] for k in "rzn"] if want_trace else [])
    return outs


def run(module, case: Case, want_trace: bool = True, grad_outputs: Optional[set] = None):
    """Every output, and the gradients of sum(out * cotangent) w.r.t. every leaf. grad_outputs picks
    which outputs the loss uses (indices; default all)."""
    outs = call(module, case, want_trace)
    g = torch.Generator().manual_seed(123)
    loss = 0
    for k, o in enumerate(outs):
        if grad_outputs is None or k in grad_outputs:
            loss = loss + (o * torch.randn(o.shape, generator=g, dtype=o.dtype)).sum()
    leaves = case.leaves()
    wanted = [t for t in leaves if t.requires_grad]  # x may be plain data (no dx asked for)
    grads = iter(torch.autograd.grad(loss, wanted, allow_unused=True))
    grads = [next(grads) if t.requires_grad else None for t in leaves]
    return [o.detach() for o in outs], [None if d is None else d.detach() for d in grads]


def assert_close(got: Tensor, want: Tensor, what: str, atol: float, rtol: float) -> None:
    assert got.shape == want.shape, f"{what}: shape {tuple(got.shape)} != {tuple(want.shape)}"
    err = (got - want).abs().max().item() if got.numel() else 0.0
    bound = atol + rtol * (want.abs().max().item() if want.numel() else 0.0)
    assert err <= bound, f"{what}: max |difference| {err:.3g} > {bound:.3g}"


def check_against(case: Case, module=fused, want_trace: bool = True, tol=None,
                  grad_outputs: Optional[set] = None) -> None:
    """THE checker: `module`'s direction function equals the reference on every output and every
    gradient (parameters, inputs, initial states)."""
    atol, rtol = tol or TOL[case.x.dtype]
    got_o, got_g = run(module, case, want_trace, grad_outputs)
    want_o, want_g = run(reference, case, want_trace, grad_outputs)
    names = ["y", "h_n", "c_n", "i", "f", "g", "o", "c"] if case.kind == "lstm" else ["y", "h_n", "r", "z", "n"]
    for name, a, b in zip(names, got_o, want_o):
        assert_close(a, b, f"output {name}", atol, rtol)
    leaf_names = ["x"] + ["h0", "c0"][: len(case.state)] + [
        n for n, p in zip(type(case.params)._fields, case.params) if p is not None]
    for name, a, b in zip(leaf_names, got_g, want_g):
        if b is None:
            assert a is None or not a.abs().any(), f"grad {name}: reference has none, got nonzero"
            continue
        assert a is not None, f"grad {name}: missing"
        assert_close(a, b, f"grad {name}", atol * 10, rtol * 10)


def leaf_fn(case: Case, want_trace: bool) -> Callable:
    """f(*leaves) -> outputs of the fused direction call, for gradcheck."""
    def f(*leaves):
        return tuple(call(fused, case, want_trace, list(leaves)))
    return f
