"""`Forecaster`: the Python API behind `lstmkit forecast` and `lstmkit predict`.

    fc = Forecaster(ForecastConfig(horizon=12)).fit(frame)   # DataFrame, Series or array
    fc.evaluate()        # holdout metrics of the LSTM beside naive, seasonal naive, ARIMA, Holt-Winters
    fc.predict(12)       # forecast beyond the end of the data, with a prediction interval
    fc.save("model/");  Forecaster.load("model/")

Many series (a long `unique_id, ds, y` frame, a list of series, a Monash .tsf path, a Panel) are
handed to `GlobalForecaster` (one global LSTM): `Forecaster(GlobalConfig(...))` or a ForecastConfig
whose non-default fields (horizon, lookback, holdout, val, season, hidden, layers, dropout, preset)
carry over; predict / evaluate / save then act on the global model.

The pipeline, each step in its own module:
    data.prepare (checks) -> data.TargetTransform (log, differencing) -> data.StandardScaler (fitted on
    the training block) -> data.windows / time_split -> training.train -> LSTMForecaster.
Index conventions: y (T, K) raw targets, c (T, C) covariates; after differencing by `lost` = d steps
the model works on z (T' = T - d, K); step i of z is step i + d of y. An origin o indexes z.
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist
from typing import Optional

import numpy as np
import pandas as pd
import torch

from lstmkit.data import (Series, StandardScaler, TargetTransform, inputs_at, prepare, targets_at,
                          time_split)
from lstmkit.errors import LstmkitError
from lstmkit.training import Stream, TrainResult, Windows, run_stream, train
from lstmkit.training.checkpoint import (json_bytes, load_bundle, member_state, save_bundle, tensors_from_bytes,
                                         tensors_to_bytes)

from .config import ForecastConfig
from .factory import network
from .model import LSTMForecaster
from .report import Evaluation, evaluate_forecasts

FILES = ["config.json", "scaler.json", "weights.safetensors", "history.safetensors"]
MAX_STEPS = 10_000          # most steps predict() forecasts (past the horizon they are fed back)
MAX_MEMBERS = 1000          # most ensemble members a saved model may hold


def _check_finite(a: np.ndarray, what: str) -> None:
    if not np.isfinite(a).all():
        raise LstmkitError(f"{what} are not finite (overflow: values too large for float64 after "
                           f"the log, differencing or scaling); rescale the data")


def _time_format(time: Optional[pd.DatetimeIndex]) -> str:
    """Dates alone when every stamp is at midnight, full timestamps for sub-daily data."""
    if time is not None and len(time) and ((time - time.normalize()) != pd.Timedelta(0)).any():
        return "%Y-%m-%d %H:%M:%S"
    return "%Y-%m-%d"


@dataclass
class _Fitted:
    """What fit() learns besides the weights (saved in scaler.json and config.json)."""
    transform: TargetTransform
    target_scaler: StandardScaler
    cov_scaler: Optional[StandardScaler]
    sigma: np.ndarray          # (H, K) std of the level-space forecast error per step (validation)
    sigma_source: str          # "validation" or "training" (in-sample, narrower than it should be)


class Forecaster:
    def __init__(self, config: Optional[ForecastConfig] = None):
        from .global_config import GlobalConfig
        from .global_forecaster import GlobalForecaster
        self._global: Optional[GlobalForecaster] = None
        if isinstance(config, GlobalConfig):
            self._global = GlobalForecaster(config)
        self.config = copy.deepcopy(config) if config is not None else ForecastConfig()
        self.models: list[LSTMForecaster] = []
        self.result: Optional[TrainResult] = None
        self.series: Optional[Series] = None
        self._fitted: Optional[_Fitted] = None

    # ---------------------------------------------------------------- fitting
    def _resolve(self, series: Series) -> ForecastConfig:
        cfg = copy.deepcopy(self.config)
        cfg.target, cfg.covariates, cfg.time_col = series.targets, series.covariates, series.time_col
        cfg.season = cfg.season or series.season
        cfg.holdout = cfg.horizon if cfg.holdout is None else cfg.holdout
        cfg.val = cfg.horizon if cfg.val is None else cfg.val
        if cfg.log is None:
            cfg.log = bool((series.values(series.targets) > 0).all())
        if cfg.diff is None:
            cfg.diff = [1, cfg.season] if cfg.season > 1 else [1]
        cfg.diff = [int(l) for l in cfg.diff]
        return cfg

    def _build(self) -> LSTMForecaster:
        cfg = self.config
        n_in = len(cfg.target) + len(cfg.covariates)
        options = {**({"preset": cfg.preset} if cfg.preset else {}), **cfg.layer_options}
        return network("lstm", n_in, cfg.horizon * len(cfg.target), cfg.hidden, cfg.layers, cfg.dropout,
                       options)

    def _inputs(self, y: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw y (T, K), c (T, C) -> model inputs x (T', F) and scaled targets t (T', K)."""
        f = self._fitted
        t = f.target_scaler.transform(f.transform.forward(y))
        parts = [t]
        if c.shape[1]:
            parts.append(f.cov_scaler.transform(c[f.transform.lost:]))
        return np.concatenate(parts, axis=1), t

    def _fit_global(self, data) -> "Forecaster":
        from .global_config import GlobalConfig
        from .global_forecaster import GlobalForecaster
        if self._global is None:
            base, cfg = ForecastConfig(), GlobalConfig()
            for name in ("horizon", "lookback", "holdout", "val", "season", "hidden", "layers", "dropout"):
                if getattr(self.config, name) != getattr(base, name):
                    setattr(cfg, name, getattr(self.config, name))
            if self.config.preset:
                cfg.layer_options["preset"] = self.config.preset
            if self.config.target:
                cfg.target = self.config.target[0]
            if self.config.time_col:
                cfg.time_col = self.config.time_col
            cfg.covariates = list(self.config.covariates)
            if self.config.train != base.train:
                cfg.train = copy.deepcopy(self.config.train)
            self._global = GlobalForecaster(cfg)
        self._global.fit(data)
        self.config = self._global.config
        self.models, self.result = self._global.models, self._global.result
        return self

    def fit(self, data) -> "Forecaster":
        """Train on `data` minus its holdout (the last `holdout` steps, kept for evaluate()).
        Many series (see the module docstring) train one global model."""
        from lstmkit.data.panel import is_panel_input
        if self._global is not None or is_panel_input(data):
            return self._fit_global(data)
        self.config.check()
        series = prepare(data, self.config.target, self.config.covariates, self.config.time_col)
        cfg = self.config = self._resolve(series)
        transform = TargetTransform(log=cfg.log, lags=tuple(cfg.diff))
        y, c = series.values(cfg.target), series.values(cfg.covariates)
        z = transform.forward(y)                                     # (T', K)
        lookback = 1 if cfg.stateful else cfg.lookback
        need = lookback + cfg.horizon + cfg.val + cfg.holdout + transform.lost
        if len(y) < need:
            raise LstmkitError(
                f"too few rows: {len(y)}, but lookback {lookback} + horizon {cfg.horizon} + validation "
                f"{cfg.val} + holdout {cfg.holdout} + {transform.lost} lost to differencing at lags "
                f"{cfg.diff} needs at least {need}")
        split = time_split(len(z), lookback, cfg.horizon, cfg.val, cfg.holdout)
        cz = c[transform.lost:]
        self._fitted = _Fitted(
            transform=transform,
            target_scaler=StandardScaler.fit(z[:split.train_end]),
            cov_scaler=StandardScaler.fit(cz[:split.train_end]) if c.shape[1] else None,
            sigma=np.zeros((cfg.horizon, len(cfg.target))), sigma_source="none")
        self.series = series
        x, t = self._inputs(y, c)
        _check_finite(x, "the scaled, differenced inputs")
        if cfg.stateful:
            train_data, val_data = self._streams(torch.tensor(x, dtype=torch.float32), t, split)
        else:
            train_data = self._windows(x, t, split.origins("train", cfg.lookback, cfg.horizon))
            val_data = (self._windows(x, t, split.origins("val", cfg.lookback, cfg.horizon))
                        if cfg.val > 0 else None)
        self.result = train(self._build, train_data, val_data, cfg.train, desc="training LSTM")
        self.models = self.result.models(self._build)
        self._fit_sigma(y, c, split)
        if not np.isfinite(self._fitted.sigma).all():
            raise LstmkitError("the trained model's forecasts are not finite (NaN or overflow); the "
                               "data's values may be too large or training diverged: lower --lr or "
                               "rescale the data")
        return self

    def _windows(self, x: np.ndarray, t: np.ndarray, origins: np.ndarray) -> Windows:
        cfg = self.config
        y = targets_at(t, cfg.horizon, origins).reshape(len(origins), -1)          # (N, H*K)
        return Windows(torch.tensor(inputs_at(x, cfg.lookback, origins), dtype=torch.float32),
                       torch.tensor(y, dtype=torch.float32))

    def _streams(self, x: torch.Tensor, t: np.ndarray, split) -> tuple[Stream, Optional[Stream]]:
        """One stream over the series; target (o, h) is t[o + 1 + h], kept only inside its block."""
        cfg = self.config
        T = len(t)
        idx = np.arange(T)[:, None] + np.arange(1, cfg.horizon + 1)[None, :]   # (T', H)
        full = np.full((T, cfg.horizon, t.shape[1]), np.nan)
        inside = idx < T
        full[inside] = t[idx[inside]]

        def block(lo, hi, upto):
            y = np.where(((idx >= lo) & (idx < hi))[..., None], full, np.nan)[:upto]
            return torch.tensor(y.reshape(1, upto, -1), dtype=torch.float32)

        train_s = Stream(x[None, :split.train_end], block(0, split.train_end, split.train_end))
        if cfg.val == 0:
            return train_s, None
        return train_s, Stream(x[None, :split.val_end], block(split.train_end, split.val_end, split.val_end))

    # ---------------------------------------------------------------- forecasting
    def _z_at(self, x: np.ndarray, origins: np.ndarray) -> np.ndarray:
        """Scaled forecasts from each origin, averaged over the ensemble: (N, H, K)."""
        cfg = self.config
        if not self.models:
            raise LstmkitError("Forecaster is not fitted: call fit() or Forecaster.load() first")
        if cfg.stateful:                                   # the whole history, run in chunks
            xt = torch.tensor(x[None, :origins.max() + 1], dtype=torch.float32)      # (1, T, F)
        else:                                              # one window per origin
            xt = torch.tensor(inputs_at(x, cfg.lookback, origins), dtype=torch.float32)  # (N, L, F)
        outs = []
        with torch.no_grad():
            for model in self.models:
                if cfg.stateful:
                    out, _ = run_stream(model, xt, cfg.train.tbptt)
                    outs.append(out[0, torch.as_tensor(origins)])
                else:
                    out, _ = model(xt)
                    outs.append(out[:, -1])
        z = torch.stack(outs).mean(0).numpy().astype(np.float64)
        return z.reshape(len(origins), cfg.horizon, len(cfg.target))

    def _levels_at(self, y: np.ndarray, c: np.ndarray, origins: np.ndarray) -> np.ndarray:
        """Level-space (log when log=True) forecasts (N, H, K) from z-origins of the raw data y, c."""
        f = self._fitted
        x, _ = self._inputs(y, c)
        z = f.target_scaler.inverse(self._z_at(x, origins))
        u = f.transform.to_level(y)
        d = f.transform.lost
        hist = targets_at(u, d, origins)            # (N, d, K): u[o+1 .. o+d] = the d levels up to y's origin
        return f.transform.integrate(z, hist)

    def _fit_sigma(self, y, c, split) -> None:
        """Std of level-space errors per horizon step on the validation windows (training windows
        when there is no validation block), made non-decreasing in the step."""
        cfg, f = self.config, self._fitted
        lookback = 1 if cfg.stateful else cfg.lookback
        origins = split.origins("val", lookback, cfg.horizon)
        f.sigma_source = "validation"
        if origins.size == 0:
            origins, f.sigma_source = split.origins("train", lookback, cfg.horizon), "training"
        pred = self._levels_at(y, c, origins)
        u = f.transform.to_level(y)
        truth = targets_at(u, cfg.horizon, origins + f.transform.lost)           # (N, H, K)
        sigma = np.sqrt(np.mean((pred - truth) ** 2, axis=0))        # (H, K)
        f.sigma = np.maximum.accumulate(sigma, axis=0)

    def _min_rows(self) -> int:
        return (1 if self.config.stateful else self.config.lookback) + self._fitted.transform.lost

    def forecast(self, y: np.ndarray, c: np.ndarray, steps: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Forecast `steps` beyond raw history y (T, K), c (T, C): (mean, lower, upper), each (steps, K).

        Beyond the model's horizon the forecast is fed back as input (not possible with covariates,
        whose future values are unknown)."""
        cfg, f = self.config, self._fitted
        if len(y) < self._min_rows():
            raise LstmkitError(f"too few rows to forecast from: {len(y)}, need at least "
                               f"{self._min_rows()} (lookback {cfg.lookback} + {f.transform.lost} "
                               f"for differencing)")
        if steps > cfg.horizon and c.shape[1]:
            raise LstmkitError(f"forecasting {steps} steps needs future covariate values; with "
                               f"covariates the limit is the model's horizon ({cfg.horizon})")
        if not cfg.stateful:                      # a window model reads only the last rows
            y, c = y[-self._min_rows():], c[-self._min_rows():]
        levels, done = [], 0
        while done < steps:
            origin = np.array([len(y) - 1 - f.transform.lost])
            lv = self._levels_at(y, c, origin)[0]                     # (H, K)
            new = f.transform.from_level(lv)
            if not (np.isfinite(lv).all() and np.isfinite(new).all()) or (f.transform.log and (new <= 0).any()):
                raise LstmkitError(
                    f"the forecast left the range of representable numbers after {done} steps"
                    + (f" (steps past the model's horizon {cfg.horizon} are fed back and can run away); "
                       f"forecast at most {done} steps" if done else "; the model or its data is damaged"))
            levels.append(lv)
            done += len(lv)
            y = np.concatenate([y, new])
        level = np.concatenate(levels)[:steps]
        k = np.arange(1, steps + 1)
        h = np.minimum(k, cfg.horizon) - 1
        sigma = f.sigma[h] * np.sqrt(np.maximum(k / cfg.horizon, 1.0))[:, None]   # grow past H
        q = NormalDist().inv_cdf(0.5 + cfg.interval / 2)
        return (f.transform.from_level(level), f.transform.from_level(level - q * sigma),
                f.transform.from_level(level + q * sigma))

    def _future_index(self, series: Series, steps: int):
        if series.time is not None and series.freq is not None:
            try:
                return pd.date_range(series.time[-1], periods=steps + 1, freq=series.freq)[1:]
            except (pd.errors.OutOfBoundsDatetime, OverflowError, ValueError):
                raise LstmkitError(f"{steps} steps of {series.freq!r} after {series.time[-1]} go past the "
                                   f"last date pandas can represent ({pd.Timestamp.max.date()}); "
                                   f"forecast fewer steps") from None
        return pd.RangeIndex(len(series), len(series) + steps)

    def predict(self, horizon: Optional[int] = None, data=None) -> pd.DataFrame:
        """Forecast `horizon` steps (default: the model's) beyond the end of `data` (default: the data
        given to fit, holdout included). Returns a DataFrame: time (or step), then for each target
        its forecast and the interval's lower and upper bounds. A global model returns a long frame
        (id, time, forecast) for every series."""
        if self._global is not None:
            return self._global.predict(horizon, data)
        cfg = self.config
        steps = cfg.horizon if horizon is None else horizon
        if not isinstance(steps, (int, np.integer)) or isinstance(steps, bool) or not 1 <= steps <= MAX_STEPS:
            raise LstmkitError(f"horizon must be an integer from 1 to {MAX_STEPS}, got {steps!r}")
        steps = int(steps)
        series = self.series if data is None else prepare(data, cfg.target, cfg.covariates, cfg.time_col)
        if series is None:
            raise LstmkitError("no data to forecast from: pass data=")
        mean, lo, hi = self.forecast(series.values(cfg.target), series.values(cfg.covariates), steps)
        index = self._future_index(series, steps)
        if isinstance(index, pd.DatetimeIndex):
            index = index.strftime(_time_format(series.time))
        out = pd.DataFrame({cfg.time_col or ("time" if series.time is not None else "step"): index})
        for j, name in enumerate(cfg.target):
            out[name] = mean[:, j]
            out[f"{name}_lower"] = lo[:, j]
            out[f"{name}_upper"] = hi[:, j]
        return out

    def evaluate(self, baselines="all") -> Evaluation:
        """Forecast the holdout and score the LSTM beside the baselines. A holdout longer than the
        horizon is forecast block by block, each block of `horizon` steps from the true data before it.

        baselines: "all" (naive, seasonal naive, ARIMA, Holt-Winters; the last two fitted on a tail
        window of the history, see baselines.py), "fast" (naive and seasonal naive), "none";
        True / False mean "all" / "none".
        A global model returns its GlobalEvaluation (per-series scores beside statsforecast's baselines)."""
        if self._global is not None:
            return self._global.evaluate(**({} if baselines is True else
                                            {"baselines": "none" if baselines is False else baselines}))
        cfg, series = self.config, self.series
        if series is None or not self.models:
            raise LstmkitError("Forecaster.evaluate needs the data it was fitted on: call fit() first")
        if cfg.holdout == 0:
            raise LstmkitError("evaluate() needs a holdout; fit with holdout > 0")
        y, c = series.values(cfg.target), series.values(cfg.covariates)
        cut = len(y) - cfg.holdout
        blocks = [self.forecast(y[:b], c[:b], min(cfg.horizon, len(y) - b))
                  for b in range(cut, len(y), cfg.horizon)]
        lstm = tuple(np.concatenate(parts) for parts in zip(*blocks))   # mean, lower, upper (holdout, K)
        return evaluate_forecasts(y, cut, lstm, cfg, time=series.time, baselines=baselines,
                                  result=self.result)

    def gate_view(self, example=None) -> tuple:
        """What the gate viewer shows (lstmkit.plotting.plot_gates, `lstmkit inspect`): the first
        member's LSTM, one input sequence x (1, L, F) exactly as that LSTM reads it (transformed and
        scaled targets, then scaled covariates) and L step labels (dates, or step numbers).

        example: raw data like fit's (default: the data the model was fitted or saved with); the
        sequence is its last `lookback` steps (windowed models) or last max(4 * season, 48) steps
        (stateful models, which read the whole history)."""
        if self._global is not None:                     # many series: the global model's view
            return self._global.gate_view(example)
        cfg = self.config
        if not self.models:
            raise LstmkitError("Forecaster.gate_view: fit() or Forecaster.load() first")
        series = self.series if example is None else prepare(example, cfg.target, cfg.covariates,
                                                             cfg.time_col)
        x, _ = self._inputs(series.values(cfg.target), series.values(cfg.covariates))   # (T', F)
        length = max(4 * cfg.season, 48) if cfg.stateful else cfg.lookback
        if len(x) < length and not cfg.stateful:
            raise LstmkitError(f"Forecaster.gate_view: the example has {len(x)} usable steps, the "
                               f"model reads {length}")
        x = x[-length:]
        if series.time is not None:
            labels = [str(pd.Timestamp(t).date()) for t in series.time[-len(x):]]
        else:
            labels = [str(i) for i in range(len(series) - len(x), len(series))]
        return self.models[0].lstm, torch.tensor(x[None], dtype=torch.float32), labels

    # ---------------------------------------------------------------- saving
    def save(self, path) -> Path:
        """Write the model folder atomically: config.json, scaler.json, weights.safetensors,
        history.safetensors and manifest.json (SHA-256 of each)."""
        if self._global is not None:
            return self._global.save(path)
        if not self.models:
            raise LstmkitError("Forecaster.save: nothing to save, fit() first")
        f, series = self._fitted, self.series
        weights = member_state(self.models)
        bad = [k for k, v in weights.items() if v.is_floating_point() and not torch.isfinite(v).all()]
        if bad or not np.isfinite(f.sigma).all():
            raise LstmkitError(f"Forecaster.save: refusing to save a model that can only predict NaN or "
                               f"infinity (non-finite {'weights ' + bad[0] if bad else 'interval widths'})")
        history = np.concatenate([series.values(self.config.target), series.values(self.config.covariates)], 1)
        time = None
        if series.time is not None:
            time = {"start": str(series.time[0]), "freq": series.freq}
        config = {"task": "forecaster", "config": self.config.to_dict(), "members": len(self.models), "time": time,
                  "sigma": f.sigma.tolist(), "sigma_source": f.sigma_source,
                  "losses": [r.history for r in self.result.runs] if self.result else []}
        scaler = {"transform": f.transform.to_dict(), "target": f.target_scaler.to_dict(),
                  "covariates": f.cov_scaler.to_dict() if f.cov_scaler else None}
        return save_bundle(path, {
            "config.json": json_bytes(config),
            "scaler.json": json_bytes(scaler),
            "weights.safetensors": tensors_to_bytes(weights),
            "history.safetensors": tensors_to_bytes({"values": torch.tensor(history)}),
        }, kind="forecaster")

    @classmethod
    def load(cls, path) -> "Forecaster":
        """Read a folder written by save(); refuses incomplete, modified or inconsistent folders.

        Nothing read is trusted: every field of config.json and scaler.json is checked, and the
        weights' shapes are compared with the configured model (built on the meta device, which
        allocates nothing) before any model is built."""
        from .global_forecaster import GlobalForecaster, is_global_folder
        if is_global_folder(path):
            gf = GlobalForecaster.load(path)
            self = cls(gf.config)
            self._global, self.models = gf, gf.models
            return self
        files = load_bundle(path, "forecaster", FILES)

        def bad(what):
            return LstmkitError(f"model folder {path}: {what}")

        try:
            meta = json.loads(files["config.json"])
            scal = json.loads(files["scaler.json"])
        except (ValueError, UnicodeDecodeError, RecursionError) as e:
            raise bad(f"config.json or scaler.json is not valid JSON ({e})") from None
        if not isinstance(meta, dict) or not isinstance(scal, dict):
            raise bad("config.json and scaler.json must hold JSON objects")
        try:
            self = cls(ForecastConfig.from_dict(meta["config"]))
            cfg = self.config
            cfg.check()
            if (cfg.target is None or not cfg.target or cfg.holdout is None or cfg.val is None
                    or cfg.season is None or cfg.log is None or cfg.diff is None):
                raise bad("config.json is not a resolved config (target, holdout, val, season, log "
                          "and diff must be set)")
            K, C = len(cfg.target), len(cfg.covariates)
            members = meta["members"]
            if not isinstance(members, int) or isinstance(members, bool) or not 1 <= members <= MAX_MEMBERS:
                raise bad(f"config.json: members must be an integer from 1 to {MAX_MEMBERS}, got {members!r:.40}")
            transform = TargetTransform.from_dict(scal["transform"])
            if transform.lags != tuple(cfg.diff) or transform.log != cfg.log:
                raise bad("scaler.json's transform does not match config.json's log and diff")
            target_scaler = StandardScaler.from_dict(scal["target"])
            cov_scaler = StandardScaler.from_dict(scal["covariates"]) if scal["covariates"] else None
            if target_scaler.mean.shape != (K,) or (C and (cov_scaler is None or cov_scaler.mean.shape != (C,))) \
                    or (not C and cov_scaler is not None):
                raise bad(f"scaler.json does not fit {K} target(s) and {C} covariate(s)")
            sigma = np.asarray(meta["sigma"], dtype=np.float64)
            if sigma.shape != (cfg.horizon, K) or not np.isfinite(sigma).all() or (sigma < 0).any():
                raise bad(f"config.json: sigma must be finite and >= 0 with shape ({cfg.horizon}, {K}), "
                          f"got shape {sigma.shape}")
            if not isinstance(meta["sigma_source"], str):
                raise bad("config.json: sigma_source must be a string")
            time_meta = meta.get("time")
            if time_meta is not None and not (isinstance(time_meta, dict)
                                              and isinstance(time_meta.get("start"), str)
                                              and isinstance(time_meta.get("freq"), (str, type(None)))):
                raise bad("config.json: time must be null or {'start': date, 'freq': frequency}")
        except LstmkitError as e:
            if str(e).startswith("model folder"):
                raise
            raise bad(f"config.json or scaler.json is not valid ({e})") from None
        except (ValueError, KeyError, TypeError, OverflowError) as e:
            raise bad(f"config.json or scaler.json is not valid ({type(e).__name__}: {e})") from None
        self._fitted = _Fitted(transform=transform, target_scaler=target_scaler, cov_scaler=cov_scaler,
                               sigma=sigma, sigma_source=meta["sigma_source"])
        weights = tensors_from_bytes(files["weights.safetensors"], f"{path}/weights.safetensors")
        with torch.device("meta"):                              # shapes only, nothing allocated
            try:
                expected = {k: tuple(v.shape) for k, v in self._build().state_dict().items()}
            except (ValueError, TypeError, RuntimeError) as e:
                raise bad(f"config.json describes no valid model ({str(e).splitlines()[0]})") from None
        want = {f"member{i}.{k}": shape for i in range(members) for k, shape in expected.items()}
        got = {k: tuple(v.shape) for k, v in weights.items()}
        if got != want:
            diff = sorted(set(got.items()) ^ set(want.items()))[:1]
            raise bad(f"weights do not fit the configured model ({members} member(s), hidden "
                      f"{cfg.hidden}, layers {cfg.layers}): first difference {diff}")
        if not all(v.dtype == torch.float32 and torch.isfinite(v).all() for v in weights.values()):
            raise bad("weights must be finite float32 tensors")
        for i in range(members):
            prefix = f"member{i}."
            model = self._build()
            model.load_state_dict({k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)})
            model.eval()
            self.models.append(model)
        hist = tensors_from_bytes(files["history.safetensors"], f"{path}/history.safetensors")
        values = hist.get("values")
        if (set(hist) != {"values"} or values.dtype != torch.float64 or values.dim() != 2
                or values.shape[1] != K + C or values.shape[0] < self._min_rows()
                or not torch.isfinite(values).all()):
            raise bad(f"history.safetensors must hold 'values', finite float64 of shape (T, {K + C}) "
                      f"with T >= {self._min_rows()}")
        frame = pd.DataFrame(values.numpy(), columns=cfg.target + cfg.covariates)
        time, freq = None, None
        if time_meta:
            freq = time_meta["freq"]
            try:
                time = pd.date_range(pd.Timestamp(time_meta["start"]), periods=len(frame), freq=freq)
            except (ValueError, TypeError, OverflowError, pd.errors.OutOfBoundsDatetime) as e:
                raise bad(f"config.json: time {time_meta!r:.80} is not a valid start and frequency "
                          f"({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
        self.series = Series(frame=frame, targets=cfg.target, covariates=cfg.covariates, time=time,
                             freq=freq, time_col=cfg.time_col)
        return self
