"""lstmkit's fused CPU kernels: the loader, the autograd Functions, and the per-direction entry points.

The C++ core is in ``kernels/csrc`` (``fused.h`` documents every argument's shape). This module

* loads it through :mod:`lstmkit.kernels.build` (which builds it on first use, for the instruction
  set of this CPU, verifies the cached library and picks the GEMM path by measurement; its
  environment variables are listed there) and re-exports :func:`available`, :func:`build_error`,
  :func:`build_info`, :func:`load`, :func:`cache_root` and :func:`library_dir`;
* wraps each direction call in one ``torch.autograd.Function`` whose backward is the hand-written
  backward through time of the C++ core (double backward is not supported);
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
from torch.autograd.function import once_differentiable

from ..cells.activations import activation_code
from ..cells.gru import GRUParams
from ..cells.lstm import LSTMOptions, LSTMParams
from .build import available, build_error, build_info, cache_root, library_dir, load  # noqa: F401
from .build import ops as _ops

# Bits of LstmConfig::flags (csrc/fused.h).
_PEEPHOLE, _COUPLED, _NO_INPUT, _NO_FORGET, _NO_OUTPUT, _GATE_REC, _LAYER_NORM = (1 << k for k in range(7))
_NO_BACKWARD = 1 << 7  # forward only: the kernel need not keep what only backward reads
_INPUT_GRAD = 1 << 8  # backward will need dx (layer norm: the input side's LN backward after the loop)

# ---- autograd ----------------------------------------------------------------------------------------
def _c(t: Optional[Tensor]) -> Optional[Tensor]:
    return None if t is None else t.contiguous()


def _needs_mask(flags) -> int:
    return sum(1 << q for q, f in enumerate(flags) if f)


class LSTMFunction(torch.autograd.Function):
    """One LSTM layer and direction over the whole sequence.

    apply(config, x, h0, c0, lengths, rec_mask, zone_c, zone_h, *LSTMParams) returns h_all
    (T + 1, N, P) (h0, then every h_t: the output y is ``h_all[1:]``), h_n (N, P), c_n (N, H), the
    gate activations (T, N, 4H) and the cell states (T, N, H). The trace is sliced from these
    outputs outside the Function (:func:`lstm_direction`), so it costs nothing beyond what backward
    keeps anyway, its gradients flow, and an in-place change to y or a trace tensor is caught by
    autograd's version check at backward time, as with torch's own LSTM.
    """

    @staticmethod
    def forward(ctx, config, x, h0, c0, lengths, rec_mask, zone_c, zone_h, *params):
        outs = _ops().lstm_forward(x, h0, c0, *params, lengths, rec_mask, zone_c, zone_h, config)
        _, h_n, c_n, gates, c, _, h_all = outs[:7]
        ctx.set_materialize_grads(False)
        ctx.config = config
        ctx.save_for_backward(x, h0, c0, lengths, rec_mask, zone_c, zone_h, *params, *outs[3:])
        return h_all, h_n, c_n, gates, c

    @staticmethod
    @once_differentiable
    def backward(ctx, dh_all, dh_n, dc_n, dgates, dc):
        saved = ctx.saved_tensors
        x, h0, c0, lengths, rec_mask, zone_c, zone_h = saved[:7]
        params, kept = saved[7:18], saved[18:]
        needs = ctx.needs_input_grad  # (config, x, h0, c0, lengths, masks x3, *params)
        mask = _needs_mask((needs[1], needs[2], needs[3]) + tuple(needs[8:19]))
        dy = None if dh_all is None else dh_all[1:]
        grads = [_c(dy), _c(dh_n), _c(dc_n), _c(dgates), _c(dc)]
        out = _ops().lstm_backward(x, h0, c0, *params, lengths, rec_mask, zone_c, zone_h,
                                   list(kept), grads, list(ctx.config) + [mask])
        dx, dh0, dc0 = out[:3]
        return (None, dx if needs[1] else None, dh0 if needs[2] else None,
                dc0 if needs[3] else None, None, None, None, None) + tuple(
            g if n else None for g, n in zip(out[3:], needs[8:19]))


class GRUFunction(torch.autograd.Function):
    """One GRU layer and direction: apply(x, h0, lengths, rec_mask, zone_h, *GRUParams) returns
    h_all (T + 1, N, H) (y is ``h_all[1:]``), h_n (N, H) and the gate activations (T, N, 3H)."""

    @staticmethod
    def forward(ctx, x, h0, lengths, rec_mask, zone_h, *params):
        outs = _ops().gru_forward(x, h0, *params, lengths, rec_mask, zone_h)
        _, h_n, gates, _, h_all = outs[:5]
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(x, h0, lengths, rec_mask, zone_h, *params, *outs[2:])
        return h_all, h_n, gates

    @staticmethod
    @once_differentiable
    def backward(ctx, dh_all, dh_n, dgates):
        saved = ctx.saved_tensors
        x, h0, lengths, rec_mask, zone_h = saved[:5]
        params, kept = saved[5:9], saved[9:]
        needs = ctx.needs_input_grad  # (x, h0, lengths, rec_mask, zone_h, *params)
        mask = _needs_mask((needs[0], needs[1]) + tuple(needs[5:9]))
        dy = None if dh_all is None else dh_all[1:]
        out = _ops().gru_backward(x, h0, *params, lengths, rec_mask, zone_h, list(kept),
                                  [_c(dy), _c(dh_n), _c(dgates)], [mask])
        return (out[0] if needs[0] else None, out[1] if needs[1] else None, None, None,
                None) + tuple(g if n else None for g, n in zip(out[2:], needs[5:9]))


# ---- the contract of kernels/reference.py --------------------------------------------------------------
def _flags(opts: LSTMOptions) -> int:
    return ((_PEEPHOLE if opts.peephole else 0) | (_COUPLED if opts.coupled else 0)
            | (0 if opts.input_gate else _NO_INPUT) | (0 if opts.forget_gate else _NO_FORGET)
            | (0 if opts.output_gate else _NO_OUTPUT) | (_GATE_REC if opts.gate_recurrence else 0)
            | (_LAYER_NORM if opts.layer_norm else 0))


def _lengths(lengths: Optional[Tensor], T: int) -> Optional[Tensor]:
    """int64 CPU lengths, or None when every sequence is full (the kernels then skip the checks)."""
    if lengths is None:
        return None
    lengths = lengths.to(device="cpu", dtype=torch.int64).contiguous()
    return None if bool((lengths == T).all()) else lengths


def _wants_grad(*args) -> bool:
    """Whether a call must go through the autograd Function (else straight to the kernel)."""
    return torch.is_grad_enabled() and any(isinstance(a, Tensor) and a.requires_grad for a in args)


def lstm_direction(x: Tensor, h0: Tensor, c0: Tensor, p: LSTMParams, opts: LSTMOptions,
                   lengths: Optional[Tensor] = None, rec_mask: Optional[Tensor] = None,
                   zoneout_c: Optional[Tensor] = None, zoneout_h: Optional[Tensor] = None,
                   want_trace: bool = False):
    """Same arguments and results as :func:`lstmkit.kernels.reference.lstm_direction`."""
    if x.device.type != "cpu":
        from . import reference

        return reference.lstm_direction(x, h0, c0, p, opts, lengths, rec_mask, zoneout_c,
                                        zoneout_h, want_trace)
    config = [_flags(opts), activation_code(opts.gate_activation),
              activation_code(opts.input_activation), activation_code(opts.output_activation)]
    args = (x.contiguous(), h0.contiguous(), c0.contiguous(), _lengths(lengths, x.shape[0]),
            _c(rec_mask), _c(zoneout_c), _c(zoneout_h)) + tuple(_c(t) for t in p)
    if _wants_grad(*args):
        if args[0].requires_grad:
            config[0] |= _INPUT_GRAD
        h_all, h_n, c_n, gates, c = LSTMFunction.apply(config, *args)
    else:
        res = _ops().lstm_forward(*args[:3], *args[7:], *args[3:7], [config[0] | _NO_BACKWARD] + config[1:])
        h_n, c_n, gates, c, h_all = res[1], res[2], res[3], res[4], res[6]
    trace = None
    if want_trace:
        T, N, H = c.shape
        trace = dict(zip(("i", "f", "g", "o"), gates.view(T, N, 4, H).unbind(2)), c=c)
    return h_all[1:], h_n, c_n, trace


def gru_direction(x: Tensor, h0: Tensor, p: GRUParams, lengths: Optional[Tensor] = None,
                  rec_mask: Optional[Tensor] = None, zoneout_h: Optional[Tensor] = None,
                  want_trace: bool = False):
    """Same arguments and results as :func:`lstmkit.kernels.reference.gru_direction`."""
    if x.device.type != "cpu":
        from . import reference

        return reference.gru_direction(x, h0, p, lengths, rec_mask, zoneout_h, want_trace)
    args = (x.contiguous(), h0.contiguous(), _lengths(lengths, x.shape[0]), _c(rec_mask),
            _c(zoneout_h)) + tuple(_c(t) for t in p)
    if _wants_grad(*args):
        h_all, h_n, gates = GRUFunction.apply(*args)
    else:
        res = _ops().gru_forward(args[0], args[1], *args[5:], *args[2:5])
        h_n, gates, h_all = res[1], res[2], res[4]
    trace = None
    if want_trace:
        T, N, G = gates.shape
        trace = dict(zip(("r", "z", "n"), gates.view(T, N, 3, G // 3).unbind(2)))
    return h_all[1:], h_n, trace
