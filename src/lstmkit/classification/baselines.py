"""Baselines reported beside the LSTM, as the UEA/UCR archive papers use them (Bagnall et al. 2017,
"The great time series classification bake off"; Ruiz et al. 2021 for the multivariate archive):

    1-NN Euclidean   nearest training sequence by sum_t ||a_t - b_t||^2 (equal lengths only)
    1-NN DTW         nearest by dynamic time warping with a full window, the dependent multivariate
                     form (DTW_D: the cost of matching steps a_i, b_j is ||a_i - b_j||^2 over all
                     channels at once); sequences may have different lengths
    majority         the most frequent training label (for text and per-step labelling)
    per-step 1-NN    each step labelled by its nearest training step, without context (per-step)
    most frequent    each token labelled by its most frequent training label (per-step text tagging)
    naive Bayes      text: multinomial naive Bayes over the bag of tokens with add-one smoothing, the
                     classic text-classification baseline (Manning, Raghavan & Schutze 2008, ch. 13;
                     Wang & Manning 2012 report it on the same movie-review snippets)

Ties go to the earliest training sequence. Distances run in float64 on torch, in blocks of queries.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from typing import Sequence

import numpy as np
import torch

from lstmkit.errors import LstmkitError


def _padded(seqs: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(s) for s in seqs])
    x = torch.zeros(len(seqs), int(lengths.max()), seqs[0].shape[1], dtype=torch.float64)
    for i, s in enumerate(seqs):
        x[i, :len(s)] = torch.as_tensor(s, dtype=torch.float64)
    return x, lengths


def euclidean_distances(queries: Sequence[np.ndarray], train: Sequence[np.ndarray]) -> np.ndarray:
    """(Q, N) squared Euclidean distances between equal-length sequences (L, F)."""
    lengths = {len(s) for s in [*queries, *train]}
    if len(lengths) != 1:
        raise LstmkitError(f"Euclidean distance needs sequences of one length, got lengths "
                           f"{sorted(lengths)[:5]}...; use DTW")
    q = torch.as_tensor(np.stack([s.reshape(-1) for s in queries]), dtype=torch.float64)
    t = torch.as_tensor(np.stack([s.reshape(-1) for s in train]), dtype=torch.float64)
    return (torch.cdist(q, t) ** 2).numpy()


def dtw_distances(queries: Sequence[np.ndarray], train: Sequence[np.ndarray], block: int = 32) -> np.ndarray:
    """(Q, N) DTW distances (full window, squared Euclidean step cost, dependent multivariate):
    D(i, j) = c(i, j) + min(D(i-1, j), D(i, j-1), D(i-1, j-1)), D(0, 0) = 0, distance = D(L_a, L_b).

    Computed one anti-diagonal k = i + j at a time, vectorised over the diagonal and over every
    (query, training sequence) pair of a block; padded steps only feed cells past a pair's lengths."""
    tx, tl = _padded(train)                                       # (N, Lb, F)
    out = np.empty((len(queries), len(train)))
    for s in range(0, len(queries), block):
        qx, ql = _padded(queries[s:s + block])                    # (B, La, F)
        B, La, N, Lb = qx.shape[0], qx.shape[1], tx.shape[0], tx.shape[1]
        ii = torch.arange(1, La + 1)                              # row index i of each diagonal cell
        inf = float("inf")
        prev2 = torch.full((B, N, La + 1), inf, dtype=torch.float64)   # diagonal k-2, indexed by i
        prev2[..., 0] = 0.0                                            # D(0, 0)
        prev1 = torch.full((B, N, La + 1), inf, dtype=torch.float64)   # diagonal k-1
        ends = ql[:, None] + tl[None, :]                          # (B, N) diagonal of each pair's end
        result = torch.empty(B, N, dtype=torch.float64)
        for k in range(2, La + Lb + 1):
            jj = k - ii
            valid = (jj >= 1) & (jj <= Lb)
            iv, jv = ii[valid], jj[valid]
            cost = ((qx[:, None, iv - 1, :] - tx[None, :, jv - 1, :]) ** 2).sum(-1)   # (B, N, n)
            best = torch.minimum(torch.minimum(prev1[..., iv - 1], prev1[..., iv]), prev2[..., iv - 1])
            cur = torch.full((B, N, La + 1), inf, dtype=torch.float64)
            cur[..., iv] = cost + best
            hit = ends == k
            if hit.any():
                b, n = hit.nonzero(as_tuple=True)
                result[b, n] = cur[b, n, ql[b]]
            prev2, prev1 = prev1, cur
        out[s:s + B] = result.numpy()
    return out


