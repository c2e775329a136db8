"""Options that used to crash or lie, and outputs that must never replace a user's files: every case
ends with exit code 2 and one line, before any training, or with the promised behaviour."""
import json
import os
import time

import numpy as np
import pandas as pd
import pytest

from lstmkit.cli.main import main
from lstmkit.data import seasonal_sales
from lstmkit.forecasting import Forecaster
from lstmkit.training import progress

FAST = ["--epochs", "2", "--restarts", "1", "--hidden", "4", "--patience", "2", "--lookback", "12",
        "--horizon", "3", "--baselines", "fast"]


@pytest.fixture
def csv(tmp_path):
    path = tmp_path / "sales.csv"
    seasonal_sales(years=5).to_csv(path, index=False)
    return path


def one_line_error(capsys, starts):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(starts), err
    return err[0]


def test_out_holding_user_files_is_refused_before_training(tmp_path, csv, capsys):
    out = tmp_path / "P"
    (out / "model").mkdir(parents=True)
    (out / "model" / "notes.txt").write_text("mine")
    start = time.perf_counter()
    assert main(["forecast", str(csv), "--out", str(out), *FAST]) == 2
    one_line_error(capsys, f"error: --out {out}: {out / 'model'} holds files lstmkit did not write")
    assert time.perf_counter() - start < 5                     # refused before training
    assert sorted(os.listdir(out)) == ["model"] and os.listdir(out / "model") == ["notes.txt"]
    (out / "model" / "notes.txt").unlink()
    (out / "metrics.json").write_text("my own notes")
    assert main(["forecast", str(csv), "--out", str(out), *FAST]) == 2
    one_line_error(capsys, f"error: --out {out}: {out / 'metrics.json'} exists and was not written by lstmkit forecast")
    assert (out / "metrics.json").read_text() == "my own notes"


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_text("x") and p, "is a file; expected a folder"),
    (lambda p: p.write_text("x") and p / "sub", "is a file, so the folder cannot be created"),
])
def test_out_that_cannot_be_a_folder_is_refused_before_training(tmp_path, csv, capsys, make, message):
    out = make(tmp_path / "f")
    assert main(["forecast", str(csv), "--out", str(out), *FAST]) == 2
    assert message in one_line_error(capsys, "error: --out")
    assert (tmp_path / "f").read_text() == "x"


def test_holdout_0_trains_on_everything_and_saves_for_deployment(tmp_path, csv, capsys):
    out = tmp_path / "o"
    assert main(["forecast", str(csv), "--out", str(out), "--holdout", "0", "--val", "0", *FAST]) == 0
    printed = capsys.readouterr().out
    assert "no holdout: trained on all 60 steps" in printed
    assert sorted(os.listdir(out)) == ["forecast.png", "loss.png", "model"]
    cfg = json.loads((out / "model" / "config.json").read_text())["config"]
    assert cfg["holdout"] == 0 and cfg["val"] == 0
    # run again over its own outputs: lstmkit may replace what it wrote
    assert main(["forecast", str(csv), "--out", str(out), "--holdout", "0", *FAST]) == 0
    capsys.readouterr()
    assert main(["predict", "--model", str(out / "model")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "month,sales,sales_lower,sales_upper" and lines[1].startswith("2015-01-01,")
    # predict --model OUT (the parent of model/) points at OUT/model
    assert main(["predict", "--model", str(out)]) == 2
    assert one_line_error(capsys, "error: model folder").endswith(f"the model is in {out / 'model'}")
    for horizon in ("0", "100000"):
        assert main(["predict", "--model", str(out / "model"), "--horizon", horizon]) == 2
        assert "--" not in one_line_error(capsys, "error: horizon must be an integer from 1 to 10000")
    user = tmp_path / "mine.csv"
    user.write_text("a,b\n1,2\n")
    assert main(["predict", "--model", str(out / "model"), "-o", str(user)]) == 2
    one_line_error(capsys, f"error: --output {user} exists and is not a table written by lstmkit")
    assert user.read_text() == "a,b\n1,2\n"


def test_val_0_trains_without_validation(tmp_path, csv, capsys):
    assert main(["forecast", str(csv), "--out", str(tmp_path / "o"), "--val", "0", *FAST]) == 0
    assert "winner: " in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["demo", "sine", "--period", "0"], "error: period must be a finite number > 0, got 0"),
    (["forecast", "--bogus"], "error: unrecognized arguments: --bogus"),
    (["forecast", "--epochs", "x"], "error: argument --epochs: invalid int value: 'x'"),
    (["forecast", "--threads", "0"], "error: --threads must be from 1 to 1024, got 0"),
    (["forecast", "--hidden", "99999999"], "error: hidden must be <= 16384"),
])
def test_bad_options_are_one_line(tmp_path, capsys, argv, message):
    argv = argv + ["--out", str(tmp_path / "o")] * (argv[0] != "predict")
    assert main(argv) == 2
    one_line_error(capsys, message)


def test_rows_that_do_not_fit_the_header_are_an_error_naming_the_line(tmp_path, capsys):
    path = tmp_path / "pax.csv"
    rows = "".join(f"19{49 + i // 12}-{i % 12 + 1:02d},1,{100 + i}\n" for i in range(60))
    path.write_text("month,passengers\n" + rows)                 # unquoted thousands separators
    assert main(["forecast", str(path), "--out", str(tmp_path / "o"), *FAST]) == 2
    one_line_error(capsys, f"error: cannot read {path} as CSV: line 2 has 3 fields but the header has 2")
    assert not (tmp_path / "o").exists()


def test_threads_limit_blas_too():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from lstmkit.cli.forecast import _BLAS_LIMIT, set_threads
    try:
        set_threads(1)
        info = threadpoolctl.threadpool_info()
        assert info and all(pool["num_threads"] == 1 for pool in info)
    finally:
        for limit in _BLAS_LIMIT:
            limit.restore_original_limits()
        _BLAS_LIMIT.clear()


def test_progress_lines_on_a_non_terminal(monkeypatch, capsys):
    monkeypatch.setenv("LSTMKIT_PROGRESS_DELAY", "0.05")
    monkeypatch.setenv("LSTMKIT_PROGRESS_EVERY", "0.05")
    with progress.phase("fitting ARIMA"):
        time.sleep(0.3)
    bar = progress.progress_bar(4, "training LSTM")             # capsys: stderr is not a terminal
    assert isinstance(bar, progress.PlainProgress)
    bar.update(2)
    bar.set_postfix(run=1)
    time.sleep(0.3)
    bar.close()
    lines = capsys.readouterr().err.splitlines()
    assert any(l.startswith("lstmkit: fitting ARIMA ") and l.endswith(" s") for l in lines)
    assert any(l.startswith("lstmkit: fitting ARIMA done in ") for l in lines)
    assert any(l.startswith("lstmkit: training LSTM 2/4 (run=1)") for l in lines)
    monkeypatch.setenv("LSTMKIT_PROGRESS_DELAY", "5")
    with progress.phase("quick"):                                 # short phases print nothing
        pass
    assert capsys.readouterr().err == ""
