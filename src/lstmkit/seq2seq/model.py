"""The encoder-decoder network (Sutskever et al. 2014, "Sequence to Sequence Learning with Neural
Networks"): an LSTM encoder reads the source; its final (h, c) start the LSTM decoder, which emits the
target one token at a time. Optional attention over the encoder's outputs:

    bahdanau  additive, from the previous decoder state (Bahdanau, Cho & Bengio 2015, eq. 6):
              e_tj = v^T tanh(W s_{t-1} + U h_j); the context c_t also enters the decoder's input
    luong     multiplicative "general" score from the current decoder state (Luong, Pham & Manning
              2015, eq. 8): e_tj = h_t^T W h_j

with a_tj = softmax_j(e_tj) over the real (unpadded) source steps only, c_t = sum_j a_tj h_j, and the
output read from tanh(W_c [c_t; h_t]) (Luong eq. 5). Without attention the output is read from h_t.

Shapes: N batch, S source steps, T target steps, E embedding, H encoder hidden, D 2 if bidirectional
else 1, Hd = D*H decoder hidden (a bidirectional encoder's two final states are concatenated), V
vocabulary (source and target share one character vocabulary and one embedding).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor, nn

from lstmkit.layers import LSTM

ATTENTIONS = ("none", "bahdanau", "luong")


@dataclass
class Memory:
    """What the decoder reads from the encoder, per sequence (row)."""
    out: Tensor                 # (N, S, Hd) encoder outputs, zero at padded steps
    mask: Tensor                # (N, S) True at real source steps
    keys: Optional[Tensor]      # (N, S, A) source side of the attention score, precomputed
    state: tuple                # (h, c), each (layers, N, Hd): the decoder's initial state

    def rows(self, idx: Tensor) -> "Memory":
        keys = None if self.keys is None else self.keys[idx]
        return Memory(self.out[idx], self.mask[idx], keys, tuple(s[:, idx] for s in self.state))


class EncoderDecoder(nn.Module):
    def __init__(self, vocab: int, embedding: int, hidden: int, layers: int = 1,
                 attention: str = "luong", bidirectional: bool = False, dropout: float = 0.0):
        super().__init__()
        if attention not in ATTENTIONS:
            raise ValueError(f"EncoderDecoder: expected attention in {ATTENTIONS}, got {attention!r}")
        self.attention, self.layers = attention, layers
        D = 2 if bidirectional else 1
        self.dec_hidden = hd = D * hidden
        self.embed = nn.Embedding(vocab, embedding, padding_idx=0)
        self.encoder = LSTM(embedding, hidden, layers, batch_first=True, bidirectional=bidirectional,
                            dropout=dropout if layers > 1 else 0.0)
        extra = hd if attention == "bahdanau" else 0
        self.decoder = LSTM(embedding + extra, hd, layers, batch_first=True,
                            dropout=dropout if layers > 1 else 0.0)
        if attention == "bahdanau":
            self.att_query = nn.Linear(hd, hd, bias=False)       # W
            self.att_key = nn.Linear(hd, hd)                     # U (and the bias)
            self.att_v = nn.Linear(hd, 1, bias=False)            # v
        elif attention == "luong":
            self.att_key = nn.Linear(hd, hd, bias=False)         # W of the general score
        if attention != "none":
            self.combine = nn.Linear(2 * hd, hd)                 # W_c
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hd, vocab)

    # ------------------------------------------------------------------ encoder
    def encode(self, src: Tensor, lengths: Tensor) -> Memory:
        """src (N, S) token ids, padded with 0 after each row's length; lengths (N,)."""
        out, (h, c) = self.encoder(self.embed(src), lengths=lengths.cpu())   # out (N, S, Hd)
        if self.encoder.bidirectional:        # (layers*2, N, H) -> (layers, N, 2H): fwd and bwd joined
            h, c = (s.view(self.layers, 2, *s.shape[1:]).transpose(1, 2).reshape(
                self.layers, s.shape[1], -1) for s in (h, c))
        mask = torch.arange(src.shape[1], device=src.device)[None, :] < lengths.to(src.device)[:, None]
        keys = self.att_key(out) if self.attention != "none" else None
        return Memory(out, mask, keys, (h.contiguous(), c.contiguous()))

    def attend(self, query: Tensor, mem: Memory) -> tuple[Tensor, Tensor]:
        """query (N, T, Hd) -> weights (N, T, S) summing to 1 over real source steps, context (N, T, Hd)."""
        if self.attention == "luong":
            scores = query @ mem.keys.transpose(1, 2)                            # (N, T, S)
        else:
            e = torch.tanh(self.att_query(query)[:, :, None] + mem.keys[:, None])  # (N, T, S, Hd)
            scores = self.att_v(e)[..., 0]
        scores = scores.masked_fill(~mem.mask[:, None, :], float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        return weights, weights @ mem.out

    # ------------------------------------------------------------------ decoder
    def decode(self, tgt_in: Tensor, mem: Memory, state=None) -> tuple[Tensor, tuple, Optional[Tensor]]:
        """Teacher forcing: tgt_in (N, T) the target shifted right (start token first) ->
        logits (N, T, V), final state, attention weights (N, T, S) or None."""
        state = mem.state if state is None else state
        emb = self.drop(self.embed(tgt_in))                                     # (N, T, E)
        if self.attention == "bahdanau":                                        # step by step
            logits, weights = [], []
            for t in range(tgt_in.shape[1]):
                lg, state, w = self._bahdanau_step(emb[:, t:t + 1], mem, state)
                logits.append(lg)
                weights.append(w)
            return torch.cat(logits, 1), state, torch.cat(weights, 1)
        h, state = self.decoder(emb, state)                                     # (N, T, Hd)
        if self.attention == "none":
            return self.head(self.drop(h)), state, None
        weights, ctx = self.attend(h, mem)
        out = torch.tanh(self.combine(torch.cat([ctx, h], -1)))
        return self.head(self.drop(out)), state, weights

    def _bahdanau_step(self, emb_t: Tensor, mem: Memory, state):
        """emb_t (N, 1, E); the query is the previous top-layer state s_{t-1}."""
        weights, ctx = self.attend(state[0][-1][:, None], mem)                  # (N, 1, S), (N, 1, Hd)
        h, state = self.decoder(torch.cat([emb_t, ctx], -1), state)
        out = torch.tanh(self.combine(torch.cat([ctx, h], -1)))
        return self.head(self.drop(out)), state, weights

    def step(self, tokens: Tensor, mem: Memory, state) -> tuple[Tensor, tuple, Optional[Tensor]]:
        """One decoding step: tokens (N,) the previous outputs -> log-probabilities (N, V), new
        state, attention weights (N, S) or None. Gives the same numbers as decode() step by step."""
        logits, state, w = self.decode(tokens[:, None], mem, state)
        return torch.log_softmax(logits[:, 0], -1), state, (None if w is None else w[:, 0])

    def forward(self, x, state=None):
        """The trainer's contract: x = (src (N, S), lengths (N,), tgt_in (N, T)) -> (logits (N, T, V), None)."""
        src, lengths, tgt_in = x
        logits, _, _ = self.decode(tgt_in, self.encode(src, lengths))
        return logits, None
