"""Many series at once (a *panel*): Nixtla's long format, Monash `.tsf` files and lists of series.

A `Panel` holds N series of possibly different lengths and start dates, each with optional
future-known covariates. Forms accepted by `to_panel`:

    long DataFrame    one row per (series, time step): columns `unique_id, ds, y` (names settable),
                      as in Nixtla's statsforecast / neuralforecast; extra numeric columns named as
                      covariates are future-known inputs
    Monash .tsf file  `read_tsf(path)`: the format of the Monash forecasting archive (Godahewa et al.
                      2021, https://forecastingdata.org), one series per `@data` line
    list of series    a Python list (or tuple) of 1-D arrays / pandas Series: each element is ONE series

Errors name what was expected and what arrived (LstmkitError).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pandas as pd

from lstmkit.errors import LstmkitError

from .loaders import _SEASONS, _infer

# Monash @frequency values -> pandas frequency and season length.
TSF_FREQUENCIES = {
    "yearly": ("YS", 1), "quarterly": ("QS", 4), "monthly": ("MS", 12), "weekly": ("W", 52),
    "daily": ("D", 7), "hourly": ("h", 24), "half_hourly": ("30min", 48), "minutely": ("min", 60),
    "10_minutes": ("10min", 144), "4_seconds": ("4s", 1),
}


@dataclass
class Panel:
    """N series, each a 1-D float64 array (lengths may differ).

    ids:        series names (unique strings), length N
    values:     list of N arrays (T_i,)
    starts:     list of N start time stamps, or None when the data has no time (ds = step index)
    freq:       pandas frequency string shared by every series, or None
    covariates: names of the future-known covariate columns (C >= 0)
    cov_values: list of N arrays (T_i, C) (future-known: their values over a forecast's horizon are
                given with the history)
    horizon:    the horizon a .tsf file declares, else None
    season:     season length implied by the frequency (1 when unknown)
    """
    ids: list[str]
    values: list[np.ndarray]
    starts: Optional[list[pd.Timestamp]] = None
    freq: Optional[str] = None
    covariates: list[str] = field(default_factory=list)
    cov_values: Optional[list[np.ndarray]] = None
    horizon: Optional[int] = None
    season: int = 1
    id_col: str = "unique_id"
    time_col: str = "ds"
    target: str = "y"

    def __post_init__(self):
        if len(self.ids) != len(self.values):
            raise LstmkitError(f"panel: {len(self.ids)} ids for {len(self.values)} series")
        if len(set(self.ids)) != len(self.ids):
            raise LstmkitError("panel: series ids must be unique")
        if self.cov_values is None:
            self.cov_values = [np.zeros((len(v), 0)) for v in self.values]

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def lengths(self) -> np.ndarray:
        return np.array([len(v) for v in self.values])

    def times(self, i: int, n: Optional[int] = None, offset: int = 0):
        """Time stamps (or step indices when the panel has no time) of steps offset..offset+n-1 of
        series i."""
        n = len(self.values[i]) - offset if n is None else n
        if self.starts is None or self.freq is None:
            return pd.RangeIndex(offset, offset + n)
        return pd.date_range(self.starts[i], periods=offset + n, freq=self.freq)[offset:]

    def head(self, cut) -> "Panel":
        """The panel without the last `cut` steps of every series (cut: int or (N,) array)."""
        cut = np.broadcast_to(np.asarray(cut, dtype=int), (len(self),))
        return Panel(self.ids, [v[:len(v) - c] for v, c in zip(self.values, cut)], self.starts, self.freq,
                     self.covariates, [c_[:len(c_) - c] for c_, c in zip(self.cov_values, cut)],
                     self.horizon, self.season, self.id_col, self.time_col, self.target)

    def to_long(self) -> pd.DataFrame:
        """Long frame: id_col, time_col, target, covariates."""
        parts = []
        for i, name in enumerate(self.ids):
            part = pd.DataFrame({self.id_col: name, self.time_col: self.times(i),
                                 self.target: self.values[i]})
            for j, c in enumerate(self.covariates):
                part[c] = self.cov_values[i][:, j]
            parts.append(part)
        return pd.concat(parts, ignore_index=True)


def _season_of(freq: Optional[str]) -> int:
    if freq is None:
        return 1
    return _SEASONS.get(freq.lstrip("0123456789").split("-")[0], 1)


def _finite(v: np.ndarray, what: str) -> np.ndarray:
    bad = ~np.isfinite(v)
    if bad.any():
        raise LstmkitError(f"{what} has {int(bad.sum())} missing or non-finite value(s), first at step "
                           f"{int(np.flatnonzero(bad)[0])}; fill or drop them first")
    return v


def read_tsf(path: str | Path) -> Panel:
    """Read a Monash `.tsf` file: `@attribute` lines name the per-series fields (a `date` attribute
    is the start time stamp), `@frequency`, `@horizon`, `@missing`, then `@data` with one line per
    series `attr1:attr2:...:v1,v2,...`. Missing values (`?`) are refused."""
    p = Path(path)
    if not p.is_file():
        raise LstmkitError(f"data file not found: {p}" if not p.exists() else f"expected a .tsf file, got {p}")
    attrs: list[tuple[str, str]] = []
    freq_name, horizon = None, None
    ids, values, starts = [], [], []
    in_data = False
    try:
        lines = p.read_text("utf-8", errors="strict").splitlines()
    except UnicodeDecodeError as e:
        raise LstmkitError(f"cannot read {p} as a .tsf file: {e}") from None
    for no, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not in_data:
            if not line.startswith("@"):
                raise LstmkitError(f"{p} line {no}: expected an @ header line before @data, got {line[:40]!r}")
            key, _, rest = line.partition(" ")
            key = key.lower()
            if key == "@attribute":
                parts = rest.split()
                if len(parts) != 2:
                    raise LstmkitError(f"{p} line {no}: expected '@attribute NAME TYPE', got {line!r}")
                attrs.append((parts[0], parts[1].lower()))
            elif key == "@frequency":
                freq_name = rest.strip().lower()
            elif key == "@horizon":
                try:
                    horizon = int(rest)
                except ValueError:
                    raise LstmkitError(f"{p} line {no}: @horizon must be an integer, got {rest!r}") from None
            elif key == "@data":
                in_data = True
            continue
        fields_ = line.split(":")
        if len(fields_) != len(attrs) + 1:
            raise LstmkitError(f"{p} line {no}: expected {len(attrs)} attribute(s) and the values "
                               f"separated by ':', got {len(fields_)} field(s)")
        name = None
        for (aname, atype), val in zip(attrs, fields_[:-1]):
            if atype == "date":
                try:
                    starts.append(pd.Timestamp(pd.to_datetime(val, format="%Y-%m-%d %H-%M-%S")))
                except ValueError:
                    raise LstmkitError(f"{p} line {no}: attribute {aname!r} must be a date "
                                       f"'YYYY-MM-DD HH-MM-SS', got {val!r}") from None
            elif name is None:
                name = val
        if "?" in fields_[-1].split(","):
            raise LstmkitError(f"{p} line {no}: series {name!r} has missing values ('?'); lstmkit "
                               f"needs complete series")
        try:
            v = np.array([float(x) for x in fields_[-1].split(",")], dtype=np.float64)
        except ValueError:
            raise LstmkitError(f"{p} line {no}: values must be numbers separated by ',', got "
                               f"{fields_[-1][:40]!r}") from None
        ids.append(name if name is not None else f"T{len(ids) + 1}")
        values.append(_finite(v, f"{p} series {ids[-1]!r}"))
    if not in_data or not values:
        raise LstmkitError(f"{p}: no @data section with series found")
    freq, season = TSF_FREQUENCIES.get(freq_name or "", (None, 1))
    if len(starts) != len(values):
        starts = None
    if starts is None:
        freq = None
    return Panel(ids, values, starts, freq, horizon=horizon, season=season)


def from_long(frame: pd.DataFrame, id_col: str = "unique_id", time_col: Optional[str] = "ds",
              target: str = "y", covariates: Sequence[str] = ()) -> Panel:
    """Long frame (one row per series and step) -> Panel. Rows are sorted by time within each series;
    each series must be regularly spaced at the same frequency (a numeric `ds` is a step index)."""
    columns = [str(c) for c in frame.columns]
    frame = frame.copy()
    frame.columns = columns
    for name in [id_col, target, *covariates] + ([time_col] if time_col else []):
        if name not in columns:
            raise LstmkitError(f"long format: unknown column {name!r}; the data has columns {columns} "
                               f"(set the names with --id-col, --time-col, --target)")
    if frame.empty:
        raise LstmkitError("long format: expected at least one row, got none")
    y = pd.to_numeric(frame[target], errors="coerce")
    if (y.isna() & frame[target].notna()).any():
        row = int(np.flatnonzero((y.isna() & frame[target].notna()).to_numpy())[0])
        raise LstmkitError(f"column {target!r} must be numeric, got {frame[target].iloc[row]!r} in data "
                           f"row {row + 1}")
    frame[target] = y
    dated = False
    if time_col:
        t = frame[time_col]
        if pd.api.types.is_numeric_dtype(t):
            frame["__t"] = t.astype(np.float64)
        else:
            parsed = pd.to_datetime(t, errors="coerce", format="mixed")
            if parsed.isna().any():
                row = int(np.flatnonzero(parsed.isna().to_numpy())[0])
                raise LstmkitError(f"time column {time_col!r} must hold dates or step numbers, got "
                                   f"{t.iloc[row]!r} in data row {row + 1}")
            frame["__t"], dated = parsed, True
    else:
        frame["__t"] = frame.groupby(id_col, sort=False).cumcount()
    ids, values, starts, covs, freqs = [], [], [], [], set()
    for uid, g in frame.groupby(id_col, sort=False):
        g = g.sort_values("__t", kind="stable")
        if g["__t"].duplicated().any():
            raise LstmkitError(f"series {uid!r}: time column {time_col!r} has duplicate time stamps")
        v = _finite(g[target].to_numpy(dtype=np.float64), f"series {uid!r} column {target!r}")
        cv = np.stack([_finite(pd.to_numeric(g[c], errors="coerce").to_numpy(dtype=np.float64),
                               f"series {uid!r} covariate {c!r}") for c in covariates], axis=1) \
            if covariates else np.zeros((len(v), 0))
        if dated:
            idx = pd.DatetimeIndex(g["__t"])
            if len(idx) >= 3:
                f = _infer(idx)
                if f is None:
                    raise LstmkitError(f"series {uid!r}: time column {time_col!r} is not regularly "
                                       f"spaced; every series must be")
                freqs.add(f)
            starts.append(idx[0])
        else:
            steps = np.diff(g["__t"].to_numpy())
            if len(steps) and not np.all(steps == 1):
                raise LstmkitError(f"series {uid!r}: numeric time column {time_col!r} must count steps "
                                   f"1, 2, 3, ... without gaps")
        ids.append(str(uid))
        values.append(v)
        covs.append(cv)
    if len(freqs) > 1:
        raise LstmkitError(f"series have different frequencies {sorted(freqs)}; a panel needs one")
    freq = freqs.pop() if freqs else None     # None when every series is shorter than 3 steps
    return Panel(ids, values, starts if dated and freq else None, freq, list(covariates), covs,
                 season=_season_of(freq), id_col=id_col, time_col=time_col or "ds", target=target)


def from_list(series: Sequence) -> Panel:
    """A list of 1-D arrays or pandas Series, each ONE series (named by its Series name or its index)."""
    ids, values = [], []
    for k, s in enumerate(series):
        arr = np.asarray(s, dtype=np.float64) if not isinstance(s, pd.Series) else s.to_numpy(np.float64)
        if arr.ndim != 1:
            raise LstmkitError(f"a list of series must hold 1-D series; element {k} has shape {arr.shape}")
        if len(arr) == 0:
            raise LstmkitError(f"series {k} of the list is empty")
        name = str(s.name) if isinstance(s, pd.Series) and s.name is not None else str(k)
        ids.append(name)
        values.append(_finite(arr, f"series {name!r}"))
    if not values:
        raise LstmkitError("expected at least one series, got an empty list")
    return Panel(ids, values)


def is_panel_input(data, id_col: str = "unique_id") -> bool:
    """True for the many-series forms: a Panel, a list/tuple of series, a long frame with `id_col`,
    or a path to a .tsf file."""
    if isinstance(data, Panel):
        return True
    if isinstance(data, (list, tuple)):
        return True
    if isinstance(data, pd.DataFrame):
        return id_col in [str(c) for c in data.columns]
    if isinstance(data, (str, Path)):
        return str(data).lower().endswith(".tsf")
    return False


def to_panel(data, id_col: str = "unique_id", time_col: Optional[str] = "ds", target: str = "y",
             covariates: Sequence[str] = ()) -> Panel:
    """Any many-series form (see the module docstring) -> Panel."""
    if isinstance(data, Panel):
        return data
    if isinstance(data, (str, Path)) and str(data).lower().endswith(".tsf"):
        return read_tsf(data)
    if isinstance(data, pd.DataFrame):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return from_long(data, id_col, time_col, target, covariates)
    if isinstance(data, (list, tuple)):
        return from_list(data)
    raise LstmkitError(f"expected many series as a long DataFrame, a .tsf path or a list of series, "
                       f"got {type(data).__name__}")
