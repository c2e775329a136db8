"""Generated series for the demos (the notes' examples). Each returns a DataFrame with a time column."""
from __future__ import annotations

import numpy as np
import pandas as pd

from lstmkit.errors import LstmkitError

MAX_STEPS = 10_000_000


def _count(name: str, value, least: int = 1, most: int = MAX_STEPS) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or not least <= value <= most:
        raise LstmkitError(f"{name} must be an integer from {least} to {most}, got {value!r}")
    return int(value)


def _real(name: str, value, positive: bool = False) -> float:
    if (not isinstance(value, (int, float, np.number)) or isinstance(value, bool) or not np.isfinite(value)
            or (positive and value <= 0)):
        raise LstmkitError(f"{name} must be a finite number{' > 0' if positive else ''}, got {value!r}")
    return float(value)


def damped_sine(length: int = 102, period: float = 20, decay: float = 0.05) -> pd.DataFrame:
    """Seed 001's practical: 0.5 + 0.5 * sin(2 pi i / period) * exp(-decay i), i = 0 .. length-1,
    a damped sine wave in [0, 1]. Columns: step, value. length >= 1, period > 0, decay finite."""
    length, period, decay = _count("length", length), _real("period", period, True), _real("decay", decay)
    i = np.arange(length)
    with np.errstate(over="ignore", invalid="ignore"):   # a growing wave overflows: prepare() says so
        values = 0.5 + 0.5 * np.sin(2 * np.pi * i / period) * np.exp(-decay * i)
    return pd.DataFrame({"step": np.arange(length), "value": values})


def seasonal_sales(years: int = 10, seed: int = 0) -> pd.DataFrame:
    """Seed 004's ice-cream sales: monthly, a 12-period cycle lowest in December and highest in June,
    a slow upward trend and noise. Columns: month, sales."""
    years = _count("years", years, most=500)
    rng = np.random.default_rng(seed)
    months = pd.date_range("2010-01-01", periods=12 * years, freq="MS")
    m = months.month.to_numpy()                        # 1 .. 12
    season = np.cos(2 * np.pi * (m - 6) / 12)          # +1 in June, -1 in December
    trend = np.linspace(0, 20, len(months))
    sales = 100 + trend + 40 * season + rng.normal(0, 4, len(months))
    return pd.DataFrame({"month": months.strftime("%Y-%m"), "sales": np.round(sales, 2)})


def random_walk_prices(days: int = 750, start: float = 100.0, volatility: float = 0.015,
                       seed: int = 0) -> pd.DataFrame:
    """Seed 004's stock example: daily closing prices as a geometric random walk (no drift, so
    tomorrow's best guess is today's price). Columns: day, price."""
    days, start = _count("days", days, most=100_000), _real("start", start, True)
    volatility = _real("volatility", volatility)
    rng = np.random.default_rng(seed)
    log_price = np.log(start) + np.cumsum(rng.normal(0, volatility, days))
    days_index = pd.date_range("2020-01-01", periods=days, freq="D")
    return pd.DataFrame({"day": days_index.strftime("%Y-%m-%d"), "price": np.round(np.exp(log_price), 4)})
