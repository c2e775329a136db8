"""The gate viewer: the numbers it draws are the LSTM's equations, and pictures and the HTML page are
written for a saved model of each task."""
import base64
import json
import re

import numpy as np
import pytest
import torch

import lstmkit
from lstmkit.cli.main import main
from lstmkit.data import airline_passengers
from lstmkit.errors import LstmkitError
from lstmkit.forecasting import ForecastConfig, Forecaster
from lstmkit.inspection import task_of
from lstmkit.plotting import gate_trace, plot_gates
from lstmkit.training import TrainConfig

PNG = b"\x89PNG\r\n\x1a\n"


def _hand_lstm(layer, x):
    """Gates of layer 0 stepped by hand from the weights (torch's gate order i, f, g, o)."""
    W, U = layer.weight_ih_l0, layer.weight_hh_l0
    b = layer.bias_ih_l0 + layer.bias_hh_l0
    H = layer.hidden_size
    h, c = torch.zeros(H, dtype=x.dtype), torch.zeros(H, dtype=x.dtype)
    rows = {k: [] for k in "ifgoch"}
    for x_t in x[0]:
        z = W @ x_t + U @ h + b
        i, f = torch.sigmoid(z[:H]), torch.sigmoid(z[H:2 * H])
        g, o = torch.tanh(z[2 * H:3 * H]), torch.sigmoid(z[3 * H:])
        c = f * c + i * g
        h = o * torch.tanh(c)
        for k, v in zip("ifgoch", (i, f, g, o, c, h)):
            rows[k].append(v)
    return {k: torch.stack(v).detach().numpy() for k, v in rows.items()}


@pytest.mark.parametrize("batch_first", [True, False])
def test_gate_trace_is_the_lstm_equations_stepped_by_hand(batch_first):
    layer = lstmkit.LSTM(3, 5, batch_first=batch_first).double()
    x = torch.randn(1, 9, 3, dtype=torch.float64)
    got = gate_trace(layer, x)
    want = _hand_lstm(layer, x)
    for k in "ifgoch":
        np.testing.assert_allclose(got[k], want[k], atol=1e-10, err_msg=k)


def test_gate_trace_of_the_second_layer_reads_the_first_layers_output():
    layer = lstmkit.LSTM(2, 4, num_layers=2, batch_first=True).double()
    x = torch.randn(1, 6, 2, dtype=torch.float64)
    top = gate_trace(layer, x, layer_index=1)
    single = lstmkit.LSTM(4, 4, batch_first=True).double()
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        getattr(single, name + "_l0").data.copy_(getattr(layer, name + "_l1"))
    bottom = lstmkit.LSTM(2, 4, batch_first=True).double()
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        getattr(bottom, name + "_l0").data.copy_(getattr(layer, name + "_l0"))
    want = _hand_lstm(single, bottom(x)[0].detach())
    np.testing.assert_allclose(top["f"], want["f"], atol=1e-10)
    np.testing.assert_allclose(top["c"], want["c"], atol=1e-10)


def test_plot_gates_writes_a_png_and_the_gru_rows(tmp_path):
    path = plot_gates(lstmkit.LSTM(2, 6, batch_first=True), torch.randn(1, 20, 2), tmp_path / "g.png",
                      step_labels=list("abcdefghij" * 2))
    assert path.read_bytes()[:8] == PNG
    fig = plot_gates(lstmkit.GRU(3, 4), torch.randn(1, 7, 3))
    labels = [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel()]
    assert labels == ["input x", "reset gate r\nunit", "update gate z\nunit", "candidate n\nunit",
                      "hidden state h\nunit"]


def test_plot_gates_refuses_bad_input():
    layer = lstmkit.LSTM(2, 3, batch_first=True)
    with pytest.raises(ValueError, match=r"\(1, L, H_in\)"):
        plot_gates(layer, torch.randn(2, 5, 2))
    with pytest.raises(ValueError, match="5 step labels"):
        plot_gates(layer, torch.randn(1, 5, 2), step_labels=["a"])
    with pytest.raises(TypeError, match="lstmkit.LSTM or lstmkit.GRU"):
        plot_gates(torch.nn.LSTM(2, 3), torch.randn(1, 5, 2))


def _check_outputs(paths, out):
    names = sorted(p.name for p in paths)
    assert "gates.html" in names and "gates_l0.png" in names
    for p in paths:
        if p.suffix == ".png":
            assert p.read_bytes()[:8] == PNG
    page = (out / "gates.html").read_text()
    images = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)
    assert len(images) == len(names) - 1
    assert all(base64.b64decode(i)[:8] == PNG for i in images)
    assert "src='http" not in page and "href=" not in page           # self-contained


