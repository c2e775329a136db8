"""lstmkit's fused CPU kernels: the per-direction entry points over the fused operators.

The C++ core is in ``kernels/csrc`` (``fused.h`` documents every argument's shape). This module

* loads it through :mod:`lstmkit.kernels.build` (which builds it on first use, for the instruction
  set of this CPU, verifies the cached library and picks the GEMM path by measurement; its
  environment variables are listed there) and re-exports :func:`available`, :func:`build_error`,
  :func:`build_info`, :func:`load`, :func:`cache_root` and :func:`library_dir`;
* runs each direction as one call of the operator ``torch.ops.lstmkit.lstm_forward`` /
  ``gru_forward``, registered with ``torch.library`` by :mod:`lstmkit.kernels.ops` (named
  arguments from :mod:`lstmkit.kernels.schema`, fake implementations, autograd whose backward is
  the hand-written backward through time of the C++ core, and exact double backward);
* implements the contract of ``kernels/reference.py``: :func:`lstm_direction` and
  :func:`gru_direction` take and return exactly what the reference functions do, gate traces included.

If the library cannot be built (no compiler, no ninja, a compile error, or ``LSTMKIT_DISABLE_FUSED=1``)
:func:`available` is False, :func:`build_error` says why, and the dispatcher falls back to the
reference loop with one warning.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from ..cells.gru import GRUParams
from ..cells.lstm import LSTMOptions, LSTMParams
from . import ops  # the operator schemas, fake implementations and autograd (torch.library)
from .build import _state as _build_state
from .build import available, build_error, build_info, cache_root, library_dir, load  # noqa: F401
from .build import ops as _ops

def _functorch_active() -> bool:
    """Inside torch.func.grad / vmap / jacrev...: torch's generated autograd Function of a
    torch.library operator cannot run there (it has no separate setup_context), so these calls take
    the reference path, which is made of ordinary differentiable ops."""
    return not torch.compiler.is_compiling() and torch._C._are_functorch_transforms_active()


def _ensure_loaded() -> None:
    if not _build_state["loaded"]:  # a plain read, so that torch.compile traces through it
        _ops()


# ---- the contract of kernels/reference.py --------------------------------------------------------------
_HALF = (torch.float16, torch.bfloat16)


def _lengths(lengths: Optional[Tensor], T: int) -> Optional[Tensor]:
    """int64 CPU lengths, or None when every sequence is full (the kernels then skip the checks).
    While a graph is traced (torch.compile / export / jit.trace) the lengths are passed as they
    are: whether all are full is a property of the data, not of the graph."""
    if lengths is None:
        return None
    lengths = lengths.to(device="cpu", dtype=torch.int64).contiguous()
    if torch.compiler.is_compiling() or torch.jit.is_tracing():
        return lengths
    return None if bool((lengths == T).all()) else lengths


def _wants_grad(*args) -> bool:
    """Whether a call must be able to run backward."""
    return torch.is_grad_enabled() and any(isinstance(a, Tensor) and a.requires_grad for a in args)


def _inputs(tensors: tuple, lengths: Optional[Tensor], masks: tuple) -> tuple:
    """An operator's inputs in its schema order: the tensors, lengths, then the masks, each
    float16/bfloat16 tensor in float32 (the kernels accumulate in float32) and contiguous. One
    comprehension, no Python call per tensor: this runs on every call."""
    up = [None if t is None else (t.float() if t.dtype in _HALF else t).contiguous()
          for t in (*tensors, *masks)]
    return (*up[:len(tensors)], lengths, *up[len(tensors):])


# the operators' inputs in their schema order: x, h0, (c0), the cell's parameters, then these
_LSTM_INPUTS = ("x", "h0", "c0") + LSTMParams._fields + ("lengths", "rec_mask", "zoneout_c", "zoneout_h")
_GRU_INPUTS = ("x", "h0") + GRUParams._fields + ("lengths", "rec_mask", "zoneout_h")
assert _LSTM_INPUTS == ops._INPUT_NAMES["lstm_forward"], "schema.py and LSTMParams disagree"
assert _GRU_INPUTS == ops._INPUT_NAMES["gru_forward"], "schema.py and GRUParams disagree"


def lstm_direction(x: Tensor, h0: Tensor, c0: Tensor, p: LSTMParams, opts: LSTMOptions,
                   lengths: Optional[Tensor] = None, rec_mask: Optional[Tensor] = None,
                   zoneout_c: Optional[Tensor] = None, zoneout_h: Optional[Tensor] = None,
                   want_trace: bool = False):
    """Same arguments and results as :func:`lstmkit.kernels.reference.lstm_direction`.

    One call of the operator ``lstmkit::lstm_forward`` (:mod:`lstmkit.kernels.ops`) with named
    arguments. float16 and bfloat16 inputs run in float32 and the results are cast back.
    """
    # another device, an empty batch (nothing to compute), or inside a torch.func transform
    if x.device.type != "cpu" or x.shape[1] == 0 or _functorch_active():
        from . import reference

        return reference.lstm_direction(x, h0, c0, p, opts, lengths, rec_mask, zoneout_c,
                                        zoneout_h, want_trace)
    _ensure_loaded()
    inputs = _inputs((x, h0, c0, *p), _lengths(lengths, x.shape[0]), (rec_mask, zoneout_c, zoneout_h))
    # (a jit trace is checked by re-tracing under no_grad: keep the same graph either way)
    grad = _wants_grad(*inputs) or torch.jit.is_tracing()
    input_grad = grad and (inputs[0].requires_grad or torch.jit.is_tracing())
    out = ops.call_forward("lstm", inputs, {**opts.to_dict(), "need_backward": grad,
                                            "input_grad": input_grad})
    # (results in the order of schema.LSTM_RESULTS: h_all, h_n, c_n, gates, c, ...)
    y, h_n, c_n, gates, c = out[0][1:], out[1], out[2], out[3], out[4]
    if x.dtype in _HALF:
        y, h_n, c_n, gates, c = (t.to(x.dtype) for t in (y, h_n, c_n, gates, c))
    trace = None
    if want_trace:
        T, N, H = c.shape
        trace = dict(zip(("i", "f", "g", "o"), gates.view(T, N, 4, H).unbind(2)), c=c)
    return y, h_n, c_n, trace


def gru_direction(x: Tensor, h0: Tensor, p: GRUParams, lengths: Optional[Tensor] = None,
                  rec_mask: Optional[Tensor] = None, zoneout_h: Optional[Tensor] = None,
                  want_trace: bool = False):
    """Same arguments and results as :func:`lstmkit.kernels.reference.gru_direction` (one call of
    ``lstmkit::gru_forward``; float16/bfloat16 run in float32)."""
    if x.device.type != "cpu" or x.shape[1] == 0 or _functorch_active():
        from . import reference

        return reference.gru_direction(x, h0, p, lengths, rec_mask, zoneout_h, want_trace)
    _ensure_loaded()
    out = ops.call_forward("gru", _inputs((x, h0, *p), _lengths(lengths, x.shape[0]),
                                          (rec_mask, zoneout_h)), {})
    y, h_n, gates = out[0][1:], out[1], out[2]  # (the order of schema.GRU_RESULTS)
    if x.dtype in _HALF:
        y, h_n, gates = (t.to(x.dtype) for t in (y, h_n, gates))
    trace = None
    if want_trace:
        T, N, G = gates.shape
        trace = dict(zip(("r", "z", "n"), gates.view(T, N, 3, G // 3).unbind(2)))
    return y, h_n, trace
