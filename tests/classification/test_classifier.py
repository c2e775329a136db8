"""SequenceClassifier: learns easy problems from numbers and text, lengths never leak padding,
save/load gives identical predictions, per-step labelling, class weights, errors."""
import json

import numpy as np
import pytest
import torch

from lstmkit.classification import ClassifyConfig, SequenceClassifier
from lstmkit.classification.classifier import stratified_split
from lstmkit.data.sequences import SequenceSet
from lstmkit.errors import LstmkitError
from lstmkit.training import TrainConfig


def quick(**kw) -> ClassifyConfig:
    train = TrainConfig(epochs=kw.pop("epochs", 25), lr=0.02, batch_size=16, patience=0,
                        restarts=kw.pop("restarts", 1),
                        combine="mean", seed=0, progress=False)
    return ClassifyConfig(hidden=8, train=train, dropout=0.0, **kw)


def waves(n=40, seed=0):
    """Class 'slow' / 'fast': a sine of low or high frequency, lengths 4-12, 2 channels."""
    rng = np.random.default_rng(seed)
    seqs, labels = [], []
    for i in range(n):
        fast = i % 2
        L = int(rng.integers(4, 13))
        t = np.arange(L)
        a = np.sin(t * (2.5 if fast else 0.3) + rng.uniform(0, 1))
        seqs.append(np.stack([a, 0.1 * rng.normal(size=L)], axis=1))
        labels.append("fast" if fast else "slow")
    return seqs, labels


@pytest.fixture(scope="module")
def fitted():
    torch.set_num_threads(1)
    seqs, labels = waves()
    return SequenceClassifier(quick(restarts=2)).fit(seqs, labels), seqs, labels


def test_learns_and_reports(fitted):
    clf, seqs, labels = fitted
    test_seqs, test_labels = waves(20, seed=1)
    ev = clf.evaluate(test_seqs, test_labels)
    assert ev.metrics["accuracy"] >= 0.9
    assert set(ev.baselines) == {"majority class", "1-NN DTW"}       # unequal lengths: no Euclidean
    assert ev.baselines["majority class"]["accuracy"] == 0.5
    frame = ev.frame()
    assert list(frame.columns) == ["id", "label", "predicted", "p_fast", "p_slow"]
    np.testing.assert_allclose(frame[["p_fast", "p_slow"]].sum(1), 1.0, rtol=1e-6)
    assert (frame["predicted"].to_numpy() == clf.predict(test_seqs)).all()


def test_padded_array_with_lengths_equals_list_and_ignores_padding(fitted):
    clf, seqs, _ = fitted
    L = max(len(s) for s in seqs)
    lengths = np.array([len(s) for s in seqs])
    for pad_value in (1e9, np.nan):
        x = np.full((len(seqs), L, 2), pad_value)
        for i, s in enumerate(seqs):
            x[i, :len(s)] = s
        np.testing.assert_array_equal(clf.predict_proba(x, lengths=lengths), clf.predict_proba(seqs))
    with pytest.raises(LstmkitError, match="NaN or infinite value inside"):
        clf.predict(x)                                               # no lengths: the padding is data


def test_save_load_identical(fitted, tmp_path):
    clf, seqs, _ = fitted
    clf.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "config.json").read_text())
    assert meta["task"] == "classifier" and meta["classes"] == ["fast", "slow"]
    back = SequenceClassifier.load(tmp_path / "m")
    np.testing.assert_array_equal(back.predict_proba(seqs), clf.predict_proba(seqs))
    assert len(back.models) == 2
    ev = back.evaluate(seqs, [str(l) for l in clf.predict(seqs)])
    assert ev.metrics["accuracy"] == 1.0 and ev.baselines == {} and "loaded model" in ev.notes[0]


@pytest.mark.parametrize("edit, says", [
    (lambda m: m["config"].update(pooling="bogus"), "pooling must be one of"),
    (lambda m: m["config"].update(hidden="x"), "not supported between"),
    (lambda m: m.update(config=[1]), "is not valid"),
    (lambda m: m.update(task="seq2seq"), "it holds a 'seq2seq' model, not a classifier"),
])
def test_a_signed_but_invalid_config_is_refused_with_the_folder_named(fitted, tmp_path, edit, says,
                                                                     rewrite_config):
    clf, _, _ = fitted
    clf.save(tmp_path / "m")
    rewrite_config(tmp_path / "m", edit)
    with pytest.raises(LstmkitError, match=says) as e:
        SequenceClassifier.load(tmp_path / "m")
    assert str(tmp_path / "m") in str(e.value)


