"""The fused kernels as PyTorch operators: ``torch.ops.lstmkit.{lstm,gru}_{forward,backward}``.

Registered with ``torch.library`` from the tables of :mod:`lstmkit.kernels.schema` (named arguments,
keyword-only option flags, named results), each with

* a **fake (meta) implementation**, so ``torch.compile`` (also ``fullgraph=True``), ``torch.export``,
  FakeTensor and the meta device know every result's shape without running the kernel; it checks
  the shapes of the tables and says which argument is wrong, as the C++ binding does at run time;
* **autograd** (``torch.library.register_autograd``) on the forward operators: the backward is the
  hand-written backward through time of the C++ core (the ``*_backward`` operators). When a graph
  of the gradient is asked for (``create_graph=True``, ``torch.autograd.gradgradcheck``, a gradient
  penalty, nested ``torch.func.grad``), the backward instead recomputes the step through the
  differentiable reference path (:mod:`lstmkit.kernels.reference`) and differentiates that, so
  every higher derivative is exact, never the silent zero of a once-differentiable backward.
  Plain eager training calls (no tracing, no dispatch mode, no tensor subclass) run the same
  setup_context and backward through ``_EagerAutograd``, a ``torch.autograd.Function`` around the
  operator: torch's generated Function spends about 230 us per call in ``fill_defaults`` (quadratic
  in the schema's 30 arguments with torch 2.13), more than a short sequence's whole forward.

The CPU kernels come from the compiled library (``csrc/binding.cpp``, loaded by
:mod:`lstmkit.kernels.fused`); the schemas exist as soon as this module is imported, so a graph
can be traced (fake tensors, meta device) even where the library is not built.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from ..cells.activations import ACTIVATIONS
from ..cells.gru import GRUParams
from ..cells.lstm import LSTMOptions, LSTMParams
from . import schema as S

NAMESPACE = "lstmkit"

_lib = torch.library.Library(NAMESPACE, "FRAGMENT")
for _name in S.OPERATORS:
    _lib.define(_name + S.schema(_name))


def _names(args) -> tuple[str, ...]:
    return tuple(a.name for a in args)


def _defaults(op: str) -> dict:
    inputs, options, _ = S.OPERATORS[op]
    return {**dict.fromkeys(_names(inputs)), **{a.name: a.default for a in options}}


_DEFAULTS = {op: _defaults(op) for op in S.OPERATORS}
_INPUT_NAMES = {op: _names(S.OPERATORS[op][0]) for op in S.OPERATORS}


def _bind(op: str, args: tuple, kwargs: dict) -> dict:
    """{argument name: value} of one call, defaults filled in."""
    return {**_DEFAULTS[op], **dict(zip(_INPUT_NAMES[op], args)), **kwargs}


# ---- shape checks (the fake implementations; the C++ binding does the same at run time) ----------
def check_shapes(kind: str, op: str, a: dict) -> dict[str, int]:
    """Check every tensor of one call against the table; return the shape symbols.

    Raises ValueError naming the argument, the expected and the actual shape.
    """
    x, whh = a["x"], a["weight_hh"]
    if x.dim() != 3:
        raise ValueError(f"lstmkit fused: x: expected a 3-D tensor (T, N, I), got shape "
                         f"{tuple(x.shape)}")
    G = 4 if kind == "lstm" else 3
    if whh.dim() != 2 or whh.shape[0] % G or whh.shape[0] == 0:
        raise ValueError(f"lstmkit fused: weight_hh: expected shape ({G}H, "
                         f"{'P' if kind == 'lstm' else 'H'}), got {tuple(whh.shape)}")
    d = S.dims(kind, x.shape, whh.shape)
    for name in ("gate_activation", "input_activation", "output_activation"):
        if name in a and a[name] not in ACTIVATIONS:
            raise ValueError(f"lstmkit fused: {name}: unknown activation {a[name]!r}")
    if kind == "lstm":
        d["P"] = a["weight_hr"].shape[0] if a.get("weight_hr") is not None else d["H"]
    inputs, _, _ = S.OPERATORS[op]
    saved = {r.name for r in S.LSTM_SAVED + S.GRU_SAVED}
    for arg in inputs:
        t = a.get(arg.name)
        if not isinstance(t, Tensor) or not arg.shape:
            continue
        if arg.name in saved and t.dim() == 1 and t.shape[0] == 0:
            continue  # an absent buffer
        want = S.size(arg.shape, d)
        if tuple(t.shape) != want:
            sym = ", ".join(arg.shape) + ("," if len(arg.shape) == 1 else "")
            raise ValueError(f"lstmkit fused: {arg.name}: expected shape {want} = ({sym}) with "
                             f"{', '.join(f'{k}={v}' for k, v in d.items())}; got "
                             f"{tuple(t.shape)}")
        want_dtype = torch.int64 if arg.name == "lengths" else x.dtype
        if t.dtype != want_dtype:
            raise TypeError(f"lstmkit fused: {arg.name}: expected dtype {want_dtype}, got {t.dtype}")
    return d


def _fake_results(op: str, results, a: dict, d: dict) -> tuple[Tensor, ...]:
    x = a["x"]
    return tuple(x.new_empty(S.size(r.shape, d)) if r.when is None or r.when(a) else x.new_empty(0)
                 for r in results)


def _fake_forward(kind: str):
    op = f"{kind}_forward"

    def fake(*args, **kwargs):
        a = _bind(op, args, kwargs)
        d = check_shapes(kind, op, a)
        return _fake_results(op, S.OPERATORS[op][2], a, d)

    return fake


def _fake_backward(kind: str):
    op = f"{kind}_backward"
    diff = S.LSTM_DIFFERENTIABLE if kind == "lstm" else S.GRU_DIFFERENTIABLE

    def fake(*args, **kwargs):
        a = _bind(op, args, kwargs)
        check_shapes(kind, op, a)
        x, mask = a["x"], a["output_mask"]
        return tuple(x.new_empty(a[n].shape) if a[n] is not None and m else x.new_empty(0)
                     for n, m in zip(diff, mask))

    return fake


for _kind in ("lstm", "gru"):
    torch.library.register_fake(f"{NAMESPACE}::{_kind}_forward", _fake_forward(_kind), lib=_lib)
    torch.library.register_fake(f"{NAMESPACE}::{_kind}_backward", _fake_backward(_kind), lib=_lib)


# ---- autograd ---------------------------------------------------------------------------------------
def _c(t: Optional[Tensor]) -> Optional[Tensor]:
    return None if t is None else t.contiguous()


def _setup(kind: str):
    n_diff = 5 if kind == "lstm" else 3  # differentiable results: h_all, h_n, (c_n), gates, (c)

    def setup_context(ctx, inputs, output, keyword_only_inputs=None):
        ctx.options = dict(keyword_only_inputs or {})
        ctx.save_for_backward(*inputs, *output)
        ctx.set_materialize_grads(False)
        ctx.mark_non_differentiable(*output[n_diff:])

    return setup_context


def _recompute_grads(kind: str, a: dict, options: dict, grads: dict, needs: dict) -> dict:
    """Gradients through the differentiable reference path (used when a graph of the gradient is
    wanted): the same math as the kernel's backward, built from ordinary differentiable ops."""
    from . import reference

    diff = S.LSTM_DIFFERENTIABLE if kind == "lstm" else S.GRU_DIFFERENTIABLE
    wrt = [n for n in diff if needs.get(n) and a[n] is not None]
    if not wrt:
        return {}
    with torch.enable_grad():
        if kind == "lstm":
            opts = LSTMOptions(**{k: options[k] for k in LSTMOptions.__dataclass_fields__})
            p = LSTMParams(**{k: a[k] for k in LSTMParams._fields})
            y, h_n, c_n, tr = reference.lstm_direction(
                a["x"], a["h0"], a["c0"], p, opts, a["lengths"], a["rec_mask"], a["zoneout_c"],
                a["zoneout_h"], want_trace=grads["grad_gates"] is not None or grads["grad_c"] is not None)
            T, N = a["x"].shape[:2]
            outs = {"grad_y": y, "grad_h_n": h_n, "grad_c_n": c_n}
            if tr is not None:
                outs["grad_gates"] = torch.stack([tr[k] for k in "ifgo"], 2).reshape(T, N, -1)
                outs["grad_c"] = tr["c"]
        else:
            p = GRUParams(**{k: a[k] for k in GRUParams._fields})
            y, h_n, tr = reference.gru_direction(a["x"], a["h0"], p, a["lengths"], a["rec_mask"],
                                                 a["zoneout_h"],
                                                 want_trace=grads["grad_gates"] is not None)
            T, N = a["x"].shape[:2]
            outs = {"grad_y": y, "grad_h_n": h_n}
            if tr is not None:
                outs["grad_gates"] = torch.stack([tr[k] for k in "rzn"], 2).reshape(T, N, -1)
        pairs = [(outs[k], g) for k, g in grads.items() if g is not None and k in outs]
        if not pairs:
            return {}
        got = torch.autograd.grad([o for o, _ in pairs], [a[n] for n in wrt],
                                  [g for _, g in pairs], create_graph=True, allow_unused=True)
    return {n: (g if g is not None else torch.zeros_like(a[n])) for n, g in zip(wrt, got)}


