"""Readers of labelled sequences (.ts, CSV, text) against hand-written files and aeon's loader."""
import os

import numpy as np
import torch
import pytest

from lstmkit.data.sequences import SequenceSet, pad, pad_ids, read_sequence_csv, read_ts
from lstmkit.errors import LstmkitError

UNEQUAL_MULTI = """# a comment
% another comment
@problemName Tiny
@timeStamps false
@missing false
@univariate false
@dimensions 2
@equalLength false
@classLabel true a b
@data
1,2,3:4,5,6:a
7,8:9,10:b
0.5,?,?:1.5,?,?:a
"""

EQUAL_UNI = """@problemName Uni
@univariate true
@equalLength true
@seriesLength 4
@classLabel true x y
@data
1,2,3,4:x
-1,-2.5,1e-3,4:y
"""


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_ts_multivariate_unequal_with_trailing_missing(tmp_path):
    s = read_ts(write(tmp_path, "t.ts", UNEQUAL_MULTI))
    assert s.name == "Tiny" and len(s) == 3 and s.channels == ["dim_0", "dim_1"]
    np.testing.assert_array_equal(s.sequences[0], [[1, 4], [2, 5], [3, 6]])
    np.testing.assert_array_equal(s.sequences[1], [[7, 9], [8, 10]])
    np.testing.assert_array_equal(s.sequences[2], [[0.5, 1.5]])          # trailing '?' = padding
    assert list(s.labels) == ["a", "b", "a"]
    assert list(s.lengths) == [3, 2, 1]


def test_ts_univariate_equal(tmp_path):
    s = read_ts(write(tmp_path, "u.ts", EQUAL_UNI))
    assert [x.shape for x in s.sequences] == [(4, 1), (4, 1)]
    np.testing.assert_array_equal(s.sequences[1][:, 0], [-1, -2.5, 1e-3, 4])
    assert list(s.labels) == ["x", "y"]


@pytest.mark.parametrize("text, message", [
    ("@data\n1,2:a\n", "@classLabel"),
    (EQUAL_UNI.replace("1,2,3,4:x", "1,2,oops,4:x"), "u.ts:7: dimension 1: expected numbers"),
    (EQUAL_UNI.replace("1,2,3,4:x", "1,2,3,4:z"), "class label 'z'"),
    (UNEQUAL_MULTI.replace("7,8:9,10:b", "7,8:9:b"), "equal lengths"),
    (UNEQUAL_MULTI.replace("7,8:9,10:b", "7,8:b"), "expected 2 dimension(s)"),
    (UNEQUAL_MULTI.replace("7,8:9,10:b", "7,?,8:9,1,10:b"), "missing value ('?') inside"),
    ("@problemName X\n@classLabel true a\n", "no '@data'"),
    ("@timeStamps true\n@classLabel true a\n@data\n(0,1):a\n", "timeStamps"),
    ("@classLabel true a\n@data\n", "no cases"),
    ("hello\n@data\n", "expected a '@key value' header"),
])
def test_ts_bad_files_give_one_line_errors(tmp_path, text, message):
    with pytest.raises(LstmkitError) as e:
        read_ts(write(tmp_path, "u.ts", text))
    assert message in str(e.value) and "\n" not in str(e.value)


def test_ts_missing_file():
    with pytest.raises(LstmkitError, match="file not found"):
        read_ts("/nonexistent/x.ts")


aeon = pytest.importorskip("aeon")
DATA = os.path.join(os.path.dirname(aeon.__file__), "datasets", "data")


@pytest.mark.parametrize("name", ["JapaneseVowels/JapaneseVowels_TRAIN.ts",       # multivariate, unequal
                                  "BasicMotions/BasicMotions_TEST.ts",            # multivariate, equal
                                  "PickupGestureWiimoteZ/PickupGestureWiimoteZ_TRAIN.ts",  # uni, unequal
                                  "GunPoint/GunPoint_TRAIN.ts"])                  # univariate, equal
def test_ts_reader_matches_aeon(name):
    from aeon.datasets import load_from_ts_file
    X, y = load_from_ts_file(os.path.join(DATA, name))
    s = read_ts(os.path.join(DATA, name))
    assert len(s) == len(y)
    for i in range(len(y)):
        np.testing.assert_array_equal(s.sequences[i], np.asarray(X[i]).T)   # aeon: (F, L) per case
    # aeon lowercases labels; ours keep the file's spelling
    assert [l.lower() for l in s.labels] == [str(l).lower() for l in y]


def test_csv_long_form_sorted_by_time(tmp_path):
    p = write(tmp_path, "l.csv", "seq,t,a,b,label\n"
                                 "s1,1,2.0,20,x\ns1,0,1.0,10,x\ns2,0,5,50,y\ns1,2,3,30,x\n")
    s = read_sequence_csv(p, id_col="seq", time_col="t")
    assert s.ids == ["s1", "s2"] and s.channels == ["a", "b"]
    np.testing.assert_array_equal(s.sequences[0], [[1, 10], [2, 20], [3, 30]])
    np.testing.assert_array_equal(s.sequences[1], [[5, 50]])
    assert list(s.labels) == ["x", "y"]


