import pytest
import torch
from torch import nn

from lstmkit.errors import LstmkitError
from lstmkit.training import EarlyStopping, Stream, TrainConfig, Windows, masked_mse, run_stream, train
from lstmkit.training.trainer import param_groups


class Tiny(nn.Module):
    """The task-model contract: model(x, state) -> (out (N, L, O), state)."""

    def __init__(self, n_in=1, n_out=1, hidden=8):
        super().__init__()
        self.lstm = nn.LSTM(n_in, hidden, batch_first=True)
        self.head = nn.Linear(hidden, n_out)

    def forward(self, x, state=None):
        h, state = self.lstm(x, state)
        return self.head(h), state


def sum_windows(n=64, length=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, length, 1, generator=g)
    return Windows(x, x.sum(dim=(1, 2))[:, None] / length)      # y (N, 1): the window mean


def test_masked_mse_ignores_nan_targets():
    pred = torch.tensor([1.0, 2.0, 3.0])
    target = torch.tensor([1.5, float("nan"), 5.0])
    assert masked_mse(pred, target).item() == pytest.approx((0.25 + 4.0) / 2)
    assert masked_mse(pred, torch.full((3,), float("nan"))).item() == 0.0


def test_param_groups_give_the_head_its_own_learning_rate():
    groups = param_groups(Tiny(), lr=1e-3, head_lr=5e-2, head="head")
    assert [g["lr"] for g in groups] == [1e-3, 5e-2]
    assert sum(p.numel() for p in groups[1]["params"]) == 8 + 1


def test_early_stopping_keeps_the_best_weights():
    model = nn.Linear(1, 1)
    stop = EarlyStopping(patience=2)
    with torch.no_grad():
        model.weight.fill_(1.0)
    assert not stop.step(0.5, model, 0)
    with torch.no_grad():
        model.weight.fill_(2.0)
    assert not stop.step(0.7, model, 1)
    assert stop.step(0.6, model, 2)                      # second epoch without improvement
    assert stop.best == 0.5 and stop.best_epoch == 0
    assert stop.best_state["weight"].item() == 1.0


def test_train_learns_and_keeps_runs_as_configured():
    data, val = sum_windows(seed=0), sum_windows(n=32, seed=1)
    cfg = TrainConfig(epochs=40, lr=2e-2, restarts=3, combine="mean", patience=0, progress=False)
    res = train(lambda: Tiny(), data, val, cfg)
    assert len(res.runs) == 3 and res.kept == [0, 1, 2]
    for run in res.runs:
        assert run.history["val"][run.best_epoch] == run.val_loss == min(run.history["val"])
        assert run.val_loss < 0.2 * run.history["val"][0]          # it learned something
    best = train(lambda: Tiny(), data, val, TrainConfig(**{**cfg.__dict__, "combine": "best"}))
    assert len(best.members) == 1
    assert best.runs[best.kept[0]].val_loss == min(r.val_loss for r in best.runs)
    # same seeds, same runs: training is reproducible
    assert [r.val_loss for r in best.runs] == pytest.approx([r.val_loss for r in res.runs])


def test_restarts_differ_by_initialisation():
    res = train(lambda: Tiny(), sum_windows(), sum_windows(n=16, seed=1),
                TrainConfig(epochs=2, restarts=2, progress=False))
    a, b = res.members
    assert not torch.equal(a["lstm.weight_hh_l0"], b["lstm.weight_hh_l0"])


def test_run_stream_in_chunks_equals_one_pass():
    torch.manual_seed(0)
    model = Tiny(2, 3)
    x = torch.randn(2, 37, 2)
    with torch.no_grad():
        full, _ = model(x)
    chunked, _ = run_stream(model, x, chunk=8)
    assert torch.allclose(full, chunked, atol=1e-6)


def test_tbptt_stops_gradients_at_chunk_borders_and_learns():
    # Target at step t is x at step t-3: needs memory across chunk borders, learnable with state carry.
    torch.manual_seed(0)
    x = torch.randn(4, 400, 1)
    y = torch.full_like(x, float("nan"))
    y[:, 3:] = x[:, :-3]
    cfg = TrainConfig(epochs=30, lr=2e-2, tbptt=20, restarts=1, patience=0, progress=False)
    res = train(lambda: Tiny(1, 1, 16), Stream(x[:, :300], y[:, :300]), Stream(x, torch.where(
        torch.arange(400)[None, :, None] >= 300, y, torch.nan)), cfg)
    hist = res.runs[0].history
    assert hist["val"][-1] < 0.3 * hist["val"][0]


