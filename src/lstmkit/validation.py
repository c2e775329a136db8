"""Input checks shared by cells and layers: each error names the module, what was expected and what
arrived (STYLE rule 10)."""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor

from .errors import describe

FLOAT_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


def check_tensor(owner: str, what: str, t, *, dtype=None, device=None) -> Tensor:
    if not isinstance(t, Tensor):
        raise TypeError(f"{owner}: expected {what} to be a torch.Tensor, got {type(t).__name__}")
    if dtype is None and t.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{owner}: expected {what} to have a floating dtype, got {t.dtype}")
    if dtype is not None and t.dtype != dtype:
        raise TypeError(f"{owner}: expected {what} of dtype {dtype} (the parameters' dtype), "
                        f"got {t.dtype}")
    if device is not None and t.device != device:
        raise ValueError(f"{owner}: expected {what} on device {device} (the parameters' device), "
                         f"got {t.device}")
    return t


def check_cell_input(cell, input: Tensor, hx: Optional[Sequence[Tensor]],
                     state_size: Sequence[int]) -> tuple[Tensor, tuple[Tensor, ...], bool]:
    """Validate a cell's (x_t, state); return batched x (N, H_in), state and whether it was unbatched."""
    name = type(cell).__name__
    w = cell.weight_ih
    check_tensor(name, "input", input, dtype=w.dtype, device=w.device)
    if input.dim() not in (1, 2):
        raise ValueError(f"{name}: expected input of shape (N, {cell.input_size}) or "
                         f"({cell.input_size},), got {describe(input)}")
    if input.shape[-1] != cell.input_size:
        raise ValueError(f"{name}: expected input with {cell.input_size} features (input_size), "
                         f"got {input.shape[-1]} in {describe(input)}")
    unbatched = input.dim() == 1
    x = input.unsqueeze(0) if unbatched else input
    N = x.shape[0]
    if hx is None:
        return x, tuple(x.new_zeros(N, n) for n in state_size), unbatched
    if isinstance(hx, Tensor):
        hx = (hx,)
    hx = tuple(hx)
    if len(hx) != len(state_size):
        raise ValueError(f"{name}: expected a state of {len(state_size)} tensor(s) with features "
                         f"{tuple(state_size)}, got {len(hx)}")
    out = []
    for k, (s, n) in enumerate(zip(hx, state_size)):
        check_tensor(name, f"state[{k}]", s, dtype=w.dtype, device=w.device)
        want = (n,) if unbatched else (N, n)
        if tuple(s.shape) != want:
            raise ValueError(f"{name}: expected state[{k}] of shape {want}, got {describe(s)}")
        out.append(s.unsqueeze(0) if unbatched else s)
    return x, tuple(out), unbatched


def check_lengths(owner: str, lengths, T: int, N: int) -> Tensor:
    """Validate ``lengths`` of a padded batch: (N,) integers with 1 <= length <= T; int64 on CPU."""
    if not isinstance(lengths, Tensor):
        try:
            lengths = torch.as_tensor(lengths)
        except (TypeError, ValueError):
            raise TypeError(f"{owner}: expected lengths as a 1-D integer tensor or sequence of "
                            f"ints, got {type(lengths).__name__}") from None
    if lengths.dtype.is_floating_point or lengths.dtype == torch.bool or lengths.is_complex():
        raise TypeError(f"{owner}: expected integer lengths, got dtype {lengths.dtype}")
    if tuple(lengths.shape) != (N,):
        raise ValueError(f"{owner}: expected lengths of shape ({N},) (one per sequence), "
                         f"got shape {tuple(lengths.shape)}")
    if lengths.device.type == "meta":  # a meta-device run: no values to check
        return lengths.to(torch.int64)
    lengths = lengths.to(torch.int64).cpu()
    if N == 0:
        return lengths
    if torch.compiler.is_compiling():  # checked when the graph runs (values are data, not graph)
        torch._assert_async(((lengths >= 1) & (lengths <= T)).all(),
                            f"{owner}: expected every length in [1, {T}] (the sequence length)")
        return lengths
    if int(lengths.min()) < 1:
        raise ValueError(f"{owner}: expected every length >= 1, got {lengths.tolist()} "
                         f"(a zero-length sequence has no last step)")
    if int(lengths.max()) > T:
        raise ValueError(f"{owner}: expected every length <= the sequence length {T}, got "
                         f"{lengths.tolist()}")
    return lengths
