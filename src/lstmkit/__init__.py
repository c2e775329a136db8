"""lstmkit: the LSTM family as PyTorch layers, fused kernels, and forecasting from the command line.

Start with :class:`LSTM` (drop-in for ``torch.nn.LSTM`` with every variant of the notes),
:class:`LSTMCell`, :class:`GRU`, :data:`PRESETS`; see README.md and docs/architecture.md.
"""
from .cells import PRESETS, ConvLSTMCell, GRUCell, LSTMCell, LSTMOptions
from .errors import LstmkitError
from .kernels import get_backend, set_backend, use_backend
from .layers import GRU, LSTM, RNN, Bidirectional, CNNLSTM, CNNLSTM1d, ConvLSTM, Stacked

__version__ = "0.1.0"

__all__ = ["LSTM", "GRU", "LSTMCell", "GRUCell", "LSTMOptions", "PRESETS", "LstmkitError",
           "ConvLSTMCell", "ConvLSTM", "CNNLSTM", "CNNLSTM1d", "RNN", "Bidirectional", "Stacked",
           "set_backend", "get_backend", "use_backend", "__version__"]
