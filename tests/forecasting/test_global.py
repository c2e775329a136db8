"""Global (many-series) forecasting: windows, normalisation, training on small synthetic panels,
quantiles, backtest bookkeeping, saving, the model factory."""
import numpy as np
import pandas as pd
import pytest
import torch

from lstmkit.data.panel import Panel
from lstmkit.errors import LstmkitError
from lstmkit.forecasting import Forecaster, GlobalConfig, GlobalForecaster
from lstmkit.forecasting.factory import check_layer_options, layer_option_types, parse_layer_option
from lstmkit.forecasting.global_forecaster import SeriesScale, _level, _pick_alpha, pinball_loss
from lstmkit.forecasting.global_report import mase_scale
from lstmkit.training import TrainConfig


def small_train(**kw) -> TrainConfig:
    base = dict(epochs=60, lr=1e-2, head_lr=1e-2, batch_size=32, patience=0, restarts=1, seed=0,
                progress=False)
    base.update(kw)
    return TrainConfig(**base)


def growth_panel(n=8, g=1.05) -> Panel:
    """n series a_i * g^t of lengths 12.. and different starts: log-linear with the same slope."""
    values = [(5.0 + 3 * i) * g ** np.arange(12 + i) for i in range(n)]
    starts = [pd.Timestamp(f"{2000 + i}-01-01") for i in range(n)]
    return Panel([f"s{i}" for i in range(n)], values, starts, "YS")


def test_windows_bookkeeping():
    gf = GlobalForecaster(GlobalConfig(lookback=3, horizon=2, holdout=0))
    panel = Panel(["a"], [np.arange(0.0, 12.0, 2.0)])            # z = y / 2 = 0, 1, ..., 5
    gf.config = gf._resolve(panel)
    gf.panel = panel
    gf.scale = SeriesScale(np.array([False]), np.array([2.0]), np.array([1.0]))
    w = gf._windows(panel.values, panel.cov_values, [5], [np.array([0, 2, 4])], [0])
    assert w.x.shape == (3, 3, 1)
    np.testing.assert_array_equal(w.lengths.numpy(), [1, 3, 3])
    np.testing.assert_array_equal(w.x[0, :, 0].numpy(), [0, 0, 0])          # length 1, padded
    np.testing.assert_array_equal(w.x[1, :, 0].numpy(), [-2, -1, 0])
    np.testing.assert_array_equal(w.y[:2].numpy(), [[1, 2], [1, 2]])
    assert torch.isnan(w.y[2]).all()          # targets at or after the end (5) are masked


def test_scale_and_level():
    gf = GlobalForecaster(GlobalConfig(scaling="last"))
    s = gf._fit_scale(Panel(["pos", "neg"], [np.array([1.0, np.e, np.e ** 3]), np.array([-1.0, 1, -1])]))
    assert s.log.tolist() == [True, False]
    np.testing.assert_allclose(s.scale, [1.5, 2.0])           # mean |diff log y|, mean |diff y|
    np.testing.assert_allclose(_level(np.array([0.0, 1, 1]), 0.5), [0, 0.5, 0.75])
    assert _pick_alpha(np.arange(10.0)) == 1.0                # a straight line: the last value
    noisy = 5 + np.tile([1.0, -1.0], 10)
    assert _pick_alpha(noisy) < 0.2                           # pure noise: a long average


def test_pinball_loss_by_hand():
    loss = pinball_loss([0.1, 0.5, 0.9])
    pred = torch.tensor([[0.0, 1.0, 3.0]])                    # H = 1, Q = 3
    # errors y - f = 1, 0, -2 -> 0.1 * 1, 0, 0.1 * 2
    assert loss(pred, torch.tensor([[1.0]])).item() == pytest.approx(0.1)


def test_mase_scale():
    assert mase_scale(np.array([1.0, 3, 2]), 1) == pytest.approx(1.5)
    assert mase_scale(np.array([1.0, 2, 5, 9]), 2) == pytest.approx(5.5)
    assert mase_scale(np.array([1.0, 2]), 4) == pytest.approx(1.0)     # too short: one-step
    assert np.isnan(mase_scale(np.array([4.0, 4, 4]), 1))


