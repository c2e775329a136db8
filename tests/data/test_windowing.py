import numpy as np
import pytest

from lstmkit.data import inputs_at, targets_at, time_split, windows
from lstmkit.errors import LstmkitError


def test_windows_match_hand_written_expectation():
    x = np.arange(10, dtype=float)[:, None] * 10      # (10, 1): 0, 10, ..., 90
    y = np.arange(10, dtype=float)[:, None]           # (10, 1): 0 .. 9
    xs, ys = windows(x, y, lookback=3, horizon=2, origins=np.array([2, 5, 7]))
    assert xs.shape == (3, 3, 1) and ys.shape == (3, 2, 1)
    assert xs[:, :, 0].tolist() == [[0, 10, 20], [30, 40, 50], [50, 60, 70]]
    assert ys[:, :, 0].tolist() == [[3, 4], [6, 7], [8, 9]]


def test_windows_reject_origins_outside_the_series():
    x = y = np.zeros((10, 1))
    with pytest.raises(LstmkitError, match=r"targets of 2 steps need origins in \[-1, 7\], got \[8, 8\]"):
        windows(x, y, lookback=3, horizon=2, origins=np.array([8]))
    with pytest.raises(LstmkitError, match=r"input windows of 3 steps need origins in \[2, 9\], got \[1, 1\]"):
        inputs_at(x, 3, np.array([1]))


def test_inputs_at_the_last_step_for_forecasting():
    x = np.arange(6, dtype=float)[:, None]
    assert inputs_at(x, 4, np.array([5]))[0, :, 0].tolist() == [2, 3, 4, 5]
    assert targets_at(x, 0, np.array([5])).shape == (1, 0, 1)


def test_time_split_blocks_never_share_targets():
    split = time_split(total=30, lookback=4, horizon=3, val=5, test=6)
    assert (split.train_end, split.val_end) == (19, 24)
    train = split.origins("train", 4, 3)
    val = split.origins("val", 4, 3)
    test = split.origins("test", 4, 3)
    assert train.tolist() == list(range(3, 16))        # targets o+1..o+3 <= 18
    assert val.tolist() == [18, 19, 20]                # targets within 19..23
    assert test.tolist() == [23, 24, 25, 26]           # targets within 24..29
    for block, (lo, hi) in zip((train, val, test), ((0, 19), (19, 24), (24, 30))):
        targets = block[:, None] + np.arange(1, 4)
        assert targets.min() >= lo and targets.max() < hi


def test_time_split_too_few_rows_names_the_need():
    with pytest.raises(LstmkitError, match="too few rows: 20 rows, but lookback 12 .* needs at least 36"):
        time_split(total=20, lookback=12, horizon=12, val=12, test=0)


def test_time_split_validation_shorter_than_horizon_is_refused():
    with pytest.raises(LstmkitError, match="validation length must be 0 or at least the horizon"):
        time_split(total=100, lookback=5, horizon=6, val=3, test=6)
