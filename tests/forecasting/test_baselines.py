import numpy as np
import pytest

from lstmkit.data import airline_passengers
from lstmkit.forecasting.baselines import Arima, HoltWinters, Naive, SeasonalNaive, run_baselines
from lstmkit.metrics import mae

AIR = airline_passengers()["passengers"].to_numpy(dtype=float)


def test_naive_and_seasonal_naive_by_hand():
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0])
    assert Naive().fit(x, 1, False).forecast(x, 3).tolist() == [7, 7, 7]
    assert SeasonalNaive().fit(x, 3, False).forecast(x, 5).tolist() == [5, 6, 7, 5, 6]


def test_airline_holdout_seasonal_naive_is_the_known_figure():
    # 1960 against 1959, month by month: mean absolute difference 47.83
    f = SeasonalNaive().fit(AIR[:132], 12, False).forecast(AIR[:132], 12)
    assert mae(AIR[132:], f) == pytest.approx(47.8333, abs=1e-3)


def test_arima_and_holt_winters_forecast_the_airline_holdout_well():
    for cls in (Arima, HoltWinters):
        f = cls().fit(AIR[:132], 12, True).forecast(AIR[:132], 12)
        assert f.shape == (12,) and mae(AIR[132:], f) < 20, cls.__name__


def test_run_baselines_in_blocks_refilters_without_refitting():
    y = AIR[:, None]
    out = run_baselines(y, cut=120, horizon=12, season=12, log=True)
    assert set(out) == {"naive", "seasonal naive", "ARIMA", "Holt-Winters"}
    assert all(v.shape == (24, 1) for v in out.values())
    # second block of the naive forecast repeats the last true value before it
    assert out["naive"][12:, 0].tolist() == [AIR[131]] * 12
    # the ARIMA block from the longer prefix uses the new data (it differs from a 24-step forecast)
    one_shot = Arima().fit(AIR[:120], 12, True).forecast(AIR[:120], 24)
    assert np.allclose(out["ARIMA"][:12, 0], one_shot[:12])
    assert not np.allclose(out["ARIMA"][12:, 0], one_shot[12:])