def test_csv_long_form_per_step_and_features(tmp_path):
    p = write(tmp_path, "l.csv", "id,a,b,tag\n0,1,9,N\n0,2,9,V\n1,3,9,N\n")
    s = read_sequence_csv(p, label_col="tag", id_col="id", features=["a"], per_step=True)
    assert s.per_step and s.channels == ["a"]
    assert [list(l) for l in s.labels] == [["N", "V"], ["N"]]
    np.testing.assert_array_equal(s.sequences[0], [[1], [2]])


def test_csv_long_form_tokens(tmp_path):
    p = write(tmp_path, "tags.csv", "sent,word,tag\n1,The,D\n1,cat,N\n2,runs,V\n")
    s = read_sequence_csv(p, label_col="tag", id_col="sent", text_col="word", per_step=True)
    assert s.is_text and s.sequences == [["The", "cat"], ["runs"]]


def test_csv_wide_form_unequal_lengths(tmp_path):
    p = write(tmp_path, "w.csv", "label,t0,t1,t2\nx,1,2,3\ny,4,5,\n")
    s = read_sequence_csv(p)
    np.testing.assert_array_equal(s.sequences[1], [[4], [5]])
    assert list(s.labels) == ["x", "y"]


def test_csv_text(tmp_path):
    p = write(tmp_path, "r.csv", 'text,label\n"Good, very good",pos\nbad,neg\n')
    s = read_sequence_csv(p, text_col="text")
    assert s.sequences == ["Good, very good", "bad"] and s.is_text


@pytest.mark.parametrize("text, kwargs, message", [
    ("seq,a,label\n1,1,x\n1,2,y\n", {"id_col": "seq"}, "sequence 1 has 2 different labels"),
    # a repeated or missing time step inside a sequence used to be read silently
    ("seq,t,a,label\n1,0,1,x\n1,1,2,x\n1,1,3,x\n2,0,1,y\n", {"id_col": "seq", "time_col": "t"},
     ":4: time 1 is missing or repeats a time step of sequence 1"),
    ("seq,t,a,label\n1,0,1,x\n1,,2,x\n2,0,1,y\n", {"id_col": "seq", "time_col": "t"},
     "is missing or repeats"),
    ("seq,a,label\n1,1,x\n", {"id_col": "nope"}, "id column 'nope' not found"),
    ("seq,a,label\n1,one,x\n", {"id_col": "seq", "features": ["a"]}, "column 'a' must be numeric"),
    ("label,t0,t1\nx,,1\n", {}, "empty cells only at the end"),
    ("a,label\n1,\n", {}, "empty label"),
    ("a,b\n1,2\n", {}, "label column 'label' not found"),
    ("label,t0\nx,1\n", {"per_step": True}, "per-step labels need the long form"),
])
def test_csv_bad_files(tmp_path, text, kwargs, message):
    with pytest.raises(LstmkitError) as e:
        read_sequence_csv(write(tmp_path, "b.csv", text), **kwargs)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_pad_and_subset():
    x, lengths = pad([np.ones((2, 3)), np.full((4, 3), 2.0)], value=np.nan)
    assert x.shape == (2, 4, 3) and lengths.tolist() == [2, 4]
    assert torch.isnan(x[0, 2:]).all() and (x[1] == 2).all()
    ids, lengths = pad_ids([[3, 4, 5], [6]])
    assert ids.tolist() == [[3, 4, 5], [6, 0, 0]] and lengths.tolist() == [3, 1]
    s = SequenceSet([np.ones((1, 1)), np.zeros((2, 1))], np.array(["a", "b"], dtype=object))
    sub = s.subset([1])
    assert sub.ids == [1] and list(sub.labels) == ["b"] and sub.sequences[0].shape == (2, 1)


def test_csv_long_form_a_numeric_column_with_one_bad_cell_is_not_dropped(tmp_path):
    """The default inputs are the numeric columns: a column of numbers with one typo ('oops') became
    a text column and was silently left out of the inputs (the model trained on the rest)."""
    p = write(tmp_path, "l.csv", "seq,a,b,label\ns1,1.5,0,x\ns1,oops,0,x\ns2,2.5,1,y\n")
    with pytest.raises(LstmkitError) as e:
        read_sequence_csv(p, id_col="seq")
    assert "l.csv:3: column 'a' holds numbers and the non-number 'oops'" in str(e.value)
    assert "\n" not in str(e.value)
    # a real text column (no numbers in it) is still left out, as documented
    p = write(tmp_path, "m.csv", "seq,who,a,label\ns1,ann,1,x\ns1,bob,2,x\ns2,ann,3,y\n")
    assert read_sequence_csv(p, id_col="seq").channels == ["a"]
