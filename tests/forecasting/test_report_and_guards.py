"""The holdout report when a baseline is exact or MASE is undefined, bounded baselines, sub-daily
timestamps, finite-number guards, and a tampered config.json with its manifest re-hashed."""
import hashlib
import json
import shutil

import numpy as np
import pandas as pd
import pytest

from lstmkit.data import StandardScaler, damped_sine, prepare, seasonal_sales
from lstmkit.errors import LstmkitError
from lstmkit.forecasting import ForecastConfig, Forecaster
from lstmkit.forecasting import baselines as bl
from lstmkit.forecasting.report import evaluate_forecasts


def report_for(y, lstm, season=1, horizon=4):
    y = np.asarray(y, dtype=np.float64)[:, None]
    cfg = ForecastConfig(target=["y"], horizon=horizon, season=season, log=False)
    cut = len(y) - horizon
    f = np.asarray(lstm, dtype=np.float64)[:, None]
    return evaluate_forecasts(y, cut, (f, f - 1, f + 1), cfg, baselines="fast")


def test_an_exact_baseline_wins_without_a_division_by_zero():
    y = np.arange(1.0, 101.0)                               # a straight line: naive is off, but...
    ev = report_for(y, y[-4:] + 0.5, season=1)
    # MASE scale = mean |diff| = 1; naive's errors 1..4 -> MASE 2.5; the LSTM's 0.5
    assert ev.metrics["LSTM"]["MASE"] == pytest.approx(0.5) and ev.winner == "LSTM"
    ev = report_for(y, y[-4:] + 0.5, season=1)
    ev.metrics["naive"] = {"MAE": 0.0, "RMSE": 0.0, "sMAPE": 0.0, "MASE": 0.0}   # an exact baseline
    line = ev.summary()
    assert ev.winner == "naive" and line.startswith("winner: naive (MASE 0.000); the LSTM scored 0.500")
    assert "higher than an exact forecast" in line and "inf" not in line
    ev.metrics["LSTM"] = {"MAE": 0.0, "RMSE": 0.0, "sMAPE": 0.0, "MASE": 0.0}
    ev.metrics.pop("seasonal naive")
    assert ev.summary().startswith("winner: LSTM (MASE 0.000; best baseline naive 0.000, equal)")


def test_a_really_exact_seasonal_naive_gives_a_consistent_report():
    y = np.tile([1.0, 2.0, 3.0, 4.0], 25)
    y[5] = 9.0                                     # history not exactly periodic: MASE scale > 0
    ev = report_for(y, y[-4:] + 0.5, season=4)
    assert ev.metrics["seasonal naive"]["MASE"] == 0.0 and ev.ranked_by == "MASE"
    assert ev.winner == "seasonal naive"
    line = ev.summary()
    assert line.startswith("winner: seasonal naive (MASE 0.000); the LSTM scored ")
    assert "higher than an exact forecast" in line
    assert ev.table().splitlines()[list(ev.metrics).index("seasonal naive") + 1].endswith(" *")


def test_undefined_mase_is_reported_as_such_and_the_winner_named_by_mae():
    y = np.zeros(60)
    y[30] = 5.0                                            # intermittent: seasonal naive exact almost
    y = np.tile(np.r_[0.0, 0.0, 0.0, 0.0], 15)            # ... here exactly: MASE scale 0
    y[-2] = 3.0
    ev = report_for(y, np.zeros(4), season=4)
    assert all(np.isnan(m["MASE"]) for m in ev.metrics.values())
    assert ev.ranked_by == "MAE"
    best = min(ev.metrics, key=lambda m: (ev.metrics[m]["MAE"]))
    assert ev.winner == best
    line = ev.summary()
    assert line.startswith(f"winner: {best} (MAE") and "MASE is undefined" in line
    assert "no baseline" not in line
    assert "undefined" in ev.table().splitlines()[1]
    d = ev.to_dict()
    assert d["ranked_by"] == "MAE" and d["winner"] == best
    json.loads(json.dumps(d, allow_nan=True))


def test_baselines_are_bounded_by_a_tail_window_and_a_time_budget(monkeypatch):
    seen = []

    class Recording(bl.Naive):
        def fit(self, x, season, log):
            seen.append(len(x))
            return self

    monkeypatch.setitem(bl.BASELINES, "ARIMA", Recording)
    y = np.random.default_rng(0).normal(size=(50_000, 1)).cumsum(0)
    notes = []
    out = bl.run_baselines(y, 49_990, 5, 24, False, names=("naive", "ARIMA"), notes=notes)
    assert seen == [bl.window(24)] and out["ARIMA"].shape == (10, 1)
    np.testing.assert_array_equal(out["ARIMA"], out["naive"])          # same forecasts from the tail
    assert any(f"fitted on the last {bl.window(24)} steps" in n for n in notes)
    notes = []
    out = bl.run_baselines(y, 49_990, 5, 24, False, names=("naive", "ARIMA"), notes=notes, budget_s=-1)
    assert list(out) == ["naive"] and any("ARIMA skipped" in n for n in notes)
    assert bl.baseline_names("fast") == ("naive", "seasonal naive") and bl.baseline_names(False) == ()
    with pytest.raises(LstmkitError, match="baselines must be one of"):
        bl.baseline_names("some")