@pytest.fixture(scope="module")
def forecaster_folder(tmp_path_factory):
    cfg = ForecastConfig(hidden=6, layers=2, train=TrainConfig(epochs=2, restarts=1, progress=False))
    folder = tmp_path_factory.mktemp("fc") / "model"
    Forecaster(cfg).fit(airline_passengers()).save(folder)
    return folder


def test_forecaster_gate_view_follows_the_contract(forecaster_folder):
    fc = Forecaster.load(forecaster_folder)
    layer, x, labels = fc.gate_view()
    assert layer is fc.models[0].lstm
    assert x.shape == (1, fc.config.lookback, 1) and len(labels) == fc.config.lookback
    assert labels[-1] == "1960-12-01"
    out, _ = layer(x)                          # exactly what the layer reads: the model's own forecast
    want = fc._z_at(fc._inputs(fc.series.values(["passengers"]), fc.series.values([]))[0],
                    np.array([len(fc.series) - 1 - 13]))
    got = fc.models[0].head(out[:, -1]).detach().numpy().reshape(want.shape)
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert json.loads((forecaster_folder / "config.json").read_text())["task"] == "forecaster"


def test_inspect_writes_pictures_and_one_page_for_a_forecaster(forecaster_folder, tmp_path, capsys):
    assert main(["inspect", str(forecaster_folder), "--out", str(tmp_path / "g")]) == 0
    paths = sorted((tmp_path / "g").iterdir())
    assert sorted(p.name for p in paths) == ["gates.html", "gates_l0.png", "gates_l1.png"]
    _check_outputs(paths, tmp_path / "g")


def test_inspect_errors_are_one_line(tmp_path, capsys):
    assert main(["inspect", str(tmp_path / "nope"), "--out", str(tmp_path / "g")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text('{"task": "poetry"}')
    with pytest.raises(LstmkitError, match="unknown task 'poetry'"):
        task_of(tmp_path / "m")


@pytest.mark.slow
def test_the_tutorial_tells_what_its_pictures_show(tmp_path):
    """docs/gates.md: the counting LSTM carries the count in one cell and its forget gate closes at the
    reset marker (the figures quoted in the tutorial come from this run)."""
    import runpy
    from pathlib import Path

    tutorial = runpy.run_path(str(Path(__file__).parents[2] / "docs" / "gates_tutorial.py"))
    facts = tutorial["main"](tmp_path)
    assert (tmp_path / "counting_gates.png").read_bytes()[:8] == PNG
    assert facts["count_error"] < 0.2                       # it counts (mean error in counts)
    assert facts["corr_cell_count"] > 0.9                   # one cell state is the count
    assert facts["forget_at_reset"] < 0.5 * facts["forget_elsewhere"]   # and is erased at resets


def test_inspect_imports_the_task_class_named_by_the_folder(tmp_path, monkeypatch):
    """Dispatch on config.json's "task": the class is imported only then (as the classifier will be)."""
    import sys
    import types

    import lstmkit.inspection as inspection

    layer = lstmkit.GRU(3, 4, batch_first=True)

    class Fake:
        @classmethod
        def load(cls, folder):
            return cls()

        def gate_view(self, example=None):
            return layer, torch.randn(1, 5, 3), list(example or "abcde")

    module = types.ModuleType("fake_tasks")
    module.Classifier = Fake
    monkeypatch.setitem(sys.modules, "fake_tasks", module)
    monkeypatch.setitem(inspection.TASKS, "classifier", ("fake_tasks", "Classifier"))
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text('{"task": "classifier"}')
    paths = inspection.inspect_model(tmp_path / "m", tmp_path / "g", example="vwxyz")
    assert sorted(p.name for p in paths) == ["gates.html", "gates_l0.png"]
    assert "update gate z" in (tmp_path / "g" / "gates.html").read_text()
    monkeypatch.setitem(inspection.TASKS, "classifier", ("no_such_module_xyz", "Classifier"))
    with pytest.raises(LstmkitError, match="'classifier' model, but no_such_module_xyz.Classifier"):
        inspection.load_model(tmp_path / "m")


def test_inspect_writes_pictures_and_one_page_for_a_classifier(tmp_path):
    from lstmkit.classification import ClassifyConfig, SequenceClassifier

    rng = np.random.default_rng(0)
    seqs = [rng.normal(size=(int(rng.integers(4, 9)), 2)) for _ in range(12)]
    labels = ["a", "b"] * 6
    cfg = ClassifyConfig(hidden=5, dropout=0.0, train=TrainConfig(epochs=1, restarts=1, patience=0,
                                                                  progress=False))
    SequenceClassifier(cfg).fit(seqs, labels).save(tmp_path / "model")
    assert task_of(tmp_path / "model") == "classifier"
    from lstmkit.inspection import inspect_model
    paths = inspect_model(tmp_path / "model", tmp_path / "g")
    assert "gates_l0.png" in [p.name for p in paths]
    _check_outputs(paths, tmp_path / "g")