@pytest.mark.slow
def test_global_model_learns_a_shared_growth_rate():
    panel = growth_panel()
    gf = GlobalForecaster(GlobalConfig(horizon=4, lookback=6, hidden=8, head_hidden=16,
                                       train=small_train())).fit(panel)
    ev = gf.evaluate(baselines="none")
    point, _ = gf.forecast_from(panel.head(4).values)
    hand = []
    for i, v in enumerate(panel.values):
        h = v[:-4]
        hand.append(np.mean(np.abs(v[-4:] - point[i])) / np.mean(np.abs(np.diff(h))))
        naive = np.mean(np.abs(v[-4:] - h[-1])) / np.mean(np.abs(np.diff(h)))
    lstm = ev.scores[ev.scores.model == "LSTM"]["MASE"].to_numpy()
    np.testing.assert_allclose(lstm, hand)
    assert ev.summary["LSTM"]["mean MASE"] < 0.3 * naive     # naive lags the trend by ~2.6 MASE
    assert ev.rows.columns.tolist()[:5] == ["unique_id", "ds", "model", "forecast", "actual"]
    # ds continues each series' own calendar
    first = ev.rows[ev.rows.unique_id == "s1"]["ds"].tolist()
    assert first == [f"{2001 + 13 - 4 + k}-01-01" for k in range(4)]


def test_save_load_predict_roundtrip(tmp_path):
    panel = growth_panel(4)
    gf = GlobalForecaster(GlobalConfig(horizon=3, hidden=8, holdout=0, id_embedding=2,
                                       layer_options={"layer_norm": True},
                                       train=small_train(epochs=3, restarts=2))).fit(panel)
    assert gf.models[0].lstm.options.layer_norm and gf.models[0].embed.weight.shape == (4, 2)
    table = gf.predict()
    gf.save(tmp_path / "m")
    again = Forecaster.load(tmp_path / "m")
    pd.testing.assert_frame_equal(again.predict(), table)
    assert len(table) == 12 and table.columns.tolist() == ["unique_id", "ds", "forecast"]
    assert table[table.unique_id == "s0"]["ds"].tolist() == ["2012-01-01", "2013-01-01", "2014-01-01"]
    assert np.isfinite(table["forecast"]).all()
    with pytest.raises(LstmkitError, match="not in the training data"):
        gf.predict(data=[np.ones(5)] * 5)
    layer, x, labels = again._global.gate_view()
    assert x.shape == (1, len(labels), 1) and layer is again._global.models[0].lstm


def test_forecaster_fit_takes_a_list_as_many_series():
    values = [np.linspace(1, 2, 10) * (i + 1) for i in range(3)]           # equal lengths
    fc = Forecaster(GlobalConfig(horizon=2, hidden=4, head_hidden=0,
                                 train=small_train(epochs=2))).fit(values)
    assert fc._global is not None and len(fc._global.panel) == 3
    assert fc.predict()["unique_id"].nunique() == 3


@pytest.mark.slow
def test_quantiles_are_ordered_and_cover():
    rng = np.random.default_rng(0)
    values = [100 + rng.normal(0, 5, 40) for _ in range(12)]
    gf = GlobalForecaster(GlobalConfig(horizon=2, lookback=8, hidden=8, quantiles=[0.1, 0.9],
                                       scaling="last", train=small_train(epochs=40))).fit(values)
    point, q = gf.forecast_from([v[:-2] for v in values])
    assert q.shape == (12, 2, 3) and (np.diff(q, axis=-1) >= 0).all()
    np.testing.assert_allclose(point, q[:, :, 1])                 # the 0.5 quantile is the point
    ev = gf.evaluate(baselines="none")
    cov = ev.coverage["80%"]
    assert cov["nominal"] == pytest.approx(0.8)
    lo = ev.rows[ev.rows.model == "LSTM q0.1"]
    hi = ev.rows[ev.rows.model == "LSTM q0.9"]
    inside = (lo.actual.to_numpy() >= lo.forecast.to_numpy()) & (hi.actual.to_numpy() <= hi.forecast.to_numpy())
    assert cov["empirical"] == pytest.approx(inside.mean())
    assert 0.4 <= cov["empirical"] <= 1.0


def test_future_known_covariates_reach_the_head():
    rng = np.random.default_rng(1)
    rows = []
    for i in range(3):
        c = rng.integers(0, 2, 20).astype(float)
        for t in range(20):
            rows.append((f"s{i}", t, 10 + 5 * c[t], c[t]))
    frame = pd.DataFrame(rows, columns=["unique_id", "ds", "y", "promo"])
    gf = GlobalForecaster(GlobalConfig(horizon=2, covariates=["promo"], hidden=4,
                                       train=small_train(epochs=2))).fit(frame)
    assert gf.models[0].head[0].in_features == 4 + 2 * 1
    with pytest.raises(LstmkitError, match="future="):
        gf.predict()
    future = pd.DataFrame({"unique_id": ["s0", "s0", "s1", "s1", "s2", "s2"], "ds": [20, 21] * 3,
                           "promo": [1, 0, 0, 1, 1, 1]})
    assert len(gf.predict(future=future)) == 6


