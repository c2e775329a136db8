"""Witten-Bell n-grams against counts done by hand, and bits per character against its definition."""
import math

import pytest

from lstmkit.errors import LstmkitError
from lstmkit.generation import CharNGram

# "abcab": unigrams a 2, b 2, c 1 (5 tokens, 3 types); "a" is followed by b twice (c(a) = 2, one
# type), "b" by c once (the final b is followed by nothing), "c" by a once.
P1 = {"a": (2 + 3 / 4) / (5 + 3), "b": (2 + 3 / 4) / (5 + 3), "c": (1 + 3 / 4) / (5 + 3),
      "z": (0 + 3 / 4) / (5 + 3)}


def test_unigram_is_counts_interpolated_with_uniform():
    m = CharNGram("abcab", 1, vocab_size=4)
    for ch, p in P1.items():
        assert m.prob("anything", ch) == pytest.approx(p)
    assert P1["a"] == pytest.approx(0.34375)


def test_bigram_matches_a_hand_count():
    m = CharNGram("abcab", 2, vocab_size=4)
    assert m.prob("a", "b") == pytest.approx((2 + 1 * P1["b"]) / (2 + 1))     # 0.78125
    assert m.prob("a", "c") == pytest.approx((0 + 1 * P1["c"]) / (2 + 1))
    assert m.prob("b", "a") == pytest.approx((0 + 1 * P1["a"]) / (1 + 1))
    assert m.prob("xb", "c") == pytest.approx((1 + 1 * P1["c"]) / (1 + 1))   # only the last char counts
    assert m.prob("z", "a") == pytest.approx(P1["a"])                        # unseen context: backs off
    assert m.prob("", "a") == pytest.approx(P1["a"])                         # no context: unigram
    assert m.prob("a", "b") == pytest.approx(0.78125)


def test_trigram_recursion_and_normalisation():
    text = "abracadabra arbadacarba"
    vocab = sorted(set(text)) + ["\ufffd"]
    m3, m2 = CharNGram(text, 3, len(vocab)), CharNGram(text, 2, len(vocab))
    # "ab" is followed by r twice (c = 2, one type): (c(ab r) + 1 * P2(r|b)) / (2 + 1)
    assert m3.prob("ab", "r") == pytest.approx((2 + m2.prob("b", "r")) / 3)
    for ctx in ("", "a", "ab", "ra", "zz", "bra"):
        for m in (m2, m3, CharNGram(text, 5, len(vocab))):
            assert sum(m.prob(ctx, ch) for ch in vocab) == pytest.approx(1.0)


def test_bits_per_char_is_its_definition():
    m = CharNGram("abcab" * 3, 3, vocab_size=4)
    held = "abca"
    want = -(math.log2(m.prob("a", "b")) + math.log2(m.prob("ab", "c")) + math.log2(m.prob("bc", "a"))) / 3
    assert m.bits_per_char(held) == pytest.approx(want)
    with pytest.raises(LstmkitError, match="at least 2"):
        m.bits_per_char("a")
    with pytest.raises(LstmkitError, match="order >= 1"):
        CharNGram("abc", 0, 4)
