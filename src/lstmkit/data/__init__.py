"""Data for lstmkit's tasks: bundled data sets and generators, loading and checks, windowing, scaling
and target transforms. Nothing here knows about models or training."""
from .generators import damped_sine, random_walk_prices, seasonal_sales
from .loaders import (AIRLINE_CSV, ROTTEN_TOMATOES_CSV, Series, airline_passengers, as_frame, bundled_file,
                      prepare, read_csv, rotten_tomatoes)
from .scaling import StandardScaler
from .transforms import TargetTransform
from .windowing import TimeSplit, inputs_at, targets_at, time_split, windows

__all__ = ["AIRLINE_CSV", "ROTTEN_TOMATOES_CSV", "Series", "bundled_file", "rotten_tomatoes", "StandardScaler", "TargetTransform", "TimeSplit", "airline_passengers", "as_frame",
           "damped_sine", "inputs_at", "prepare", "random_walk_prices", "read_csv", "seasonal_sales", "targets_at", "time_split",
           "windows"]
