r"""The LSTM cell and all its variants, written as the equations of the notes.

Notation (seeds 000/001): :math:`x_t` input, :math:`h_{t-1}` previous output, :math:`c_{t-1}` previous
cell state (memory), :math:`\sigma` the gate activation (sigmoid), :math:`\odot` elementwise product.

.. math::

    i_t &= \sigma(W_{ii} x_t + b_{ii} + W_{hi} h_{t-1} + b_{hi} + p_i \odot c_{t-1})   &\text{input gate}\\
    f_t &= \sigma(W_{if} x_t + b_{if} + W_{hf} h_{t-1} + b_{hf} + p_f \odot c_{t-1})   &\text{forget gate}\\
    g_t &= \tanh(W_{ig} x_t + b_{ig} + W_{hg} h_{t-1} + b_{hg})                       &\text{candidate } \tilde C_t\\
    c_t &= f_t \odot c_{t-1} + i_t \odot g_t                                           &\text{cell state}\\
    o_t &= \sigma(W_{io} x_t + b_{io} + W_{ho} h_{t-1} + b_{ho} + p_o \odot c_t)        &\text{output gate}\\
    h_t &= o_t \odot \tanh(c_t)                                                        &\text{hidden state}

The peephole terms :math:`p \odot c` exist only with ``peephole=True`` ("version A" of seed 000, Gers &
Schmidhuber 2000); without them this is exactly ``torch.nn.LSTMCell`` ("version B"). Options change one
equation each (Greff et al. 2017, "LSTM: A Search Space Odyssey"):

===================  ========================================================================
option               equation that changes
===================  ========================================================================
``peephole``         :math:`+p_i\odot c_{t-1}`, :math:`+p_f\odot c_{t-1}`, :math:`+p_o\odot c_t`
``coupled``          :math:`f_t = 1 - i_t` (CIFG)
``input_gate=False`` :math:`i_t = 1` (NIG)
``forget_gate=False`` :math:`f_t = 1` (NFG)
``output_gate=False`` :math:`o_t = 1` (NOG)
``input_activation`` :math:`g_t = \mathrm{act}(\cdot)`; ``"identity"`` is NIAF
``output_activation`` :math:`h_t = o_t \odot \mathrm{act}(c_t)`; ``"identity"`` is NOAF
``gate_recurrence``  :math:`+R_{\cdot}[i_{t-1}; f_{t-1}; o_{t-1}]` in the i, f, o pre-activations (FGR)
``layer_norm``       :math:`\mathrm{LN}(W_i x_t) + \mathrm{LN}(W_h h_{t-1}) + b` and
                     :math:`h_t = o_t \odot \tanh(\mathrm{LN}(c_t))` (Ba et al. 2016)
``proj_size > 0``    :math:`h_t \leftarrow W_{hr} h_t` (as ``torch.nn.LSTM``)
===================  ========================================================================

Weight layout (public, identical to ``torch.nn.LSTM`` for the shared part):

==================  ===========================  ===============================================
parameter           shape                        packing
==================  ===========================  ===============================================
``weight_ih``       (4H, H_in)                   rows ``[W_ii | W_if | W_ig | W_io]``
``weight_hh``       (4H, P)                      rows ``[W_hi | W_hf | W_hg | W_ho]``
``bias_ih/bias_hh`` (4H,)                        ``[b_i | b_f | b_g | b_o]``
``weight_hr``       (P, H)                       projection (only when ``proj_size > 0``)
``weight_peephole`` (3, H)                       rows ``[p_i, p_f, p_o]`` (``peephole``)
``weight_gr``       (3H, 3H)                     ``[i; f; o]_{t-1} -> [i; f; o]`` (``gate_recurrence``)
``ln_ih/ln_hh``     (4H,)                        LayerNorm gains of the two projections (``layer_norm``)
``ln_c_weight/bias``  (H,)                       LayerNorm of the cell state (``layer_norm``)
==================  ===========================  ===============================================

H is ``hidden_size``, P is ``proj_size`` if set else H. The rows of a gate that an option removes
(``f`` under ``coupled`` or ``forget_gate=False``, ``i`` under ``input_gate=False``, ``o`` under
``output_gate=False``) stay in the packed weights so that every variant shares one layout and one
kernel; they are not used and receive zero gradient. One exception: with ``layer_norm`` the
LayerNorm statistics of :math:`W_i x_t` and :math:`W_h h_{t-1}` are taken over all 4H rows, so the
weight rows of a removed gate still shift the mean and variance that the kept gates see (their
bias rows and peephole stay unused).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .activations import ACTIVATIONS, get_activation

LN_EPS = 1e-5


@dataclass(frozen=True)
class LSTMOptions:
    """Which LSTM variant: each field changes one equation (see the module docstring)."""

    peephole: bool = False  # i, f see c_{t-1}; o sees c_t through per-unit weights (version A)
    coupled: bool = False  # coupled input-forget gate: f = 1 - i (CIFG)
    input_gate: bool = True  # False: i = 1 (NIG)
    forget_gate: bool = True  # False: f = 1 (NFG)
    output_gate: bool = True  # False: o = 1 (NOG)
    gate_activation: str = "sigmoid"  # activation of i, f, o
    input_activation: str = "tanh"  # activation of the candidate g; "identity" is NIAF
    output_activation: str = "tanh"  # activation of c before o; "identity" is NOAF
    gate_recurrence: bool = False  # i, f, o also see last step's i, f, o (FGR)
    layer_norm: bool = False  # LayerNorm on both gate projections and on the cell (Ba et al.)

    def validate(self, owner: str = "LSTMOptions") -> "LSTMOptions":
        for name in ("gate_activation", "input_activation", "output_activation"):
            get_activation(getattr(self, name), owner)
        if self.coupled and not (self.input_gate and self.forget_gate):
            raise ValueError(
                f"{owner}: coupled=True derives f from i, so it needs input_gate=True and "
                f"forget_gate=True; got input_gate={self.input_gate}, forget_gate={self.forget_gate}"
            )
        return self

    @property
    def is_vanilla(self) -> bool:
        """True when this is exactly torch.nn.LSTM's math."""
        return self == _VANILLA

    def to_dict(self) -> dict:
        """{field name: value}, in field order (a copy of the instance's fields)."""
        return dict(self.__dict__)


