r"""Run any cell over a sequence, and compose the runs: ``RNN``, ``Bidirectional``, ``Stacked``.

This is the Keras ``RNN`` / Flax ``nn.RNN`` idea: the cell knows one step, the runner knows time.
Any module with this contract runs here (:class:`lstmkit.LSTMCell` with every preset,
:class:`lstmkit.GRUCell`, :class:`lstmkit.cells.ConvLSTMCell`, or your own)::

    cell.step(x_t, state) -> (y_t, new_state)    # x_t (N, *F_in), state a tuple of (N, ...) tensors
    cell.initial_state(N, like) -> state         # zeros; ``like`` is the first step's input x_0

Optional attributes make the runner's input checks sharper: ``feature_dims`` (how many feature
dimensions one step has: 1 for vectors, 3 for (C, H, W) frames) and ``input_size`` (the size of the
first feature dimension). A cell's state may also be one tensor instead of a tuple.

Shape symbols: N batch, L sequence length, F_in / F_out the per-step input / output dimensions of the
cell, e.g. (H_in,) and (H,) for an LSTM cell, (C, H, W) and (hidden, H, W) for a ConvLSTM cell.

============  ===============================  ===================================================
runner        input (batch_first)              output (return_sequences / not)
============  ===============================  ===================================================
RNN           (N, L, *F_in)                    (N, L, *F_out) / (N, *F_out)
Bidirectional (N, L, *F_in)                    merge of both directions along the first feature dim
Stacked       (N, L, *F_in)                    the last layer's
============  ===============================  ===================================================

Time-first (L, N, ...) when ``batch_first=False`` (the default, as in ``torch.nn.LSTM``).

Padding never changes a result: with ``lengths`` the outputs at padded steps are zero and the final
state of each sequence is the one after its last real step (for a reverse run: after its first
step). The loop itself is :func:`lstmkit.layers.scan.scan`; reverse runs go through
:func:`lstmkit.layers.scan.reverse_padded`, so a reverse direction reverses each sequence within its
own length.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..cells.gru import GRUCell
from ..cells.lstm import LSTMCell
from ..errors import describe
from ..validation import check_lengths, check_tensor
from .scan import reverse_padded, scan, valid_mask, zero_padding

Lengths = Union[Tensor, Sequence[int], None]


def _concat(a: Tensor, b: Tensor, dim: int) -> Tensor:
    return torch.cat([a, b], dim=dim)


def _sum(a: Tensor, b: Tensor, dim: int) -> Tensor:
    return a + b


def _mean(a: Tensor, b: Tensor, dim: int) -> Tensor:
    return (a + b) / 2


def _mul(a: Tensor, b: Tensor, dim: int) -> Tensor:
    return a * b


#: Bidirectional merges by name: f(y_forward, y_backward, feature_dim) -> y.
MERGES: dict[str, Callable[[Tensor, Tensor, int], Tensor]] = {
    "concat": _concat, "sum": _sum, "mean": _mean, "mul": _mul}


def last_step(ys: Tensor, lengths: Optional[Tensor], reverse: bool) -> Tensor:
    """The output of the last step a run computed: ys (T, N, ...) -> (N, ...).

    Forward: the step at ``length - 1``; reverse: the step at 0 (reached last).
    """
    if reverse:
        return ys[0]
    if lengths is None:
        return ys[-1]
    return ys[lengths.to(ys.device) - 1, torch.arange(ys.shape[1], device=ys.device)]


class SequenceRunner(nn.Module):
    """What the runners share: input forms, ``lengths`` checks and the output options.

    A subclass implements :meth:`run` on time-first, already validated input, and
    :meth:`check_steps` for its input checks; :meth:`forward` is written once here.
    """

    batch_first: bool
    return_sequences: bool
    return_state: bool

    def run(self, xs: Tensor, state, lengths: Optional[Tensor], last: bool):
        """xs (T, N, *F_in) -> (ys (T, N, *F_out), or (N, *F_out) if ``last``; final state)."""
        raise NotImplementedError

    def check_steps(self, owner: str, xs: Tensor) -> None:
        """Raise if xs (T, N, *F_in) does not fit the first cell."""
        raise NotImplementedError

    def feature_dims(self) -> Optional[int]:
        raise NotImplementedError

    def owner(self) -> str:
        return type(self).__name__

    def forward(self, x: Tensor, state=None, *, lengths: Lengths = None):
        """Run over x (N, L, *F_in) if batch_first else (L, N, *F_in).

        Args:
            state: the initial state (the cell's form; see the subclass), zeros if None.
            lengths: (N,) real length of each sequence of a padded batch (1 <= length <= L).
        Returns:
            ``(outputs, final_state)``, or only ``outputs`` with ``return_state=False``. outputs is
            (N, L, *F_out) if batch_first else (L, N, *F_out), or (N, *F_out), the output of the
            last step computed, with ``return_sequences=False``.
        """
        owner = self.owner()
        if not isinstance(x, Tensor):
            raise TypeError(f"{owner}: expected input to be a torch.Tensor, got {type(x).__name__}")
        fd = self.feature_dims()
        lay = "(N, L, ...)" if self.batch_first else "(L, N, ...)"
        if (fd is None and x.dim() < 3) or (fd is not None and x.dim() != 2 + fd):
            want = "at least 3" if fd is None else str(2 + fd)
            raise ValueError(f"{owner}: expected input of rank {want} {lay} (batch and time, then "
                             f"the cell's feature dimensions), got {describe(x)}")
        xs = x.transpose(0, 1) if self.batch_first else x  # (T, N, *F_in)
        T, N = xs.shape[0], xs.shape[1]
        if T == 0 or N == 0:
            raise ValueError(f"{owner}: expected a non-empty sequence batch, got {describe(x)}")
        if lengths is not None:
            lengths = check_lengths(owner, lengths, T, N)
            xs = zero_padding(xs, lengths)     # NaN/inf in padding must reach no result or gradient
        self.check_steps(owner, xs)
        ys, final = self.run(xs, state, lengths, last=not self.return_sequences)
        if self.return_sequences and self.batch_first:
            ys = ys.transpose(0, 1)
        return (ys, final) if self.return_state else ys


def _cell_feature_dims(cell: nn.Module) -> Optional[int]:
    fd = getattr(cell, "feature_dims", None)
    if fd is not None:
        return int(fd)
    return 1 if isinstance(cell, (LSTMCell, GRUCell)) else None


class RNN(SequenceRunner):
    r"""Run one cell over a sequence (Keras ``RNN``, Flax ``nn.RNN``).

    Args:
        cell: a module with ``step(x_t, state) -> (y_t, new_state)`` and
            ``initial_state(N, like) -> state`` (see the module docstring).
        batch_first: input and output are (N, L, ...) instead of (L, N, ...).
        reverse: run from the last real step of each sequence to the first; outputs stay in input
            order (``output[t]`` belongs to input step t).
        return_sequences: return the output of every step; else only that of the last step
            computed (step ``length - 1``, or step 0 when ``reverse``).
        return_state: also return the final state.

    Inputs ``x, state=None, *, lengths=None``: x (N, L, *F_in) or (L, N, *F_in); state in the cell's
    form, each tensor (N, ...); lengths (N,). Outputs ``outputs, final_state`` (see
    :meth:`SequenceRunner.forward`).

    Example::

        rnn = RNN(LSTMCell(8, 16), batch_first=True)
        y, (h, c) = rnn(torch.randn(4, 10, 8), lengths=[10, 7, 3, 1])  # y (4, 10, 16), h (4, 16)
    """

    def __init__(self, cell: nn.Module, batch_first: bool = False, reverse: bool = False,
                 return_sequences: bool = True, return_state: bool = True):
        super().__init__()
        missing = [m for m in ("step", "initial_state") if not callable(getattr(cell, m, None))]
        if not isinstance(cell, nn.Module) or missing:
            raise TypeError(f"RNN: expected a cell module with step(x_t, state) -> (y_t, new_state) "
                            f"and initial_state(N, like), got {type(cell).__name__}"
                            + (f" without {missing}" if missing else ""))
        self.cell = cell
        self.batch_first, self.reverse = bool(batch_first), bool(reverse)
        self.return_sequences, self.return_state = bool(return_sequences), bool(return_state)

    def owner(self) -> str:
        return f"RNN({type(self.cell).__name__})"

    def feature_dims(self) -> Optional[int]:
        return _cell_feature_dims(self.cell)

    def _param(self) -> Optional[Tensor]:
        return next(self.cell.parameters(), None)

    def check_steps(self, owner: str, xs: Tensor) -> None:
        w = self._param()
        if w is None:
            check_tensor(owner, "input", xs)
        else:
            check_tensor(owner, "input", xs, dtype=w.dtype, device=w.device)
        fd = self.feature_dims()
        if fd is not None and xs.dim() != 2 + fd:
            raise ValueError(f"{owner}: expected steps with {fd} feature dimension(s), i.e. input "
                             f"of rank {2 + fd}, got {describe(xs)}")
        size = getattr(self.cell, "input_size", None)
        if isinstance(size, int) and xs.dim() > 2 and xs.shape[2] != size:
            raise ValueError(f"{owner}: expected {size} input features (the cell's input_size) in "
                             f"the first feature dimension, got {xs.shape[2]} in {describe(xs)}")

    def _state0(self, owner: str, xs: Tensor, state) -> tuple[tuple[Tensor, ...], bool]:
        """(initial state as a tuple, whether the cell's state is a single tensor)."""
        N = xs.shape[1]
        template = self.cell.initial_state(N, xs[0])
        single = isinstance(template, Tensor)
        template = (template,) if single else tuple(template)
        if state is None:
            return template, single
        given = (state,) if isinstance(state, Tensor) else state
        if not isinstance(given, (tuple, list)) or len(given) != len(template):
            shapes = [tuple(t.shape) for t in template]
            raise TypeError(f"{owner}: expected a state of {len(template)} tensor(s) of shapes "
                            f"{shapes}, got {type(state).__name__}"
                            + (f" of length {len(given)}" if isinstance(given, (tuple, list)) else ""))
        out = []
        for k, (s, t) in enumerate(zip(given, template)):
            check_tensor(owner, f"state[{k}]", s, dtype=t.dtype, device=t.device)
            if s.shape != t.shape:
                raise ValueError(f"{owner}: expected state[{k}] of shape {tuple(t.shape)}, "
                                 f"got {describe(s)}")
            out.append(s)
        return tuple(out), single

    def run(self, xs: Tensor, state, lengths: Optional[Tensor], last: bool):
        state0, single = self._state0(self.owner(), xs, state)
        cell = self.cell

        def step(x_t, s):
            y, new = cell.step(x_t, s[0] if single else s)
            return y, ((new,) if single else tuple(new)), ()

        T, N = xs.shape[0], xs.shape[1]
        xin = reverse_padded(xs, lengths) if self.reverse else xs
        ys, final, _ = scan(step, xin, state0, valid_mask(lengths, T, N, xs.device))
        if self.reverse:
            ys = reverse_padded(ys, lengths)
        final = final[0] if single else final
        return (last_step(ys, lengths, self.reverse) if last else ys), final

    def extra_repr(self) -> str:
        flags = [f for f in ("batch_first", "reverse") if getattr(self, f)]
        flags += [f"{f}=False" for f in ("return_sequences", "return_state") if not getattr(self, f)]
        return ", ".join(f if "=" in f else f"{f}=True" for f in flags)


class Bidirectional(SequenceRunner):
    r"""Two runs over the same sequence, one each way, merged (Keras/Flax ``Bidirectional``).

    Args:
        forward_rnn: an :class:`RNN` with ``reverse=False``.
        backward_rnn: an :class:`RNN` with ``reverse=True`` (usually over a second cell of the same
            kind). Both must agree on ``batch_first``, ``return_sequences`` and ``return_state``,
            which the pair then has.
        merge: how the two outputs combine, along the first feature dimension: ``"concat"``
            (``torch.nn.LSTM(bidirectional=True)``'s choice: [forward; backward]), ``"sum"``,
            ``"mean"``, ``"mul"``, or a function ``merge(y_forward, y_backward) -> y``.

    Inputs ``x, state=None, *, lengths=None``: state is ``(state_forward, state_backward)`` or None.
    Outputs ``outputs, (final_forward, final_backward)``. With ``return_sequences=False`` outputs
    merges the forward output at step ``length - 1`` with the backward output at step 0, i.e. each
    direction's last computed output (Keras' choice).
    """

    def __init__(self, forward_rnn: RNN, backward_rnn: RNN,
                 merge: Union[str, Callable[[Tensor, Tensor], Tensor]] = "concat"):
        super().__init__()
        for name, r in (("forward_rnn", forward_rnn), ("backward_rnn", backward_rnn)):
            if not isinstance(r, RNN):
                raise TypeError(f"Bidirectional: expected {name} to be an lstmkit RNN, "
                                f"got {type(r).__name__}")
        if forward_rnn.reverse or not backward_rnn.reverse:
            raise ValueError(f"Bidirectional: expected forward_rnn with reverse=False and "
                             f"backward_rnn with reverse=True, got reverse={forward_rnn.reverse} "
                             f"and reverse={backward_rnn.reverse}")
        for flag in ("batch_first", "return_sequences", "return_state"):
            a, b = getattr(forward_rnn, flag), getattr(backward_rnn, flag)
            if a != b:
                raise ValueError(f"Bidirectional: expected forward_rnn and backward_rnn to agree on "
                                 f"{flag}, got {a} and {b}")
        if isinstance(merge, str) and merge not in MERGES:
            raise ValueError(f"Bidirectional: unknown merge {merge!r}; expected one of "
                             f"{list(MERGES)} or a function (y_forward, y_backward) -> y")
        if not isinstance(merge, str) and not callable(merge):
            raise TypeError(f"Bidirectional: expected merge to be a name or a function, "
                            f"got {type(merge).__name__}")
        self.merge = merge  # a name of MERGES or a function (y_forward, y_backward) -> y
        self.forward_rnn, self.backward_rnn = forward_rnn, backward_rnn
        self.batch_first = forward_rnn.batch_first
        self.return_sequences, self.return_state = forward_rnn.return_sequences, forward_rnn.return_state

    def feature_dims(self) -> Optional[int]:
        return self.forward_rnn.feature_dims()

    def check_steps(self, owner: str, xs: Tensor) -> None:
        self.forward_rnn.check_steps(owner + " forward_rnn", xs)
        self.backward_rnn.check_steps(owner + " backward_rnn", xs)

    def run(self, xs: Tensor, state, lengths: Optional[Tensor], last: bool):
        if state is None:
            sf = sb = None
        elif isinstance(state, (tuple, list)) and len(state) == 2:
            sf, sb = state
        else:
            raise TypeError(f"Bidirectional: expected state (state_forward, state_backward) or "
                            f"None, got {type(state).__name__}")
        yf, ff = self.forward_rnn.run(xs, sf, lengths, last)
        yb, fb = self.backward_rnn.run(xs, sb, lengths, last)
        dim = 1 if last else 2  # the first feature dimension of (N, *F) or (T, N, *F)
        y = MERGES[self.merge](yf, yb, dim) if isinstance(self.merge, str) else self.merge(yf, yb)
        return y, (ff, fb)

    def extra_repr(self) -> str:
        name = self.merge if isinstance(self.merge, str) else getattr(self.merge, "__name__", "custom")
        return f"merge={name!r}"


class Stacked(SequenceRunner):
    r"""Layers run one after another, each reading the previous one's output sequence.

    Args:
        layers: :class:`RNN` or :class:`Bidirectional` runners (or other :class:`SequenceRunner`);
            all but the last must have ``return_sequences=True``; all must share ``batch_first``.
            The last layer's ``return_sequences`` and ``return_state`` are the stack's.
        dropout: dropout on the outputs of every layer except the last, in training only (as
            ``torch.nn.LSTM``'s ``dropout``).

    Inputs ``x, state=None, *, lengths=None``: state is a list with one entry per layer (that
    layer's state form, or None for zeros), or None. Outputs ``outputs, [final state per layer]``.
    """

    def __init__(self, layers: Sequence[SequenceRunner], dropout: float = 0.0):
        super().__init__()
        layers = list(layers)
        if not layers:
            raise ValueError("Stacked: expected at least one layer, got none")
        for k, layer in enumerate(layers):
            if not isinstance(layer, SequenceRunner):
                raise TypeError(f"Stacked: expected layer {k} to be an RNN or Bidirectional, "
                                f"got {type(layer).__name__}")
            if k < len(layers) - 1 and not layer.return_sequences:
                raise ValueError(f"Stacked: expected every layer but the last to return sequences; "
                                 f"layer {k} has return_sequences=False")
            if layer.batch_first != layers[0].batch_first:
                raise ValueError(f"Stacked: expected every layer to share batch_first="
                                 f"{layers[0].batch_first}; layer {k} has {layer.batch_first}")
        if not isinstance(dropout, (int, float)) or isinstance(dropout, bool) or not 0 <= dropout < 1:
            raise ValueError(f"Stacked: expected dropout in [0, 1), got {dropout!r}")
        self.layers = nn.ModuleList(layers)
        self.dropout = float(dropout)
        self.batch_first = layers[0].batch_first
        self.return_sequences, self.return_state = layers[-1].return_sequences, layers[-1].return_state

    def feature_dims(self) -> Optional[int]:
        return self.layers[0].feature_dims()

    def check_steps(self, owner: str, xs: Tensor) -> None:
        self.layers[0].check_steps(owner + " layer 0", xs)

    def run(self, xs: Tensor, state, lengths: Optional[Tensor], last: bool):
        n = len(self.layers)
        if state is None:
            state = [None] * n
        elif not isinstance(state, (tuple, list)) or len(state) != n:
            raise TypeError(f"Stacked: expected state as a list of {n} per-layer states (or None), "
                            f"got {type(state).__name__}"
                            + (f" of length {len(state)}" if isinstance(state, (tuple, list)) else ""))
        finals = []
        for k, layer in enumerate(self.layers):
            if k:
                layer.check_steps(f"Stacked layer {k}", xs)
            is_last = k == n - 1
            xs, final = layer.run(xs, state[k], lengths, last and is_last)
            finals.append(final)
            if not is_last and self.dropout and self.training:
                xs = F.dropout(xs, self.dropout, True)
        return xs, finals

    def extra_repr(self) -> str:
        return f"dropout={self.dropout}" if self.dropout else ""


__all__ = ["RNN", "Bidirectional", "Stacked", "SequenceRunner", "MERGES",
           "last_step"]
