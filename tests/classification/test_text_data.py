"""Text classification on real data: the bundled Rotten Tomatoes snippets, and the naive Bayes
baseline reported beside the LSTM, checked against scikit-learn's MultinomialNB."""
import json

import numpy as np
import pytest

from lstmkit.classification.baselines import naive_bayes
from lstmkit.cli.main import main
from lstmkit.data import ROTTEN_TOMATOES_CSV, bundled_file, rotten_tomatoes
from lstmkit.data.text import tokenize
from lstmkit.errors import LstmkitError


def test_bundled_rotten_tomatoes():
    d = rotten_tomatoes()
    assert list(d.columns) == ["text", "label", "movie"]
    assert len(d) == 4866 and d["label"].value_counts().to_dict() == {"fresh": 2455, "rotten": 2411}
    assert d["movie"].nunique() == 156 and d["text"].str.len().min() > 0
    assert bundled_file(ROTTEN_TOMATOES_CSV).is_file()
    with pytest.raises(LstmkitError, match="not 'imdb.csv'"):
        bundled_file("imdb.csv")


def test_naive_bayes_matches_scikit_learn():
    sklearn = pytest.importorskip("sklearn")
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.naive_bayes import MultinomialNB
    d = rotten_tomatoes().sample(1200, random_state=0)
    tokens = [tokenize(t) for t in d["text"]]
    labels = d["label"].tolist()
    train, test = slice(0, 900), slice(900, None)
    ours = naive_bayes(tokens[train], labels[train], tokens[test])
    vec = CountVectorizer(analyzer=lambda ts: ts)                    # the same tokens
    nb = MultinomialNB(alpha=1.0).fit(vec.fit_transform(tokens[train]), labels[train])
    theirs = nb.predict(vec.transform(tokens[test]))
    assert sklearn.__version__ and list(ours) == list(theirs)
    assert np.mean(ours == np.asarray(labels[test])) > 0.65          # polarity is learnable from words


@pytest.mark.slow
def test_classify_cli_on_real_text(tmp_path):
    """`lstmkit classify` on 1,500 real snippets: the report carries the LSTM beside naive Bayes and
    the majority class, and the LSTM beats the majority class clearly."""
    d = rotten_tomatoes().sample(1500, random_state=1)[["text", "label"]]
    d.to_csv(tmp_path / "reviews.csv", index=False)
    out = tmp_path / "out"
    assert main(["classify", str(tmp_path / "reviews.csv"), "--text-col", "text", "--label-col", "label",
                 "--out", str(out), "--restarts", "1", "--epochs", "4", "--hidden", "32",
                 "--embed-dim", "32", "--min-count", "3"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert set(m["baselines"]) == {"majority class", "naive Bayes"}
    assert m["baselines"]["majority class"]["accuracy"] == pytest.approx(0.5, abs=0.02)
    assert m["accuracy"] > 0.6 and m["baselines"]["naive Bayes"]["accuracy"] > 0.62     # measured 0.635, 0.656
