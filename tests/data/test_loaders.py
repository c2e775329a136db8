import numpy as np
import pandas as pd
import pytest

from lstmkit.data import airline_passengers, prepare, read_csv
from lstmkit.errors import LstmkitError


def test_airline_is_the_box_jenkins_series():
    df = airline_passengers()
    assert list(df.columns) == ["month", "passengers"]
    assert len(df) == 144
    assert df["passengers"].sum() == 40363
    assert df["passengers"].head(5).tolist() == [112, 118, 132, 129, 121]
    assert df["passengers"].tail(3).tolist() == [461, 390, 432]
    assert df["passengers"].max() == 622 and df["month"].iloc[0] == "1949-01"


def test_prepare_finds_time_column_frequency_and_season():
    s = prepare(airline_passengers())
    assert s.targets == ["passengers"] and s.covariates == []
    assert s.freq == "MS" and s.season == 12
    assert s.time[0] == pd.Timestamp("1949-01-01") and s.time[-1] == pd.Timestamp("1960-12-01")


def test_prepare_accepts_series_and_arrays():
    assert prepare(pd.Series([1.0, 2.0, 4.0], name="sales")).targets == ["sales"]
    s = prepare(np.array([[1.0, 5.0], [2.0, 6.0], [3.0, 8.0]]), covariates=["y1"])
    assert s.targets == ["y0"] and s.covariates == ["y1"] and s.time is None and s.season == 1


def frame(**cols):
    base = {"date": pd.date_range("2020-01-01", periods=6, freq="D").strftime("%Y-%m-%d"),
            "y": [1.0, 2.0, 3.0, 2.0, 1.0, 2.0], "x": [0.0, 1.0, 0.0, 1.0, 0.0, 1.0]}
    base.update(cols)
    return pd.DataFrame(base)


@pytest.mark.parametrize("kwargs, data, message", [
    (dict(targets=["sales"]), frame(), r"unknown column 'sales'; the data has columns \['date', 'y', 'x'\]"),
    (dict(covariates=["z"]), frame(), r"unknown column 'z'"),
    (dict(), frame(y=[1, 2, "n/a", 4, 5, 6]), r"column 'y' must be numeric, got 'n/a' in data row 3"),
    (dict(), frame(y=[1, 2, np.nan, 4, 5, np.nan]), r"column 'y' has 2 missing or non-finite value\(s\), first in data row 3"),
    (dict(), frame(y=[7.0] * 6), r"target column 'y' is constant \(7\)"),
    (dict(), frame(date=["2020-01-01", "2020-01-02", "2020-01-03", "2020-01-05", "2020-01-06", "2020-01-07"]),
     r"gap or irregular step: 2020-01-03 -> 2020-01-05"),
    (dict(), frame(date=["2020-01-01", "2020-01-03", "2020-01-02", "2020-01-04", "2020-01-05", "2020-01-06"]),
     r"must be strictly increasing"),
    (dict(targets=["y"], covariates=["y"]), frame(), r"both as target and as covariate"),
])
def test_prepare_rejects_bad_input_with_one_clear_message(kwargs, data, message):
    with pytest.raises(LstmkitError, match=message):
        prepare(data, **kwargs)


def test_read_csv_missing_file_and_folder(tmp_path):
    with pytest.raises(LstmkitError, match="data file not found: .*nope.csv"):
        read_csv(tmp_path / "nope.csv")
    with pytest.raises(LstmkitError, match="expected a CSV file, got a folder"):
        read_csv(tmp_path)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(LstmkitError, match="cannot read .* as CSV"):
        read_csv(empty)


def test_time_column_with_mixed_utc_offsets_is_read_as_utc_or_refused(tmp_path):
    # several UTC offsets in one column (daylight saving) used to crash with a pandas AttributeError
    utc = pd.date_range("2020-01-01", periods=48, freq="h")
    rows = [(t + pd.Timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M+01:00") if i % 2
            else t.strftime("%Y-%m-%dT%H:%MZ") for i, t in enumerate(utc)]
    rows = [f"{r},{i % 7}" for i, r in enumerate(rows)]
    path = tmp_path / "tz.csv"
    path.write_text("ts,y\n" + "\n".join(rows) + "\n")
    s = prepare(read_csv(path))
    assert s.time.tz is None and (s.time == utc).all() and s.freq == "h"
    mixed = tmp_path / "mixed.csv"
    mixed.write_text("ts,y\n" + "\n".join(r.replace("Z", "") for r in rows) + "\n")
    with pytest.raises(LstmkitError, match="time zone|one format"):
        prepare(read_csv(mixed))
