"""End to end on real data: JapaneseVowels from the aeon wheel (UEA archive, 270 train / 370 test).
The full default run (>= 0.98 for seeds 0-4) is benchmarks/classify_japanese_vowels.py; here a
shortened run guards against regressions, and the 1-NN DTW baseline must reproduce the archive's."""
import os

import numpy as np
import pytest

from lstmkit.classification import ClassifyConfig, SequenceClassifier
from lstmkit.data.sequences import read_ts
from lstmkit.training import TrainConfig

aeon = pytest.importorskip("aeon")
DATA = os.path.join(os.path.dirname(aeon.__file__), "datasets", "data", "JapaneseVowels")


@pytest.mark.slow
def test_japanese_vowels_short_run_and_dtw_baseline():
    train = read_ts(os.path.join(DATA, "JapaneseVowels_TRAIN.ts"))
    test = read_ts(os.path.join(DATA, "JapaneseVowels_TEST.ts"))
    assert (len(train), len(test), train.sequences[0].shape[1]) == (270, 370, 12)
    assert (train.lengths.min(), train.lengths.max()) == (7, 26)
    cfg = ClassifyConfig(train=TrainConfig(epochs=40, lr=1e-2, batch_size=32, restarts=1, patience=0,
                                           seed=0, progress=False))
    clf = SequenceClassifier(cfg).fit(train)
    ev = clf.evaluate(test)
    # 1-NN with dependent DTW (full window) on the raw data: 351 of 370, the 0.949 of Ruiz et al. 2021
    assert round(ev.baselines["1-NN DTW"]["accuracy"] * 370) == 351
    assert ev.metrics["accuracy"] >= 0.95          # measured 0.973 (seed 0), 0.965 (seed 1)
    assert ev.metrics["accuracy"] > ev.baselines["majority class"]["accuracy"] + 0.8
    assert np.isclose(sum(sum(r) for r in ev.metrics["confusion"]), 370)
