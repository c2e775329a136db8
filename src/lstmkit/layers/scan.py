"""The time loop every cell runs in: one function, any cell, masks included.

``scan`` is the generic sequence runner of the Keras ``RNN`` / Flax ``nn.RNN`` kind: the cell knows one
step, the runner knows time. Padding is handled here once: at a step ``t >= length`` a sequence's
state is carried unchanged and its output is zero, so padding never changes a result.

Under ``torch.onnx.export(..., dynamo=True)`` the same loop is traced once as torch's ``scan``
higher-order operator (``torch._higher_order_ops.scan``), which the exporter writes as an ONNX
``Scan`` over the dynamic time axis; everywhere else it is a plain Python loop.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence, Union

import torch
from torch import Tensor

# step(x_t, state[, consts]) -> (y_t, new_state, extras): x_t (N, ...) (or a tuple of them, None
# where xs has None), state a tuple of (N, ...) tensors, consts as given to scan(), extras a tuple of
# (N, ...) tensors to stack over time (gate traces) or (). With consts the step must read no other
# tensor and not branch on tensor values: it may become a graph's loop body.
Step = Callable[..., tuple]
Steps = Union[Tensor, Sequence[Optional[Tensor]]]


def valid_mask(lengths: Optional[Tensor], T: int, N: int, device) -> Optional[Tensor]:
    """(T, N) bool, True where t < lengths[n]; None when every sequence is full length."""
    if lengths is None:
        return None
    # whether every sequence is full is asked of the lengths where they are (the CPU, also for a
    # meta-device layer), and not at all while a graph is traced (it is a property of the data)
    if not torch.compiler.is_compiling() and lengths.device.type != "meta" \
            and bool((lengths == T).all()):
        return None
    lengths = lengths.to(device)
    return torch.arange(T, device=device).unsqueeze(1) < lengths.unsqueeze(0)


def zero_padding(x: Tensor, lengths: Optional[Tensor]) -> Tensor:
    """x (T, N, ...) with every step t >= lengths[n] set to 0, before any backend sees it.

    Padding may hold anything (NaN, inf); a NaN that enters a step's arithmetic poisons the backward
    pass even where the step's result is masked out (0 * NaN = NaN), so padded inputs are zeroed here,
    once, in every sequence layer. The gradient of x at padded steps is then exactly 0."""
    valid = valid_mask(lengths, x.shape[0], x.shape[1], x.device)
    if valid is None:
        return x
    return x.masked_fill(~valid.view(valid.shape + (1,) * (x.dim() - 2)), 0)


def _where(mask: Tensor, new: Tensor, old: Tensor) -> Tensor:
    return torch.where(mask.view(mask.shape + (1,) * (new.dim() - 1)), new, old)


def _masked(m: Optional[Tensor], y: Tensor, new: tuple, state: tuple, ext: tuple):
    """At a padded step (m False): the state is carried, the output and the extras are zero."""
    if m is None:
        return y, new, ext
    new = tuple(_where(m, n, s) for n, s in zip(new, state))
    y = _where(m, y, torch.zeros_like(y))
    ext = tuple(_where(m, e, torch.zeros_like(e)) for e in ext)
    return y, new, ext


def scan(step: Step, xs: Steps, state: Sequence[Tensor], valid: Optional[Tensor] = None,
         consts=None) -> tuple[Tensor, tuple[Tensor, ...], list[Tensor]]:
    """Run ``step`` over time.

    Args:
        xs: (T, N, ...) inputs, time first; or a tuple of them (None entries stay None in x_t).
        state: initial state, tuple of (N, ...) tensors.
        valid: (T, N) bool mask of real (non-padded) steps, or None.
        consts: every other tensor the step reads (a tuple / NamedTuple of tensors or None, e.g. the
            cell's parameters), passed to it as ``step(x_t, state, consts)``; None for a step that
            takes two arguments. With them, ``torch.onnx.export(..., dynamo=True)`` gets the loop
            as one ONNX ``Scan`` over a dynamic time axis; without, it is unrolled at the traced
            length.
    Returns:
        ys (T, N, ...) with zeros at padded steps, the final state (each sequence's state after its
        last real step), and the stacked extras, each (T, N, ...) with zeros at padded steps.
    """
    from ..kernels.onnx import exporter

    state = tuple(state)
    if consts is not None and exporter() == "dynamo":
        return _graph_scan(step, xs, state, valid, consts)
    call = step if consts is None else (lambda x_t, s: step(x_t, s, consts))
    single = isinstance(xs, Tensor)
    seqs = (xs,) if single else tuple(xs)
    T = next(s for s in seqs if s is not None).shape[0]
    ys, extras = [], []
    for t in range(T):
        x_t = tuple(None if s is None else s[t] for s in seqs)
        y, new, ext = call(x_t[0] if single else x_t, state)
        y, new, ext = _masked(None if valid is None else valid[t], y, tuple(new), state, tuple(ext))
        state = new
        ys.append(y)
        extras.append(ext)
    stacked = [torch.stack(parts) for parts in zip(*extras)] if extras and extras[0] else []
    return torch.stack(ys), state, stacked


def _graph_scan(step: Step, xs: Steps, state: tuple, valid: Optional[Tensor], consts):
    """:func:`scan` as one call of torch's ``scan`` higher-order operator, which the dynamo ONNX
    exporter writes as an ONNX ``Scan``: the step is traced once, the time axis stays symbolic.
    The operator takes flat lists of tensors and no captured ones, so xs and consts are flattened
    (None entries put back inside the body)."""
    from torch._higher_order_ops.scan import scan_op
    from torch.utils import _pytree as pytree

    single = isinstance(xs, Tensor)
    seqs = [xs] if single else list(xs)
    scanned = [s for s in seqs if s is not None] + ([] if valid is None else [valid])
    leaves, spec = pytree.tree_flatten(consts)
    lifted = tuple(v for v in leaves if isinstance(v, Tensor))
    S = len(state)

    def body(*args):
        K = len(args) - len(lifted)
        carry, sliced, given = args[:S], list(args[S:K]), iter(args[K:])
        m = sliced.pop() if valid is not None else None
        it = iter(sliced)
        x_t = [None if s is None else next(it) for s in seqs]
        c = pytree.tree_unflatten([next(given) if isinstance(v, Tensor) else v for v in leaves], spec)
        y, new, ext = step(x_t[0] if single else tuple(x_t), carry, c)
        y, new, ext = _masked(m, y, tuple(new), carry, tuple(ext))
        # the operator forbids outputs that alias an input or each other: fresh tensors
        seen = {id(v) for v in args}
        fresh = []
        for n in new:
            fresh.append(n.clone() if id(n) in seen else n)
            seen.add(id(n))
        return [*fresh, y.clone(), *(e.clone() for e in ext)]

    # an ONNX graph carries no gradients: detached inputs spare the tracer the operator's autograd
    # (a joint forward-backward graph of the step, most of the export time)
    detach = lambda ts: [t.detach() for t in ts]  # noqa: E731
    out = scan_op(body, detach(state), detach(scanned), tuple(detach(lifted)))
    return out[S], tuple(out[:S]), list(out[S + 1:])


def reverse_padded(x: Tensor, lengths: Optional[Tensor]) -> Tensor:
    """Reverse each sequence of x (T, N, ...) within its own length; padding stays where it is.

    It is its own inverse, so the reverse direction of a layer is: reverse, run forward, reverse.
    """
    if lengths is None:
        return x.flip(0)
    T, N = x.shape[0], x.shape[1]
    t = torch.arange(T, device=x.device).unsqueeze(1)  # (T, 1)
    L = lengths.to(x.device).unsqueeze(0)  # (1, N)
    idx = torch.where(t < L, L - 1 - t, t)  # (T, N)
    idx = idx.view(T, N, *([1] * (x.dim() - 2))).expand_as(x)
    return x.gather(0, idx)
