"""`lstmkit forecast` on many series (long CSV, .tsf) and `lstmkit predict` of a global model."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lstmkit.cli.main import main

FILES = Path(__file__).parents[1] / "data" / "files"
FAST = ["--epochs", "2", "--restarts", "1", "--hidden", "4", "--baselines", "none"]


@pytest.fixture
def long_csv(tmp_path):
    rows = []
    for i in range(4):
        n = 14 + 2 * i
        ds = pd.date_range(f"{2001 + i}-01-01", periods=n, freq="MS")
        y = (10 + i) * 1.02 ** np.arange(n)
        rows += [(f"shop{i}", d.strftime("%Y-%m-%d"), v) for d, v in zip(ds, y)]
    path = tmp_path / "sales.csv"
    pd.DataFrame(rows, columns=["store", "month", "sales"]).to_csv(path, index=False)
    return path


@pytest.mark.slow
def test_long_csv_forecast_writes_holdout_metrics_plots_and_model(long_csv, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["forecast", str(long_csv), "--id-col", "store", "--time-col", "month", "--target",
                 "sales", "--horizon", "3", "--out", str(out), *FAST])
    assert code == 0, capsys.readouterr().err
    holdout = pd.read_csv(out / "holdout.csv")
    assert holdout.columns.tolist() == ["store", "ds", "model", "forecast", "actual"]
    assert len(holdout) == 4 * 3 and set(holdout.model) == {"LSTM"}
    last = holdout[holdout.store == "shop0"]
    assert last.ds.tolist() == ["2001-12-01", "2002-01-01", "2002-02-01"]   # 14 months from 2001-01
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["summary"]["LSTM"]["scored"] == 4
    assert len(metrics["per_series"]["MASE"]) == 4
    for name in ("series.png", "mase.png", "loss.png", "model/manifest.json"):
        assert (out / name).is_file()
    capsys.readouterr()
    assert main(["predict", "--model", str(out / "model"), "--horizon", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "store,month,forecast" and len(lines) == 1 + 4 * 2
    assert lines[1].startswith("shop0,2002-03-01,")


def test_holdout_zero_trains_on_everything_and_saves(long_csv, tmp_path, capsys):
    out = tmp_path / "deploy"
    assert main(["forecast", str(long_csv), "--id-col", "store", "--time-col", "month", "--target",
                 "sales", "--horizon", "2", "--holdout", "0", "--out", str(out), *FAST]) == 0
    assert not (out / "holdout.csv").exists() and (out / "model" / "weights.safetensors").is_file()
    capsys.readouterr()
    assert main(["predict", "--model", str(out / "model")]) == 0
    text = capsys.readouterr().out
    assert "shop3,2005-09-01" in text       # shop3: 20 months from 2004-01, the next is 2005-09


def test_tsf_file_uses_step_index(tmp_path, capsys):
    out = tmp_path / "tsf"
    assert main(["forecast", str(FILES / "nodates.tsf"), "--holdout", "2", "--lookback", "2",
                 "--out", str(out), *FAST]) == 0
    holdout = pd.read_csv(out / "holdout.csv")
    assert holdout[holdout.unique_id == "second"].ds.tolist() == [4, 5]
    assert holdout[holdout.unique_id == "second"].actual.tolist() == [9, 10]


@pytest.mark.parametrize("args, message", [
    (["--target", "a,b"], "one value column"),
    (["--diff", "1"], "applies to one series"),
    (["--layer-option", "peepholes=1"], "NAME=VALUE"),
    (["--horizon", "30"], "too short"),
])
def test_panel_errors_are_one_line(long_csv, tmp_path, capsys, args, message):
    if "--target" not in args:
        args = [*args, "--target", "sales"]
    code = main(["forecast", str(long_csv), "--id-col", "store", "--time-col", "month",
                 "--out", str(tmp_path / "x"), *FAST, *args])
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if not line.startswith("[lstmkit]")]     # progress lines aside
    assert code == 2 and len(errors) == 1 and message in errors[0] and errors[0].startswith("error:")
