"""Character n-gram baselines with interpolated Witten-Bell smoothing.

The smoothed probability of character w after the context h (the n-1 characters before it) is
(Witten & Bell 1991; in the interpolated form of Chen & Goodman 1998, "An Empirical Study of Smoothing
Techniques for Language Modeling", eq. 5, as SRILM's ``-wbdiscount -interpolate``):

    P(w | h) = (c(h w) + N1+(h .) * P(w | h')) / (c(h) + N1+(h .))     when c(h) > 0
    P(w | h) = P(w | h')                                               when h was never seen

where h' is h without its oldest character, c(h w) counts h followed by w in the training text, c(h)
the times h is followed by any character, N1+(h .) the number of different characters seen after h;
the recursion ends at the uniform distribution 1/V over the vocabulary. Order n uses n-1 characters
of context (order 1 is the smoothed unigram).
"""
from __future__ import annotations

import math
from collections import Counter, defaultdict

from lstmkit.errors import LstmkitError


class CharNGram:
    """Interpolated Witten-Bell character model of `order` (1 = unigram ... 5 = four characters of
    context) counted on `text`; `vocab_size` V is the size of the uniform base distribution (every
    character the model may be asked about, unknown ones included)."""

    def __init__(self, text: str, order: int, vocab_size: int):
        if not isinstance(order, int) or order < 1:
            raise LstmkitError(f"CharNGram: expected order >= 1, got {order!r}")
        if vocab_size < 1:
            raise LstmkitError(f"CharNGram: expected vocab_size >= 1, got {vocab_size}")
        self.order, self.vocab_size = order, vocab_size
        # per context length k = 0..order-1: counts of (context + char), and per context its total
        # count c(h) and its number of different following characters N1+(h .)
        self.counts: list[Counter] = []
        self.total: list[dict] = []
        self.types: list[dict] = []
        for k in range(order):
            grams = Counter(text[i:i + k + 1] for i in range(len(text) - k))
            total, types = defaultdict(int), defaultdict(int)
            for g, c in grams.items():
                total[g[:-1]] += c
                types[g[:-1]] += 1
            self.counts.append(grams)
            self.total.append(dict(total))
            self.types.append(dict(types))

    def prob(self, context: str, char: str) -> float:
        """P(char | the last order-1 characters of context); a shorter context uses the lower orders."""
        k_max = min(self.order - 1, len(context))
        p = 1.0 / self.vocab_size
        for k in range(0, k_max + 1):
            h = context[len(context) - k:] if k else ""
            n = self.total[k].get(h, 0)
            if n == 0:
                continue          # unseen context: keep the lower-order estimate
            t = self.types[k][h]
            p = (self.counts[k].get(h + char, 0) + t * p) / (n + t)
        return p

    def bits_per_char(self, text: str) -> float:
        """-1/(N-1) * sum over t = 1..N-1 of log2 P(text[t] | text[:t]): the held-out text is scored
        from its second character on, with context taken from the text itself (as the LSTM does)."""
        if len(text) < 2:
            raise LstmkitError(f"bits_per_char needs at least 2 characters, got {len(text)}")
        n = self.order - 1
        total = 0.0
        for t in range(1, len(text)):
            total -= math.log2(self.prob(text[max(0, t - n):t], text[t]))
        return total / (len(text) - 1)
