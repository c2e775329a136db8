"""Generated series for the demos (the notes' examples). Each returns a DataFrame with a time column."""
from __future__ import annotations

from math import exp, pi, sin

import numpy as np
import pandas as pd


def damped_sine(length: int = 102, period: float = 20, decay: float = 0.05) -> pd.DataFrame:
    """Seed 001's practical: 0.5 + 0.5 * sin(2 pi i / period) * exp(-decay i), i = 0 .. length-1,
    a damped sine wave in [0, 1]. Columns: step, value."""
    values = [0.5 + 0.5 * sin(2 * pi * i / period) * exp(-decay * i) for i in range(length)]
    return pd.DataFrame({"step": np.arange(length), "value": values})


def seasonal_sales(years: int = 10, seed: int = 0) -> pd.DataFrame:
    """Seed 004's ice-cream sales: monthly, a 12-period cycle lowest in December and highest in June,
    a slow upward trend and noise. Columns: month, sales."""
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
    rng = np.random.default_rng(seed)
    log_price = np.log(start) + np.cumsum(rng.normal(0, volatility, days))
    days_index = pd.date_range("2020-01-01", periods=days, freq="D")
    return pd.DataFrame({"day": days_index.strftime("%Y-%m-%d"), "price": np.round(np.exp(log_price), 4)})
