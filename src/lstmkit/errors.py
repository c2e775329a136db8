"""Errors raised by lstmkit: they name the component, what was expected and what arrived."""
from __future__ import annotations


class LstmkitError(Exception):
    """Base class of lstmkit's own errors (bad data, bad files, bad configuration)."""


def describe(t) -> str:
    """Short description of a tensor-like value for error messages: shape, dtype and device."""
    shape = getattr(t, "shape", None)
    if shape is None:
        return type(t).__name__
    dtype = getattr(t, "dtype", "?")
    device = getattr(t, "device", "?")
    return f"tensor of shape {tuple(shape)}, dtype {dtype}, device {device}"
