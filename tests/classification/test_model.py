"""LSTMClassifier: padding never reaches a result, pooling matches its definition on the unpadded
sequence, and the trainer's class-index / lengths path."""
import math

import pytest
import torch

from lstmkit.classification.model import LSTMClassifier
from lstmkit.training import TrainConfig, Windows, cross_entropy, train

LENGTHS = torch.tensor([5, 2, 7, 1])


def batch(f=3, value=float("nan")):
    torch.manual_seed(1)
    x = torch.randn(4, 7, f)
    for i, n in enumerate(LENGTHS):
        x[i, n:] = value                      # padding: NaN or garbage
    return x


@pytest.mark.parametrize("pooling", ["last", "mean", "attention"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("preset", [None, "V"])
def test_padding_never_changes_the_result(pooling, bidirectional, preset):
    torch.manual_seed(0)
    m = LSTMClassifier(3, 4, 8, num_layers=2, bidirectional=bidirectional, pooling=pooling,
                       preset=preset).eval()
    with torch.no_grad():
        nan_pad, _ = m(batch(value=float("nan")), lengths=LENGTHS)
        junk_pad, _ = m(batch(value=1e6), lengths=LENGTHS)
        x = batch()
        alone = torch.cat([m(x[i:i + 1, :n], lengths=torch.tensor([n]))[0] for i, n in enumerate(LENGTHS)])
    assert torch.isfinite(nan_pad).all()
    torch.testing.assert_close(nan_pad, junk_pad, rtol=0, atol=0)
    torch.testing.assert_close(nan_pad, alone, rtol=1e-5, atol=1e-6)


def test_pooling_definitions():
    """last = [forward h after the last real step, backward h at step 0]; mean = mean over real steps;
    attention = softmax-weighted sum of the real steps."""
    torch.manual_seed(0)
    m = LSTMClassifier(3, 2, 5, bidirectional=True, pooling="last").eval()
    x = batch()[1:2, :2]                                   # one sequence of 2 steps
    with torch.no_grad():
        h, _ = m.lstm(x)                                    # (1, 2, 10) unpadded
        state = m.lstm(x)[1]
        mask = torch.ones(1, 2, dtype=torch.bool)
        n = torch.tensor([2])
        last = m.pool(h, state, mask, n)
        torch.testing.assert_close(last, torch.cat([h[0, -1, :5], h[0, 0, 5:]])[None])
        m.pooling = "mean"
        torch.testing.assert_close(m.pool(h, state, mask, n), h.mean(1))
    a = LSTMClassifier(3, 2, 5, bidirectional=False, pooling="attention").eval()
    with torch.no_grad():
        h, state = a.lstm(x)
        w = torch.softmax(a.attn(h).squeeze(-1), dim=1)
        torch.testing.assert_close(a.pool(h, state, mask, n), (w[..., None] * h).sum(1))
        torch.testing.assert_close(w.sum(), torch.tensor(1.0))


def test_per_step_and_token_inputs():
    torch.manual_seed(0)
    ids = torch.tensor([[2, 3, 4], [5, 0, 0]])
    lengths = torch.tensor([3, 1])
    for inp in ("embedding", "onehot"):
        m = LSTMClassifier(0, 3, 6, vocab_size=7, input=inp, embed_dim=4, per_step=True).eval()
        with torch.no_grad():
            out, _ = m(ids, lengths=lengths)
            garbage = ids.clone()
            garbage[1, 1:] = 6                              # other ids in the padding
            out2, _ = m(garbage, lengths=lengths)
        assert out.shape == (2, 3, 3)
        torch.testing.assert_close(out[0], out2[0])
        torch.testing.assert_close(out[1, :1], out2[1, :1])
        if inp == "onehot":
            enc = m.encode(ids, torch.tensor([[True] * 3, [True, False, False]]))
            assert enc.shape == (2, 3, 7) and enc[0, 1, 3] == 1 and enc[1, 1:].abs().sum() == 0


def test_cross_entropy_ignores_padding_and_weights_classes():
    logits = torch.tensor([[[2.0, 0.0], [0.0, 1.0]]])       # (1, 2, 2)
    target = torch.tensor([[0, -100]])
    expected = -math.log(math.exp(2) / (math.exp(2) + 1))
    assert abs(cross_entropy()(logits, target).item() - expected) < 1e-6
    t2 = torch.tensor([[0, 1]])
    w = torch.tensor([1.0, 3.0])
    l0, l1 = expected, -math.log(math.exp(1) / (1 + math.exp(1)))
    assert abs(cross_entropy(w)(logits, t2).item() - (l0 + 3 * l1) / 4) < 1e-6


def test_trainer_passes_lengths_and_class_indices():
    """The shared trainer learns a class from the real steps only (the sign of the mean of the
    first channel), with NaN padding, without a second loop."""
    torch.manual_seed(0)
    n, steps = 64, 6
    lengths = torch.randint(1, steps + 1, (n,))
    x = torch.randn(n, steps, 1)
    y = torch.tensor([int(x[i, :k, 0].mean() > 0) for i, k in enumerate(lengths)])
    for i, k in enumerate(lengths):
        x[i, k:] = float("nan")
    build = lambda: LSTMClassifier(1, 2, 8, bidirectional=False, pooling="mean")
    res = train(build, Windows(x, y, lengths), None, TrainConfig(epochs=60, lr=0.02, batch_size=16,
                                                                 restarts=1, patience=0, progress=False),
                loss_fn=cross_entropy())
    m = build()
    m.load_state_dict(res.members[0])
    m.eval()
    with torch.no_grad():
        acc = (m(x, lengths=lengths)[0].argmax(1) == y).float().mean().item()
    assert all(math.isfinite(v) for v in res.runs[0].history["train"])
    assert acc >= 0.9
