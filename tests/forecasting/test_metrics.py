import numpy as np
import pytest

from lstmkit.errors import LstmkitError
from lstmkit.metrics import all_metrics, mae, mase, rmse, smape

Y = [1.0, 2.0, 3.0, 4.0]
F = [2.0, 2.0, 5.0, 0.0]          # errors 1, 0, 2, 4


def test_metrics_against_hand_computed_values():
    assert mae(Y, F) == pytest.approx(7 / 4)
    assert rmse(Y, F) == pytest.approx(np.sqrt(21 / 4))
    # sMAPE terms: 2*1/3, 0, 2*2/8, 2*4/4
    assert smape(Y, F) == pytest.approx(100 * (2 / 3 + 0 + 0.5 + 2) / 4)


def test_mase_is_mae_over_in_sample_seasonal_naive_mae():
    history = [1.0, 3.0, 2.0, 6.0, 4.0]
    assert mase(Y, F, history, season=1) == pytest.approx(1.75 / ((2 + 1 + 4 + 2) / 4))
    assert mase(Y, F, history, season=2) == pytest.approx(1.75 / ((1 + 3 + 2) / 3))
    # the seasonal naive forecast itself scores MASE 1 on its own history
    h = np.array([5.0, 7.0, 6.0, 9.0, 8.0, 10.0])
    assert mase(h[2:], h[:-2], h, season=2) == pytest.approx(1.0)


def test_smape_counts_zero_over_zero_as_zero():
    assert smape([0.0, 2.0], [0.0, 2.0]) == 0.0


def test_metric_errors():
    with pytest.raises(LstmkitError, match=r"same shape, got \(2,\) and \(3,\)"):
        mae([1, 2], [1, 2, 3])
    with pytest.raises(LstmkitError, match="longer than the season"):
        mase(Y, F, [1.0, 2.0], season=12)
    assert np.isnan(mase(Y, F, [3.0, 3.0, 3.0], season=1))


def test_all_metrics_keys():
    assert list(all_metrics(Y, F, [1.0, 3.0, 2.0])) == ["MAE", "RMSE", "sMAPE", "MASE"]