def _backward(kind: str):
    inputs, _, results = S.OPERATORS[f"{kind}_forward"]
    in_names, res_names = _names(inputs), _names(results)
    diff = S.LSTM_DIFFERENTIABLE if kind == "lstm" else S.GRU_DIFFERENTIABLE
    grad_names = _names(S.LSTM_GRADS if kind == "lstm" else S.GRU_GRADS)
    saved_names = _names(S.LSTM_SAVED if kind == "lstm" else S.GRU_SAVED)
    bwd = getattr(torch.ops.lstmkit, f"{kind}_backward").default
    # its positional arguments: the forward's inputs, h_all, the saved buffers, the gradients, the mask
    positional = tuple(a.name for a in bwd._schema.arguments if not a.kwarg_only)
    assert positional == in_names + ("h_all",) + saved_names + grad_names + ("output_mask",), kind

    def backward(ctx, grad_h_all, *rest):
        saved = ctx.saved_tensors
        a = dict(zip(in_names, saved[:len(in_names)]))
        res = dict(zip(res_names, saved[len(in_names):]))
        # (a traced call may leave trailing arguments at their default None out of the apply)
        n_args = len(ctx.needs_input_grad)
        needs = dict.fromkeys(in_names, False)
        needs.update(zip(in_names, ctx.needs_input_grad))
        # rest: the gradients of h_n, (c_n), gates, (c), then None for the saved buffers
        incoming = (None if grad_h_all is None else grad_h_all[1:],) + rest[:len(grad_names) - 1]
        grads = dict(zip(grad_names, incoming))
        if torch.is_grad_enabled():  # a graph of the gradient is wanted: differentiable path
            out = _recompute_grads(kind, a, ctx.options, grads, needs)
        else:
            raw = bwd(*[a.get(n) for n in in_names], res["h_all"], *[res[k] for k in saved_names],
                      *[_c(grads[k]) for k in grad_names],
                      [bool(needs[n]) and a.get(n) is not None for n in diff], **ctx.options)
            out = {n: g for n, g in zip(diff, raw) if needs[n] and a.get(n) is not None}
        if grad_h_all is not None and needs["h0"]:  # h_all[0] is h0 itself
            out["h0"] = out["h0"] + grad_h_all[0] if "h0" in out else grad_h_all[0]
        return tuple(out.get(n) for n in in_names[:n_args])

    return backward


