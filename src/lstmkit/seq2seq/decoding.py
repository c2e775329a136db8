"""Greedy and beam-search decoding for :class:`~lstmkit.seq2seq.model.EncoderDecoder`.

A hypothesis ends when it emits the end token or reaches `max_len` tokens; its score is the sum of
the log-probabilities of its tokens (end token included), without length normalisation, so a beam
wide enough to keep every hypothesis finds the most probable output exactly. Padding, unknown and
start tokens are never emitted.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .model import EncoderDecoder, Memory

NEVER = (0, 1, 2)     # pad, unk, start: ids of lstmkit.data.chars.CharVocab
BOS, EOS = 2, 3


@dataclass
class Hypothesis:
    tokens: list[int]          # emitted ids, without the start token, with the end token if emitted
    score: float               # sum of log-probabilities
    attention: list            # per emitted token: (S,) weights, or None without attention


def _banned(logp: Tensor) -> Tensor:
    logp = logp.clone()
    logp[:, list(NEVER)] = -math.inf
    return logp


@torch.no_grad()
def greedy(model: EncoderDecoder, mem: Memory, max_len: int) -> list[Hypothesis]:
    """The most probable token at every step, for a batch of N sources at once."""
    n = mem.out.shape[0]
    tokens = torch.full((n,), BOS, dtype=torch.long, device=mem.out.device)
    state, done = mem.state, torch.zeros(n, dtype=torch.bool)
    hyps = [Hypothesis([], 0.0, []) for _ in range(n)]
    for _ in range(max_len):
        logp, state, w = model.step(tokens, mem, state)
        logp = _banned(logp)
        best = logp.argmax(-1)
        for i in range(n):
            if not done[i]:
                hyps[i].tokens.append(int(best[i]))
                hyps[i].score += float(logp[i, best[i]])
                hyps[i].attention.append(None if w is None else w[i].cpu())
                done[i] = int(best[i]) == EOS
        if bool(done.all()):
            break
        tokens = best
    return hyps


@torch.no_grad()
def beam_search(model: EncoderDecoder, mem: Memory, max_len: int, width: int) -> Hypothesis:
    """Beam search for ONE source (mem has one row): keep the `width` best partial hypotheses each
    step; stop when no partial one can beat the best finished one (scores only fall as tokens are
    added) or at max_len. Returns the best finished hypothesis."""
    if mem.out.shape[0] != 1:
        raise ValueError(f"beam_search: expected one source, got {mem.out.shape[0]}")
    alive = [Hypothesis([], 0.0, [])]
    state = mem.state
    finished: list[Hypothesis] = []
    for t in range(max_len):
        k = len(alive)
        last = torch.tensor([h.tokens[-1] if h.tokens else BOS for h in alive], device=mem.out.device)
        logp, state, w = model.step(last, mem.rows(torch.zeros(k, dtype=torch.long)), state)
        logp = _banned(logp).cpu().double()
        total = torch.tensor([h.score for h in alive], dtype=torch.float64)[:, None] + logp  # (k, V)
        flat = total.flatten()
        order = torch.argsort(flat, descending=True, stable=True)
        nxt: list[tuple[int, Hypothesis]] = []            # (row it extends, hypothesis)
        for j in order.tolist():
            if not math.isfinite(float(flat[j])):
                break
            r, tok = divmod(j, logp.shape[1])
            h = alive[r]
            new = Hypothesis(h.tokens + [tok], float(flat[j]),
                             h.attention + [None if w is None else w[r].cpu()])
            if tok == EOS or t == max_len - 1:
                finished.append(new)
            else:
                nxt.append((r, new))
            if len(nxt) == width:
                break
        best_done = max((h.score for h in finished), default=-math.inf)
        nxt = [(r, h) for r, h in nxt if h.score > best_done]  # cannot end better than the best finished
        if not nxt:
            break
        idx = torch.tensor([r for r, _ in nxt], dtype=torch.long, device=mem.out.device)
        alive = [h for _, h in nxt]
        state = tuple(s[:, idx] for s in state)
    return max(finished, key=lambda h: h.score)
