"""The pure-PyTorch reference: one layer, one direction, every option, written as plain steps.

This is the path the tests trust and the fused kernels are compared against. Its contract is the
contract of every backend (see ``kernels/dispatch.py``):

``lstm_direction(x, h0, c0, p, opts, lengths, rec_mask, zoneout_c, zoneout_h, want_trace)``
    x (T, N, I) input, time first; h0 (N, P); c0 (N, H); p an LSTMParams; lengths (N,) int64 or None
    (sequences are left-aligned, steps t >= length are padding); rec_mask (N, P) variational dropout
    mask already scaled by 1/(1-p), applied to h_{t-1} before W_hh, or None; zoneout_c (T, N, H) and
    zoneout_h (T, N, P) the probability (eval) or 0/1 sample (training) of keeping the previous value,
    or None. Returns y (T, N, P), h_n (N, P), c_n (N, H) and, if want_trace, a dict of (T, N, H)
    tensors "i", "f", "g", "o", "c" (zeros at padded steps), else None.

``gru_direction(x, h0, p, lengths, rec_mask, zoneout_h, want_trace)``
    the same for a GRU: y (T, N, H), h_n (N, H), trace dict "r", "z", "n" or None.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from ..cells.gru import GRUParams, gru_step
from ..cells.lstm import LSTMOptions, LSTMParams, lstm_step
from ..layers.scan import scan, valid_mask


def _zone(keep: Optional[Tensor], old: Tensor, new: Tensor) -> Tensor:
    """Zoneout (Krueger et al. 2016): keep the previous value with probability keep (this step's
    (N, .) slice of zoneout_c / zoneout_h)."""
    if keep is None:
        return new
    return keep * old + (1 - keep) * new


def lstm_direction(x: Tensor, h0: Tensor, c0: Tensor, p: LSTMParams, opts: LSTMOptions,
                   lengths: Optional[Tensor] = None, rec_mask: Optional[Tensor] = None,
                   zoneout_c: Optional[Tensor] = None, zoneout_h: Optional[Tensor] = None,
                   want_trace: bool = False):
    T, N = x.shape[0], x.shape[1]
    H = c0.shape[1]
    xw = (x.reshape(T * N, x.shape[2]) @ p.weight_ih.t()).view(T, N, p.weight_ih.shape[0])  # (T, N, 4H), all steps at once
    a0 = x.new_zeros(N, 3 * H) if opts.gate_recurrence else None

    def step(inputs, state, consts):
        (xw_t, keep_c, keep_h), (p, rec_mask) = inputs, consts  # (the step reads only its arguments)
        h, c, a = state if opts.gate_recurrence else (*state, None)
        h_in = h * rec_mask if rec_mask is not None else h
        h_t, c_t, gates = lstm_step(xw_t, h_in, c, a, p, opts)
        c_t = _zone(keep_c, c, c_t)
        h_t = _zone(keep_h, h, h_t)
        new = (h_t, c_t)
        if opts.gate_recurrence:
            new = new + (torch.cat([gates.i, gates.f, gates.o], dim=1),)
        extras = (gates.i, gates.f, gates.g, gates.o, c_t) if want_trace else ()
        return h_t, new, extras

    state0 = (h0, c0, a0) if opts.gate_recurrence else (h0, c0)
    y, state, ext = scan(step, (xw, zoneout_c, zoneout_h), state0,
                         valid_mask(lengths, T, N, x.device), consts=(p, rec_mask))
    trace = dict(zip(("i", "f", "g", "o", "c"), ext)) if want_trace else None
    return y, state[0], state[1], trace


def gru_direction(x: Tensor, h0: Tensor, p: GRUParams, lengths: Optional[Tensor] = None,
                  rec_mask: Optional[Tensor] = None, zoneout_h: Optional[Tensor] = None,
                  want_trace: bool = False):
    T, N = x.shape[0], x.shape[1]
    xw = (x.reshape(T * N, x.shape[2]) @ p.weight_ih.t()).view(T, N, p.weight_ih.shape[0])  # (T, N, 3H)

    def step(inputs, state, consts):
        (xw_t, keep_h), (p, rec_mask) = inputs, consts
        (h,) = state
        h_in = h * rec_mask if rec_mask is not None else h
        h_t, gates = gru_step(xw_t, h_in, p)
        if rec_mask is not None:
            # the carried term z * h_{t-1} uses the undropped state; only the recurrent
            # projection sees the dropout mask
            h_t = h_t + gates.z * (h - h_in)
        h_t = _zone(keep_h, h, h_t)
        return h_t, (h_t,), (tuple(gates) if want_trace else ())

    y, state, ext = scan(step, (xw, zoneout_h), (h0,), valid_mask(lengths, T, N, x.device),
                         consts=(p, rec_mask))
    trace = dict(zip(("r", "z", "n"), ext)) if want_trace else None
    return y, state[0], trace