def test_gate_view(fitted):
    clf, seqs, _ = fitted
    layer, x, steps = clf.gate_view()
    assert layer is clf.models[0].lstm
    assert x.shape == (1, len(seqs[0]), 2) and steps == [str(i) for i in range(len(seqs[0]))]
    np.testing.assert_allclose(x[0].numpy(), clf.scaler.transform(seqs[0]), rtol=1e-5, atol=1e-6)
    layer, x, steps = clf.gate_view(np.zeros((3, 2)))
    assert x.shape == (1, 3, 2)


def test_damaged_folder_refused(fitted, tmp_path):
    clf, _, _ = fitted
    clf.save(tmp_path / "m")
    (tmp_path / "m" / "weights.safetensors").write_bytes(b"garbage")
    with pytest.raises(LstmkitError, match="SHA-256"):
        SequenceClassifier.load(tmp_path / "m")


def test_text_word_and_char_with_oov(tmp_path):
    pos = ["good film", "great acting", "good fun", "great story"]
    neg = ["bad film", "awful acting", "bad fun", "awful story"]
    texts = pos * 5 + neg * 5
    labels = ["pos"] * 20 + ["neg"] * 20
    for tokens, inp in (("word", "embedding"), ("char", "onehot")):
        clf = SequenceClassifier(quick(tokens=tokens, input=inp, embed_dim=8)).fit(texts, labels)
        assert clf.vocab.tokens[:2] == ["<pad>", "<unk>"]
        assert list(clf.predict(["Good story", "AWFUL film"])) == ["pos", "neg"]
        assert clf.vocab.encode("zzzz qqq") == ([1, 1] if tokens == "word" else [1] * 4 + [clf.vocab.index[" "]] + [1] * 3)  # OOV
        clf.save(tmp_path / tokens)
        back = SequenceClassifier.load(tmp_path / tokens)
        np.testing.assert_array_equal(back.predict_proba(["good zebra", "bad"]),
                                      clf.predict_proba(["good zebra", "bad"]))
        layer, x, steps = back.gate_view("good film")
        assert steps == (["good", "film"] if tokens == "word" else list("good film"))
        assert x.shape == (1, len(steps), 8 if inp == "embedding" else len(back.vocab))


def test_per_step_tagging_uses_context():
    """Tag each step 'after' if a 1 occurred at or before it, else 'before': the label depends on
    the past, which the per-step 1-NN baseline (no context) cannot see."""
    rng = np.random.default_rng(0)
    seqs, tags = [], []
    for _ in range(60):
        L = int(rng.integers(3, 10))
        v = np.zeros(L)
        v[int(rng.integers(0, L))] = 1.0
        seqs.append(v[:, None] + 0.01 * rng.normal(size=(L, 1)))
        seen = np.cumsum(v) > 0
        tags.append(np.where(seen, "after", "before"))
    clf = SequenceClassifier(quick(per_step=True, epochs=40)).fit(seqs[:40], tags[:40])
    pred = clf.predict(seqs[40:])
    assert [len(p) for p in pred] == [len(s) for s in seqs[40:]]
    ev = clf.evaluate(seqs[40:], tags[40:])
    assert ev.per_step and ev.metrics["accuracy"] >= 0.95
    assert ev.baselines["per-step 1-NN"]["accuracy"] < ev.metrics["accuracy"]
    assert len(ev.frame()) == sum(len(s) for s in seqs[40:])


def test_balanced_class_weights():
    clf = SequenceClassifier(quick(class_weights="balanced"))
    clf.classes = ["a", "b"]
    w = clf._class_weights(np.array(["a", "a", "a", "b"], dtype=object))
    torch.testing.assert_close(w, torch.tensor([4 / 6, 4 / 2]))
    clf.config.class_weights = [1.0]
    with pytest.raises(LstmkitError, match="expected 2 weights"):
        clf._class_weights(np.array(["a", "b"], dtype=object))


def test_stratified_split_keeps_each_class():
    s = SequenceSet([np.zeros((1, 1))] * 10, np.array(["a"] * 8 + ["b"] * 2, dtype=object))
    keep, held = stratified_split(s, 0.25, seed=0)
    assert sorted([*keep, *held]) == list(range(10))
    assert (s.labels[held] == "a").sum() == 2 and (s.labels[held] == "b").sum() == 1


@pytest.mark.parametrize("call, message", [
    (lambda c: c.fit([np.zeros((3, 1))] * 4, ["a"] * 4), "at least 2 classes"),
    (lambda c: c.fit([np.zeros((3, 1)), np.zeros((3, 2))], ["a", "b"]), "same number of channels"),
    (lambda c: c.fit([np.zeros((3, 1))] * 2, ["a"]), "expected 2 labels"),
    (lambda c: c.fit(np.zeros((2, 3, 1)), ["a", "b"], lengths=[0, 3]), "lengths must be"),
    (lambda c: c.predict([np.zeros((3, 1))]), "not fitted"),
    (lambda c: c.fit([np.zeros((3, 1))] * 2), "labels are needed"),
    (lambda c: c.fit(42, [1]), "expected sequences"),
])
def test_errors(call, message):
    with pytest.raises(LstmkitError, match=message):
        call(SequenceClassifier(quick()))


