"""Property tests: no input ends in anything but a clear error. Random CSV bytes and random
config.json / manifest.json contents reach the loaders (only LstmkitError / ValueError / TypeError),
random flags reach the command line (exit 0, or exit 2 with one line and no traceback), and no run
touches a file lstmkit did not create."""
import contextlib
import hashlib
import io
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lstmkit.cli.main import main
from lstmkit.data import prepare, read_csv, seasonal_sales
from lstmkit.errors import LstmkitError
from lstmkit.forecasting import ForecastConfig, Forecaster

CLEAR = (LstmkitError, ValueError, TypeError)
SETTINGS = dict(deadline=None, database=None, suppress_health_check=list(HealthCheck))

csv_text = st.one_of(
    st.binary(max_size=300).map(lambda b: b),
    st.text(alphabet="0123456789,.-/: \n\r\t\";abe+xT", max_size=300).map(str.encode),
    st.lists(st.lists(st.sampled_from(["2020-01-01", "1", "-2.5", "", "nan", "inf", "x", "\"1,2\"",
                                       "13/01/2020", "01/02/2020", "1e400", "month", "y"]),
                      min_size=1, max_size=4), min_size=1, max_size=12)
      .map(lambda rows: "\n".join(",".join(r) for r in rows).encode()),
)


@settings(max_examples=50, **SETTINGS)
@given(data=csv_text)
def test_random_csv_bytes_give_a_frame_or_a_clear_error(data):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.csv"
        path.write_bytes(data)
        try:
            series = prepare(read_csv(path))
        except CLEAR:
            return
        values = series.values(series.targets + series.covariates)
        assert np.isfinite(values).all() and len(series.targets) >= 1


python_inputs = st.one_of(
    st.none(), st.integers(), st.text(max_size=20), st.dictionaries(st.text(max_size=3), st.integers()),
    st.lists(st.one_of(st.floats(), st.integers(), st.text(max_size=3), st.none()), max_size=20),
    st.lists(st.lists(st.floats(allow_nan=True), min_size=1, max_size=3), max_size=10),
    st.integers(0, 3).flatmap(lambda nd: st.lists(st.integers(0, 4), min_size=nd, max_size=nd)).map(
        lambda shape: np.random.default_rng(len(shape)).normal(size=shape) * 10.0 ** (3 * len(shape))),
)


@settings(max_examples=50, **SETTINGS)
@given(data=python_inputs, target=st.sampled_from([None, ["y"], ["y0"], ["nope"], "y"]))
def test_random_python_data_gives_a_series_or_a_clear_error(data, target):
    try:
        series = prepare(data, targets=target)
    except CLEAR:
        return
    assert np.isfinite(series.values(series.targets)).all()


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    cfg = ForecastConfig(lookback=8, horizon=3, hidden=4, diff=[1])
    cfg.train.epochs, cfg.train.restarts, cfg.train.patience = 2, 1, 2
    folder = tmp_path_factory.mktemp("fuzz") / "model"
    Forecaster(cfg).fit(seasonal_sales(years=4)).save(folder)
    return folder


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats(allow_nan=True)
    | st.text(max_size=8) | st.sampled_from(["V", "CIFG", "MS", "2020-01-01", "sales"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12)
CONFIG_FIELDS = ["target", "covariates", "time_col", "lookback", "horizon", "holdout", "val", "season",
                 "log", "diff", "layers", "hidden", "preset", "dropout", "train", "stateful", "interval"]
TOP_FIELDS = ["config", "members", "time", "sigma", "sigma_source", "losses"]


def _rehash(folder: Path, name: str, data: bytes, manifest_extra=None):
    (folder / name).write_bytes(data)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"][name] = hashlib.sha256(data).hexdigest()
    manifest["sizes"][name] = len(data)
    (folder / "manifest.json").write_text(json.dumps(manifest))


@settings(max_examples=40, **SETTINGS)
@given(where=st.sampled_from(["config", "top", "scaler", "manifest", "whole"]),
       field=st.sampled_from(CONFIG_FIELDS + TOP_FIELDS + ["transform", "target", "covariates",
                                                          "files", "format", "sizes"]),
       value=json_values)
def test_random_config_and_manifest_json_load_or_give_a_clear_error(saved, where, field, value):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "model"
        shutil.copytree(saved, folder)
        meta = json.loads((folder / "config.json").read_text())
        if where == "config":
            meta["config"][field] = value
            _rehash(folder, "config.json", json.dumps(meta).encode())
        elif where == "top":
            meta[field] = value
            _rehash(folder, "config.json", json.dumps(meta).encode())
        elif where == "scaler":
            scal = json.loads((folder / "scaler.json").read_text())
            scal[field] = value
            _rehash(folder, "scaler.json", json.dumps(scal).encode())
        elif where == "manifest":
            manifest = json.loads((folder / "manifest.json").read_text())
            manifest[field] = value
            (folder / "manifest.json").write_text(json.dumps(manifest))
        else:
            _rehash(folder, "config.json", json.dumps(value).encode())
        try:
            fc = Forecaster.load(folder)
            table = fc.predict()
        except CLEAR:
            return
        assert np.isfinite(table.select_dtypes("number").to_numpy()).all()


FLAGS = ["--lookback", "--horizon", "--holdout", "--val", "--season", "--diff", "--layers", "--hidden",
         "--preset", "--dropout", "--epochs", "--lr", "--batch-size", "--restarts", "--tbptt",
         "--interval", "--target", "--covariates", "--time-col", "--combine", "--threads",
         "--baselines", "--seed", "--clip", "--patience", "--head-lr", "--log", "--no-log", "--bogus"]
VALUES = ["0", "1", "2", "3", "-1", "abc", "", "nan", "inf", "1e400", "99999999999", "sales", "month",
          "none", "1,12", "V", "CIFG", "0.5", "fast", "mean"]


@pytest.mark.slow
@settings(max_examples=6, **SETTINGS)
@given(args=st.lists(st.tuples(st.sampled_from(FLAGS), st.sampled_from(VALUES)), max_size=5))
def test_random_flags_exit_0_or_one_line_exit_2_and_touch_no_user_file(args):
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        csv = tmp / "sales.csv"
        seasonal_sales(years=5).to_csv(csv, index=False)
        out = tmp / "out"
        out.mkdir()
        (out / "notes.txt").write_text("the user's")
        before = csv.read_bytes()
        argv = ["forecast", str(csv), "--out", str(out), "--epochs", "2", "--restarts", "1",
                "--hidden", "3", "--lookback", "6", "--horizon", "3", "--baselines", "fast"]
        for flag, value in args:
            argv += [flag] if flag in ("--log", "--no-log") else [flag, value]
        err, stdout = io.StringIO(), io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(stdout):
            code = main(argv)
        lines = [l for l in err.getvalue().splitlines() if not l.startswith("lstmkit: ")]
        assert code in (0, 2), (argv, err.getvalue())
        if code == 2:
            assert len(lines) == 1 and lines[0].startswith("error: "), (argv, err.getvalue())
        assert "Traceback" not in err.getvalue()
        assert (out / "notes.txt").read_text() == "the user's" and csv.read_bytes() == before
