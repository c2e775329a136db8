import json

import numpy as np
import pandas as pd
import pytest

from lstmkit.data import airline_passengers, seasonal_sales
from lstmkit.errors import LstmkitError
from lstmkit.forecasting import ForecastConfig, Forecaster
from lstmkit.training import TrainConfig


def small(**kw) -> ForecastConfig:
    """A configuration that trains in about a second."""
    train = TrainConfig(epochs=kw.pop("epochs", 15), lr=1e-2, restarts=kw.pop("restarts", 2),
                        patience=5, progress=False, tbptt=kw.pop("tbptt", 0))
    return ForecastConfig(hidden=8, train=train, **kw)


@pytest.fixture(scope="module")
def fitted():
    return Forecaster(small()).fit(airline_passengers())


def test_fit_resolves_the_automatic_choices(fitted):
    cfg = fitted.config
    assert cfg.target == ["passengers"] and cfg.season == 12 and cfg.log is True
    assert cfg.diff == [1, 12] and cfg.holdout == 12 and cfg.val == 12
    assert len(fitted.models) == 2                                   # combine="mean" keeps both runs


def test_predict_continues_the_time_index_with_an_interval(fitted):
    table = fitted.predict(15)
    assert list(table.columns) == ["month", "passengers", "passengers_lower", "passengers_upper"]
    assert table["month"].iloc[0] == "1961-01-01" and table["month"].iloc[-1] == "1962-03-01"
    assert (table["passengers_lower"] < table["passengers"]).all()
    assert (table["passengers"] < table["passengers_upper"]).all()
    width = table["passengers_upper"] - table["passengers_lower"]
    assert width.iloc[14] > width.iloc[0]                            # uncertainty grows with the step


def test_evaluate_reports_every_model_on_the_holdout(fitted):
    ev = fitted.evaluate()
    assert list(ev.metrics) == ["LSTM", "naive", "seasonal naive", "ARIMA", "Holt-Winters"]
    truth = airline_passengers()["passengers"].to_numpy()[-12:]
    assert ev.truth[:, 0].tolist() == truth.tolist()
    assert ev.metrics["seasonal naive"]["MAE"] == pytest.approx(47.8333, abs=1e-3)
    assert ev.winner in ev.metrics and ev.summary().startswith(f"winner: {ev.winner}")
    assert "LSTM" in ev.table() and "*" in ev.table()
    json.dumps(ev.to_dict())                                         # serialisable as metrics.json


def test_save_load_gives_identical_forecasts(fitted, tmp_path):
    fitted.save(tmp_path / "model")
    back = Forecaster.load(tmp_path / "model")
    pd.testing.assert_frame_equal(fitted.predict(24), back.predict(24), check_exact=True)
    data = airline_passengers().iloc[:100]
    pd.testing.assert_frame_equal(fitted.predict(12, data=data), back.predict(12, data=data),
                                  check_exact=True)
    assert back.config == fitted.config


def test_saving_over_a_model_replaces_it_whole(fitted, tmp_path):
    fitted.save(tmp_path / "model")
    other = Forecaster(small(horizon=6, lookback=12)).fit(airline_passengers())
    other.save(tmp_path / "model")
    assert Forecaster.load(tmp_path / "model").config.horizon == 6


@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / "weights.safetensors").write_bytes(b"x" * 100), "weights.safetensors does not match its SHA-256"),
    (lambda d: (d / "scaler.json").unlink(), "incomplete: scaler.json is missing"),
    (lambda d: (d / "manifest.json").unlink(), "incomplete: manifest.json is missing"),
])
def test_load_refuses_a_tampered_or_incomplete_folder(fitted, tmp_path, damage, message):
    folder = fitted.save(tmp_path / "model")
    damage(folder)
    with pytest.raises(LstmkitError, match=message):
        Forecaster.load(folder)


