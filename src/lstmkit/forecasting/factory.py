"""The forecasters' model factory: one registry from a model name to the network class, and the
layer options of `lstmkit.LSTM` passed through by name instead of being re-listed by hand.

    network("lstm", n_inputs=1, n_outputs=6, hidden=32, layers=1, dropout=0.0,
            layer_options={"preset": "CIFG", "layer_norm": True, "zoneout": 0.1})

`layer_options` takes every keyword of `lstmkit.LSTM` that is not about shapes: `preset`, each field
of `lstmkit.LSTMOptions` (peephole, coupled, layer_norm, ...), `recurrent_dropout`, `zoneout`,
`bias`. They are checked against the layer's own signature (the one list of them), so a new
LSTMOptions field reaches the forecasters, their saved configs and the command line
(`--layer-option NAME=VALUE`) with no edit here.
"""
from __future__ import annotations

import inspect
from dataclasses import fields
from typing import Any, Callable

from torch import nn

from lstmkit.cells.lstm import LSTMOptions
from lstmkit.errors import LstmkitError
from lstmkit.layers import LSTM

#: Keywords of lstmkit.LSTM that the factory sets itself (shapes and layout).
_RESERVED = {"self", "input_size", "hidden_size", "num_layers", "batch_first", "dropout", "device",
             "dtype", "options", "option_overrides", "bidirectional", "proj_size"}


def layer_option_types() -> dict[str, Any]:
    """{name: default} of every lstmkit.LSTM option a forecaster accepts (from the layer's signature
    and the LSTMOptions fields)."""
    sig = inspect.signature(LSTM.__init__)
    out = {n: p.default for n, p in sig.parameters.items()
           if n not in _RESERVED and p.kind is not inspect.Parameter.VAR_KEYWORD}
    out.update({f.name: f.default for f in fields(LSTMOptions)})
    return out


def check_layer_options(options: dict) -> dict:
    """Refuse unknown names (listing the known ones) and values the layer refuses."""
    known = layer_option_types()
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise LstmkitError(f"unknown layer option(s) {unknown}; lstmkit.LSTM accepts {sorted(known)}")
    try:
        LSTM(1, 1, **options)
    except (TypeError, ValueError, KeyError) as e:
        raise LstmkitError(f"layer options {options}: {e}") from None
    return dict(options)


def parse_layer_option(text: str) -> tuple[str, Any]:
    """'NAME=VALUE' -> (name, value) typed like the option's default (bool, int, float, str, or a
    'p_c,p_h' pair for zoneout); 'preset=CIFG' included."""
    name, sep, raw = text.partition("=")
    name, raw = name.strip().replace("-", "_"), raw.strip()
    known = layer_option_types()
    if not sep or name not in known:
        raise LstmkitError(f"expected --layer-option NAME=VALUE with NAME one of {sorted(known)}, "
                           f"got {text!r}")
    default = known[name]
    try:
        if isinstance(default, bool):
            if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(raw)
            return name, raw.lower() in ("true", "1", "yes")
        if name == "zoneout" and "," in raw:
            return name, tuple(float(x) for x in raw.split(","))
        if isinstance(default, float):
            return name, float(raw)
        if isinstance(default, int):
            return name, int(raw)
    except ValueError:
        raise LstmkitError(f"--layer-option {name}: expected a {type(default).__name__}, got {raw!r}") from None
    return name, (None if raw.lower() == "none" else raw)


def _lstm_head(n_inputs: int, n_outputs: int, hidden: int, layers: int, dropout: float,
               layer_options: dict, **extra) -> nn.Module:
    from .model import LSTMForecaster
    return LSTMForecaster(n_inputs, n_outputs, hidden, layers, dropout, layer_options=layer_options)


def _global_lstm(n_inputs: int, n_outputs: int, hidden: int, layers: int, dropout: float,
                 layer_options: dict, **extra) -> nn.Module:
    from .global_model import GlobalLSTM
    return GlobalLSTM(n_inputs, n_outputs, hidden, layers, dropout, layer_options=layer_options, **extra)


#: model name -> builder(n_inputs, n_outputs, hidden, layers, dropout, layer_options, **extra)
MODELS: dict[str, Callable[..., nn.Module]] = {"lstm": _lstm_head, "global_lstm": _global_lstm}


def network(name: str, n_inputs: int, n_outputs: int, hidden: int = 32, layers: int = 1,
            dropout: float = 0.0, layer_options: dict | None = None, **extra) -> nn.Module:
    """Build the network registered as `name` (see MODELS)."""
    if name not in MODELS:
        raise LstmkitError(f"unknown model {name!r}; known models are {sorted(MODELS)}")
    return MODELS[name](n_inputs, n_outputs, hidden, layers, dropout, dict(layer_options or {}), **extra)
