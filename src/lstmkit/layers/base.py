"""What every recurrent layer shares: input forms, states, time, direction, depth, masks, traces.

A layer subclass declares its cell (parameter shapes, how many state tensors, how torch's native
kernel is called); this class owns the rest, the way ``torch.nn.RNNBase`` and Keras' ``RNN`` do.

Shape symbols (as in ``torch.nn.LSTM``):

====  ==========================================================
N     batch size
L     sequence length (T inside the kernels, which are time-first)
D     2 if bidirectional else 1
H_in  input_size
H     hidden_size (cell state size)
P     proj_size if > 0 else H (size of h and of the output per direction)
====  ==========================================================
"""
from __future__ import annotations

import math
import warnings
from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor, _VF, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from ..errors import describe
from ..kernels import dispatch
from ..validation import check_lengths, check_tensor
from .scan import reverse_padded, zero_padding

Lengths = Union[Tensor, Sequence[int], None]


class RecurrentLayer(nn.Module):
    """Base of :class:`lstmkit.LSTM` and :class:`lstmkit.GRU`; not used directly."""

    cell_kind: str = ""  # "lstm" or "gru": selects the kernels in lstmkit.kernels
    state_names: tuple[str, ...] = ()  # ("h", "c") or ("h",)
    trace_names: tuple[str, ...] = ()  # gate names the kernels trace, e.g. ("i", "f", "g", "o", "c")

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 proj_size: int = 0, device=None, dtype=None, *, recurrent_dropout: float = 0.0,
                 zoneout: Union[float, tuple[float, float]] = 0.0, residual: bool = False):
        super().__init__()
        name = type(self).__name__
        for arg, v in (("input_size", input_size), ("hidden_size", hidden_size),
                       ("num_layers", num_layers)):
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ValueError(f"{name}: expected {arg} to be a positive int, got {v!r}")
        if (not isinstance(proj_size, int) or isinstance(proj_size, bool) or proj_size < 0
                or (proj_size and proj_size >= hidden_size)):
            raise ValueError(f"{name}: expected 0 <= proj_size < hidden_size ({hidden_size}), "
                             f"got {proj_size!r}")
        for arg, v in (("dropout", dropout), ("recurrent_dropout", recurrent_dropout)):
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0 <= v < 1:
                raise ValueError(f"{name}: expected {arg} in [0, 1), got {v!r}")
        if dropout > 0 and num_layers == 1:  # torch.nn.RNNBase's warning, word for word
            warnings.warn("dropout option adds dropout after all but last "
                          "recurrent layer, so non-zero dropout expects "
                          f"num_layers greater than 1, but got dropout={dropout} and "
                          f"num_layers={num_layers}", stacklevel=3)
        pair = (zoneout, zoneout) if isinstance(zoneout, (int, float)) else zoneout
        if (not isinstance(pair, (tuple, list)) or len(pair) != 2
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in pair)):
            raise ValueError(f"{name}: expected zoneout as one probability or a (cell, hidden) "
                             f"pair in [0, 1), got {zoneout!r}")
        zc, zh = pair
        for v in (zc, zh):
            if not 0 <= v < 1:
                raise ValueError(f"{name}: expected zoneout probabilities in [0, 1), got {zoneout!r}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.bidirectional = bias, batch_first, bidirectional
        self.dropout, self.proj_size = float(dropout), proj_size
        self.recurrent_dropout = float(recurrent_dropout)
        self.zoneout = (float(zc), float(zh))  # (cell, hidden) keep-previous probabilities
        self.num_directions = 2 if bidirectional else 1
        self.residual = self._check_residual(name, residual)
        kw = {"device": device, "dtype": dtype}
        self._param_names: list[list[str]] = []  # per (layer, direction): names in cell order
        for layer in range(num_layers):
            layer_in = input_size if layer == 0 else self.output_size * self.num_directions
            for d in range(self.num_directions):
                suffix = f"_l{layer}" + ("_reverse" if d else "")
                names = []
                for pname, shape in self.cell_shapes(layer_in).items():
                    setattr(self, pname + suffix, nn.Parameter(torch.empty(shape, **kw)))
                    names.append(pname + suffix)
                self._param_names.append(names)
        self.reset_parameters()

    def _check_residual(self, name: str, residual) -> bool:
        """Residual connections (Wu et al. 2016, GNMT section 3.1) add each layer's input to its output
        before the next layer, so every layer must read and write the same width D*P."""
        if not isinstance(residual, bool):
            raise TypeError(f"{name}: expected residual to be a bool, got {residual!r}")
        if not residual:
            return False
        width = self.output_size * self.num_directions
        if self.num_layers < 2:
            raise ValueError(f"{name}: residual=True joins stacked layers; expected num_layers >= 2, "
                             f"got {self.num_layers}")
        if self.input_size != width:
            raise ValueError(f"{name}: residual=True adds each layer's input to its output, so the "
                             f"layers must have equal width: expected input_size == "
                             f"{'2*' if self.bidirectional else ''}{'proj_size' if self.proj_size else 'hidden_size'}"
                             f" = {width}, got input_size={self.input_size} (project the input "
                             f"first, e.g. with nn.Linear)")
        return True

    # -- what a subclass declares ------------------------------------------------------------
    def cell_shapes(self, layer_input_size: int) -> dict[str, tuple[int, ...]]:
        raise NotImplementedError

    def cell_params(self, tensors: dict[str, Tensor]):
        """The cell's parameter tuple (LSTMParams / GRUParams) from {base name: tensor}."""
        raise NotImplementedError

    def native_ok(self, want_trace: bool) -> tuple[bool, str]:
        raise NotImplementedError

    def run_native(self, x: Tensor, hx: tuple[Tensor, ...], lengths: Optional[Tensor]):
        raise NotImplementedError

    def run_direction(self, kernel, x, state0, params, lengths, masks, want_trace):
        raise NotImplementedError

    # -- parameters --------------------------------------------------------------------------
    @property
    def output_size(self) -> int:
        """P: features of h per direction."""
        return self.proj_size or self.hidden_size

    @property
    def state_sizes(self) -> tuple[int, ...]:
        return (self.output_size, self.hidden_size)[: len(self.state_names)]

    def reset_parameters(self) -> None:
        """U(-1/sqrt(H), 1/sqrt(H)) like torch; LayerNorm gains 1 and biases 0."""
        stdv = 1.0 / math.sqrt(self.hidden_size)
        for name, w in self.named_parameters():
            if name.startswith("ln_"):
                nn.init.zeros_(w) if "bias" in name else nn.init.ones_(w)
            else:
                nn.init.uniform_(w, -stdv, stdv)

    def params_of(self, layer: int, direction: int):
        names = self._param_names[layer * self.num_directions + direction]
        suffix = f"_l{layer}" + ("_reverse" if direction else "")
        return self.cell_params({n[: -len(suffix)]: getattr(self, n) for n in names})

    @property
    def all_weights(self) -> list[list[Tensor]]:
        return [[getattr(self, n) for n in names] for names in self._param_names]

    def flatten_parameters(self) -> None:
        """No-op, for code written for torch.nn.LSTM."""

    # -- forward -----------------------------------------------------------------------------
    def forward(self, input: Union[Tensor, PackedSequence], hx=None, lengths: Lengths = None,
                return_trace: bool = False):
        """Run the layer over a sequence.

        Args:
            input: (N, L, H_in) if batch_first else (L, N, H_in); (L, H_in) unbatched; or a
                PackedSequence.
            hx: initial state (defaults to zeros); see the subclass for its form.
            lengths: (N,) real length of each sequence in a padded batch (1 <= length <= L).
                Padding never changes a result: outputs at padded steps are zero and the final
                state is the one after each sequence's last real step.
            return_trace: also return a dict of every step's gate activations and cell states.

        With ``residual=True`` (constructor) the input of layer k+1 is h_k + x_k, layer k's output
        plus its own input (Wu et al. 2016, "Google's Neural Machine Translation System", section
        3.1); the layer's output is still the last layer's h, so output[:, -1] == h_n[-1].
        """
        owner = type(self).__name__
        x, lengths, form = self._normalise_input(owner, input, lengths)  # x (T, N, H_in)
        x = zero_padding(x, lengths)     # NaN/inf in padding must reach no result or gradient
        states = self._normalise_state(owner, hx, x.shape[1], form["unbatched"], x)
        native_ok, why = self.native_ok(return_trace)
        if x.is_meta and lengths is not None:  # torch's packing reads values: shapes via reference
            native_ok, why = False, (lambda: "lengths on the meta device")
        if self.residual:
            why_base = why
            native_ok, why = False, (lambda: "; ".join(filter(None, [
                why_base() if callable(why_base) else why_base, "residual connections"])))
        # the fused kernels run on the CPU (float16/bfloat16 in float32)
        backend = dispatch.select(owner, native_ok, why, fused_ok=x.device.type == "cpu",
                                  packed=lengths is not None,
                                  dtype_note=f"a tensor on the {x.device.type} device")
        trace = None
        if backend == "native":
            if states is None:
                states = tuple(x.new_zeros(self.num_layers * self.num_directions, x.shape[1], n)
                               for n in self.state_sizes)
            y, finals = self.run_native(x, states, lengths)
        else:
            y, finals, trace = self._run_stack(backend, x, states, lengths, return_trace)
        out = self._format_output(y, lengths, form)
        finals = tuple(s.squeeze(1) for s in finals) if form["unbatched"] else finals
        result = (out, finals[0] if len(finals) == 1 else finals)
        if return_trace:
            result = result + (self._format_trace(trace, form),)
        return result

    def _run_stack(self, backend: str, x: Tensor, states: Optional[tuple[Tensor, ...]],
                   lengths: Optional[Tensor], want_trace: bool):
        """Depth and direction: each layer's directions through the kernel, dropout between layers.
        states: each (D*num_layers, N, F), or None for zeros."""
        kernel = dispatch.direction_kernel(self.cell_kind, backend)
        finals: list[list[Tensor]] = [[] for _ in self.state_names]
        traces: dict[str, list[Tensor]] = {k: [] for k in self.trace_names + ("h",)}
        layer_in = x
        for layer in range(self.num_layers):
            outs = []
            for d in range(self.num_directions):
                idx = layer * self.num_directions + d
                xin = reverse_padded(layer_in, lengths) if d else layer_in
                state0 = (tuple(x.new_zeros(x.shape[1], n) for n in self.state_sizes)
                          if states is None else tuple(s[idx] for s in states))
                masks = self._masks(xin)
                y, fin, tr = self.run_direction(kernel, xin, state0, self.params_of(layer, d),
                                                lengths, masks, want_trace)
                if d:
                    y = reverse_padded(y, lengths)
                    tr = {k: reverse_padded(v, lengths) for k, v in tr.items()} if tr else tr
                outs.append(y)
                for k, s in enumerate(fin):
                    finals[k].append(s)
                if want_trace:
                    for k in self.trace_names:
                        traces[k].append(tr[k])
                    traces["h"].append(y)
            out = torch.cat(outs, dim=2) if len(outs) > 1 else outs[0]
            if layer < self.num_layers - 1:
                if self.dropout and self.training:
                    out = F.dropout(out, self.dropout, True)
                if self.residual:                       # x_{k+1} = h_k + x_k (GNMT)
                    out = out + layer_in
            layer_in = out
        trace = {k: torch.stack(v) for k, v in traces.items()} if want_trace else None
        return layer_in, tuple(torch.stack(f) for f in finals), trace

    def _masks(self, x: Tensor) -> dict[str, Optional[Tensor]]:
        """Per-call random masks of recurrent dropout and zoneout (training) or their expectation."""
        T, N = x.shape[0], x.shape[1]
        P, H = self.output_size, self.hidden_size
        masks: dict[str, Optional[Tensor]] = {"rec": None, "zoneout_c": None, "zoneout_h": None}
        if not (self.recurrent_dropout or any(self.zoneout)):
            return masks
        p = self.recurrent_dropout
        if p and self.training:
            masks["rec"] = torch.bernoulli(x.new_full((N, P), 1 - p)) / (1 - p)
        for key, prob, size in (("zoneout_c", self.zoneout[0], H), ("zoneout_h", self.zoneout[1], P)):
            if key == "zoneout_c" and "c" not in self.state_names:
                continue
            if prob:
                masks[key] = (torch.bernoulli(x.new_full((T, N, size), prob)) if self.training
                              else x.new_full((T, N, size), prob))
        return masks

    # -- input and output forms --------------------------------------------------------------
    def _normalise_input(self, owner: str, input, lengths: Lengths):
        form = {"packed": None, "unbatched": False}
        if isinstance(input, PackedSequence):
            if lengths is not None:
                raise ValueError(f"{owner}: lengths must not be given with a PackedSequence input "
                                 f"(it carries its own lengths)")
            w = self._first_weight()
            check_tensor(owner, "input.data", input.data, dtype=w.dtype, device=w.device)
            if input.data.is_meta:  # shapes only: torch's unpacking reads the meta indices
                x, lens = _VF._pad_packed_sequence(input.data, input.batch_sizes, False, 0.0,
                                                   int(input.batch_sizes.shape[0]))
                if input.unsorted_indices is not None:
                    x = x.index_select(1, input.unsorted_indices)
            else:
                x, lens = pad_packed_sequence(input)  # (T, N, H_in), original batch order
            form["packed"] = input
            lengths = lens
        else:
            if not isinstance(input, Tensor):
                raise TypeError(f"{owner}: expected input to be a Tensor or PackedSequence, "
                                f"got {type(input).__name__}")
            w = self._first_weight()
            check_tensor(owner, "input", input, dtype=w.dtype, device=w.device)
            if input.dim() not in (2, 3):
                lay = "(N, L, H_in)" if self.batch_first else "(L, N, H_in)"
                raise ValueError(f"{owner}: expected a 3-D input {lay} or a 2-D unbatched input "
                                 f"(L, H_in), got {describe(input)}")
            form["unbatched"] = input.dim() == 2
            if form["unbatched"]:
                x = input.unsqueeze(1)
            else:
                x = input.transpose(0, 1) if self.batch_first else input
        if x.shape[-1] != self.input_size:
            raise ValueError(f"{owner}: expected input with {self.input_size} features "
                             f"(input_size), got {x.shape[-1]} in {describe(x)}")
        T, N = x.shape[0], x.shape[1]
        if T == 0:  # as torch.nn.LSTM; an empty batch (N == 0) is fine and gives empty outputs
            raise ValueError(f"{owner}: expected a sequence length L >= 1, got {describe(input)}")
        if lengths is not None and not isinstance(input, PackedSequence):
            if form["unbatched"]:
                raise ValueError(f"{owner}: lengths apply to batched input; got an unbatched "
                                 f"(L, H_in) input")
            lengths = check_lengths(owner, lengths, T, N)
        return x, lengths, form

    def _first_weight(self) -> Tensor:
        return getattr(self, self._param_names[0][0])

    def _normalise_state(self, owner: str, hx, N: int, unbatched: bool, x: Tensor):
        """The initial states, each (D*num_layers, N, F), checked; None for hx=None (zeros)."""
        LD = self.num_layers * self.num_directions
        sizes = self.state_sizes
        if hx is None:
            return None
        single = len(self.state_names) == 1
        if single:
            if not isinstance(hx, Tensor):
                raise TypeError(f"{owner}: expected hx to be a Tensor h_0, got {type(hx).__name__}")
            hx = (hx,)
        elif not (isinstance(hx, (tuple, list)) and len(hx) == len(sizes)):
            raise TypeError(f"{owner}: expected hx to be a tuple ({', '.join(self.state_names)}), "
                            f"got {type(hx).__name__}"
                            + (f" of length {len(hx)}" if isinstance(hx, (tuple, list)) else ""))
        w = self._first_weight()
        out = []
        for name, s, n in zip(self.state_names, hx, sizes):
            check_tensor(owner, f"{name}_0", s, dtype=w.dtype, device=w.device)
            want = (LD, n) if unbatched else (LD, N, n)
            if tuple(s.shape) != want:
                raise ValueError(f"{owner}: expected {name}_0 of shape {want} (num_layers * "
                                 f"num_directions, {'' if unbatched else 'N, '}"
                                 f"{'P' if name == 'h' and self.proj_size else 'H'}), "
                                 f"got {describe(s)}")
            out.append(s.unsqueeze(1) if unbatched else s)
        return tuple(out)

    def _format_output(self, y: Tensor, lengths: Optional[Tensor], form) -> Union[Tensor, PackedSequence]:
        if form["packed"] is not None:
            src = form["packed"]
            if y.is_meta:  # no values to pack: the packed data's shape
                return PackedSequence(y.new_empty(src.data.shape[0], y.shape[-1]), src.batch_sizes,
                                      src.sorted_indices, src.unsorted_indices)
            order = src.sorted_indices
            y_sorted = y if order is None else y.index_select(1, order)
            lens = lengths if order is None else lengths.index_select(0, order.cpu())
            p = pack_padded_sequence(y_sorted, lens, enforce_sorted=True)
            return PackedSequence(p.data, p.batch_sizes, src.sorted_indices, src.unsorted_indices)
        if form["unbatched"]:
            return y.squeeze(1)
        return y.transpose(0, 1) if self.batch_first else y

    def _format_trace(self, trace, form):
        """Each (L*D, T, N, F) -> (L*D, N, L, F) if batch_first; (L*D, L, F) unbatched."""
        if form["unbatched"]:
            return {k: v.squeeze(2) for k, v in trace.items()}
        if self.batch_first:
            return {k: v.transpose(1, 2) for k, v in trace.items()}
        return trace

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size:
            s += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        if self.recurrent_dropout:
            s += f", recurrent_dropout={self.recurrent_dropout}"
        if any(self.zoneout):
            s += f", zoneout={self.zoneout}"
        if self.residual:
            s += ", residual=True"
        return s