@pytest.mark.slow
def test_backtest_bookkeeping(monkeypatch):
    pytest.importorskip("statsforecast")
    panel = Panel(["a", "b"], [np.arange(1.0, 21.0), np.arange(1.0, 15.0) ** 1.5])
    fitted = []
    orig = GlobalForecaster._fit_on

    def spy(self, tp):
        fitted.append([len(v) for v in tp.values])
        return orig(self, tp)
    monkeypatch.setattr(GlobalForecaster, "_fit_on", spy)
    cfg = GlobalConfig(horizon=2, holdout=2, backtest=3, hidden=4, head_hidden=0,
                       train=small_train(epochs=1))
    gf = GlobalForecaster(cfg).fit(panel)
    assert fitted == [[14, 8]]                        # once, before the first origin
    ev = gf.evaluate(baselines=["naive"])
    assert ev.windows == 3 and set(ev.rows.window) == {0, 1, 2}
    for k in range(3):
        for sid, v in zip(panel.ids, panel.values):
            r = ev.rows[(ev.rows.window == k) & (ev.rows.unique_id == sid)]
            cut = len(v) - (3 - k) * 2
            np.testing.assert_allclose(r[r.model == "naive"].actual, v[cut:cut + 2])
            np.testing.assert_allclose(r[r.model == "naive"].forecast, [v[cut - 1]] * 2)
            assert r[r.model == "LSTM"].ds.tolist() == [cut, cut + 1]
    fitted.clear()
    GlobalForecaster(GlobalConfig(**{**cfg.to_dict(), "refit": True, "train": cfg.train})).fit(panel) \
        .evaluate(baselines="none")
    assert fitted == [[18, 12], [14, 8], [16, 10]]    # last origin, then refits at the earlier ones


def test_config_errors():
    with pytest.raises(LstmkitError, match="scaling"):
        GlobalForecaster(GlobalConfig(scaling="median")).fit([np.ones(10)])
    with pytest.raises(LstmkitError, match="too short"):
        GlobalForecaster(GlobalConfig(horizon=6)).fit([np.arange(1.0, 8.0), np.arange(1.0, 30.0)])
    with pytest.raises(LstmkitError, match="unknown layer option"):
        GlobalForecaster(GlobalConfig(layer_options={"peepholes": True})).fit([np.ones(10)])
    gf = GlobalForecaster(GlobalConfig(horizon=2, holdout=4, hidden=4, train=small_train(epochs=1)))
    gf.fit([np.arange(1.0, 20.0)] * 2)
    with pytest.raises(LstmkitError, match="--backtest"):
        gf.evaluate(baselines="none")


def test_factory_layer_options_follow_lstm_options():
    from dataclasses import fields

    from lstmkit.cells.lstm import LSTMOptions
    known = layer_option_types()
    assert {f.name for f in fields(LSTMOptions)} <= set(known)
    assert {"preset", "zoneout", "recurrent_dropout"} <= set(known)
    assert parse_layer_option("layer_norm=true") == ("layer_norm", True)
    assert parse_layer_option("zoneout=0.1,0.2") == ("zoneout", (0.1, 0.2))
    assert parse_layer_option("preset=CIFG") == ("preset", "CIFG")
    with pytest.raises(LstmkitError, match="NAME=VALUE"):
        parse_layer_option("nonsense=1")
    with pytest.raises(LstmkitError, match="preset"):
        check_layer_options({"preset": "XYZ"})


def test_single_series_forecaster_gets_layer_options():
    from lstmkit.forecasting import ForecastConfig
    cfg = ForecastConfig(lookback=4, horizon=2, holdout=2, val=2, diff=[], log=False, hidden=4,
                         preset="CIFG", layer_options={"layer_norm": True},
                         train=small_train(epochs=1))
    fc = Forecaster(cfg).fit(np.sin(np.arange(30.0)))
    opts = fc.models[0].lstm.options
    assert opts.coupled and opts.layer_norm


def test_factory_builds_the_same_single_series_network_as_before():
    """The airline main job must not change: the factory's "lstm" entry initialises exactly the
    LSTMForecaster the Forecaster built directly before the factory existed."""
    from lstmkit.forecasting.factory import network
    from lstmkit.forecasting.model import LSTMForecaster
    torch.manual_seed(0)
    direct = LSTMForecaster(1, 12, 32, 1, 0.0, None).state_dict()
    torch.manual_seed(0)
    made = network("lstm", 1, 12, 32, 1, 0.0, {}).state_dict()
    assert direct.keys() == made.keys()
    for k in direct:
        torch.testing.assert_close(direct[k], made[k], rtol=0, atol=0)
