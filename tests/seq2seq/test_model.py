"""The encoder-decoder network and its decoding: attention weights and masks, the encoder's final
states as the decoder's start, teacher forcing equal to step-by-step decoding, beam search against
exhaustive search."""
import datetime as dt
import itertools
import pytest
import torch

from lstmkit.seq2seq import EncoderDecoder, beam_search, char_accuracy, greedy, teaching_pairs
from lstmkit.seq2seq.decoding import BOS, EOS

KINDS = [("none", False), ("luong", False), ("bahdanau", False), ("luong", True), ("bahdanau", True)]


def _net(attention, bidirectional=False, vocab=9, layers=2):
    torch.manual_seed(3)
    return EncoderDecoder(vocab, 5, 4, layers, attention, bidirectional).double().eval()


def _batch():
    src = torch.tensor([[4, 5, 6, 7, 8], [5, 4, 8, 0, 0], [6, 0, 0, 0, 0]])
    return src, torch.tensor([5, 3, 1])


@pytest.mark.parametrize("attention,bidirectional", KINDS[1:])
def test_attention_sums_to_one_over_real_steps_and_is_zero_on_padding(attention, bidirectional):
    net = _net(attention, bidirectional)
    src, lengths = _batch()
    tgt_in = torch.tensor([[BOS, 4, 5, 6], [BOS, 6, 6, 6], [BOS, 7, 8, 4]])
    logits, _, w = net.decode(tgt_in, net.encode(src, lengths))
    assert w.shape == (3, 4, 5)
    torch.testing.assert_close(w.sum(-1), torch.ones(3, 4, dtype=torch.float64))
    for k, n in enumerate(lengths.tolist()):
        assert (w[k, :, n:] == 0).all()
        assert (w[k, :, :n] > 0).all()


@pytest.mark.parametrize("attention,bidirectional", KINDS)
def test_a_padded_source_gives_what_it_gives_alone(attention, bidirectional):
    net = _net(attention, bidirectional)
    src, lengths = _batch()
    tgt_in = torch.tensor([[BOS, 4, 5], [BOS, 6, 7], [BOS, 8, 4]])
    batch, _, wb = net.decode(tgt_in, net.encode(src, lengths))
    for k, n in enumerate(lengths.tolist()):
        alone, _, wa = net.decode(tgt_in[k:k + 1], net.encode(src[k:k + 1, :n], lengths[k:k + 1]))
        torch.testing.assert_close(batch[k:k + 1], alone)
        if wb is not None:
            torch.testing.assert_close(wb[k:k + 1, :, :n], wa)


def test_the_encoders_final_states_start_the_decoder():
    net = _net("none", bidirectional=True)
    src, lengths = _batch()
    mem = net.encode(src, lengths)
    _, (h, c) = net.encoder(net.embed(src), lengths=lengths)      # (layers*2, N, H)
    for layer in range(2):
        torch.testing.assert_close(mem.state[0][layer], torch.cat([h[2 * layer], h[2 * layer + 1]], -1))
        torch.testing.assert_close(mem.state[1][layer], torch.cat([c[2 * layer], c[2 * layer + 1]], -1))
    # and the decoder really starts from them: another initial state gives other outputs
    tgt_in = torch.tensor([[BOS, 4]] * 3)
    a, _, _ = net.decode(tgt_in, mem)
    b, _, _ = net.decode(tgt_in, mem, state=tuple(torch.zeros_like(s) for s in mem.state))
    assert not torch.allclose(a, b)


@pytest.mark.parametrize("attention,bidirectional", KINDS)
def test_teacher_forcing_equals_decoding_step_by_step(attention, bidirectional):
    net = _net(attention, bidirectional)
    src, lengths = _batch()
    tgt_in = torch.tensor([[BOS, 4, 5, 6], [BOS, 6, 6, 6], [BOS, 7, 8, 4]])
    mem = net.encode(src, lengths)
    logits, _, _ = net.decode(tgt_in, mem)
    state = mem.state
    for t in range(tgt_in.shape[1]):
        logp, state, _ = net.step(tgt_in[:, t], mem, state)
        torch.testing.assert_close(logp, torch.log_softmax(logits[:, t], -1))


def _score(net, mem, tokens):
    """Sum of log-probabilities of `tokens` (emitted ids) under the model, teacher forced."""
    with torch.no_grad():
        logp = torch.log_softmax(net.decode(torch.tensor([[BOS, *tokens[:-1]]]), mem)[0], -1)[0]
    return float(sum(logp[t, tok] for t, tok in enumerate(tokens)))


@pytest.mark.parametrize("attention", ["none", "luong", "bahdanau"])
def test_beam_search_finds_what_exhaustive_search_finds(attention):
    # vocabulary: pad, unk, start, end and two characters; decoding may emit end, 4 or 5
    net = _net(attention, vocab=6, layers=1)
    max_len = 4
    for seed in range(3):
        torch.manual_seed(seed)
        for p in net.head.parameters():              # a sharper, seed-dependent output layer
            p.data.normal_(0, 3)
        src = torch.tensor([[4, 5, 5]])
        mem = net.encode(src, torch.tensor([3]))
        candidates = []
        for n in range(1, max_len + 1):
            for body in itertools.product([4, 5], repeat=n - 1):
                candidates.append([*body, EOS])                   # ends with the end token
            if n == max_len:
                candidates += [list(b) for b in itertools.product([4, 5], repeat=n)]  # cut at max_len
        scores = {tuple(c): _score(net, mem, c) for c in candidates}
        best = max(scores, key=scores.get)
        found = beam_search(net, mem, max_len, width=2 ** max_len)
        assert tuple(found.tokens) == best
        assert found.score == pytest.approx(scores[best])
        assert len(scores) == 2 ** max_len + 2 ** max_len - 1         # every hypothesis once
        # width 1 is greedy decoding
        assert beam_search(net, mem, max_len, width=1).tokens == greedy(net, mem, max_len)[0].tokens


def test_teaching_tasks_are_right_and_reproducible():
    for src, tgt in teaching_pairs("reverse", 50, 3, 9):
        assert tgt == src[::-1] and 3 <= len(src) <= 9
    for src, tgt in teaching_pairs("addition", 50, 1, 4):
        a, b = src.split("+")
        assert int(tgt) == int(a) + int(b) and len(a) <= 4
    for src, tgt in teaching_pairs("dates", 50):
        day = dt.date.fromisoformat(tgt)
        assert str(day.day) in src and (str(day.year) in src or f"{day.year % 100:02d}" in src)
    assert teaching_pairs("dates", 5, seed=1) == teaching_pairs("dates", 5, seed=1)
    assert teaching_pairs("dates", 5, seed=1) != teaching_pairs("dates", 5, seed=2)


def test_char_accuracy_by_hand():
    assert char_accuracy(["abc"], ["abd"]) == pytest.approx(2 / 3)
    assert char_accuracy(["ab", "xyz"], ["abcd", "xyz"]) == pytest.approx((2 + 3) / (4 + 3))
    assert char_accuracy(["abcd"], ["ab"]) == pytest.approx(2 / 4)
