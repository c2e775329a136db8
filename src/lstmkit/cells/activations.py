"""Activation functions a cell may use, by name.

The names are part of the public API (they appear in configs and presets) and each one has a fixed
integer code that the fused kernels use; see ``kernels/csrc``.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

Activation = Callable[[torch.Tensor], torch.Tensor]


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


#: name -> (code used by the fused kernels, function)
ACTIVATIONS: dict[str, tuple[int, Activation]] = {
    "sigmoid": (0, torch.sigmoid),
    "tanh": (1, torch.tanh),
    "identity": (2, _identity),
    "relu": (3, torch.relu),
    "hard_sigmoid": (4, F.hardsigmoid),  # relu6(x + 3) / 6, as torch.nn.Hardsigmoid
    "softsign": (5, F.softsign),  # x / (1 + |x|)
}


def get_activation(name: str, owner: str = "lstmkit") -> Activation:
    """The activation called ``name``; ``ValueError`` naming the known ones otherwise."""
    try:
        return ACTIVATIONS[name][1]
    except KeyError:
        raise ValueError(
            f"{owner}: unknown activation {name!r}; expected one of {sorted(ACTIVATIONS)}"
        ) from None


def activation_code(name: str) -> int:
    """The integer code of an activation, as the fused kernels expect it."""
    return ACTIVATIONS[name][0]