def nearest_neighbour(distances: np.ndarray, train_labels: Sequence) -> np.ndarray:
    """Label of the nearest training sequence for each query row of a (Q, N) distance matrix."""
    labels = np.asarray(train_labels, dtype=object)
    return labels[np.argmin(distances, axis=1)]


def nearest_step(queries: np.ndarray, steps: np.ndarray, labels: Sequence, block: int = 1024) -> np.ndarray:
    """Per-step 1-NN: queries (Q, F), training steps (S, F) with labels (S,) -> (Q,) labels of the
    nearest training step (Euclidean), in blocks of queries."""
    t = torch.as_tensor(steps, dtype=torch.float64)
    idx = [torch.cdist(torch.as_tensor(queries[s:s + block], dtype=torch.float64), t).argmin(1)
           for s in range(0, len(queries), block)]
    return np.asarray(labels, dtype=object)[torch.cat(idx).numpy()]


def majority(train_labels: Sequence, n: int) -> np.ndarray:
    label = Counter(train_labels).most_common(1)[0][0]
    return np.array([label] * n, dtype=object)


def most_frequent_label(train_tokens: Sequence[Sequence[str]], train_labels: Sequence[Sequence[str]],
                        tokens: Sequence[Sequence[str]]) -> list[np.ndarray]:
    """Per-step text baseline: each token's most frequent training label; unseen tokens get the
    most frequent label overall."""
    per_token: dict[str, Counter] = defaultdict(Counter)
    overall = Counter()
    for ts, ls in zip(train_tokens, train_labels):
        for t, l in zip(ts, ls):
            per_token[t][l] += 1
            overall[l] += 1
    default = overall.most_common(1)[0][0]
    return [np.array([per_token[t].most_common(1)[0][0] if t in per_token else default for t in ts],
                     dtype=object) for ts in tokens]


def naive_bayes(train_tokens: Sequence[Sequence[str]], train_labels: Sequence,
                tokens: Sequence[Sequence[str]], alpha: float = 1.0) -> np.ndarray:
    """Multinomial naive Bayes over token counts: argmax_c log P(c) + sum_t n_t log P(t | c), with
    P(t | c) = (count(t, c) + alpha) / (sum_t' count(t', c) + alpha |V|) over the training vocabulary V.
    Tokens never seen in training are ignored (as scikit-learn's CountVectorizer + MultinomialNB do).
    Ties go to the first class in sorted order. Returns (Q,) labels."""
    classes = sorted({str(v) for v in train_labels})
    vocab: dict[str, int] = {}
    for ts in train_tokens:
        for t in ts:
            vocab.setdefault(t, len(vocab))
    counts = np.zeros((len(classes), len(vocab)))
    index = {c: i for i, c in enumerate(classes)}
    for ts, label in zip(train_tokens, train_labels):
        row = counts[index[str(label)]]
        for t in ts:
            row[vocab[t]] += 1
    prior = np.log(np.bincount([index[str(v)] for v in train_labels], minlength=len(classes)) / len(train_labels))
    log_p = np.log(counts + alpha) - np.log(counts.sum(1, keepdims=True) + alpha * len(vocab))  # (C, V)
    x = np.zeros((len(tokens), len(vocab)))
    for i, ts in enumerate(tokens):
        for t in ts:
            j = vocab.get(t)
            if j is not None:
                x[i, j] += 1
    scores = x @ log_p.T + prior                                            # (Q, C)
    return np.asarray(classes, dtype=object)[np.argmax(scores, axis=1)]
