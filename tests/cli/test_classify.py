"""`lstmkit classify` end to end on small hand-made files (.ts, long CSV, text, per-step), and bad
input: exit code 2 and one line."""
import json

import numpy as np
import pandas as pd
import pytest

from lstmkit.classification import SequenceClassifier
from lstmkit.cli.main import main

FAST = ["--epochs", "4", "--restarts", "1", "--hidden", "4", "--patience", "0"]


def ts_file(path, n, seed):
    """Two classes of 2-channel sequences of lengths 3-6: rising or falling first channel."""
    rng = np.random.default_rng(seed)
    lines = ["@problemName Toy", "@univariate false", "@dimensions 2", "@equalLength false",
             "@classLabel true up down", "@data"]
    for i in range(n):
        L = int(rng.integers(3, 7))
        a = np.arange(L) * (1 if i % 2 else -1) + 0.1 * rng.normal(size=L)
        b = rng.normal(size=L)
        lines.append(",".join(f"{v:.3f}" for v in a) + ":" + ",".join(f"{v:.3f}" for v in b)
                     + ":" + ("up" if i % 2 else "down"))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_classify_ts_writes_every_output(tmp_path, capsys):
    train, test = ts_file(tmp_path / "Toy_TRAIN.ts", 16, 0), ts_file(tmp_path / "Toy_TEST.ts", 8, 1)
    out = tmp_path / "out"
    assert main(["classify", str(train), "--test", str(test), "--out", str(out), *FAST]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["confusion.png", "metrics.json", "model",
                                                     "predictions.csv"]
    assert (out / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    m = json.loads((out / "metrics.json").read_text())
    assert set(m["per_class"]) == {"down", "up"} and m["n_sequences"] == 8
    assert set(m["baselines"]) == {"majority class", "1-NN DTW"}
    assert {"accuracy", "balanced_accuracy", "confusion", "seconds"} <= set(m)
    pred = pd.read_csv(out / "predictions.csv")
    assert list(pred.columns) == ["id", "label", "predicted", "p_down", "p_up"] and len(pred) == 8
    assert m["accuracy"] == pytest.approx((pred["label"] == pred["predicted"]).mean())
    clf = SequenceClassifier.load(out / "model")
    assert list(clf.predict(str(test))) == list(pred["predicted"])
    printed = capsys.readouterr().out
    assert "1-NN DTW" in printed and "LSTM" in printed


def test_classify_csv_long_with_holdout(tmp_path):
    rng = np.random.default_rng(0)
    rows = [{"seq": s, "t": t, "x": float(rng.normal() + (s % 2)), "label": "ab"[s % 2]}
            for s in range(12) for t in range(int(rng.integers(2, 5)))]
    pd.DataFrame(rows).sample(frac=1, random_state=0).to_csv(tmp_path / "l.csv", index=False)
    out = tmp_path / "out"
    assert main(["classify", str(tmp_path / "l.csv"), "--id-col", "seq", "--time-col", "t",
                 "--out", str(out), "--baseline", "dtw", "--pooling", "attention", *FAST]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["n_sequences"] == 4 and m["n_train"] == 8          # 25% of each class held out
    assert m["config"]["pooling"] == "attention"


def test_classify_text_and_per_step_tokens(tmp_path):
    texts = pd.DataFrame({"review": ["good film", "bad film", "great fun", "awful plot"] * 4,
                          "sentiment": ["pos", "neg", "pos", "neg"] * 4})
    texts.to_csv(tmp_path / "reviews.csv", index=False)
    out = tmp_path / "text"
    assert main(["classify", str(tmp_path / "reviews.csv"), "--text-col", "review", "--label-col",
                 "sentiment", "--tokens", "char", "--input", "onehot", "--out", str(out), *FAST]) == 0
    assert json.loads((out / "model" / "preprocess.json").read_text())["vocabulary"]["level"] == "char"
    tags = pd.DataFrame({"sent": [1, 1, 2, 2, 2, 3, 3] * 3, "word": ["the", "cat", "a", "dog", "runs",
                                                                      "cats", "sleep"] * 3,
                         "tag": ["D", "N", "D", "N", "V", "N", "V"] * 3})
    tags["sent"] = tags["sent"] + np.repeat([0, 10, 20], 7)
    tags.to_csv(tmp_path / "tags.csv", index=False)
    out = tmp_path / "tags"
    assert main(["classify", str(tmp_path / "tags.csv"), "--id-col", "sent", "--text-col", "word",
                 "--label-col", "tag", "--per-step", "--out", str(out), *FAST]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["per_step"] and set(m["baselines"]) == {"most frequent label"}
    pred = pd.read_csv(out / "predictions.csv")
    assert list(pred.columns[:4]) == ["id", "step", "label", "predicted"]
    assert len(pred) == m["n_predictions"]


@pytest.mark.parametrize("content, args, message", [
    ("@data\n1,2:a\n", [], "@classLabel"),
    ("@classLabel true a b\n@data\n1,x:a\n", [], "expected numbers"),
    (None, [], "file not found"),
    ("a,b\n1,2\n", [], "label column 'label' not found"),
    ("label,t0\na,1\nb,2\n", ["--hidden", "0"], "hidden must be >= 1"),
    ("label,t0\na,1\nb,2\n", ["--holdout", "1.5"], "--holdout must be in (0, 1)"),
    # one sequence per class: nothing can be held out; was a training run, then "no sequences given"
    ("label,t0\na,1\nb,2\n", ["--epochs", "1"], "no sequence can be held out"),
])
def test_classify_bad_input_one_line_exit_2(tmp_path, capsys, content, args, message):
    path = tmp_path / ("bad.ts" if content and content.startswith("@") else "bad.csv")
    if content is not None:
        path.write_text(content)
    assert main(["classify", str(path), "--out", str(tmp_path / "o"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err


@pytest.mark.parametrize("name, content", [
    ("metrics.json", '{"mine": 1}\n'),
    ("predictions.csv", "my,table\n1,2\n"),
    ("confusion.png", "not lstmkit's picture"),
    ("model/notes.txt", "mine"),
])
def test_classify_out_keeps_files_it_did_not_write(tmp_path, capsys, monkeypatch, name, content):
    """classify replaced a user's metrics.json / predictions.csv in --out without a word, and found a
    foreign model/ folder only after training (having written the other outputs beside it). As the
    README says, --out is checked before training and only lstmkit's own outputs are replaced."""
    import lstmkit.classification.classifier as mod

    train = ts_file(tmp_path / "Toy_TRAIN.ts", 16, 0)
    out = tmp_path / "out"
    (out / "model").mkdir(parents=True)
    (out / name).write_text(content)
    monkeypatch.setattr(mod.SequenceClassifier, "fit", lambda *a, **k: pytest.fail("trained"))
    assert main(["classify", str(train), "--out", str(out), *FAST]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --out ") and ("lstmkit did not write" in err or "not written by" in err)
    assert (out / name).read_text() == content
    assert sorted(p.name for p in out.iterdir()) == sorted({"model", name.split("/")[0]})


def test_classify_out_replaces_its_own_outputs(tmp_path):
    train = ts_file(tmp_path / "Toy_TRAIN.ts", 16, 0)
    out = tmp_path / "out"
    assert main(["classify", str(train), "--out", str(out), *FAST]) == 0
    assert main(["classify", str(train), "--out", str(out), *FAST, "--per-step"]) == 2  # unrelated error
    assert main(["classify", str(train), "--out", str(out), *FAST, "--seed", "1"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["confusion.png", "metrics.json", "model",
                                                     "predictions.csv"]


def test_predict_with_a_saved_classifier(tmp_path, capsys):
    """`lstmkit predict --model DIR FILE` labels sequences with a classifier trained by `lstmkit
    classify`: the same labels and probabilities as classify's predictions.csv (FILE's own labels are
    not used); refused cleanly without a FILE or with --horizon."""
    train, test = ts_file(tmp_path / "Toy_TRAIN.ts", 16, 0), ts_file(tmp_path / "Toy_TEST.ts", 8, 1)
    out = tmp_path / "out"
    assert main(["classify", str(train), "--test", str(test), "--out", str(out), *FAST]) == 0
    capsys.readouterr()
    assert main(["predict", "--model", str(out / "model"), str(test), "-o", str(tmp_path / "p.csv")]) == 0
    got = pd.read_csv(tmp_path / "p.csv")
    want = pd.read_csv(out / "predictions.csv")
    assert list(got.columns) == ["id", "predicted", "p_down", "p_up"]
    assert list(got["predicted"]) == list(want["predicted"])
    np.testing.assert_allclose(got[["p_down", "p_up"]], want[["p_down", "p_up"]], atol=1e-6)
    assert main(["predict", "--model", str(out / "model")]) == 2
    assert "is a classifier: give the sequences to label" in capsys.readouterr().err
    assert main(["predict", "--model", str(out / "model"), str(test), "--horizon", "3"]) == 2
    assert "--horizon is for forecasters" in capsys.readouterr().err


def test_predict_reads_an_unlabelled_ts_file(tmp_path, capsys):
    """New sequences in .ts form carry no labels (`@classLabel false`): predict labels them as it
    labels the same cases with labels."""
    train, test = ts_file(tmp_path / "Toy_TRAIN.ts", 16, 0), ts_file(tmp_path / "Toy_TEST.ts", 8, 1)
    out = tmp_path / "out"
    assert main(["classify", str(train), "--test", str(test), "--out", str(out), *FAST]) == 0
    lines = test.read_text().splitlines()
    new = [("@classLabel false" if l.startswith("@classLabel") else
            l.rsplit(":", 1)[0] if l and not l.startswith("@") else l) for l in lines]
    (tmp_path / "new.ts").write_text("\n".join(new) + "\n")
    for f, name in ((test, "a.csv"), (tmp_path / "new.ts", "b.csv")):
        assert main(["predict", "--model", str(out / "model"), str(f), "-o", str(tmp_path / name)]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "a.csv"), pd.read_csv(tmp_path / "b.csv"))
    capsys.readouterr()
    assert main(["classify", str(tmp_path / "new.ts"), "--out", str(tmp_path / "o2"), *FAST]) == 2
    assert "labels are needed" in capsys.readouterr().err
