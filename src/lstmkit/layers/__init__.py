"""Sequence layers: time, direction, depth and masks around any cell."""
from .gru import GRU
from .lstm import LSTM
from .scan import reverse_padded, scan

__all__ = ["LSTM", "GRU", "scan", "reverse_padded"]
