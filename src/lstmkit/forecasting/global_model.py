"""The global forecasting network: one LSTM shared by every series, reading a window of a series'
normalised history (short series padded, their real lengths passed as `lengths=`), and a head that
emits all H steps (times Q quantiles) at once (MIMO) from the final hidden state, optionally joined
with a learned embedding of the series id (a static feature) and the future-known covariates of the
H forecast steps.

Shapes: N windows, L lookback steps, F inputs per step, H_out hidden size, E embedding size,
C future-known covariates, H horizon, Q outputs per step.
    x (N, L, F), lengths (N,) -> LSTM -> h_n[-1] (N, H_out)
    [h_n[-1], embed(ids) (N, E), future (N, H*C)] -> MLP head -> out (N, 1, H*Q)
The single output step keeps the trainer's contract (`out[:, -1]` is the forecast).
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from lstmkit.layers import LSTM


class GlobalLSTM(nn.Module):
    def __init__(self, n_inputs: int, n_outputs: int, hidden_size: int = 32, num_layers: int = 1,
                 dropout: float = 0.0, layer_options: Optional[dict] = None, n_series: int = 0,
                 id_dim: int = 0, n_future: int = 0, head_hidden: int = 0):
        super().__init__()
        self.lstm = LSTM(n_inputs, hidden_size, num_layers, batch_first=True,
                         dropout=dropout if num_layers > 1 else 0.0, **(layer_options or {}))
        self.embed = nn.Embedding(n_series, id_dim) if id_dim > 0 and n_series > 0 else None
        width = hidden_size + (id_dim if self.embed is not None else 0) + n_future
        self.drop = nn.Dropout(dropout)
        if head_hidden > 0:
            self.head = nn.Sequential(nn.Linear(width, head_hidden), nn.ReLU(),
                                      nn.Linear(head_hidden, n_outputs))
        else:
            self.head = nn.Linear(width, n_outputs)

    def forward(self, x: Tensor, state=None, lengths: Optional[Tensor] = None,
                ids: Optional[Tensor] = None, future: Optional[Tensor] = None):
        _, (h_n, c_n) = self.lstm(x, state, lengths=lengths)
        parts = [h_n[-1]]                                            # (N, H_out)
        if self.embed is not None:
            parts.append(self.embed(ids))                            # (N, E)
        if future is not None and future.shape[-1]:
            parts.append(future.reshape(len(x), -1))                 # (N, H*C)
        z = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
        return self.head(self.drop(z)).unsqueeze(1), (h_n, c_n)     # (N, 1, H*Q)
