r"""``lstmkit.ConvLSTM``: a multi-layer, optionally bidirectional ConvLSTM over frame sequences, with
``torch.nn.LSTM``'s sequence semantics.

It is composition, not a new loop: one :class:`lstmkit.cells.ConvLSTMCell` per layer and direction,
each in an :class:`lstmkit.layers.RNN`, directions paired by :class:`lstmkit.layers.Bidirectional`
(merge "concat"), layers by :class:`lstmkit.layers.Stacked` (dropout between layers). Equations and
weight layout are in :mod:`lstmkit.cells.convlstm`.

Shape symbols:

======  ===================================================
N       batch size
L       sequence length
D       2 if bidirectional else 1
C       input_size (channels of each input frame)
hidden  hidden_size (channels of h and c per direction)
H, W    frame height and width (kept by "same" padding)
======  ===================================================
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
from torch import Tensor, nn

from ..cells.convlstm import ConvLSTMCell, Size2
from ..errors import describe
from ..validation import check_tensor
from ..validation import check_lengths
from .rnn import RNN, Bidirectional, Stacked
from .scan import zero_padding

Lengths = Union[Tensor, Sequence[int], None]


class ConvLSTM(nn.Module):
    r"""Multi-layer ConvLSTM (Shi et al. 2015) over a sequence of frames.

    Args:
        input_size: C, channels of the input frames.
        hidden_size: channels of h and c in every layer and direction.
        kernel_size: k or (kH, kW), odd, of every gate convolution ("same" padding).
        num_layers: stacked layers; layer k > 0 reads the D*hidden channels of layer k-1.
        bias: gate biases.
        batch_first: input/output (N, L, C, H, W) instead of (L, N, C, H, W).
        dropout: dropout on the outputs of every layer but the last, in training only.
        bidirectional: a reverse direction per layer, outputs concatenated along channels.
        peephole, frame_size: the cells' peepholes: per-position (hidden, H, W) weights as in the
            paper when ``frame_size=(H, W)`` is given (frames must then have that size), else
            per-channel (hidden, 1, 1) weights.

    Inputs ``input, hx=None, *, lengths=None``:
        input: (N, L, C, H, W) if batch_first else (L, N, C, H, W); or unbatched (L, C, H, W).
        hx: ``(h_0, c_0)``, each (D*num_layers, N, hidden, H, W) ((D*num_layers, hidden, H, W)
            unbatched); zeros if omitted.
        lengths: (N,) lengths of a padded batch. Padding never changes a result: outputs at padded
            steps are zero and h_n, c_n are taken after each sequence's last real step (for the
            reverse direction, after its first).

    Outputs ``output, (h_n, c_n)``:
        output: (N, L, D*hidden, H, W) if batch_first else (L, N, D*hidden, H, W): h_t of the last
            layer, [forward | reverse] along channels.
        h_n, c_n: (D*num_layers, N, hidden, H, W), layer-major (layer 0 forward, layer 0 reverse,
            layer 1 forward, ...), as ``torch.nn.LSTM``.

    Parameters live in the cells: ``cell(layer, direction)`` returns one; its ``weight`` is
    (4*hidden, C_layer + hidden, kH, kW) with gates [i | f | g | o].
    """

    def __init__(self, input_size: int, hidden_size: int, kernel_size: Size2 = 3,
                 num_layers: int = 1, bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False, device=None, dtype=None, *,
                 peephole: bool = False, frame_size: Optional[Size2] = None):
        super().__init__()
        for arg, v in (("input_size", input_size), ("hidden_size", hidden_size),
                       ("num_layers", num_layers)):
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ValueError(f"ConvLSTM: expected {arg} to be a positive int, got {v!r}")
        if not isinstance(dropout, (int, float)) or isinstance(dropout, bool) or not 0 <= dropout < 1:
            raise ValueError(f"ConvLSTM: expected dropout in [0, 1), got {dropout!r}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.batch_first, self.bidirectional = bool(batch_first), bool(bidirectional)
        self.dropout = float(dropout)
        self.num_directions = 2 if bidirectional else 1
        cell_kw = dict(kernel_size=kernel_size, bias=bias, device=device, dtype=dtype,
                       peephole=peephole, frame_size=frame_size)
        layers = []
        for layer in range(num_layers):
            c_in = input_size if layer == 0 else hidden_size * self.num_directions
            fwd = RNN(ConvLSTMCell(c_in, hidden_size, **cell_kw))
            if bidirectional:
                bwd = RNN(ConvLSTMCell(c_in, hidden_size, **cell_kw), reverse=True)
                layers.append(Bidirectional(fwd, bwd, merge="concat"))
            else:
                layers.append(fwd)
        # the runners work time-first; batch_first is handled here, once
        self.stack = Stacked(layers, dropout=dropout)
        first = self.cell(0)
        self.kernel_size, self.frame_size, self.peephole = first.kernel_size, first.frame_size, peephole

    def cell(self, layer: int, direction: int = 0) -> ConvLSTMCell:
        """The ConvLSTMCell of one layer and direction (0 forward, 1 reverse)."""
        if not 0 <= layer < self.num_layers or direction not in range(self.num_directions):
            raise IndexError(f"ConvLSTM: expected 0 <= layer < {self.num_layers} and direction in "
                             f"{list(range(self.num_directions))}, got ({layer}, {direction})")
        runner = self.stack.layers[layer]
        if self.bidirectional:
            runner = runner.backward_rnn if direction else runner.forward_rnn
        return runner.cell

    def reset_parameters(self) -> None:
        for layer in range(self.num_layers):
            for d in range(self.num_directions):
                self.cell(layer, d).reset_parameters()

    def forward(self, input: Tensor, hx: Optional[tuple[Tensor, Tensor]] = None, *,
                lengths: Lengths = None):
        name = type(self).__name__
        w = self.cell(0).weight
        check_tensor(name, "input", input, dtype=w.dtype, device=w.device)
        lay = "(N, L, C, H, W)" if self.batch_first else "(L, N, C, H, W)"
        if input.dim() not in (4, 5):
            raise ValueError(f"{name}: expected a 5-D input {lay} or a 4-D unbatched input "
                             f"(L, C, H, W), got {describe(input)}")
        unbatched = input.dim() == 4
        if unbatched:
            xs = input.unsqueeze(1)
        else:
            xs = input.transpose(0, 1) if self.batch_first else input  # (T, N, C, H, W)
        self.cell(0).check_frames(name, xs)
        T, N = xs.shape[0], xs.shape[1]
        if T == 0 or N == 0:
            raise ValueError(f"{name}: expected a non-empty sequence batch, got {describe(input)}")
        if lengths is not None:
            if unbatched:
                raise ValueError(f"{name}: lengths apply to batched input; got an unbatched "
                                 f"(L, C, H, W) input")
            lengths = check_lengths(name, lengths, T, N)
            xs = zero_padding(xs, lengths)     # NaN/inf in padding must reach no result or gradient
        states = self._layer_states(name, hx, xs, unbatched)
        y, finals = self.stack.run(xs, states, lengths, last=False)  # y (T, N, D*hidden, H, W)
        if self.bidirectional:
            finals = [s for pair in finals for s in pair]  # layer-major: l0 fwd, l0 rev, l1 fwd...
        h_n = torch.stack([f[0] for f in finals])  # (D*num_layers, N, hidden, H, W)
        c_n = torch.stack([f[1] for f in finals])
        if unbatched:
            return y.squeeze(1), (h_n.squeeze(1), c_n.squeeze(1))
        return (y.transpose(0, 1) if self.batch_first else y), (h_n, c_n)

    def _layer_states(self, name: str, hx, xs: Tensor, unbatched: bool) -> Optional[list]:
        """(h_0, c_0) each (D*num_layers, N, hidden, H, W) -> the stack's per-layer states."""
        if hx is None:
            return None
        if not (isinstance(hx, (tuple, list)) and len(hx) == 2):
            raise TypeError(f"{name}: expected hx to be a tuple (h_0, c_0), got {type(hx).__name__}"
                            + (f" of length {len(hx)}" if isinstance(hx, (tuple, list)) else ""))
        LD, D = self.num_layers * self.num_directions, self.num_directions
        want = (LD,) + (() if unbatched else (xs.shape[1],)) + (self.hidden_size,) + tuple(xs.shape[-2:])
        w = self.cell(0).weight
        hs = []
        for k, s in zip(("h_0", "c_0"), hx):
            check_tensor(name, k, s, dtype=w.dtype, device=w.device)
            if tuple(s.shape) != want:
                raise ValueError(f"{name}: expected {k} of shape {want} (num_layers * "
                                 f"num_directions, {'' if unbatched else 'N, '}hidden, H, W), "
                                 f"got {describe(s)}")
            hs.append(s.unsqueeze(1) if unbatched else s)
        h0, c0 = hs
        per = [(h0[k], c0[k]) for k in range(LD)]
        if D == 1:
            return per
        return [(per[2 * layer], per[2 * layer + 1]) for layer in range(self.num_layers)]

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}, kernel_size={self.kernel_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        if self.peephole:
            s += ", peephole=True"
        if self.frame_size is not None:
            s += f", frame_size={self.frame_size}"
        return s


__all__ = ["ConvLSTM"]