_VANILLA = LSTMOptions()


#: Greff et al. (2017) variants. V is the vanilla LSTM *with* peepholes; every other preset is V with
#: one change. NP (no peepholes) is the torch.nn.LSTM / Keras / "version B" cell.
PRESETS: dict[str, LSTMOptions] = {
    "V": LSTMOptions(peephole=True),
    "NIG": LSTMOptions(peephole=True, input_gate=False),
    "NFG": LSTMOptions(peephole=True, forget_gate=False),
    "NOG": LSTMOptions(peephole=True, output_gate=False),
    "NIAF": LSTMOptions(peephole=True, input_activation="identity"),
    "NOAF": LSTMOptions(peephole=True, output_activation="identity"),
    "NP": LSTMOptions(),
    "CIFG": LSTMOptions(peephole=True, coupled=True),
    "FGR": LSTMOptions(peephole=True, gate_recurrence=True),
}


def resolve_options(owner: str, preset: Optional[str], options: Optional[LSTMOptions],
                    overrides: dict) -> LSTMOptions:
    """Options from a preset name, an LSTMOptions, and per-field keyword overrides (in that order)."""
    if preset is not None:
        if not isinstance(preset, str) or preset.upper() not in PRESETS:
            raise ValueError(
                f"{owner}: unknown preset {preset!r}; expected one of {list(PRESETS)}"
            )
        base = PRESETS[preset.upper()]
    else:
        base = LSTMOptions()
    if options is not None:
        if not isinstance(options, LSTMOptions):
            raise TypeError(f"{owner}: options must be an LSTMOptions, got {type(options).__name__}")
        base = options
    given = {k: v for k, v in overrides.items() if v is not None}
    return replace(base, **given).validate(owner)


class LSTMParams(NamedTuple):
    """The tensors of one LSTM cell (one layer, one direction); None where an option is off."""

    weight_ih: Tensor  # (4H, H_in)
    weight_hh: Tensor  # (4H, P)
    bias_ih: Optional[Tensor] = None  # (4H,)
    bias_hh: Optional[Tensor] = None  # (4H,)
    weight_hr: Optional[Tensor] = None  # (P, H)
    weight_peephole: Optional[Tensor] = None  # (3, H): p_i, p_f, p_o
    weight_gr: Optional[Tensor] = None  # (3H, 3H)
    ln_ih: Optional[Tensor] = None  # (4H,)
    ln_hh: Optional[Tensor] = None  # (4H,)
    ln_c_weight: Optional[Tensor] = None  # (H,)
    ln_c_bias: Optional[Tensor] = None  # (H,)


class LSTMGates(NamedTuple):
    """Gate activations of one step, each (N, H); a removed gate is all ones (all zeros for f=1-1)."""

    i: Tensor
    f: Tensor
    g: Tensor
    o: Tensor


