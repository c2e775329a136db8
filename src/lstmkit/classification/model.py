"""The classification network: an input layer (numbers as they are; token ids through an embedding or
one-hot), an lstmkit.LSTM (any preset, bidirectional, stacked), a pooling of its outputs into one
vector per sequence (or none, for one label per step), and a linear head to class logits.

Shapes: N batch, L steps (padded), F input features, V vocabulary, E embedding, D directions,
H hidden, C classes.
    x (N, L, F) float  or  ids (N, L) int64 -> embed -> (N, L, E or V or F)
    -> LSTM(lengths) -> h (N, L, D*H)
    -> pool: last  = [forward state after each sequence's last real step, backward state at step 0]
             mean  = mean of h over the real steps
             attention = sum_t a_t h_t, a = softmax_t(v^T tanh(W h_t)) over the real steps
                   (Bahdanau et al. 2015's additive scoring, used as self-attentive pooling)
    -> dropout -> head -> logits (N, C), or per step (N, L, C)
Padding never reaches a result: padded inputs are zeroed before the LSTM (so NaN or garbage there
cannot leak), the LSTM runs with `lengths`, and pooling masks the padded steps.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from lstmkit.layers import LSTM


def step_mask(lengths: Tensor, steps: int) -> Tensor:
    """(N,) lengths -> (N, L) bool, True at the real steps."""
    return torch.arange(steps, device=lengths.device)[None, :] < lengths[:, None]


class LSTMClassifier(nn.Module):
    def __init__(self, n_inputs: int, n_classes: int, hidden_size: int = 64, num_layers: int = 1,
                 bidirectional: bool = True, pooling: str = "mean", dropout: float = 0.0,
                 preset: Optional[str] = None, vocab_size: int = 0, input: str = "embedding",
                 embed_dim: int = 64, per_step: bool = False):
        super().__init__()
        self.pooling, self.per_step, self.vocab_size, self.input = pooling, per_step, vocab_size, input
        if vocab_size and input == "embedding":
            self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
            n_inputs = embed_dim
        elif vocab_size:
            n_inputs = vocab_size                                  # one-hot
        self.lstm = LSTM(n_inputs, hidden_size, num_layers, batch_first=True, bidirectional=bidirectional,
                         dropout=dropout if num_layers > 1 else 0.0, preset=preset)
        width = hidden_size * (2 if bidirectional else 1)
        if pooling == "attention" and not per_step:
            self.attn = nn.Sequential(nn.Linear(width, width), nn.Tanh(), nn.Linear(width, 1, bias=False))
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(width, n_classes)

    def encode(self, x: Tensor, mask: Tensor) -> Tensor:
        """Raw input -> what the LSTM receives (N, L, H_in), zero at padded steps."""
        if self.vocab_size:
            ids = torch.where(mask, x, torch.zeros_like(x))                     # (N, L)
            if self.input == "embedding":
                return self.embed(ids)
            # float one-hot written in place (no int64 (N, L, V) intermediate), zero at padded steps
            out = torch.zeros(*ids.shape, self.vocab_size, dtype=torch.float32, device=ids.device)
            return out.scatter_(-1, ids[..., None], mask[..., None].to(torch.float32))
        return torch.where(mask[..., None], x, torch.zeros((), dtype=x.dtype))  # (N, L, F)

    def forward(self, x: Tensor, state=None, lengths: Optional[Tensor] = None):
        """x (N, L, F) or ids (N, L); lengths (N,) (None: every sequence is L long).
        Returns logits (N, C) or (N, L, C) with per_step, and the LSTM's final state."""
        n, steps = x.shape[0], x.shape[1]
        if lengths is None:
            lengths = torch.full((n,), steps, dtype=torch.int64)
        lengths = lengths.to(torch.int64)
        mask = step_mask(lengths, steps)                                       # (N, L)
        h, state = self.lstm(self.encode(x, mask), state, lengths=lengths.cpu())  # (N, L, D*H)
        if self.per_step:
            return self.head(self.drop(h)), state                            # (N, L, C)
        return self.head(self.drop(self.pool(h, state, mask, lengths))), state

    def pool(self, h: Tensor, state, mask: Tensor, lengths: Tensor) -> Tensor:
        """(N, L, D*H) -> (N, D*H) over the real steps only."""
        h = torch.where(mask[..., None], h, torch.zeros((), dtype=h.dtype))
        if self.pooling == "last":
            h_n = state[0]                                                     # (layers*D, N, H)
            d = 2 if self.lstm.bidirectional else 1
            return torch.cat(list(h_n[-d:]), dim=-1)                          # (N, D*H)
        if self.pooling == "mean":
            return h.sum(1) / lengths[:, None].to(h.dtype)
        scores = self.attn(h).squeeze(-1).masked_fill(~mask, float("-inf"))   # (N, L)
        weights = torch.softmax(scores, dim=1)
        return torch.einsum("nl,nlk->nk", weights, h)
