"""The command line end to end on small data, and every bad input: exit code 2 and one line."""
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from lstmkit.cli.main import main
from lstmkit.data import seasonal_sales

FAST = ["--epochs", "3", "--restarts", "2", "--hidden", "8", "--patience", "2"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One small forecast run shared by the tests below: returns its output folder."""
    out = tmp_path_factory.mktemp("run")
    csv = out / "sales.csv"
    seasonal_sales(years=7).to_csv(csv, index=False)
    assert main(["forecast", str(csv), "--out", str(out / "result"), *FAST]) == 0
    return out


def test_forecast_writes_table_plots_metrics_and_model(trained, capsys):
    result = trained / "result"
    assert sorted(p.name for p in result.iterdir()) == ["forecast.png", "loss.png", "metrics.json", "model"]
    assert sorted(p.name for p in (result / "model").iterdir()) == [
        "config.json", "history.safetensors", "manifest.json", "scaler.json", "weights.safetensors"]
    for png in ("forecast.png", "loss.png"):
        assert (result / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    metrics = json.loads((result / "metrics.json").read_text())
    assert set(metrics["metrics"]) == {"LSTM", "naive", "seasonal naive", "ARIMA", "Holt-Winters"}
    assert metrics["holdout"] == 12 and metrics["config"]["target"] == ["sales"]
    assert metrics["winner"] == min(metrics["metrics"], key=lambda m: metrics["metrics"][m]["MASE"])


def test_forecast_prints_one_table_and_a_winner_line(tmp_path, capsys):
    csv = tmp_path / "s.csv"
    seasonal_sales(years=7).to_csv(csv, index=False)
    assert main(["forecast", str(csv), "--out", str(tmp_path / "o"), *FAST]) == 0
    out = capsys.readouterr().out.splitlines()
    header = next(i for i, line in enumerate(out) if line.startswith("model"))
    assert out[header].split() == ["model", "MAE", "RMSE", "sMAPE", "MASE"]
    assert [line.split()[0] for line in out[header + 1:header + 6]] == ["LSTM", "naive", "seasonal", "ARIMA", "Holt-Winters"]
    assert out[header + 6].startswith("winner: ")


def test_predict_to_stdout_and_file(trained, capsys):
    model = trained / "result" / "model"
    assert main(["predict", "--model", str(model), "--horizon", "5"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "month,sales,sales_lower,sales_upper"
    assert lines[1].startswith("2017-01-01,") and len(lines) == 6
    target = trained / "pred.csv"
    assert main(["predict", "--model", str(model), str(trained / "sales.csv"), "-o", str(target)]) == 0
    table = pd.read_csv(target)
    assert len(table) == 12 and np.isfinite(table["sales"]).all()


def test_tbptt_from_the_command_line(tmp_path, capsys):
    csv = tmp_path / "s.csv"
    seasonal_sales(years=7).to_csv(csv, index=False)
    assert main(["forecast", str(csv), "--out", str(tmp_path / "o"), "--tbptt", "16", *FAST]) == 0
    config = json.loads((tmp_path / "o" / "model" / "config.json").read_text())["config"]
    assert config["stateful"] is True and config["train"]["tbptt"] == 16


def bad_csvs(tmp_path):
    good = seasonal_sales(years=7)
    cases = {}

    def write(name, frame):
        path = tmp_path / f"{name}.csv"
        frame.to_csv(path, index=False)
        cases[name] = str(path)

    write("text", good.assign(sales=good["sales"].astype(object).where(good.index != 4, "lots")))
    write("nan", good.assign(sales=good["sales"].where(good.index != 7)))
    write("gap", good.drop(index=10))
    write("short", good.head(30))
    write("constant", good.assign(sales=5.0))
    write("good", good)
    return cases


@pytest.mark.parametrize("args, message", [
    (["forecast", "{tmp}/missing.csv"], "error: data file not found: {tmp}/missing.csv"),
    (["forecast", "{good}", "--target", "pax"], "error: unknown column 'pax'; the data has columns ['month', 'sales']"),
    (["forecast", "{text}"], "error: column 'sales' must be numeric, got 'lots' in data row 5"),
    (["forecast", "{nan}"], "error: column 'sales' has 1 missing or non-finite value(s), first in data row 8; fill or drop them first"),
    (["forecast", "{gap}"], "error: time column 'month' has a gap or irregular step: 2010-10-01 -> 2010-12-01"),
    (["forecast", "{short}"], "error: too few rows: 30, but lookback 24 + horizon 12 + validation 12 + holdout 12 + 13 lost to differencing at lags [1, 12] needs at least 73"),
    (["forecast", "{constant}"], "error: target column 'sales' is constant (5); there is nothing to forecast"),
    (["forecast", "{good}", "--preset", "XYZ"], "error: preset must be one of"),
    (["predict", "--model", "{tmp}/nomodel"], "error: model folder not found: {tmp}/nomodel"),
])
def test_bad_input_ends_with_one_line_and_exit_code_2(tmp_path, capsys, args, message):
    cases = {**bad_csvs(tmp_path), "tmp": str(tmp_path)}
    argv = [a.format(**cases) for a in args] + ["--out", str(tmp_path / "o")] * (args[0] == "forecast") + FAST * (args[0] == "forecast")
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message.format(**cases))
    assert not (tmp_path / "o").exists()                          # nothing half-written


@pytest.mark.parametrize("damage, message", [
    (lambda m: (m / "weights.safetensors").write_bytes(b"0" * 64), "weights.safetensors does not match its SHA-256"),
    (lambda m: (m / "config.json").unlink(), "is incomplete: config.json is missing"),
])
def test_predict_refuses_tampered_or_incomplete_model(trained, tmp_path, capsys, damage, message):
    import shutil
    model = tmp_path / "model"
    shutil.copytree(trained / "result" / "model", model)
    damage(model)
    assert main(["predict", "--model", str(model)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: model folder") and message in err[0]


def test_real_process_prints_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "lstmkit.cli.main", "forecast", str(tmp_path / "x.csv")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr == f"error: data file not found: {tmp_path / 'x.csv'}\n"
    assert proc.stdout == ""


@pytest.mark.slow
def test_default_airline_run_beats_seasonal_naive_in_under_two_minutes(tmp_path, capsys):
    import time
    start = time.perf_counter()
    assert main(["forecast", "--out", str(tmp_path)]) == 0
    seconds = time.perf_counter() - start
    metrics = json.loads((tmp_path / "metrics.json").read_text())["metrics"]
    print(capsys.readouterr().out)
    assert metrics["LSTM"]["MASE"] < metrics["seasonal naive"]["MASE"]
    assert metrics["LSTM"]["MAE"] < 20                      # measured 9.9; ARIMA 13.3, Holt-Winters 10.3
    assert seconds < 120
    assert (tmp_path / "model" / "weights.safetensors").exists()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["sine", "seasonal", "prices"])
def test_demos_run(tmp_path, name):
    assert main(["demo", name, "--out", str(tmp_path)]) == 0
    assert (tmp_path / "forecast.png").exists() and (tmp_path / "metrics.json").exists()
