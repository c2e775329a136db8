"""Sequence layers: time, direction, depth and masks around any cell."""
from .cnn_lstm import CNNLSTM, CNNLSTM1d
from .convlstm import ConvLSTM
from .gru import GRU
from .lstm import LSTM
from .rnn import RNN, Bidirectional, Stacked
from .scan import reverse_padded, scan

__all__ = ["LSTM", "GRU", "scan", "reverse_padded"]
__all__ += ["RNN", "Bidirectional", "Stacked", "ConvLSTM", "CNNLSTM", "CNNLSTM1d"]
