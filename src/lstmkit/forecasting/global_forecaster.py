"""`GlobalForecaster`: one LSTM trained on windows from every series of a panel (many series of
different lengths and starts), the approach of the best LSTM forecasters (Smyl's ES-RNN, M4 2018;
the CIF 2016 winner): per-series normalisation, one shared network, an ensemble of initialisations.

    gf = GlobalForecaster(GlobalConfig(horizon=6)).fit(panel)   # Panel, long frame, .tsf, list
    gf.predict()              # long DataFrame: unique_id, ds, forecast (+ quantile columns)
    gf.evaluate()             # GlobalEvaluation: per-series scores of the LSTM and the baselines
    gf.save("model/");  GlobalForecaster.load("model/")

Normalisation (per series i, fitted on its training part): u = log(y) when every value is > 0, else
u = y; s_i = mean |u_t - u_{t-1}| (the naive forecast's in-sample error, MASE's scale on u);
z = u / s_i. A window with origin o reads z[o-l+1 .. o] - r_o (l = min(lookback, o+1); shorter
histories are padded and passed with lengths=) and is trained to emit z[o+1 .. o+H] - r_o, with
r_o = the exponentially smoothed level of z at o ("level", ES-RNN; the default) or z[o] ("last"). With the
default L1 loss this is, step for step, the MASE of the log series: what the benchmark scores.
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
import torch

from lstmkit.data.panel import Panel, to_panel
from lstmkit.errors import LstmkitError
from lstmkit.training import TrainResult, Windows, train
from lstmkit.training.checkpoint import (json_bytes, load_bundle, load_members, member_state, save_bundle,
                                         tensors_from_bytes, tensors_to_bytes)

from .factory import network
from .global_config import GlobalConfig

FILES = ["config.json", "scaler.json", "weights.safetensors", "history.safetensors"]
ALPHAS = np.linspace(0.05, 1.0, 20)          # smoothing grid of the "level" scaling


def masked_l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    mask = torch.isfinite(target)
    if not mask.any():
        return (pred * 0).sum()
    return (pred[mask] - target[mask]).abs().mean()


def masked_l2(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    mask = torch.isfinite(target)
    if not mask.any():
        return (pred * 0).sum()
    return ((pred[mask] - target[mask]) ** 2).mean()


def pinball_loss(levels: list[float]):
    """Pinball (quantile) loss for outputs laid out (N, H*Q), Q = len(levels), targets (N, H)
    (Koenker & Bassett 1978): mean over finite targets and levels of max(q e, (q - 1) e), e = y - f."""
    q = torch.tensor(levels, dtype=torch.float32)

    def loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        pred = pred.reshape(len(pred), target.shape[1], len(levels))      # (N, H, Q)
        mask = torch.isfinite(target)
        if not mask.any():
            return (pred * 0).sum()
        e = target[mask].unsqueeze(-1) - pred[mask]                        # (M, Q)
        return torch.maximum(q * e, (q - 1) * e).mean()
    return loss


@dataclass
class SeriesScale:
    """Per-series normalisation (see the module docstring): log flag, scale s, smoothing alpha."""
    log: np.ndarray     # (N,) bool
    scale: np.ndarray   # (N,) s_i > 0
    alpha: np.ndarray   # (N,) level smoothing in (0, 1] (1 = the last value)

    def to_dict(self) -> dict:
        return {"log": self.log.tolist(), "scale": self.scale.tolist(), "alpha": self.alpha.tolist()}

    @classmethod
    def from_dict(cls, d: dict, n: int) -> "SeriesScale":
        try:
            s = cls(np.asarray(d["log"], dtype=bool), np.asarray(d["scale"], dtype=np.float64),
                    np.asarray(d["alpha"], dtype=np.float64))
        except (KeyError, TypeError, ValueError) as e:
            raise LstmkitError(f"scaler.json: expected per-series log/scale/alpha lists ({e})") from None
        if not (len(s.log) == len(s.scale) == len(s.alpha) == n) or not (s.scale > 0).all() \
                or not ((s.alpha > 0) & (s.alpha <= 1)).all():
            raise LstmkitError(f"scaler.json: expected {n} positive scales and smoothing values in (0, 1]")
        return s


def _level(z: np.ndarray, alpha: float) -> np.ndarray:
    """Exponentially smoothed level of z (T,): l_0 = z_0, l_t = alpha z_t + (1 - alpha) l_{t-1}."""
    out = np.empty_like(z)
    acc = z[0]
    for t, v in enumerate(z):
        acc = alpha * v + (1 - alpha) * acc if t else v
        out[t] = acc
    return out


def _pick_alpha(z: np.ndarray) -> float:
    """The smoothing whose level best forecasts the next value (one-step MAE), as simple exponential
    smoothing is fitted; 1.0 (the last value) for series too short to tell."""
    if len(z) < 4:
        return 1.0
    errs = [np.mean(np.abs(z[1:] - _level(z, a)[:-1])) for a in ALPHAS]
    return float(ALPHAS[int(np.argmin(errs))])


class GlobalForecaster:
    def __init__(self, config: Optional[GlobalConfig] = None):
        self.config = copy.deepcopy(config) if config is not None else GlobalConfig()
        self.models: list[torch.nn.Module] = []
        self.result: Optional[TrainResult] = None
        self.panel: Optional[Panel] = None
        self.scale: Optional[SeriesScale] = None
        self.cov_mean = np.zeros(0)
        self.cov_std = np.ones(0)

    # ---------------------------------------------------------------- set-up
    def _resolve(self, panel: Panel) -> GlobalConfig:
        cfg = copy.deepcopy(self.config)
        cfg.horizon = cfg.horizon or panel.horizon or 12
        cfg.lookback = cfg.lookback or 2 * cfg.horizon
        cfg.holdout = cfg.horizon if cfg.holdout is None else cfg.holdout
        cfg.season = cfg.season or panel.season or 1
        cfg.covariates = list(panel.covariates)
        cfg.id_col, cfg.target = panel.id_col, panel.target
        cfg.time_col = panel.time_col
        return cfg

    def _n_out(self) -> int:
        return self.config.horizon * max(1, len(self.config.levels))

    def _build(self) -> torch.nn.Module:
        cfg = self.config
        C = len(cfg.covariates)
        return network(cfg.model, 1 + C, self._n_out(), cfg.hidden, cfg.layers, cfg.dropout,
                       cfg.layer_options, n_series=len(self.panel.ids), id_dim=cfg.id_embedding,
                       n_future=cfg.horizon * C, head_hidden=cfg.head_hidden)

    def _fit_scale(self, panel: Panel) -> SeriesScale:
        logs, scales, alphas = [], [], []
        for v in panel.values:
            log = bool((v > 0).all())
            u = np.log(v) if log else v
            d = np.abs(np.diff(u))
            s = float(d.mean()) if len(d) and d.mean() > 0 else float(np.mean(np.abs(u))) or 1.0
            logs.append(log)
            scales.append(s if np.isfinite(s) and s > 0 else 1.0)
            alphas.append(_pick_alpha(u / scales[-1]) if self.config.scaling == "level" else 1.0)
        return SeriesScale(np.array(logs), np.array(scales), np.array(alphas))

    def _z(self, i: int, y: np.ndarray) -> np.ndarray:
        s = self.scale
        if s.log[i] and not (y > 0).all():
            raise LstmkitError(f"series {self.panel.ids[i]!r} was positive when fitted (modelled on "
                               f"the log scale) but now has values <= 0")
        return (np.log(y) if s.log[i] else y) / s.scale[i]

    def _y(self, i: int, z: np.ndarray) -> np.ndarray:
        u = z * self.scale.scale[i]
        return np.exp(np.clip(u, -700, 700)) if self.scale.log[i] else u

    def _ref(self, i: int, z: np.ndarray) -> np.ndarray:
        """Reference r_o for every origin o of z (T,): the last value or the smoothed level."""
        return z if self.scale.alpha[i] >= 1.0 else _level(z, self.scale.alpha[i])

    # ---------------------------------------------------------------- windows
    def _windows(self, values: list[np.ndarray], covs: list[np.ndarray], ends: list[int],
                 origins: list[np.ndarray], series: list[int]) -> Windows:
        """Windows of series `series[k]` at `origins[k]`, targets only before `ends[k]` (NaN after)."""
        cfg = self.config
        L, H, C = cfg.lookback, cfg.horizon, len(cfg.covariates)
        n = sum(len(o) for o in origins)
        x = np.zeros((n, L, 1 + C), dtype=np.float32)
        lengths = np.zeros(n, dtype=np.int64)
        y = np.full((n, H), np.nan, dtype=np.float32)
        fut = np.zeros((n, H, C), dtype=np.float32)
        ids = np.zeros(n, dtype=np.int64)
        row = 0
        for k, i in enumerate(series):
            z = self._z(i, values[k])
            r = self._ref(i, z)
            c = (covs[k] - self.cov_mean) / self.cov_std if C else None
            for o in origins[k]:
                l = min(L, o + 1)
                x[row, :l, 0] = z[o - l + 1:o + 1] - r[o]
                if C:
                    x[row, :l, 1:] = c[o - l + 1:o + 1]
                    m = min(H, len(c) - o - 1)
                    fut[row, :m] = c[o + 1:o + 1 + m]
                lengths[row] = l
                m = max(0, min(H, ends[k] - o - 1))
                y[row, :m] = z[o + 1:o + 1 + m] - r[o]
                ids[row] = i
                row += 1
        extra = {"ids": torch.from_numpy(ids)}
        if C:
            extra["future"] = torch.from_numpy(fut)
        return Windows(torch.from_numpy(x), torch.from_numpy(y), lengths=torch.from_numpy(lengths),
                       extra=extra)

    # ---------------------------------------------------------------- fitting
    def fit(self, data) -> "GlobalForecaster":
        """Train on every series minus its last `holdout` steps (kept for evaluate())."""
        self.config.check()
        cfg = self.config
        panel = to_panel(data, cfg.id_col, cfg.time_col, cfg.target, cfg.covariates)
        self.config = cfg = self._resolve(panel)
        cfg.check()
        self.panel = panel
        cut = cfg.holdout * cfg.backtest if cfg.backtest > 1 and not cfg.refit else cfg.holdout
        train_panel = panel.head(cut)
        need = cfg.holdout * cfg.backtest + cfg.val + 2          # the earliest origin's history
        short = [(panel.ids[i], len(v)) for i, v in enumerate(panel.values) if len(v) < need]
        if short:
            raise LstmkitError(f"{len(short)} series are too short for holdout {cfg.holdout} x backtest "
                               f"{cfg.backtest} + validation {cfg.val} + 2 training steps = {need}, "
                               f"e.g. {short[0][0]!r} with {short[0][1]} steps")
        self._fit_on(train_panel)
        return self

    def _fit_on(self, tp: Panel) -> None:
        cfg = self.config
        fit_part = tp.head(cfg.val)
        self.scale = self._fit_scale(fit_part)
        if cfg.covariates:
            allc = np.concatenate(fit_part.cov_values)
            self.cov_mean, std = allc.mean(0), allc.std(0)
            self.cov_std = np.where(std > 0, std, 1.0)
        idx = list(range(len(tp)))
        fit_ends = [len(v) for v in fit_part.values]
        train_data = self._windows(tp.values, tp.cov_values, fit_ends,
                                   [np.arange(0, e - 1) for e in fit_ends], idx)
        val_data = None
        if cfg.val:
            val_data = self._windows(tp.values, tp.cov_values, [len(v) for v in tp.values],
                                     [np.array([e - 1]) for e in fit_ends], idx)
        if cfg.levels:
            loss = pinball_loss(cfg.levels)
        else:
            loss = masked_l1 if cfg.loss == "mae" else masked_l2
        self.result = train(self._build, train_data, val_data, cfg.train, loss_fn=loss,
                            desc="training global LSTM")
        self.models = self.result.models(self._build)

    # ---------------------------------------------------------------- forecasting
    def _raw(self, values, covs, series) -> np.ndarray:
        """Normalised ensemble-mean output from the last step of each history: (N, H, Q')."""
        if not self.models:
            raise LstmkitError("GlobalForecaster is not fitted: call fit() or load() first")
        w = self._windows(values, covs, [0] * len(values), [np.array([len(v) - 1]) for v in values],
                          series)
        with torch.no_grad():
            outs = [m(w.x, **w.kwargs())[0][:, -1] for m in self.models]
        out = torch.stack(outs).mean(0).numpy().astype(np.float64)
        return out.reshape(len(values), self.config.horizon, -1)

    def forecast_from(self, values: list[np.ndarray], covs: Optional[list[np.ndarray]] = None,
                      series: Optional[list[int]] = None, steps: Optional[int] = None
                      ) -> tuple[np.ndarray, Optional[np.ndarray]]:
        """Forecast `steps` (<= horizon) beyond each history values[k] (raw, (T_k,)) of series
        series[k]; covs[k] (T_k + steps, C) must reach over the forecast when there are covariates.
        Returns point (N, steps) and quantiles (N, steps, Q) or None."""
        cfg = self.config
        steps = steps or cfg.horizon
        if not 1 <= steps <= cfg.horizon:
            raise LstmkitError(f"steps must be in 1..{cfg.horizon} (the model's horizon), got {steps}")
        series = list(range(len(values))) if series is None else series
        C = len(cfg.covariates)
        if covs is None:
            if C:
                raise LstmkitError(f"this model reads future-known covariates {cfg.covariates}: "
                                   f"give their values over the {steps} forecast steps")
            covs = [np.zeros((len(v), 0)) for v in values]
        for k, (v, c) in enumerate(zip(values, covs)):
            if C and len(c) < len(v) + steps:
                raise LstmkitError(f"series {self.panel.ids[series[k]]!r}: covariates end at step "
                                   f"{len(c)}, the forecast needs them up to step {len(v) + steps}")
        raw = self._raw(values, covs, series)               # (N, H, Q')
        levels = cfg.levels
        point_col = levels.index(0.5) if levels else 0
        point, quant = np.empty((len(values), steps)), None
        if levels:
            quant = np.empty((len(values), steps, len(levels)))
            raw = np.sort(raw, axis=-1)                     # no crossing quantiles
        for k, i in enumerate(series):
            z = self._z(i, values[k])
            r = self._ref(i, z)[-1]
            point[k] = self._y(i, r + raw[k, :steps, point_col])
            if levels:
                quant[k] = self._y(i, r + raw[k, :steps, :])
        return point, quant

    def predict(self, horizon: Optional[int] = None, data=None, future=None) -> pd.DataFrame:
        """Forecast every series beyond its end (default: the data given to fit, holdout included).
        future: long frame of covariate values over the forecast (when the model has covariates).
        Returns a long DataFrame: id, time (or step index), forecast, and one column per quantile."""
        cfg = self.config
        panel = self.panel if data is None else to_panel(data, cfg.id_col, cfg.time_col, cfg.target,
                                                         cfg.covariates)
        steps = horizon or cfg.horizon
        series = self._series_of(panel)
        covs = None
        if cfg.covariates:
            if future is None:
                raise LstmkitError(f"this model reads future-known covariates {cfg.covariates}: pass "
                                   f"future= (a long frame of their values over the forecast)")
            fut = to_panel(future, cfg.id_col, cfg.time_col, cfg.covariates[0], cfg.covariates)
            fmap = dict(zip(fut.ids, fut.cov_values))
            missing = [n for n in panel.ids if n not in fmap]
            if missing:
                raise LstmkitError(f"future covariates missing for series {missing[:3]}")
            covs = [np.concatenate([panel.cov_values[k], fmap[n]]) for k, n in enumerate(panel.ids)]
        point, quant = self.forecast_from(panel.values, covs, series, steps)
        rows = []
        for k, name in enumerate(panel.ids):
            part = pd.DataFrame({cfg.id_col: name,
                                 cfg.time_col: panel.times(k, steps, len(panel.values[k])),
                                 "forecast": point[k]})
            for j, q in enumerate(cfg.levels):
                part[f"q{q:g}"] = quant[k, :, j]
            rows.append(part)
        out = pd.concat(rows, ignore_index=True)
        if panel.starts is not None and panel.freq is not None and not _daily_or_coarser(panel.freq):
            out[cfg.time_col] = pd.DatetimeIndex(out[cfg.time_col]).strftime("%Y-%m-%d %H:%M:%S")
        elif panel.starts is not None:
            out[cfg.time_col] = pd.DatetimeIndex(out[cfg.time_col]).strftime("%Y-%m-%d")
        return out

    def _series_of(self, panel: Panel) -> list[int]:
        index = {n: i for i, n in enumerate(self.panel.ids)}
        unknown = [n for n in panel.ids if n not in index]
        if unknown:
            raise LstmkitError(f"series {unknown[:3]} were not in the training data; a global model "
                               f"forecasts the series it was trained on")
        return [index[n] for n in panel.ids]

    # ---------------------------------------------------------------- evaluation
    def evaluate(self, baselines=("naive", "seasonal naive", "ETS", "ARIMA", "Theta"), progress=None):
        """Score the held-out steps of every series (all `backtest` origins) for the LSTM and the
        baselines; refits the LSTM at each origin when config.refit. Returns a GlobalEvaluation."""
        from .global_report import evaluate_panel
        cfg = self.config
        if self.panel is None or not self.models:
            raise LstmkitError("evaluate() needs the data it was fitted on: call fit() first")
        if cfg.holdout == 0:
            raise LstmkitError("evaluate() needs a holdout; fit with holdout > 0")
        return evaluate_panel(self, baselines, progress)

    def gate_view(self, example=None):
        """(first lstmkit.LSTM, x (1, L, F) as it receives it, step labels) for the gate viewer;
        example: a series id (default: the first series), its last window."""
        i = 0 if example is None else self._series_of(Panel([str(example)], [np.ones(1)]))[0]
        v, c = self.panel.values[i], self.panel.cov_values[i]
        w = self._windows([v], [c], [0], [np.array([len(v) - 1])], [i])
        l = int(w.lengths[0])
        labels = [str(t) for t in self.panel.times(i, l, len(v) - l)]
        return self.models[0].lstm, w.x[:1, :l], labels

    # ---------------------------------------------------------------- saving
    def save(self, path) -> Path:
        """Model folder (see lstmkit.training.checkpoint): config.json (task "forecaster", model
        "global"), scaler.json (per-series normalisation), weights and the series' history."""
        if not self.models:
            raise LstmkitError("GlobalForecaster.save: nothing to save, fit() first")
        p = self.panel
        weights = member_state(self.models)
        hist = {"values": torch.tensor(np.concatenate(p.values)),
                "lengths": torch.tensor(p.lengths, dtype=torch.int64)}
        if p.covariates:
            hist["covariates"] = torch.tensor(np.concatenate(p.cov_values))
        meta = {"task": "forecaster", "model": "global", "config": self.config.to_dict(),
                "members": len(self.models), "ids": p.ids, "freq": p.freq,
                "starts": [str(s) for s in p.starts] if p.starts is not None else None,
                "losses": [r.history for r in self.result.runs] if self.result else []}
        scaler = {"series": self.scale.to_dict(), "cov_mean": self.cov_mean.tolist(),
                  "cov_std": self.cov_std.tolist()}
        return save_bundle(path, {"config.json": json_bytes(meta), "scaler.json": json_bytes(scaler),
                                  "weights.safetensors": tensors_to_bytes(weights),
                                  "history.safetensors": tensors_to_bytes(hist)}, kind="forecaster")

    @classmethod
    def load(cls, path) -> "GlobalForecaster":
        files = load_bundle(path, "forecaster", FILES)
        return cls._from_files(path, files)

    @classmethod
    def _from_files(cls, path, files) -> "GlobalForecaster":
        try:
            meta = json.loads(files["config.json"])
            scal = json.loads(files["scaler.json"])
            self = cls(GlobalConfig.from_dict(meta["config"]))
            self.config.check()
            ids = [str(n) for n in meta["ids"]]
            members = int(meta["members"])
            if not 1 <= members <= 1000:
                raise ValueError(f"members {members}")
            self.cov_mean = np.asarray(scal["cov_mean"], dtype=np.float64)
            self.cov_std = np.asarray(scal["cov_std"], dtype=np.float64)
        except (ValueError, KeyError, TypeError) as e:
            raise LstmkitError(f"model folder {path}: config.json or scaler.json is not valid ({e})") from None
        hist = tensors_from_bytes(files["history.safetensors"], f"{path}/history.safetensors")
        lengths = hist["lengths"].numpy()
        if len(lengths) != len(ids) or lengths.sum() != len(hist["values"]):
            raise LstmkitError(f"model folder {path}: history does not match its {len(ids)} series")
        bounds = np.cumsum(lengths)[:-1]
        values = np.split(hist["values"].numpy().astype(np.float64), bounds)
        covs = np.split(hist["covariates"].numpy(), bounds) if "covariates" in hist else None
        starts = [pd.Timestamp(s) for s in meta["starts"]] if meta.get("starts") else None
        cfg = self.config
        self.panel = Panel(ids, values, starts, meta.get("freq"), list(cfg.covariates), covs,
                           cfg.horizon, cfg.season, cfg.id_col, cfg.time_col or "ds", cfg.target)
        self.scale = SeriesScale.from_dict(scal["series"], len(ids))
        self.models = load_members(path, files["weights.safetensors"], self._build, members)
        return self


def _daily_or_coarser(freq: str) -> bool:
    try:
        return pd.tseries.frequencies.to_offset(freq).nanos >= 86_400 * 10 ** 9
    except ValueError:           # calendar offsets (months, years) have no fixed length
        return True


def is_global_folder(path) -> bool:
    """True when `path` holds a model folder written by GlobalForecaster.save."""
    cfg = Path(path) / "config.json"
    try:
        if cfg.stat().st_size > 1 << 20:       # not one of ours; load_bundle says why
            return False
        meta = json.loads(cfg.read_text("utf-8"))
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(meta, dict) and meta.get("model") == "global"