def test_tbptt_backward_never_reaches_earlier_chunks(monkeypatch):
    seen = []
    real = torch.Tensor.backward

    def spy(loss, *a, **k):
        seen.append(loss.grad_fn is not None)
        return real(loss, *a, **k)

    class Recorder(Tiny):
        def forward(self, x, state=None):
            if state is not None:
                assert not state[0].requires_grad, "state entering a chunk must be detached"
            return super().forward(x, state)

    monkeypatch.setattr(torch.Tensor, "backward", spy)
    x = torch.randn(1, 50, 1)
    train(lambda: Recorder(), Stream(x, x.clone()), None,
          TrainConfig(epochs=1, tbptt=10, restarts=1, progress=False))
    assert seen == [True] * 5                              # one update per chunk of 10 steps


def test_config_errors_name_the_field():
    with pytest.raises(LstmkitError, match="combine must be 'best' or 'mean', got 'avg'"):
        TrainConfig(combine="avg").check()
    with pytest.raises(LstmkitError, match="learning rates must be > 0"):
        TrainConfig(lr=0).check()


def test_divergence_is_reported():
    class Boom(Tiny):
        def forward(self, x, state=None):
            out, state = super().forward(x, state)
            return out * float("nan"), state
    with pytest.raises(LstmkitError, match="training diverged"):
        train(lambda: Boom(), sum_windows(), None, TrainConfig(epochs=3, restarts=2, progress=False))


def test_masked_cross_entropy_skips_missing_targets():
    from lstmkit.training import masked_cross_entropy
    logits = torch.randn(2, 3, 5, requires_grad=True)
    target = torch.tensor([[[1.0], [4.0], [float("nan")]], [[0.0], [float("nan")], [float("nan")]]])
    want = torch.nn.functional.cross_entropy(logits[[0, 0, 1], [0, 1, 0]], torch.tensor([1, 4, 0]))
    torch.testing.assert_close(masked_cross_entropy(logits, target), want)
    empty = masked_cross_entropy(logits, torch.full((2, 3, 1), float("nan")))
    assert empty.item() == 0 and empty.requires_grad


def test_windows_with_a_tuple_x_keep_rows_together():
    """Tuple inputs (an encoder-decoder's source, lengths, decoder input) are batched row by row."""
    class Pick(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.head = torch.nn.Linear(1, 1)

        def forward(self, x, state=None):
            a, b = x
            assert torch.equal(a, b * 2)                 # rows of a and b stay aligned
            return self.head(a[:, :, None]), None

    a = torch.arange(40.0).view(10, 4)
    data = Windows((a, a / 2), a[:, :, None] * 3)
    result = train(Pick, data, None, TrainConfig(epochs=20, lr=0.05, batch_size=3, restarts=1,
                                                 progress=False))
    assert result.runs[0].history["train"][-1] < result.runs[0].history["train"][0]


@pytest.mark.parametrize("field, value, words", [
    ("lr", float("nan"), "learning rates must be > 0 and finite"),
    ("lr", float("inf"), "learning rates must be > 0 and finite"),
    ("head_lr", float("nan"), "learning rates must be > 0 and finite"),
    ("weight_decay", float("inf"), "weight_decay must be >= 0 and finite"),
    ("weight_decay", float("nan"), "weight_decay must be >= 0 and finite"),
    ("clip_norm", float("nan"), "clip_norm"),
    ("min_delta", float("nan"), "min_delta must be finite"),
])
def test_non_finite_numbers_are_refused_before_training(field, value, words):
    """`lstmkit classify --lr nan` (or --weight-decay inf) trained and then said 'training diverged:
    ... lower the learning rate'; a value that cannot work is refused up front, naming the field."""
    with pytest.raises(LstmkitError, match=words):
        TrainConfig(**{field: value}).check()