# one setup_context and one backward per kind, shared by the registered autograd and _EagerAutograd
_SETUP = {k: _setup(k) for k in ("lstm", "gru")}
_BACKWARD = {k: _backward(k) for k in ("lstm", "gru")}
for _kind in ("lstm", "gru"):
    torch.library.register_autograd(f"{NAMESPACE}::{_kind}_forward", _BACKWARD[_kind],
                                    setup_context=_SETUP[_kind], lib=_lib)


# ---- eager training calls ----------------------------------------------------------------------------


class _EagerAutograd(torch.autograd.Function):
    """The forward operators' autograd for plain eager calls: the same setup_context and backward as
    registered above, around the operator called with grad mode off. It exists for speed only: the
    Function that ``register_autograd`` generates calls ``torch._library.utils.fill_defaults`` on every
    call, which reads the schema's argument list (a new Python list on each access) twice per
    argument: quadratic in the 30 arguments of ``lstm_forward``, about 230 us a call with torch 2.13
    (pytorch/pytorch#195110 makes it linear). Traced calls (torch.compile, torch.export, jit.trace,
    any dispatch mode or tensor subclass) keep the operator's own autograd, which those tools see."""

    @staticmethod
    def forward(ctx, kind, options, *args):
        with torch._C._AutoDispatchBelowAutograd():  # the kernel itself (see call_forward)
            out = _OVERLOAD[kind](*args, **options)
        ctx.kind = kind
        _SETUP[kind](ctx, args, out, options)
        return out

    @staticmethod
    def backward(ctx, *grads):
        needs = ctx.needs_input_grad
        ctx.needs_input_grad = needs[2:]  # kind and options come first
        try:
            res = _BACKWARD[ctx.kind](ctx, *grads)
        finally:
            ctx.needs_input_grad = needs
        return (None, None, *res)