def test_inputs_as_series_array_and_covariates():
    y = airline_passengers()["passengers"].astype(float)
    fc = Forecaster(small(season=12, epochs=3, restarts=1)).fit(y.to_numpy())
    assert fc.config.target == ["y"] and fc.predict(3)["step"].tolist() == [144, 145, 146]
    fc = Forecaster(small(season=12, epochs=3, restarts=1)).fit(y.rename("pax"))
    assert fc.config.target == ["pax"]
    frame = airline_passengers().assign(promo=np.arange(144) % 3)
    fc = Forecaster(small(covariates=["promo"], epochs=3, restarts=1)).fit(frame)
    assert fc.models[0].lstm.input_size == 2 and len(fc.predict(12)) == 12
    with pytest.raises(LstmkitError, match="needs future covariate values"):
        fc.predict(13)


def test_multiple_targets():
    frame = airline_passengers().assign(double=lambda d: d["passengers"] * 2 + 5)
    fc = Forecaster(small(target=["passengers", "double"], epochs=3, restarts=1)).fit(frame)
    assert fc.models[0].head.out_features == 12 * 2
    ev = fc.evaluate(baselines=False)
    assert ev.truth.shape == (12, 2) and set(ev.per_target) == {"passengers", "double"}


def test_stateful_tbptt_training_through_the_api():
    fc = Forecaster(small(stateful=True, tbptt=16, epochs=5, restarts=1)).fit(seasonal_sales())
    assert fc.result.runs[0].history["train"][-1] < fc.result.runs[0].history["train"][0]
    assert len(fc.predict(12)) == 12 and np.isfinite(fc.evaluate().metrics["LSTM"]["MAE"])


def test_preset_selects_the_lstm_variant():
    fc = Forecaster(small(preset="CIFG", epochs=2, restarts=1)).fit(airline_passengers())
    assert np.isfinite(fc.predict(3)["passengers"]).all()


@pytest.mark.parametrize("data, config, message", [
    (airline_passengers().iloc[:40], {}, (r"too few rows: 40, but lookback 24 \+ horizon 12 \+ validation 12 \+ "
                                         r"holdout 12 \+ 13 lost to differencing at lags \[1, 12\] needs at least 73")),
    (pd.DataFrame({"y": [3.0] * 50}), {}, r"target column 'y' is constant"),
    (airline_passengers(), {"target": ["pax"]}, r"unknown column 'pax'"),
    (airline_passengers(), {"dropout": 1.5}, r"dropout must be in \[0, 1\), got 1.5"),
    (airline_passengers(), {"stateful": True}, r"stateful training needs train.tbptt >= 1"),
])
def test_bad_input_raises_one_clear_error(data, config, message):
    with pytest.raises(LstmkitError, match=message):
        Forecaster(small(**config)).fit(data)


def test_forecast_needs_enough_history(fitted):
    with pytest.raises(LstmkitError, match="too few rows to forecast from: 30, need at least 37 \\(lookback 24 \\+ 13 for differencing\\)"):
        fitted.predict(12, data=airline_passengers().iloc[:30])


def test_a_holdout_longer_than_the_horizon_is_scored_block_by_block():
    fc = Forecaster(small(horizon=6, holdout=18, epochs=3, restarts=1)).fit(airline_passengers())
    ev = fc.evaluate()
    assert ev.truth.shape == (18, 1) and all(f.shape == (18, 1) for f in ev.forecasts.values())
    y = airline_passengers()["passengers"].to_numpy(dtype=float)
    # naive repeats the last true value before each block of 6
    assert ev.forecasts["naive"][:, 0].tolist() == [y[125]] * 6 + [y[131]] * 6 + [y[137]] * 6
    # the LSTM's second block is its forecast from the true data before it
    mean, _, _ = fc.forecast(y[:132, None], np.zeros((132, 0)), 6)
    assert ev.forecasts["LSTM"][6:12, 0] == pytest.approx(mean[:, 0])
    assert any("blocks of 6" in note for note in ev.notes)