def lstm_step(xw: Tensor, h: Tensor, c: Tensor, a: Optional[Tensor], p: LSTMParams,
              opts: LSTMOptions) -> tuple[Tensor, Tensor, LSTMGates]:
    """One LSTM step: the equations of the module docstring, nothing else.

    Args:
        xw: (N, 4H) input projection ``x_t @ weight_ih.T`` (no bias; computed for all steps at once).
        h: (N, P) previous hidden state h_{t-1} (after recurrent dropout, if any).
        c: (N, H) previous cell state c_{t-1}.
        a: (N, 3H) previous [i; f; o] activations, only with ``gate_recurrence`` (else None).
    Returns:
        h_t (N, P), c_t (N, H) and the gate activations (i, f, g, o), each (N, H).
    """
    sigma = get_activation(opts.gate_activation)
    act_in = get_activation(opts.input_activation)
    act_out = get_activation(opts.output_activation)

    hw = h @ p.weight_hh.t()  # (N, 4H)
    if opts.layer_norm:
        xw = F.layer_norm(xw, xw.shape[-1:], p.ln_ih, None, LN_EPS)
        hw = F.layer_norm(hw, hw.shape[-1:], p.ln_hh, None, LN_EPS)
    z = xw + hw
    if p.bias_ih is not None:
        z = z + p.bias_ih + p.bias_hh
    zi, zf, zg, zo = z.chunk(4, dim=1)  # each (N, H)

    if opts.peephole:
        zi = zi + p.weight_peephole[0] * c
        zf = zf + p.weight_peephole[1] * c
    if opts.gate_recurrence:
        ri, rf, ro = (a @ p.weight_gr.t()).chunk(3, dim=1)
        zi, zf, zo = zi + ri, zf + rf, zo + ro

    i = sigma(zi) if opts.input_gate else torch.ones_like(c)
    if opts.coupled:
        f = 1 - i
    else:
        f = sigma(zf) if opts.forget_gate else torch.ones_like(c)
    g = act_in(zg)
    c_t = f * c + i * g
    if opts.peephole:
        zo = zo + p.weight_peephole[2] * c_t
    o = sigma(zo) if opts.output_gate else torch.ones_like(c)
    c_out = F.layer_norm(c_t, c_t.shape[-1:], p.ln_c_weight, p.ln_c_bias, LN_EPS) \
        if opts.layer_norm else c_t
    h_t = o * act_out(c_out)
    if p.weight_hr is not None:
        h_t = h_t @ p.weight_hr.t()  # (N, P)
    return h_t, c_t, LSTMGates(i, f, g, o)


def init_lstm_parameters(module: nn.Module, hidden_size: int) -> None:
    """torch.nn.LSTM's initialisation: U(-1/sqrt(H), 1/sqrt(H)) for every weight and bias; ones and
    zeros for the LayerNorm gains and biases; peephole and gate-recurrence weights uniform as well."""
    stdv = 1.0 / math.sqrt(hidden_size) if hidden_size > 0 else 0.0
    for name, w in module.named_parameters(recurse=False):
        if name.startswith("ln_") and "bias" not in name:
            nn.init.ones_(w)
        elif name.startswith("ln_"):
            nn.init.zeros_(w)
        else:
            nn.init.uniform_(w, -stdv, stdv)