_is_exporting = getattr(torch.compiler, "is_exporting", lambda: False)  # (torch >= 2.4)


_PLAIN_TYPES = (Tensor, torch.nn.Parameter)


def _plain_eager(inputs) -> tuple[bool, bool]:
    """(plain, needs_grad) of a call with these inputs: whether it runs in plain eager mode (plain
    tensors, nothing tracing or intercepting it), and if so whether it needs autograd (grad on, a
    tensor requiring grad)."""
    if torch.compiler.is_compiling() or torch.jit.is_tracing() or _is_exporting():
        return False, False
    if torch._C._len_torch_dispatch_stack() > 0 or torch._C._are_functorch_transforms_active():
        return False, False
    requires_grad = False
    for t in inputs:
        if t is None:
            continue
        if type(t) in _PLAIN_TYPES:  # (the common case first: one type lookup)
            requires_grad = requires_grad or t.requires_grad
        elif isinstance(t, Tensor):  # a tensor subclass: the operator's own path
            return False, False
    return True, requires_grad and torch.is_grad_enabled()


_OVERLOAD = {k: getattr(torch.ops.lstmkit, f"{k}_forward").default for k in ("lstm", "gru")}
for _kind, _overload in _OVERLOAD.items():  # call_forward passes the inputs by position
    _args = _overload._schema.arguments
    assert tuple(a.name for a in _args if not a.kwarg_only) == _INPUT_NAMES[f"{_kind}_forward"]


def call_forward(kind: str, inputs: tuple, options: dict) -> tuple[Tensor, ...]:
    """One call of the forward operator ``lstmkit::<kind>_forward``: ``inputs`` every input tensor
    (or None) in the schema's order, ``options`` the keyword-only options by name. In plain eager
    mode a call that needs autograd goes through _EagerAutograd; one that does not goes straight to
    the kernel, below the operator's registered autograd, whose Python wrapper (``forward_no_grad``
    and a Python ``redispatch``) ran on every call (docs/benchmarks.md gives the cost of a call).
    Anything else (tracing, export, dispatch modes, subclasses, functorch) goes to the operator."""
    plain, needs_grad = _plain_eager(inputs)
    if not plain:
        return getattr(torch.ops.lstmkit, f"{kind}_forward")(*inputs, **options)
    if needs_grad:
        return _EagerAutograd.apply(kind, options, *inputs)
    with torch._C._AutoDispatchBelowAutograd():
        return _OVERLOAD[kind](*inputs, **options)


def _call_table(kind: str):
    """Of a forward operator: every argument name, the required tensors, the inputs in order, the
    options."""
    inputs, options, _ = S.OPERATORS[f"{kind}_forward"]
    return (set(_names(inputs + options)), [a.name for a in inputs if not a.type.endswith("?")],
            _names(inputs), options)


_CALL = {k: _call_table(k) for k in ("lstm", "gru")}


def _forward(kind: str, kwargs: dict) -> tuple[Tensor, ...]:
    """One call of the forward operator with named arguments: call_forward, with the operator's own
    defaults filled in (as torch's fill_defaults does). A call the operator would refuse (an unknown
    name, a required tensor missing or None) goes to the operator, which says what is wrong."""
    names, required, inputs, options = _CALL[kind]
    if not (kwargs.keys() <= names and all(kwargs.get(n) is not None for n in required)):
        return getattr(torch.ops.lstmkit, f"{kind}_forward")(**kwargs)
    return call_forward(kind, tuple(kwargs.get(n) for n in inputs),
                        {o.name: kwargs.get(o.name, o.default) for o in options})


# ---- calls by name ----------------------------------------------------------------------------------
def _named_results(op: str, results, kwargs: dict, out) -> dict[str, Optional[Tensor]]:
    """The results of a forward call by name, None for those the call's options leave absent."""
    a = None
    named = {}
    for r, t in zip(results, out):
        if r.when is not None:
            a = _bind(op, (), kwargs) if a is None else a
            t = t if r.when(a) else None
        named[r.name] = t
    return named


def lstm_forward(**kwargs) -> dict[str, Tensor]:
    """Run ``lstmkit::lstm_forward`` with named arguments; its results by name (None if absent)."""
    return _named_results("lstm_forward", S.LSTM_RESULTS, kwargs, _forward("lstm", kwargs))


def gru_forward(**kwargs) -> dict[str, Tensor]:
    """Run ``lstmkit::gru_forward`` with named arguments; its results by name (None if absent)."""
    return _named_results("gru_forward", S.GRU_RESULTS, kwargs, _forward("gru", kwargs))
