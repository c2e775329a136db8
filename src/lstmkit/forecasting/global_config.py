"""`GlobalConfig`: everything a global (many-series) forecast run is made of; `lstmkit forecast` on a
long-format CSV or a .tsf file maps its flags onto it, and a saved global model stores it resolved."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional

from lstmkit.errors import LstmkitError
from lstmkit.training import TrainConfig, config_from_dict


def global_training() -> TrainConfig:
    """Training defaults for a global model: a few thousand windows, an ensemble of initialisations
    averaged (combine="mean"), fixed length (no validation split: the last steps of short series are
    too precious), the training loss only guards against divergence."""
    return TrainConfig(epochs=40, lr=3e-3, head_lr=3e-3, batch_size=64, clip_norm=1.0, patience=0,
                       restarts=10, combine="mean", seed=0)


SCALINGS = ("last", "level")
LOSSES = ("mae", "mse")


@dataclass
class GlobalConfig:
    # --- data (long format names; .tsf files and lists of series need none) ---
    id_col: str = "unique_id"              # series id column
    time_col: Optional[str] = "ds"         # time column (dates, or step numbers 0, 1, 2, ...)
    target: str = "y"                      # value column
    covariates: list[str] = field(default_factory=list)   # future-known inputs (their values over
                                           # the forecast horizon are given with the history)
    # --- windows and evaluation ---
    horizon: Optional[int] = None          # steps forecast at once (H); None = the .tsf file's
                                           # @horizon, else 12
    lookback: Optional[int] = None         # most steps read before an origin; shorter histories are
                                           # padded (lengths=); None = 2 * horizon
    holdout: Optional[int] = None          # last steps of every series held out; None = horizon;
                                           # 0 = train on everything (deployment)
    val: int = 0                           # steps before the holdout of every series used for early
                                           # stopping (0 = fixed epochs on all the data)
    season: Optional[int] = None           # season length (seasonal naive, MASE scale);
                                           # None = from the frequency
    backtest: int = 1                      # rolling origins (each `holdout` steps apart)
    refit: bool = False                    # backtest: retrain the LSTM at every origin
    # --- normalisation per series ---
    scaling: str = "level"                 # windows in units of the series' mean absolute one-step
                                           # change (of log y when positive), relative to
                                           # "level": an exponentially smoothed level (ES-RNN,
                                           # Smyl 2020), smoothing chosen per series, or
                                           # "last": the last value
    # --- model (see lstmkit.forecasting.factory) ---
    model: str = "global_lstm"
    hidden: int = 32
    layers: int = 1
    dropout: float = 0.0
    layer_options: dict = field(default_factory=dict)   # any lstmkit.LSTM option: preset, peephole,
                                           # layer_norm, zoneout, recurrent_dropout, ...
    head_hidden: int = 64                  # hidden units of the MLP head (0 = one linear layer)
    id_embedding: int = 0                  # size of a learned series-id embedding (0 = none)
    quantiles: list[float] = field(default_factory=list)  # e.g. [0.05, 0.5, 0.95]: pinball loss;
                                           # the 0.5 quantile is the point forecast
    loss: str = "mae"                      # point loss on the normalised scale ("mae" ~ MASE)
    train: TrainConfig = field(default_factory=global_training)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "GlobalConfig":
        return config_from_dict(cls, d)

    @property
    def levels(self) -> list[float]:
        """Quantile levels the network emits, sorted, 0.5 included when quantiles are asked for."""
        if not self.quantiles:
            return []
        return sorted(set(float(q) for q in self.quantiles) | {0.5})

    def check(self) -> None:
        for name in ("horizon", "lookback", "hidden", "layers"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise LstmkitError(f"{name} must be >= 1, got {v}")
        if self.horizon is not None and self.horizon > 10_000:
            raise LstmkitError(f"horizon must be <= 10000, got {self.horizon}")
        for name in ("holdout", "val", "head_hidden", "id_embedding"):
            v = getattr(self, name)
            if v is not None and v < 0:
                raise LstmkitError(f"{name} must be >= 0, got {v}")
        if self.season is not None and self.season < 1:
            raise LstmkitError(f"season must be >= 1, got {self.season}")
        if self.backtest < 1:
            raise LstmkitError(f"backtest must be >= 1 (rolling origins), got {self.backtest}")
        if self.backtest > 1 and self.holdout == 0:
            raise LstmkitError("backtest needs a holdout > 0 (the steps scored at each origin)")
        if self.scaling not in SCALINGS:
            raise LstmkitError(f"scaling must be one of {SCALINGS}, got {self.scaling!r}")
        if self.loss not in LOSSES:
            raise LstmkitError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if not 0 <= self.dropout < 1:
            raise LstmkitError(f"dropout must be in [0, 1), got {self.dropout}")
        for q in self.quantiles:
            if not 0 < q < 1:
                raise LstmkitError(f"quantiles must lie in (0, 1), got {q}")
        from .factory import MODELS, check_layer_options
        if self.model != "global_lstm" or self.model not in MODELS:
            raise LstmkitError(f"model must be 'global_lstm' for many series, got {self.model!r}")
        check_layer_options(self.layer_options)
        self.train.check()
