r"""The GRU cell (Cho et al. 2014), seed 001: forget and input gates merged into an update gate, cell
state and hidden state merged. Exactly ``torch.nn.GRUCell``'s equations and layout:

.. math::

    r_t &= \sigma(W_{ir} x_t + b_{ir} + W_{hr} h_{t-1} + b_{hr})          &\text{reset gate}\\
    z_t &= \sigma(W_{iz} x_t + b_{iz} + W_{hz} h_{t-1} + b_{hz})          &\text{update gate}\\
    n_t &= \tanh(W_{in} x_t + b_{in} + r_t \odot (W_{hn} h_{t-1} + b_{hn})) &\text{candidate}\\
    h_t &= (1 - z_t) \odot n_t + z_t \odot h_{t-1}

==================  ============  ===================================
parameter           shape         packing
==================  ============  ===================================
``weight_ih``       (3H, H_in)    rows ``[W_ir | W_iz | W_in]``
``weight_hh``       (3H, H)       rows ``[W_hr | W_hz | W_hn]``
``bias_ih/bias_hh`` (3H,)         ``[b_r | b_z | b_n]``
==================  ============  ===================================
"""
from __future__ import annotations

import math
from typing import NamedTuple, Optional

import torch
from torch import Tensor, nn


class GRUParams(NamedTuple):
    """The tensors of one GRU cell (one layer, one direction)."""

    weight_ih: Tensor  # (3H, H_in)
    weight_hh: Tensor  # (3H, H)
    bias_ih: Optional[Tensor] = None  # (3H,)
    bias_hh: Optional[Tensor] = None  # (3H,)


class GRUGates(NamedTuple):
    """Gate activations of one step, each (N, H)."""

    r: Tensor
    z: Tensor
    n: Tensor


def gru_step(xw: Tensor, h: Tensor, p: GRUParams) -> tuple[Tensor, GRUGates]:
    """One GRU step.

    Args:
        xw: (N, 3H) input projection ``x_t @ weight_ih.T`` (no bias).
        h: (N, H) previous hidden state (after recurrent dropout, if any).
    Returns:
        h_t (N, H) and the gates (r, z, n).
    """
    hw = h @ p.weight_hh.t()  # (N, 3H)
    if p.bias_ih is not None:
        xw = xw + p.bias_ih
        hw = hw + p.bias_hh
    xr, xz, xn = xw.chunk(3, dim=1)
    hr, hz, hn = hw.chunk(3, dim=1)
    r = torch.sigmoid(xr + hr)
    z = torch.sigmoid(xz + hz)
    n = torch.tanh(xn + r * hn)
    h_t = (1 - z) * n + z * h
    return h_t, GRUGates(r, z, n)


def gru_parameter_shapes(input_size: int, hidden_size: int, bias: bool) -> dict[str, tuple[int, ...]]:
    shapes = {"weight_ih": (3 * hidden_size, input_size), "weight_hh": (3 * hidden_size, hidden_size)}
    if bias:
        shapes.update(bias_ih=(3 * hidden_size,), bias_hh=(3 * hidden_size,))
    return shapes


class GRUCell(nn.Module):
    """One GRU step, drop-in for ``torch.nn.GRUCell`` (same parameters, gate order r, z, n).

    Shapes: x (N, H_in) or (H_in,); h (N, H) or (H,). ``forward`` returns h_t like torch;
    :meth:`step` is the sequence runner's ``(y_t, (h_t,))`` contract.
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None):
        super().__init__()
        if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                   for v in (input_size, hidden_size)):
            raise ValueError(f"GRUCell: expected ints input_size > 0 and hidden_size > 0, "
                             f"got {input_size!r}, {hidden_size!r}")
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        for name, shape in gru_parameter_shapes(input_size, hidden_size, bias).items():
            setattr(self, name, nn.Parameter(torch.empty(shape, device=device, dtype=dtype)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        stdv = 1.0 / math.sqrt(self.hidden_size)
        for w in self.parameters():
            nn.init.uniform_(w, -stdv, stdv)

    @property
    def state_size(self) -> tuple[int]:
        return (self.hidden_size,)

    def initial_state(self, batch_size: int, like: Tensor) -> tuple[Tensor]:
        return (like.new_zeros(batch_size, self.hidden_size),)

    def params(self) -> GRUParams:
        return GRUParams(self.weight_ih, self.weight_hh, getattr(self, "bias_ih", None),
                         getattr(self, "bias_hh", None))

    def gates(self, x: Tensor, state: tuple[Tensor]) -> tuple[tuple[Tensor], GRUGates]:
        h_t, gates = gru_step(x @ self.weight_ih.t(), state[0], self.params())
        return (h_t,), gates

    def step(self, x: Tensor, state: tuple[Tensor]) -> tuple[Tensor, tuple[Tensor]]:
        new, _ = self.gates(x, state)
        return new[0], new

    def forward(self, input: Tensor, hx: Optional[Tensor] = None) -> Tensor:
        from ..validation import check_cell_input

        x, state, unbatched = check_cell_input(self, input, None if hx is None else (hx,),
                                               self.state_size)
        (h_t,), _ = self.gates(x, state)
        return h_t.squeeze(0) if unbatched else h_t

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")
