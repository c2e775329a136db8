"""``lstmkit.LSTM``: ``torch.nn.LSTM``'s interface and state dict, with every variant of the notes.

With no variant option it *is* ``torch.nn.LSTM``: same constructor, input forms, outputs and
parameters, and it runs on torch's native kernel. Any variant option (a preset, peepholes, layer norm,
recurrent dropout, zoneout, a gate trace...) runs on lstmkit's fused kernels or the reference loop.
The equations and the weight layout are in :mod:`lstmkit.cells.lstm`.
"""
from __future__ import annotations

from dataclasses import fields
from typing import Callable, Optional, Union

from torch import Tensor, _VF
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from ..cells.lstm import LSTMOptions, LSTMParams, lstm_parameter_shapes, resolve_options
from .base import RecurrentLayer

_OPTION_FIELDS = {f.name for f in fields(LSTMOptions)}


class LSTM(RecurrentLayer):
    r"""Multi-layer LSTM over a sequence; drop-in for ``torch.nn.LSTM``.

    Args (torch's, same order): input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
    dropout=0 (between layers), bidirectional=False, proj_size=0, device, dtype.

    Keyword-only lstmkit options:
        preset: a Greff et al. variant name from :data:`lstmkit.PRESETS`.
        options: an :class:`lstmkit.LSTMOptions`.
        peephole, coupled, input_gate, forget_gate, output_gate, gate_activation, input_activation,
        output_activation, gate_recurrence, layer_norm: override one field of the options.
        recurrent_dropout: variational dropout on h_{t-1} before W_hh, one mask per sequence
            (Gal & Ghahramani 2016), training only.
        zoneout: probability of keeping the previous c and h per unit and step (Krueger et al. 2016);
            a float or (cell, hidden). Random in training, its expectation in eval.
        residual: add each layer's input to its output before the next layer (x_{k+1} = h_k + x_k,
            Wu et al. 2016); needs num_layers >= 2 and input_size == D*P (ValueError otherwise).

    Inputs ``input, hx=None, *, lengths=None, return_trace=False``:
        input: (N, L, H_in) if batch_first else (L, N, H_in), (L, H_in) unbatched, or PackedSequence.
        hx: (h_0, c_0), h_0 (D*num_layers, N, P) and c_0 (D*num_layers, N, H); zeros if omitted.
        lengths: (N,) lengths of a padded batch, as an alternative to PackedSequence.
        return_trace: also return every step's gates and cell states (see below).

    Outputs ``output, (h_n, c_n)`` [, trace]:
        output: (N, L, D*P) if batch_first else (L, N, D*P): h_t of the last layer at every step
            ("return sequences"); ``output[:, -1]`` (or h_n[-1]) is "only the last".
        h_n, c_n: (D*num_layers, N, P) and (D*num_layers, N, H), final states of every layer and
            direction, ordered layer-major (layer 0 forward, layer 0 reverse, layer 1 forward...).
        trace: dict with "i", "f", "g", "o", "c" of shape (D*num_layers, N, L, H) and "h" of shape
            (D*num_layers, N, L, P) (time-major (D*num_layers, L, N, .) when not batch_first): the
            gate activations, cell state and hidden state of every step, layer and direction;
            zeros at padded steps. With gate_recurrence, the carried gate activations start at
            zero on every call.
    """

    cell_kind = "lstm"
    state_names = ("h", "c")
    trace_names = ("i", "f", "g", "o", "c")

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 proj_size: int = 0, device=None, dtype=None, *, preset: Optional[str] = None,
                 options: Optional[LSTMOptions] = None, recurrent_dropout: float = 0.0,
                 zoneout: Union[float, tuple[float, float]] = 0.0, residual: bool = False,
                 **option_overrides):
        unknown = set(option_overrides) - _OPTION_FIELDS
        if unknown:
            raise TypeError(f"LSTM: unknown argument(s) {sorted(unknown)}; LSTM options are "
                            f"{sorted(_OPTION_FIELDS)}")
        self.options = resolve_options("LSTM", preset, options, option_overrides)
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, proj_size, device, dtype,
                         recurrent_dropout=recurrent_dropout, zoneout=zoneout, residual=residual)

    def cell_shapes(self, layer_input_size: int):
        return lstm_parameter_shapes(layer_input_size, self.hidden_size, self.proj_size, self.bias,
                                     self.options)

    def cell_params(self, tensors: dict) -> LSTMParams:
        return LSTMParams(**tensors)

    def native_ok(self, want_trace: bool) -> tuple[bool, Callable[[], str]]:
        vanilla = self.options.is_vanilla
        regularised = bool(self.recurrent_dropout or any(self.zoneout))

        def why() -> str:
            reasons = [f"variant options {self.options}"] if not vanilla else []
            reasons += ["recurrent dropout / zoneout"] if regularised else []
            reasons += ["a gate trace was asked for"] if want_trace else []
            return "; ".join(reasons)

        return vanilla and not regularised and not want_trace, why

    def _flat_weights(self) -> list[Tensor]:
        """torch's order: per layer and direction w_ih, w_hh, (b_ih, b_hh), (w_hr)."""
        return [w for ws in self.all_weights for w in ws]

    def run_native(self, x: Tensor, hx: tuple[Tensor, ...], lengths: Optional[Tensor]):
        args = (self._flat_weights(), self.bias, self.num_layers, self.dropout, self.training,
                self.bidirectional)
        if lengths is None:
            y, h, c = _VF.lstm(x, hx, *args, False)
            return y, (h, c)
        packed = pack_padded_sequence(x, lengths, enforce_sorted=False)
        si, ui = packed.sorted_indices, packed.unsorted_indices
        data, h, c = _VF.lstm(packed.data, packed.batch_sizes,
                              tuple(s.index_select(1, si) for s in hx), *args)
        y, _ = pad_packed_sequence(PackedSequence(data, packed.batch_sizes, si, ui),
                                   total_length=x.shape[0])
        return y, (h.index_select(1, ui), c.index_select(1, ui))

    def run_direction(self, kernel, x, state0, params, lengths, masks, want_trace):
        y, h, c, trace = kernel(x, state0[0], state0[1], params, self.options, lengths,
                                masks["rec"], masks["zoneout_c"], masks["zoneout_h"], want_trace)
        return y, (h, c), trace

    def extra_repr(self) -> str:
        default = LSTMOptions()
        changed = {k: v for k, v in self.options.to_dict().items() if v != getattr(default, k)}
        return super().extra_repr() + "".join(f", {k}={v!r}" for k, v in changed.items())
