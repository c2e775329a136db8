"""Many-series loaders: Monash .tsf, long format, lists of series (hand-made files and frames)."""
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lstmkit.data.panel import Panel, from_list, from_long, is_panel_input, read_tsf, to_panel
from lstmkit.errors import LstmkitError

FILES = Path(__file__).parent / "files"


def test_tsf_with_dates():
    p = read_tsf(FILES / "tiny.tsf")
    assert p.ids == ["A", "B"]
    np.testing.assert_array_equal(p.values[0], [1, 2, 3, 4, 5])
    np.testing.assert_array_equal(p.values[1], [10.5, 11, 12.5])
    assert p.horizon == 2 and p.season == 1 and p.freq == "YS"
    assert [str(t.date()) for t in p.times(1)] == ["1990-01-01", "1991-01-01", "1992-01-01"]
    assert [str(t.date()) for t in p.times(0, 2, 5)] == ["1985-01-01", "1986-01-01"]


def test_tsf_without_dates_uses_step_index():
    p = read_tsf(FILES / "nodates.tsf")
    assert p.ids == ["first", "second"] and p.starts is None and p.freq is None
    assert p.season == 7 and p.horizon == 3
    assert list(p.times(1, 2, 6)) == [6, 7]


@pytest.mark.parametrize("body, message", [
    ("A:1980-01-01 00-00-00:1,?,3", "missing values"),
    ("A:1,2,3", "expected 2 attribute"),
    ("A:1980-01-01 00-00-00:1,x,3", "values must be numbers"),
    ("A:1980-13-45 00-00-00:1,2,3", "must be a date"),
])
def test_tsf_errors_name_the_line(tmp_path, body, message):
    f = tmp_path / "bad.tsf"
    f.write_text("@attribute series_name string\n@attribute start_timestamp date\n@frequency yearly\n"
                 f"@data\n{body}\n")
    with pytest.raises(LstmkitError, match=message) as e:
        read_tsf(f)
    assert "line 5" in str(e.value)


def test_tsf_missing_file_and_no_data(tmp_path):
    with pytest.raises(LstmkitError, match="not found"):
        read_tsf(tmp_path / "nope.tsf")
    f = tmp_path / "empty.tsf"
    f.write_text("@relation x\n@attribute series_name string\n")
    with pytest.raises(LstmkitError, match="no @data"):
        read_tsf(f)


def test_m1_yearly_from_aeon():
    aeon = pytest.importorskip("aeon")
    path = Path(aeon.__file__).parent / "datasets/data/m1_yearly_dataset/m1_yearly_dataset.tsf"
    p = read_tsf(path)
    assert len(p) == 181 and p.horizon == 6 and p.freq == "YS"
    assert p.lengths.min() == 15 and p.lengths.max() == 58
    assert p.values[0][:3].tolist() == [3600, 7700, 12300]


def test_long_format_different_lengths_starts_and_order():
    frame = pd.DataFrame({
        "unique_id": ["b", "a", "a", "b", "a", "b", "b"],
        "ds": ["2020-03-01", "2020-02-01", "2020-01-01", "2020-04-01", "2020-03-01", "2020-05-01",
               "2020-06-01"],
        "y": [30, 2, 1, 40, 3, 50, 60],
        "promo": [0, 1, 0, 1, 1, 0, 1]})
    p = from_long(frame, covariates=["promo"])
    assert p.ids == ["b", "a"]                                  # order of first appearance
    np.testing.assert_array_equal(p.values[0], [30, 40, 50, 60])
    np.testing.assert_array_equal(p.values[1], [1, 2, 3])      # sorted by time
    np.testing.assert_array_equal(p.cov_values[1][:, 0], [0, 1, 1])
    assert p.freq == "MS" and p.season == 12
    assert str(p.starts[0].date()) == "2020-03-01" and str(p.starts[1].date()) == "2020-01-01"
    back = p.to_long()
    assert list(back.columns) == ["unique_id", "ds", "y", "promo"] and len(back) == 7


def test_long_format_custom_names_and_numeric_steps():
    frame = pd.DataFrame({"store": ["x"] * 3 + ["y"] * 2, "t": [0, 1, 2, 5, 6], "sales": [1, 2, 3, 4, 5]})
    p = from_long(frame, id_col="store", time_col="t", target="sales")
    assert p.ids == ["x", "y"] and p.starts is None
    np.testing.assert_array_equal(p.values[1], [4, 5])


@pytest.mark.parametrize("frame, kw, message", [
    (pd.DataFrame({"id": ["a"], "ds": ["2020-01-01"], "y": [1]}), {}, "unknown column 'unique_id'"),
    (pd.DataFrame({"unique_id": ["a", "a"], "ds": [1, 1], "y": [1, 2]}), {}, "duplicate"),
    (pd.DataFrame({"unique_id": ["a"] * 3, "ds": [1, 2, 4], "y": [1, 2, 3]}), {}, "without gaps"),
    (pd.DataFrame({"unique_id": ["a"] * 4, "ds": ["2020-01-01", "2020-02-01", "2020-03-01",
                                                  "2020-05-01"], "y": [1, 2, 3, 4]}), {},
     "not regularly spaced"),
    (pd.DataFrame({"unique_id": ["a"] * 2, "ds": [1, 2], "y": [1, "x"]}), {}, "must be numeric"),
    (pd.DataFrame({"unique_id": ["a"] * 2, "ds": [1, 2], "y": [1, np.nan]}), {}, "non-finite"),
])
def test_long_format_errors(frame, kw, message):
    with pytest.raises(LstmkitError, match=message):
        from_long(frame, **kw)


def test_list_of_equal_length_series_is_many_series():
    p = to_panel([np.arange(5.0), np.arange(5.0) * 2, pd.Series([1.0, 2, 3], name="c")])
    assert len(p) == 3 and p.ids == ["0", "1", "c"]
    np.testing.assert_array_equal(p.values[1], [0, 2, 4, 6, 8])
    with pytest.raises(LstmkitError, match="1-D"):
        from_list([np.zeros((3, 2))])
    with pytest.raises(LstmkitError, match="empty"):
        from_list([])


def test_is_panel_input():
    assert is_panel_input([np.zeros(3)])
    assert is_panel_input(pd.DataFrame({"unique_id": [1], "ds": [1], "y": [1]}))
    assert is_panel_input("x.tsf")
    assert not is_panel_input(pd.DataFrame({"ds": [1], "y": [1]}))
    assert not is_panel_input(np.zeros(4))


def test_head_cuts_every_series():
    p = Panel(["a", "b"], [np.arange(5.0), np.arange(3.0)])
    h = p.head(2)
    assert [len(v) for v in h.values] == [3, 1]
