"""Cells: one step of a recurrent network, each written as its equations."""
from .activations import ACTIVATIONS
from .convlstm import ConvLSTMCell, convlstm_step
from .gru import GRUCell, GRUParams, gru_step
from .lstm import PRESETS, LSTMCell, LSTMGates, LSTMOptions, LSTMParams, lstm_step

__all__ = ["ACTIVATIONS", "GRUCell", "GRUParams", "gru_step", "PRESETS", "LSTMCell", "LSTMGates",
           "LSTMOptions", "LSTMParams", "lstm_step"]
__all__ += ["ConvLSTMCell", "convlstm_step"]