FAST = dict(epochs=2, restarts=1, batch_size=16, patience=2, seed=0)


def small(**kw):
    cfg = ForecastConfig(lookback=8, horizon=3, hidden=4, **kw)
    for k, v in FAST.items():
        setattr(cfg.train, k, v)
    return cfg


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("m") / "model"
    Forecaster(small(diff=[1])).fit(seasonal_sales(years=4)).save(folder)
    return folder


def test_sub_daily_data_is_stamped_with_full_timestamps():
    t = pd.date_range("2024-03-01 00:00", periods=80, freq="h")
    frame = pd.DataFrame({"time": t.strftime("%Y-%m-%d %H:%M"), "load": 10 + np.sin(np.arange(80) / 3)})
    fc = Forecaster(small(season=1, diff=[], log=False, holdout=0, val=0)).fit(frame)
    table = fc.predict(3)
    assert list(table["time"]) == ["2024-03-04 08:00:00", "2024-03-04 09:00:00", "2024-03-04 10:00:00"]
    assert np.isfinite(table["load"]).all()


def test_val_0_and_holdout_0_train_on_everything(tmp_path):
    fc = Forecaster(small(val=0, holdout=0)).fit(seasonal_sales(years=4))
    assert fc.config.val == 0 and fc._fitted.sigma_source == "training"
    with pytest.raises(LstmkitError, match="needs a holdout"):
        fc.evaluate()
    back = Forecaster.load(fc.save(tmp_path / "m"))
    np.testing.assert_allclose(back.predict()["sales"], fc.predict()["sales"])


def test_predict_horizon_bounds(saved):
    fc = Forecaster.load(saved)
    assert len(fc.predict()) == 3
    for bad in (0, -1, 10**9, 2.5, True):
        with pytest.raises(LstmkitError, match="horizon must be an integer from 1 to"):
            fc.predict(bad)


def test_unrepresentable_numbers_are_errors_never_a_saved_model():
    with pytest.raises(LstmkitError, match="too large to scale"):
        StandardScaler.fit(np.array([[1e308], [-1e308], [1e308]]))
    huge = pd.DataFrame({"y": np.r_[1e308, -1e308] .repeat(40)})
    with pytest.raises(LstmkitError, match="too large|not finite"):
        Forecaster(small(log=False, diff=[1], season=1)).fit(huge)
    with pytest.raises(LstmkitError, match="finite number > 0"):
        damped_sine(102, 0, 0.05)


def rehash(folder, name, data: bytes):
    (folder / name).write_bytes(data)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"][name] = hashlib.sha256(data).hexdigest()
    manifest["sizes"][name] = len(data)
    (folder / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize("field, value, message", [
    ("preset", "XYZ", "preset must be one of"),
    ("layers", 0, "layers must be >= 1"),
    ("hidden", 10**6, "hidden must be <= 16384"),
    ("hidden", 9000, "weights do not fit the configured model"),        # allowed size, wrong weights
    ("horizon", 10**8, "horizon must be <= 10000"),
    ("horizon", 5000, "sigma must be finite"),
    ("lookback", "24", "lookback must be an integer"),
    ("target", [], "not a resolved config"),
    ("dropout", float("nan"), "dropout must be a number"),
])
def test_tampered_config_with_rehashed_manifest_is_refused_before_allocating(saved, tmp_path, field,
                                                                          value, message):
    folder = tmp_path / "model"
    shutil.copytree(saved, folder)
    meta = json.loads((folder / "config.json").read_text())
    meta["config"][field] = value
    rehash(folder, "config.json", json.dumps(meta).encode())
    with pytest.raises(LstmkitError, match=message):
        Forecaster.load(folder)


def test_day_first_dates_are_read_as_such_and_ambiguous_ones_refused():
    d = pd.date_range("2021-01-01", periods=40, freq="D")
    s = prepare(pd.DataFrame({"date": d.strftime("%d/%m/%Y"), "y": np.arange(40.0)}))
    assert s.freq == "D" and s.time[12] == pd.Timestamp("2021-01-13")
    s = prepare(pd.DataFrame({"date": d.strftime("%m/%d/%Y"), "y": np.arange(40.0)}))
    assert s.time[12] == pd.Timestamp("2021-01-13")
    with pytest.raises(LstmkitError, match="ambiguous .*YYYY-MM-DD"):
        prepare(pd.DataFrame({"date": d[:12].strftime("%d/%m/%Y"), "y": np.arange(12.0)}))
    with pytest.raises(LstmkitError, match="holds numbers, not dates"):
        prepare(pd.DataFrame({"year": np.arange(2000, 2040), "y": np.arange(40.0)}), time_col="year")
