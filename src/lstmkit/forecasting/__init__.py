"""Forecasting with LSTMs: the config, the thin model (LSTM + linear head), the Forecaster API,
baselines and the holdout report. Windowing, scaling, training, metrics and plots live in
lstmkit.data, lstmkit.training, lstmkit.metrics and lstmkit.plotting."""
from .config import ForecastConfig
from .forecaster import Forecaster
from .global_config import GlobalConfig
from .global_forecaster import GlobalForecaster
from .model import LSTMForecaster
from .report import Evaluation

__all__ = ["Evaluation", "ForecastConfig", "Forecaster", "GlobalConfig", "GlobalForecaster",
           "LSTMForecaster"]