class LSTMCell(nn.Module):
    r"""One LSTM step, drop-in for ``torch.nn.LSTMCell`` and every variant of the notes.

    Same parameter names, shapes and gate order (i, f, g, o) as ``torch.nn.LSTMCell``, so its state
    dict loads as it is. Extra parameters of the variants are listed in the layout table of
    :mod:`lstmkit.cells.lstm`.

    Args:
        input_size: H_in, features of x_t.
        hidden_size: H, size of c_t (and of h_t without projection).
        bias: add ``bias_ih`` and ``bias_hh``.
        proj_size: P > 0 projects h_t to P features (``torch.nn.LSTM``'s ``proj_size``).
        preset: one of :data:`PRESETS` ("V", "NIG", "NFG", "NOG", "NIAF", "NOAF", "NP", "CIFG", "FGR").
        options: an :class:`LSTMOptions`; keyword overrides below win over it and over the preset.

    Shapes: ``x`` (N, H_in) or (H_in,); state ``(h, c)`` with h (N, P), c (N, H); with
    ``gate_recurrence`` the state is ``(h, c, a)`` with a (N, 3H) the last [i; f; o].
    ``forward`` returns the new state, like ``torch.nn.LSTMCell``; :meth:`step` is the
    ``(y_t, new_state)`` contract of the sequence runner, and :meth:`gates` gives (i, f, g, o).
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None,
                 dtype=None, *, proj_size: int = 0, preset: Optional[str] = None,
                 options: Optional[LSTMOptions] = None, **overrides):
        super().__init__()
        unknown = set(overrides) - {f.name for f in fields(LSTMOptions)}
        if unknown:
            raise TypeError(f"LSTMCell: unknown option(s) {sorted(unknown)}; expected fields of "
                            f"LSTMOptions {[f.name for f in fields(LSTMOptions)]}")
        ints = all(isinstance(v, int) and not isinstance(v, bool)
                   for v in (input_size, hidden_size, proj_size))
        if (not ints or input_size <= 0 or hidden_size <= 0 or proj_size < 0
                or (proj_size and proj_size >= hidden_size)):
            raise ValueError(f"LSTMCell: expected ints input_size > 0, hidden_size > 0 and "
                             f"0 <= proj_size < hidden_size; got {input_size!r}, {hidden_size!r}, "
                             f"{proj_size!r}")
        self.input_size, self.hidden_size, self.proj_size, self.bias = input_size, hidden_size, proj_size, bias
        self.options = resolve_options("LSTMCell", preset, options, overrides)
        kw = {"device": device, "dtype": dtype}
        for name, shape in lstm_parameter_shapes(input_size, hidden_size, proj_size, bias,
                                                 self.options).items():
            setattr(self, name, nn.Parameter(torch.empty(shape, **kw)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init_lstm_parameters(self, self.hidden_size)

    @property
    def state_size(self) -> tuple[int, ...]:
        """Feature size of each state tensor: (P, H) or (P, H, 3H) with gate recurrence."""
        P, H = self.proj_size or self.hidden_size, self.hidden_size
        return (P, H, 3 * H) if self.options.gate_recurrence else (P, H)

    def initial_state(self, batch_size: int, like: Tensor) -> tuple[Tensor, ...]:
        """Zeros of the right shapes, dtype and device."""
        return tuple(like.new_zeros(batch_size, n) for n in self.state_size)

    def params(self) -> LSTMParams:
        return LSTMParams(**{k: getattr(self, k, None) for k in LSTMParams._fields})

    def gates(self, x: Tensor, state: tuple[Tensor, ...]) -> tuple[tuple[Tensor, ...], LSTMGates]:
        """(new_state, gates) for one step; x (N, H_in)."""
        h, c = state[0], state[1]
        a = state[2] if self.options.gate_recurrence else None
        h_t, c_t, gates = lstm_step(x @ self.weight_ih.t(), h, c, a, self.params(), self.options)
        new = (h_t, c_t)
        if self.options.gate_recurrence:
            new = new + (torch.cat([gates.i, gates.f, gates.o], dim=1),)
        return new, gates

    def step(self, x: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, tuple[Tensor, ...]]:
        """The sequence runner's contract: ``(y_t, new_state)`` with y_t = h_t."""
        new, _ = self.gates(x, state)
        return new[0], new

    def forward(self, input: Tensor, hx: Optional[tuple[Tensor, ...]] = None) -> tuple[Tensor, ...]:
        from ..validation import check_cell_input

        x, hx, unbatched = check_cell_input(self, input, hx, self.state_size)
        new, _ = self.gates(x, hx)
        return tuple(s.squeeze(0) for s in new) if unbatched else new

    def extra_repr(self) -> str:
        changed = {k: v for k, v in self.options.to_dict().items()
                   if v != getattr(LSTMOptions(), k)}
        s = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size:
            s += f", proj_size={self.proj_size}"
        if not self.bias:
            s += ", bias=False"
        return s + "".join(f", {k}={v!r}" for k, v in changed.items())


def lstm_parameter_shapes(input_size: int, hidden_size: int, proj_size: int, bias: bool,
                          opts: LSTMOptions) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every parameter of one cell, in LSTMParams order (see the layout table)."""
    H, P = hidden_size, proj_size or hidden_size
    shapes: dict[str, tuple[int, ...]] = {"weight_ih": (4 * H, input_size), "weight_hh": (4 * H, P)}
    if bias:
        shapes.update(bias_ih=(4 * H,), bias_hh=(4 * H,))
    if proj_size:
        shapes["weight_hr"] = (P, H)
    if opts.peephole:
        shapes["weight_peephole"] = (3, H)
    if opts.gate_recurrence:
        shapes["weight_gr"] = (3 * H, 3 * H)
    if opts.layer_norm:
        shapes.update(ln_ih=(4 * H,), ln_hh=(4 * H,), ln_c_weight=(H,), ln_c_bias=(H,))
    return shapes


__all__ = ["LSTMOptions", "PRESETS", "LSTMParams", "LSTMGates", "lstm_step", "LSTMCell",
           "lstm_parameter_shapes", "resolve_options", "init_lstm_parameters", "ACTIVATIONS"]
