"""The forecasting network: an LSTM over the input window and a linear head that reads every step's
hidden state and emits the next H steps of the K targets at once (direct multi-step forecast).

Shapes: N batch, L steps, F input features, H_out hidden size, H horizon, K targets.
    x (N, L, F) -> LSTM -> h (N, L, H_out) -> dropout -> head -> out (N, L, H*K)
Windowed training uses out[:, -1]; stateful (truncated BPTT) training uses every step.
"""
from __future__ import annotations

from torch import Tensor, nn

from lstmkit.layers import LSTM


class LSTMForecaster(nn.Module):
    def __init__(self, n_inputs: int, n_outputs: int, hidden_size: int = 32, num_layers: int = 1,
                 dropout: float = 0.0, preset: str | None = None, layer_options: dict | None = None):
        super().__init__()
        # layer_options: any lstmkit.LSTM keyword (preset, LSTMOptions fields, zoneout, ...), see
        # lstmkit.forecasting.factory
        options = dict(layer_options or {})
        if preset is not None:
            options.setdefault("preset", preset)
        self.lstm = LSTM(n_inputs, hidden_size, num_layers, batch_first=True,
                         dropout=dropout if num_layers > 1 else 0.0, **options)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, n_outputs)

    def forward(self, x: Tensor, state=None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        h, state = self.lstm(x, state)                  # (N, L, H_out)
        return self.head(self.drop(h)), state           # (N, L, H*K)
