"""Classification metrics and 1-NN baselines against hand-computed values and definitions."""
import numpy as np
import pytest

from lstmkit.classification import baselines as bl
from lstmkit.classification.metrics import classification_metrics, confusion_matrix
from lstmkit.errors import LstmkitError


def test_metrics_hand_computed():
    truth = ["a", "a", "a", "b", "b", "c"]
    pred = ["a", "b", "a", "b", "a", "a"]
    m = classification_metrics(truth, pred, ["a", "b", "c"])
    assert m["confusion"] == [[2, 1, 0], [1, 1, 0], [1, 0, 0]]
    assert m["accuracy"] == pytest.approx(3 / 6)
    # recall a = 2/3, b = 1/2, c = 0/1; balanced accuracy = their mean
    assert m["balanced_accuracy"] == pytest.approx((2 / 3 + 1 / 2 + 0) / 3)
    assert m["per_class"]["a"]["precision"] == pytest.approx(2 / 4)
    assert m["per_class"]["b"]["precision"] == pytest.approx(1 / 2)
    assert m["per_class"]["c"]["precision"] == 0.0                        # never predicted
    assert m["per_class"]["a"]["recall"] == pytest.approx(2 / 3)
    assert m["per_class"]["a"]["f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert m["per_class"]["c"]["support"] == 1


def test_absent_class_has_no_recall_and_is_left_out_of_balanced_accuracy():
    m = classification_metrics(["a", "a"], ["a", "b"], ["a", "b"])
    assert m["per_class"]["b"]["recall"] is None
    assert m["balanced_accuracy"] == pytest.approx(0.5)


def test_metrics_errors():
    with pytest.raises(LstmkitError, match="same 1-D shape"):
        confusion_matrix(["a"], ["a", "b"], ["a", "b"])
    with pytest.raises(LstmkitError, match="not among the classes"):
        confusion_matrix(["a"], ["z"], ["a", "b"])


def dtw_loop(a, b):
    """Textbook DTW (Sakoe & Chiba 1978) with squared Euclidean step cost, no window."""
    D = np.full((len(a) + 1, len(b) + 1), np.inf)
    D[0, 0] = 0
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            D[i, j] = ((a[i - 1] - b[j - 1]) ** 2).sum() + min(D[i - 1, j], D[i, j - 1], D[i - 1, j - 1])
    return D[-1, -1]


def test_dtw_matches_textbook_loop():
    rng = np.random.default_rng(0)
    q = [rng.normal(size=(int(rng.integers(1, 9)), 3)) for _ in range(5)]
    t = [rng.normal(size=(int(rng.integers(1, 9)), 3)) for _ in range(7)]
    ref = np.array([[dtw_loop(a, b) for b in t] for a in q])
    np.testing.assert_allclose(bl.dtw_distances(q, t, block=2), ref, rtol=1e-12)


def test_dtw_hand_example_and_euclidean():
    a, b = np.array([[0.0], [1.0], [2.0]]), np.array([[0.0], [2.0]])
    # best path: (0,0) (1,0 or 1,1) (2,1): costs 0 + 1 + 0 = 1
    assert bl.dtw_distances([a], [b])[0, 0] == pytest.approx(1.0)
    c = np.array([[1.0], [1.0], [1.0]])
    assert bl.euclidean_distances([a], [c])[0, 0] == pytest.approx(1 + 0 + 1)
    with pytest.raises(LstmkitError, match="one length"):
        bl.euclidean_distances([a], [b])


def test_nearest_neighbour_baselines():
    d = np.array([[3.0, 1.0, 1.0], [0.0, 5.0, 2.0]])
    assert list(bl.nearest_neighbour(d, ["x", "y", "z"])) == ["y", "x"]        # ties: first
    assert list(bl.majority(["a", "b", "b"], 2)) == ["b", "b"]
    steps = np.array([[0.0], [10.0]])
    assert list(bl.nearest_step(np.array([[1.0], [9.0]]), steps, ["lo", "hi"])) == ["lo", "hi"]
    tags = bl.most_frequent_label([["the", "cat"], ["the", "dog"]], [["D", "N"], ["D", "V"]],
                                  [["the", "emu"]])
    assert list(tags[0]) == ["D", "D"]      # unseen 'emu' gets the most frequent tag overall
