"""``lstmkit.GRU``: ``torch.nn.GRU``'s interface and state dict (equations in
:mod:`lstmkit.cells.gru`), plus lengths, recurrent dropout, zoneout and gate traces."""
from __future__ import annotations

from typing import Callable, Optional

from torch import Tensor, _VF
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from ..cells.gru import GRUParams, gru_parameter_shapes
from .base import RecurrentLayer


class GRU(RecurrentLayer):
    r"""Multi-layer GRU; drop-in for ``torch.nn.GRU``.

    Args (torch's, same order): input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
    dropout=0, bidirectional=False, device, dtype; keyword-only ``recurrent_dropout``, ``zoneout``
    (on h) and ``residual`` (x_{k+1} = h_k + x_k between layers of width D*H) as in
    :class:`lstmkit.LSTM`.

    Inputs ``input, hx=None, *, lengths=None, return_trace=False``; hx is h_0 (D*num_layers, N, H).
    Outputs ``output, h_n`` [, trace]: output (N, L, D*H) if batch_first else (L, N, D*H); h_n
    (D*num_layers, N, H); trace a dict of "r", "z", "n", "h", each (D*num_layers, N, L, H) when
    batch_first (time-major otherwise).
    """

    cell_kind = "gru"
    state_names = ("h",)
    trace_names = ("r", "z", "n")

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device=None, dtype=None, *, recurrent_dropout: float = 0.0, zoneout: float = 0.0,
                 residual: bool = False):
        if not isinstance(zoneout, (int, float)):
            raise ValueError(f"GRU: expected zoneout to be one probability (GRU has no cell "
                             f"state), got {zoneout!r}")
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, 0, device, dtype, recurrent_dropout=recurrent_dropout,
                         zoneout=(0.0, zoneout), residual=residual)

    def cell_shapes(self, layer_input_size: int):
        return gru_parameter_shapes(layer_input_size, self.hidden_size, self.bias)

    def cell_params(self, tensors: dict) -> GRUParams:
        return GRUParams(**tensors)

    def native_ok(self, want_trace: bool) -> tuple[bool, Callable[[], str]]:
        regularised = bool(self.recurrent_dropout or self.zoneout[1])

        def why() -> str:
            reasons = ["recurrent dropout / zoneout"] if regularised else []
            reasons += ["a gate trace was asked for"] if want_trace else []
            return "; ".join(reasons)

        return not regularised and not want_trace, why

    def run_native(self, x: Tensor, hx: tuple[Tensor, ...], lengths: Optional[Tensor]):
        flat = [w for ws in self.all_weights for w in ws]
        args = (flat, self.bias, self.num_layers, self.dropout, self.training, self.bidirectional)
        if lengths is None:
            y, h = _VF.gru(x, hx[0], *args, False)
            return y, (h,)
        packed = pack_padded_sequence(x, lengths, enforce_sorted=False)
        si, ui = packed.sorted_indices, packed.unsorted_indices
        data, h = _VF.gru(packed.data, packed.batch_sizes, hx[0].index_select(1, si), *args)
        y, _ = pad_packed_sequence(PackedSequence(data, packed.batch_sizes, si, ui),
                                   total_length=x.shape[0])
        return y, (h.index_select(1, ui),)

    def run_direction(self, kernel, x, state0, params, lengths, masks, want_trace):
        y, h, trace = kernel(x, state0[0], params, lengths, masks["rec"], masks["zoneout_h"],
                             want_trace)
        return y, (h,), trace
