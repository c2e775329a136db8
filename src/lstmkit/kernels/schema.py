"""The named boundary to the fused kernels: one ordered table per operator (STYLE rules 5 and 13).

Every tensor and option flag a kernel reads, every buffer it writes, is listed here ONCE, in order,
with its name and its shape in the symbols of ``csrc/fused.h``:

====  ===================================  ====  ======================================
T     time steps                           H     hidden (cell) size
N     batch                                P     size of h (proj_size, else H)
I     input features
====  ===================================  ====  ======================================

The ``torch.library`` schemas of the operators ``lstmkit::lstm_forward``, ``lstm_backward``,
``gru_forward`` and ``gru_backward`` are generated from these tables (:func:`schema`), so every
argument has a name; :mod:`lstmkit.kernels.ops` calls them by keyword, and the C++ binding
(``csrc/binding.cpp``) reads its arguments and writes its results *by these names* through the
registered schema. Nothing on either side indexes a positional list by hand. The LSTM's parameters
are :class:`lstmkit.cells.lstm.LSTMParams` (in its order) and its option flags are the fields of
:class:`lstmkit.cells.lstm.LSTMOptions`, so a new variant field reaches the kernel boundary by name.

A buffer that an option does not need (``h_in`` without recurrent dropout...) is returned as an
empty ``(0,)`` tensor: the operators are functional, their outputs never alias one another.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Callable, Optional

from ..cells.gru import GRUParams
from ..cells.lstm import LSTMOptions, LSTMParams


NO_DEFAULT = type("NoDefault", (), {"__repr__": lambda self: "NO_DEFAULT"})()


@dataclass(frozen=True)
class Arg:
    """One named argument or result of an operator."""

    name: str
    type: str  # schema type: "Tensor", "Tensor?", "bool", "str", "bool[]"
    shape: tuple[str, ...] = ()  # shape in the symbols T, N, I, H, P ("4H", "T+1"); () if not a tensor
    default: object = NO_DEFAULT  # options only: the default value (keyword-only in the schema)
    # results only: whether this buffer exists for the given {arg name: value} (None: always)
    when: Optional[Callable[[dict], bool]] = None


_PARAM_SHAPES = {  # LSTMParams field -> shape (cells/lstm.py's layout table)
    "weight_ih": ("4H", "I"), "weight_hh": ("4H", "P"), "bias_ih": ("4H",), "bias_hh": ("4H",),
    "weight_hr": ("P", "H"), "weight_peephole": ("3", "H"), "weight_gr": ("3H", "3H"),
    "ln_ih": ("4H",), "ln_hh": ("4H",), "ln_c_weight": ("H",), "ln_c_bias": ("H",),
}
_REQUIRED_PARAMS = {"weight_ih", "weight_hh"}

#: lstm_forward's tensors, in order: the inputs, the cell's parameters (LSTMParams order), the masks.
LSTM_INPUTS: tuple[Arg, ...] = (
    Arg("x", "Tensor", ("T", "N", "I")),
    Arg("h0", "Tensor", ("N", "P")),
    Arg("c0", "Tensor", ("N", "H")),
    *(Arg(f, "Tensor" if f in _REQUIRED_PARAMS else "Tensor?", _PARAM_SHAPES[f])
      for f in LSTMParams._fields),
    Arg("lengths", "Tensor?", ("N",)),  # int64; row n is real for t < lengths[n]
    Arg("rec_mask", "Tensor?", ("N", "P")),  # recurrent dropout mask, already scaled by 1/(1-p)
    Arg("zoneout_c", "Tensor?", ("T", "N", "H")),  # keep-previous probability or 0/1 sample
    Arg("zoneout_h", "Tensor?", ("T", "N", "P")),
)

#: the option flags (keyword-only): every LSTMOptions field, then two flags of the call itself.
LSTM_OPTIONS: tuple[Arg, ...] = tuple(
    Arg(f.name, "str" if isinstance(f.default, str) else "bool", default=f.default)
    for f in fields(LSTMOptions)
) + (
    Arg("need_backward", "bool", default=True),  # False: forward only, keep nothing for backward
    Arg("input_grad", "bool", default=False),  # backward will want dx (layer norm plans for it)
)


def _ln_keeps_xw(a: dict) -> bool:
    """Whether a layer-norm forward keeps x W_ih^T for backward: the rule of csrc/fused.h
    (ln_input_through_x), which rewrites the input side through x instead when dx is wanted and
    I^2 <= 8H."""
    I, H = a["x"].shape[2], a["weight_hh"].shape[0] // 4
    return (a["layer_norm"] and a["need_backward"]
            and not (a["input_grad"] and I > 0 and I * I <= 8 * H))


#: lstm_forward's results: the final states, then what backward reads (csrc/fused.h, LstmForward).
LSTM_RESULTS: tuple[Arg, ...] = (
    Arg("h_all", "Tensor", ("T+1", "N", "P")),  # [0] = h0, [t + 1] = h_t: y is h_all[1:]
    Arg("h_n", "Tensor", ("N", "P")),
    Arg("c_n", "Tensor", ("N", "H")),
    Arg("gates", "Tensor", ("T", "N", "4H")),  # activations [i | f | g | o] (the gate trace)
    Arg("c", "Tensor", ("T", "N", "H")),  # cell state after zoneout (the c trace)
    Arg("c_new", "Tensor", ("T", "N", "H"), when=lambda a: a["zoneout_c"] is not None),
    Arg("h_in", "Tensor", ("T", "N", "P"), when=lambda a: a["rec_mask"] is not None),
    Arg("m", "Tensor", ("T", "N", "H"), when=lambda a: a["weight_hr"] is not None),
    Arg("a", "Tensor", ("T+1", "N", "3H"), when=lambda a: a["gate_recurrence"]),
    Arg("xw", "Tensor", ("T", "N", "4H"), when=_ln_keeps_xw),
    Arg("hw", "Tensor", ("T", "N", "4H"), when=lambda a: a["layer_norm"] and a["need_backward"]),
    Arg("stats", "Tensor", ("T", "N", "6"), when=lambda a: a["layer_norm"]),
)
LSTM_SAVED = LSTM_RESULTS[3:]  # what lstm_backward reads besides the inputs (h_all included below)

#: gradients lstm_backward receives (None where the output got none)
LSTM_GRADS: tuple[Arg, ...] = (
    Arg("grad_y", "Tensor?", ("T", "N", "P")),
    Arg("grad_h_n", "Tensor?", ("N", "P")),
    Arg("grad_c_n", "Tensor?", ("N", "H")),
    Arg("grad_gates", "Tensor?", ("T", "N", "4H")),
    Arg("grad_c", "Tensor?", ("T", "N", "H")),
)

#: the inputs that have a gradient, in order (lstm_backward's output_mask and results)
LSTM_DIFFERENTIABLE: tuple[str, ...] = ("x", "h0", "c0") + LSTMParams._fields

# ---- GRU ------------------------------------------------------------------------------------------
_GRU_PARAM_SHAPES = {"weight_ih": ("3H", "I"), "weight_hh": ("3H", "H"), "bias_ih": ("3H",),
                     "bias_hh": ("3H",)}

GRU_INPUTS: tuple[Arg, ...] = (
    Arg("x", "Tensor", ("T", "N", "I")),
    Arg("h0", "Tensor", ("N", "H")),
    *(Arg(f, "Tensor" if f in _REQUIRED_PARAMS else "Tensor?", _GRU_PARAM_SHAPES[f])
      for f in GRUParams._fields),
    Arg("lengths", "Tensor?", ("N",)),
    Arg("rec_mask", "Tensor?", ("N", "H")),
    Arg("zoneout_h", "Tensor?", ("T", "N", "H")),
)
GRU_OPTIONS: tuple[Arg, ...] = ()
GRU_RESULTS: tuple[Arg, ...] = (
    Arg("h_all", "Tensor", ("T+1", "N", "H")),
    Arg("h_n", "Tensor", ("N", "H")),
    Arg("gates", "Tensor", ("T", "N", "3H")),  # [r | z | n]
    Arg("hn", "Tensor", ("T", "N", "H")),  # W_hn h_{t-1} + b_hn (what r multiplies)
    Arg("h_in", "Tensor", ("T", "N", "H"), when=lambda a: a["rec_mask"] is not None),
)
GRU_SAVED = GRU_RESULTS[2:]
GRU_GRADS: tuple[Arg, ...] = (
    Arg("grad_y", "Tensor?", ("T", "N", "H")),
    Arg("grad_h_n", "Tensor?", ("N", "H")),
    Arg("grad_gates", "Tensor?", ("T", "N", "3H")),
)
GRU_DIFFERENTIABLE: tuple[str, ...] = ("x", "h0") + GRUParams._fields


# ---- schemas --------------------------------------------------------------------------------------
def _arg_text(a: Arg, none_default: bool = False) -> str:
    if a.default is NO_DEFAULT:
        return f"{a.type} {a.name}" + ("=None" if none_default and a.type == "Tensor?" else "")
    d = a.default
    value = ("True" if d else "False") if isinstance(d, bool) else repr(d)
    return f"{a.type} {a.name}={value}"


def _schema(inputs, options, results, none_defaults: bool) -> str:
    args = ", ".join(_arg_text(a, none_defaults) for a in inputs)
    if options:
        args += ", *, " + ", ".join(_arg_text(a) for a in options)
    return f"({args}) -> ({', '.join(f'{r.type} {r.name}' for r in results)})"


def _grad_results(names) -> tuple[Arg, ...]:
    return tuple(Arg(f"grad_{n}", "Tensor") for n in names)


#: operator name -> (inputs, keyword-only options, results)
OPERATORS: dict[str, tuple[tuple[Arg, ...], tuple[Arg, ...], tuple[Arg, ...]]] = {
    "lstm_forward": (LSTM_INPUTS, LSTM_OPTIONS, LSTM_RESULTS),
    "lstm_backward": (LSTM_INPUTS + (LSTM_RESULTS[0],) + LSTM_SAVED + LSTM_GRADS
                      + (Arg("output_mask", "bool[]"),), LSTM_OPTIONS,
                      _grad_results(LSTM_DIFFERENTIABLE)),
    "gru_forward": (GRU_INPUTS, GRU_OPTIONS, GRU_RESULTS),
    "gru_backward": (GRU_INPUTS + (GRU_RESULTS[0],) + GRU_SAVED + GRU_GRADS
                     + (Arg("output_mask", "bool[]"),), GRU_OPTIONS,
                     _grad_results(GRU_DIFFERENTIABLE)),
}


def schema(op: str) -> str:
    """The torch.library schema of ``lstmkit::<op>``, e.g. ``(Tensor x, Tensor h0, ...) -> (...)``;
    the forward operators' optional tensors default to None."""
    return _schema(*OPERATORS[op], none_defaults=op.endswith("_forward"))


def dims(kind: str, x_shape, weight_hh_shape) -> dict[str, int]:
    """The shape symbols of a call, from x (T, N, I) and weight_hh ((4H, P) or (3H, H))."""
    T, N, I = x_shape
    if kind == "lstm":
        H, P = weight_hh_shape[0] // 4, weight_hh_shape[1]
    else:
        H = P = weight_hh_shape[1]
    return {"T": T, "N": N, "I": I, "H": H, "P": P}


def size(shape: tuple[str, ...], d: dict[str, int]) -> tuple[int, ...]:
    """A shape of the tables in numbers: ("T+1", "N", "4H") -> (T + 1, N, 4 * H)."""
    out = []
    for s in shape:
        if s.isdigit():
            out.append(int(s))
        elif s.endswith("+1"):
            out.append(d[s[:-2]] + 1)
        elif s[0].isdigit():
            out.append(int(s[:-1]) * d[s[-1]])
        else:
            out.append(d[s])
    return tuple(out)
