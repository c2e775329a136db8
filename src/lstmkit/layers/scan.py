"""The time loop every cell runs in: one function, any cell, masks included.

``scan`` is the generic sequence runner of the Keras ``RNN`` / Flax ``nn.RNN`` kind: the cell knows one
step, the runner knows time. Padding is handled here once: at a step ``t >= length`` a sequence's
state is carried unchanged and its output is zero, so padding never changes a result.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import torch
from torch import Tensor

# step(x_t, state, t) -> (y_t, new_state, extras): x_t (N, ...), state a tuple of (N, ...) tensors,
# extras a tuple of (N, ...) tensors to stack over time (gate traces) or ().
Step = Callable[[Tensor, tuple, int], tuple]


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


def scan(step: Step, xs: Tensor, state: Sequence[Tensor], valid: Optional[Tensor] = None,
         ) -> tuple[Tensor, tuple[Tensor, ...], list[Tensor]]:
    """Run ``step`` over time.

    Args:
        xs: (T, N, ...) inputs, time first.
        state: initial state, tuple of (N, ...) tensors.
        valid: (T, N) bool mask of real (non-padded) steps, or None.
    Returns:
        ys (T, N, ...) with zeros at padded steps, the final state (each sequence's state after its
        last real step), and the stacked extras, each (T, N, ...) with zeros at padded steps.
    """
    state = tuple(state)
    ys, extras = [], []
    for t in range(xs.shape[0]):
        y, new, ext = step(xs[t], state, t)
        if valid is not None:
            m = valid[t]
            new = tuple(_where(m, n, s) for n, s in zip(new, state))
            y = _where(m, y, torch.zeros_like(y))
            ext = tuple(_where(m, e, torch.zeros_like(e)) for e in ext)
        state = tuple(new)
        ys.append(y)
        extras.append(ext)
    stacked = [torch.stack(parts) for parts in zip(*extras)] if extras and extras[0] else []
    return torch.stack(ys), state, stacked


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
