r"""The convolutional LSTM cell (Shi et al. 2015, "Convolutional LSTM Network: A Machine Learning
Approach for Precipitation Nowcasting"): the LSTM of the notes with every matrix product replaced by
a convolution, so the input, hidden and cell states are frames (channels, height, width).

Notation as in :mod:`lstmkit.cells.lstm`: :math:`x_t` input frame, :math:`h_{t-1}` previous output,
:math:`c_{t-1}` previous cell state, :math:`*` convolution ("same" padding, stride 1),
:math:`\odot` elementwise (Hadamard) product, :math:`\sigma` the sigmoid.

.. math::

    i_t &= \sigma(W_{xi} * x_t + W_{hi} * h_{t-1} + b_i + p_i \odot c_{t-1})   &\text{input gate}\\
    f_t &= \sigma(W_{xf} * x_t + W_{hf} * h_{t-1} + b_f + p_f \odot c_{t-1})   &\text{forget gate}\\
    g_t &= \tanh(W_{xg} * x_t + W_{hg} * h_{t-1} + b_g)                       &\text{candidate}\\
    c_t &= f_t \odot c_{t-1} + i_t \odot g_t                                   &\text{cell state}\\
    o_t &= \sigma(W_{xo} * x_t + W_{ho} * h_{t-1} + b_o + p_o \odot c_t)        &\text{output gate}\\
    h_t &= o_t \odot \tanh(c_t)                                                &\text{hidden state}

The peephole terms :math:`p \odot c` (the paper's :math:`W_{ci}, W_{cf}, W_{co}`) exist only with
``peephole=True``. Two forms of :math:`p`, chosen by ``frame_size``:

* ``frame_size=(H, W)`` given: per-position weights of shape (hidden, H, W), as in the paper. The
  cell then only accepts frames of that size.
* ``frame_size=None``: per-channel weights of shape (hidden, 1, 1), broadcast over positions (one
  peephole weight per hidden channel, like :class:`lstmkit.LSTMCell`'s per-unit peepholes). The
  cell then accepts frames of any size.

Weight layout (public): one convolution over the concatenation ``cat[x_t, h_{t-1}]`` along channels
computes all four gates, in the gate order of ``torch.nn.LSTM`` (i, f, g, o).

===================  ======================================  ===========================================
parameter            shape                                   packing
===================  ======================================  ===========================================
``weight``           (4*hidden, C + hidden, kH, kW)          output channels ``[i | f | g | o]``; input
                                                             channels ``[x (C) | h (hidden)]``, so
                                                             ``weight[:, :C]`` is W_x and
                                                             ``weight[:, C:]`` is W_h
``bias``             (4*hidden,)                             ``[b_i | b_f | b_g | b_o]`` (``bias=True``)
``weight_peephole``  (3, hidden, H, W) or (3, hidden, 1, 1)  ``[p_i, p_f, p_o]`` (``peephole=True``)
===================  ======================================  ===========================================

C is ``input_size`` (input channels), hidden is ``hidden_size``; kH, kW is ``kernel_size``.
Kernel sizes are odd, so that the "same" padding (kH // 2, kW // 2) is symmetric and keeps every
frame at (H, W).
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import describe
from ..validation import check_tensor

Size2 = Union[int, Sequence[int]]


def _pair(owner: str, name: str, v: Optional[Size2]) -> Optional[tuple[int, int]]:
    if v is None:
        return None
    t = (v, v) if isinstance(v, int) else tuple(v)
    if len(t) != 2 or not all(isinstance(k, int) and not isinstance(k, bool) and k > 0 for k in t):
        raise ValueError(f"{owner}: expected {name} to be a positive int or a pair of positive "
                         f"ints, got {v!r}")
    return t


def convlstm_step(x: Tensor, h: Tensor, c: Tensor, weight: Tensor, bias: Optional[Tensor],
                  weight_peephole: Optional[Tensor]) -> tuple[Tensor, Tensor]:
    """One ConvLSTM step: the equations of the module docstring, nothing else.

    Args:
        x: (N, C, H, W) input frame x_t.
        h: (N, hidden, H, W) previous hidden state h_{t-1}.
        c: (N, hidden, H, W) previous cell state c_{t-1}.
        weight: (4*hidden, C + hidden, kH, kW); bias (4*hidden,) or None.
        weight_peephole: (3, hidden, H, W) or (3, hidden, 1, 1), or None for no peepholes.
    Returns:
        h_t and c_t, each (N, hidden, H, W).
    """
    kh, kw = weight.shape[-2:]
    z = F.conv2d(torch.cat([x, h], dim=1), weight, bias, padding=(kh // 2, kw // 2))  # (N, 4*hidden, H, W)
    zi, zf, zg, zo = z.chunk(4, dim=1)  # each (N, hidden, H, W)
    if weight_peephole is not None:
        zi = zi + weight_peephole[0] * c
        zf = zf + weight_peephole[1] * c
    i = torch.sigmoid(zi)
    f = torch.sigmoid(zf)
    g = torch.tanh(zg)
    c_t = f * c + i * g
    if weight_peephole is not None:
        zo = zo + weight_peephole[2] * c_t
    o = torch.sigmoid(zo)
    h_t = o * torch.tanh(c_t)
    return h_t, c_t


class ConvLSTMCell(nn.Module):
    r"""One ConvLSTM step over (C, H, W) frames (Shi et al. 2015); equations and weight layout in
    :mod:`lstmkit.cells.convlstm`.

    Args:
        input_size: C, channels of x_t.
        hidden_size: channels of h_t and c_t.
        kernel_size: k or (kH, kW), odd, of the gate convolution ("same" padding, stride 1).
        bias: add ``bias``.
        peephole: add the peephole terms :math:`p \odot c`.
        frame_size: (H, W) or an int. With peepholes it makes them per-position (hidden, H, W) as in
            the paper, else they are per-channel (hidden, 1, 1). When given, frames must have this
            size.

    Shapes: x (N, C, H, W) or unbatched (C, H, W); state ``(h, c)``, each (N, hidden, H, W) or
    (hidden, H, W). ``forward(x, state=None)`` returns the new ``(h, c)`` like
    ``torch.nn.LSTMCell``; :meth:`step` is the sequence runner's ``(y_t, new_state)`` contract with
    y_t = h_t, so ``lstmkit.layers.RNN(ConvLSTMCell(...))`` runs it over a sequence.

    Initialisation: every parameter U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with
    fan_in = (C + hidden) * kH * kW, which is ``torch.nn.Conv2d``'s default for its weight and bias.
    """

    feature_dims = 3  # one step is a (C, H, W) frame (for the sequence runner's input checks)

    def __init__(self, input_size: int, hidden_size: int, kernel_size: Size2 = 3, bias: bool = True,
                 device=None, dtype=None, *, peephole: bool = False,
                 frame_size: Optional[Size2] = None):
        super().__init__()
        for arg, v in (("input_size", input_size), ("hidden_size", hidden_size)):
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ValueError(f"ConvLSTMCell: expected {arg} to be a positive int, got {v!r}")
        self.input_size, self.hidden_size = input_size, hidden_size
        self.kernel_size = _pair("ConvLSTMCell", "kernel_size", kernel_size)
        if not all(k % 2 for k in self.kernel_size):
            raise ValueError(f"ConvLSTMCell: expected odd kernel sizes (symmetric 'same' padding), "
                             f"got kernel_size={kernel_size!r}")
        self.frame_size = _pair("ConvLSTMCell", "frame_size", frame_size)
        self.peephole = bool(peephole)
        kw = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(torch.empty(4 * hidden_size, input_size + hidden_size,
                                               *self.kernel_size, **kw))
        # like torch.nn.Conv2d: ``bias`` is the parameter, or None with bias=False
        self.bias = nn.Parameter(torch.empty(4 * hidden_size, **kw)) if bias else None
        if self.peephole:
            spatial = self.frame_size or (1, 1)
            self.weight_peephole = nn.Parameter(torch.empty(3, hidden_size, *spatial, **kw))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        fan_in = (self.input_size + self.hidden_size) * self.kernel_size[0] * self.kernel_size[1]
        bound = 1.0 / math.sqrt(fan_in)
        for w in self.parameters(recurse=False):
            nn.init.uniform_(w, -bound, bound)

    @property
    def state_size(self) -> tuple[int, int]:
        """Channels of (h, c); their spatial size is the frame's."""
        return (self.hidden_size, self.hidden_size)

    def initial_state(self, batch_size: int, like: Tensor) -> tuple[Tensor, Tensor]:
        """Zeros (N, hidden, H, W) for h and c; (H, W) from ``like`` (a (N, C, H, W) frame batch)
        or else from ``frame_size``; dtype and device from ``like``."""
        if like.dim() == 4:
            spatial = tuple(like.shape[-2:])
        elif self.frame_size is not None:
            spatial = self.frame_size
        else:
            raise ValueError(f"ConvLSTMCell: initial_state needs the frame size: expected `like` "
                             f"of shape (N, C, H, W) or a cell built with frame_size, got "
                             f"{describe(like)}")
        return tuple(like.new_zeros(batch_size, self.hidden_size, *spatial) for _ in range(2))

    def step(self, x: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """The sequence runner's contract: x (N, C, H, W) -> ``(h_t, (h_t, c_t))``."""
        h_t, c_t = convlstm_step(x, state[0], state[1], self.weight, self.bias,
                                 getattr(self, "weight_peephole", None))
        return h_t, (h_t, c_t)

    def check_frames(self, owner: str, x: Tensor, what: str = "input") -> None:
        """Raise unless x (..., C, H, W) has this cell's channels and, if fixed, frame size."""
        if x.shape[-3] != self.input_size:
            raise ValueError(f"{owner}: expected {what} with {self.input_size} channels "
                             f"(input_size) in dimension -3, got {x.shape[-3]} in {describe(x)}")
        if self.frame_size is not None and tuple(x.shape[-2:]) != self.frame_size:
            raise ValueError(f"{owner}: expected frames of size {self.frame_size} (frame_size), "
                             f"got {tuple(x.shape[-2:])} in {describe(x)}")

    def forward(self, input: Tensor, hx: Optional[tuple[Tensor, Tensor]] = None,
                ) -> tuple[Tensor, Tensor]:
        name = type(self).__name__
        check_tensor(name, "input", input, dtype=self.weight.dtype, device=self.weight.device)
        if input.dim() not in (3, 4):
            raise ValueError(f"{name}: expected input of shape (N, C, H, W) or unbatched (C, H, W), "
                             f"got {describe(input)}")
        self.check_frames(name, input)
        unbatched = input.dim() == 3
        x = input.unsqueeze(0) if unbatched else input  # (N, C, H, W)
        if hx is None:
            state = self.initial_state(x.shape[0], x)
        else:
            if not (isinstance(hx, (tuple, list)) and len(hx) == 2):
                raise TypeError(f"{name}: expected hx to be a tuple (h, c), got {type(hx).__name__}")
            want = (self.hidden_size,) + tuple(input.shape[-2:])
            want = want if unbatched else (x.shape[0],) + want
            for k, s in zip("hc", hx):
                check_tensor(name, k, s, dtype=self.weight.dtype, device=self.weight.device)
                if tuple(s.shape) != want:
                    raise ValueError(f"{name}: expected {k} of shape {want}, got {describe(s)}")
            state = tuple(s.unsqueeze(0) for s in hx) if unbatched else tuple(hx)
        _, (h, c) = self.step(x, state)
        return (h.squeeze(0), c.squeeze(0)) if unbatched else (h, c)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}, kernel_size={self.kernel_size}"
        if self.bias is None:
            s += ", bias=False"
        if self.peephole:
            s += ", peephole=True"
        if self.frame_size is not None:
            s += f", frame_size={self.frame_size}"
        return s


__all__ = ["ConvLSTMCell", "convlstm_step"]
