from math import exp, pi, sin

import numpy as np
import pandas as pd
import pytest

from lstmkit.data import damped_sine, random_walk_prices, seasonal_sales


def test_damped_sine_is_seed_001s_formula():
    df = damped_sine(102, 20, 0.05)
    assert len(df) == 102
    for i in (0, 5, 37, 101):
        assert df["value"][i] == pytest.approx(0.5 + 0.5 * sin(2 * pi * i / 20) * exp(-0.05 * i))
    assert df["value"].between(0, 1).all()


def test_seasonal_sales_peak_in_june_and_low_in_december():
    df = seasonal_sales(years=10, seed=0)
    month = pd.to_datetime(df["month"]).dt.month
    by_month = df.groupby(month)["sales"].mean()
    assert by_month.idxmax() == 6 and by_month.idxmin() == 12


def test_random_walk_is_positive_and_reproducible():
    a, b = random_walk_prices(seed=3), random_walk_prices(seed=3)
    assert a.equals(b) and (a["price"] > 0).all() and len(a) == 750
    steps = np.diff(np.log(a["price"]))
    assert abs(steps.mean()) < 0.003 and 0.01 < steps.std() < 0.02