@pytest.mark.parametrize("call, message", [
    # NaN inside a training sequence was reported as "values too large to scale ... rescale the data"
    (lambda c: c.fit([np.array([[1.0], [np.nan]]), np.ones((3, 1))] * 2, ["a", "b"] * 2),
     r"sequence 0: NaN or infinite value inside the sequence"),
    (lambda c: c.fit([np.array([[np.inf], [1.0]]), np.ones((3, 1))] * 2, ["a", "b"] * 2),
     r"sequence 0: NaN or infinite value inside the sequence"),
    # a missing label became a class named 'nan' / 'None' (the CLI refuses an empty label cell)
    (lambda c: c.fit([np.zeros((3, 1))] * 4, ["a", np.nan, "b", "a"]), r"label 1 is missing"),
    (lambda c: c.fit(["good", "bad", "fine"], ["pos", None, "neg"]), r"label 1 is missing"),
    (lambda c: c.fit([np.zeros((2, 1))] * 2, [["a", None], ["b", "a"]]), r"sequence 0: label 1 is missing"),
])
def test_bad_values_are_named_before_training(call, message):
    with pytest.raises(LstmkitError, match=message):
        call(SequenceClassifier(quick(per_step="sequence 0" in message and "label" in message)))


def test_numeric_labels_are_in_numeric_order():
    """Labels 1..10 (PickupGestureWiimoteZ, many UCR sets) were ordered '1', '10', '2', ...: the
    probability columns, the confusion matrix and, worse, --class-weights ('one weight per class in
    sorted label order') followed that order, so the weight meant for class 2 went to class 10."""
    seqs = [np.full((3, 1), float(i % 3)) for i in range(9)]
    labels = [["1", "2", "10"][i % 3] for i in range(9)]
    clf = SequenceClassifier(quick(epochs=1, class_weights=[1.0, 2.0, 3.0])).fit(seqs, labels)
    assert clf.classes == ["1", "2", "10"]
    assert clf._class_weights(np.array(labels, dtype=object)).tolist() == [1.0, 2.0, 3.0]
    # mixed labels keep the plain string order
    clf = SequenceClassifier(quick(epochs=1)).fit(seqs, [["b", "10", "a2"][i % 3] for i in range(9)])
    assert clf.classes == ["10", "a2", "b"]


def test_onehot_prediction_is_chunked_by_size(monkeypatch):
    """With --input onehot each step is a vocabulary-wide vector: 512 texts of Rotten Tomatoes at once
    (12,081 words, 63 tokens) took over 4 GB at prediction. The chunks now hold a bounded number of
    one-hot values, and the predictions do not change."""
    import lstmkit.classification.classifier as mod

    texts = [" ".join(f"w{(i * 7 + j) % 40}" for j in range(3 + i % 5)) for i in range(24)]
    labels = ["a" if i % 2 else "b" for i in range(24)]
    clf = SequenceClassifier(quick(epochs=1, input="onehot")).fit(texts, labels)
    whole = clf.predict_proba(texts)
    seen = []
    clf.models[0].lstm.register_forward_hook(lambda m, args, out: seen.append(args[0].numel()))
    monkeypatch.setattr(mod, "_ONEHOT_VALUES", 600)
    np.testing.assert_allclose(clf.predict_proba(texts), whole, rtol=1e-6, atol=1e-7)
    assert len(seen) > 1 and max(seen) <= 600


def test_integer_labels_come_back_as_integers(tmp_path):
    """fit(X, y) with integer labels: predict() returns int64 labels (as scikit-learn does), so that
    `(clf.predict(X) == y).mean()` is the accuracy; saved and loaded models keep it."""
    seqs, labels = waves(n=24)
    y = np.array([10 if v == "fast" else 2 for v in labels])          # numeric order: 2 before 10
    clf = SequenceClassifier(quick(epochs=15)).fit(seqs, y)
    assert clf.classes == ["2", "10"]
    pred = clf.predict(seqs)
    assert pred.dtype == np.int64 and set(pred) <= {2, 10}
    assert (pred == y).mean() == clf.evaluate(seqs, y, baselines=False).metrics["accuracy"]
    clf.save(tmp_path / "m")
    back = SequenceClassifier.load(tmp_path / "m")
    np.testing.assert_array_equal(back.predict(seqs), pred)
    assert SequenceClassifier(quick(epochs=1)).fit(seqs, labels).predict(seqs[:2]).dtype == object
