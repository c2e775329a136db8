"""Everything a forecast run is made of, in one dataclass; `lstmkit forecast` maps its flags onto it
and a saved model stores it (resolved: no "auto" left) as config.json."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Optional

from lstmkit.errors import LstmkitError
from lstmkit.training import TrainConfig, config_from_dict


# Upper bounds on sizes: far above any sensible model, low enough that a mistyped flag or a tampered
# config.json cannot ask for gigabytes before anything is checked.
LIMITS = {"lookback": 100_000, "horizon": 10_000, "holdout": 10_000_000, "val": 10_000_000,
          "season": 100_000, "layers": 64, "hidden": 16_384}


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_types(cfg: "ForecastConfig") -> None:
    """Every field has the type its comment says (bool is not an int here)."""
    def bad(name, want, v):
        raise LstmkitError(f"{name} must be {want}, got {v!r:.60}")

    for name in ("target", "covariates"):
        v = getattr(cfg, name)
        if v is None and name == "target":
            continue
        if not isinstance(v, list) or not all(isinstance(c, str) and c for c in v):
            bad(name, "a list of column names", v)
    if cfg.time_col is not None and not isinstance(cfg.time_col, str):
        bad("time_col", "a column name or None", cfg.time_col)
    for name in ("lookback", "horizon", "layers", "hidden"):
        if not _is_int(getattr(cfg, name)):
            bad(name, "an integer", getattr(cfg, name))
    for name in ("holdout", "val", "season"):
        v = getattr(cfg, name)
        if v is not None and not _is_int(v):
            bad(name, "an integer or None", v)
    if cfg.log is not None and not isinstance(cfg.log, bool):
        bad("log", "true, false or None", cfg.log)
    if cfg.diff is not None and (not isinstance(cfg.diff, list) or not all(_is_int(l) for l in cfg.diff)
                                 or len(cfg.diff) > 8):
        bad("diff", "a list of at most 8 integer lags", cfg.diff)
    if cfg.diff and (min(cfg.diff) < 1 or sum(cfg.diff) > 100_000):
        bad("diff", "lags >= 1 summing to at most 100000", cfg.diff)
    if cfg.preset is not None and not isinstance(cfg.preset, str):
        bad("preset", "a preset name or None", cfg.preset)
    for name in ("dropout", "interval"):
        v = getattr(cfg, name)
        if not _is_num(v) or v != v:
            bad(name, "a number", v)
    if not isinstance(cfg.stateful, bool):
        bad("stateful", "true or false", cfg.stateful)
    if not isinstance(cfg.train, TrainConfig):
        bad("train", "a TrainConfig", cfg.train)
    t = cfg.train
    for name in ("epochs", "batch_size", "patience", "restarts", "seed", "tbptt"):
        if not _is_int(getattr(t, name)):
            bad(f"train.{name}", "an integer", getattr(t, name))
    for name in ("lr", "weight_decay", "clip_norm", "min_delta"):
        v = getattr(t, name)
        if not _is_num(v) or not math.isfinite(v):
            bad(f"train.{name}", "a finite number", v)
    if t.head_lr is not None and (not _is_num(t.head_lr) or not math.isfinite(t.head_lr)):
        bad("train.head_lr", "a finite number or None", t.head_lr)
    if not isinstance(t.combine, str):
        bad("train.combine", "'mean' or 'best'", t.combine)
    if t.progress is not None and not isinstance(t.progress, bool):
        bad("train.progress", "true, false or None", t.progress)
    for name, most in (("epochs", 1_000_000), ("restarts", 1000), ("batch_size", 10_000_000),
                       ("tbptt", 10_000_000)):
        if getattr(t, name) > most:
            bad(f"train.{name}", f"at most {most}", getattr(t, name))


def default_training() -> TrainConfig:
    """Training defaults that fit the airline data in well under a minute on 2 CPU cores."""
    return TrainConfig(epochs=300, lr=1e-3, head_lr=1e-3, batch_size=16, clip_norm=1.0, patience=60,
                       restarts=5, combine="mean", seed=0)


@dataclass
class ForecastConfig:
    # --- data ---
    target: Optional[list[str]] = None     # columns to forecast; None = first numeric non-time column
    covariates: list[str] = field(default_factory=list)  # extra input columns (observed up to the origin)
    time_col: Optional[str] = None         # time column; None = a date column found automatically
    # --- windows and the time split ---
    lookback: int = 24                     # steps the LSTM reads before each forecast origin (L)
    horizon: int = 12                      # steps forecast at once from an origin (H)
    holdout: Optional[int] = None          # last steps held out for the final test; None = horizon
    val: Optional[int] = None              # steps before the holdout for early stopping; None = horizon
    season: Optional[int] = None           # season length (seasonal naive, MASE, differencing);
                                           # None = from the time column's frequency (monthly: 12), else 1
    # --- target transforms (scaling always follows) ---
    log: Optional[bool] = None             # log the targets; None = when every target value is > 0
    diff: Optional[list[int]] = None       # differencing lags, e.g. [1] or [1, 12]; None = [1, season]
                                           # when season > 1 else [1]; [] = no differencing
    # --- model ---
    layers: int = 1                        # stacked LSTM layers
    hidden: int = 32                       # hidden size of each layer
    preset: Optional[str] = None           # LSTM variant of lstmkit.PRESETS (Greff et al.); None = vanilla
    dropout: float = 0.0                   # dropout between layers and before the output layer
    layer_options: dict = field(default_factory=dict)  # any other lstmkit.LSTM option (LSTMOptions
                                           # fields, zoneout, recurrent_dropout; forecasting.factory)
    # --- training (Adam, clipping, early stopping, restarts, truncated BPTT) ---
    train: TrainConfig = field(default_factory=default_training)
    stateful: bool = False                 # train on the whole series as one stream in chunks of
                                           # train.tbptt steps (truncated BPTT), carrying the state
    # --- reporting ---
    interval: float = 0.9                  # coverage of the LSTM's prediction interval

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ForecastConfig":
        if not isinstance(d, dict) or ("train" in d and not isinstance(d["train"], dict)):
            raise LstmkitError(f"config: expected a JSON object of ForecastConfig fields, got "
                               f"{type(d).__name__}")
        return config_from_dict(cls, d)

    def check(self) -> None:
        """Fail early on values that cannot work, naming the field: types, ranges and sizes (a config
        read from a model folder goes through here too, so no field is trusted)."""
        _check_types(self)
        for name, most in LIMITS.items():
            value = getattr(self, name)
            if value is not None and value > most:
                raise LstmkitError(f"{name} must be <= {most}, got {value}")
        for name in ("lookback", "horizon", "layers", "hidden"):
            if getattr(self, name) < 1:
                raise LstmkitError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("holdout", "val", "season"):
            value = getattr(self, name)
            if value is not None and value < (1 if name == "season" else 0):
                raise LstmkitError(f"{name} must be >= {1 if name == 'season' else 0}, got {value}")
        if not 0 <= self.dropout < 1:
            raise LstmkitError(f"dropout must be in [0, 1), got {self.dropout}")
        if not 0 < self.interval < 1:
            raise LstmkitError(f"interval must be in (0, 1), got {self.interval}")
        if self.preset is not None:
            from lstmkit.cells import PRESETS
            if self.preset not in PRESETS:
                raise LstmkitError(f"preset must be one of {sorted(PRESETS)} or None, got {self.preset!r}")
        from .factory import check_layer_options
        check_layer_options({**self.layer_options, **({"preset": self.preset} if self.preset else {})})
        if self.stateful and self.train.tbptt < 1:
            raise LstmkitError("stateful training needs train.tbptt >= 1 (the chunk length)")
        self.train.check()
