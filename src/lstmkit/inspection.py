"""The gate viewer over saved models: read any task's model folder, ask the task for one input
sequence (its ``gate_view``), draw the gates with :func:`lstmkit.plotting.plot_gates` and write PNGs
plus one self-contained HTML page.

Every model folder's config.json carries a top-level "task" field (folders without it are forecasters);
the task classes are imported only when a folder of that task is opened:

    forecaster      lstmkit.forecasting.Forecaster
    classifier      lstmkit.classification.SequenceClassifier
    language_model  lstmkit.generation.CharLanguageModel
    seq2seq         lstmkit.seq2seq.Seq2Seq
"""
from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Optional

from lstmkit.errors import LstmkitError

TASKS = {
    "forecaster": ("lstmkit.forecasting", "Forecaster"),
    "classifier": ("lstmkit.classification", "SequenceClassifier"),
    "language_model": ("lstmkit.generation", "CharLanguageModel"),
    "seq2seq": ("lstmkit.seq2seq", "Seq2Seq"),
}

GUIDE = {
    "f": "Forget gate f: 1 keeps the cell state, 0 erases it. Look for columns where it drops: the "
         "cell state is reset there.",
    "i": "Input gate i: how much of the candidate g is written into the cell state at each step.",
    "o": "Output gate o: how much of the (squashed) cell state is shown as the hidden state h.",
    "c": "Cell state c = f * c_prev + i * g: the memory. A unit that keeps its colour across many "
         "steps is carrying information forward.",
}


def task_of(folder: str | Path) -> str:
    """The "task" field of a model folder's config.json ("forecaster" when absent)."""
    path = Path(folder) / "config.json"
    try:
        meta = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise LstmkitError(f"model folder {folder}: config.json is missing (not a saved lstmkit "
                           f"model)") from None
    except (OSError, ValueError) as e:
        raise LstmkitError(f"model folder {folder}: config.json cannot be read ({e})") from None
    task = meta.get("task", "forecaster") if isinstance(meta, dict) else None
    if task not in TASKS:
        raise LstmkitError(f"model folder {folder}: unknown task {task!r}, expected one of "
                           f"{sorted(TASKS)}")
    return task


def load_model(folder: str | Path):
    """Load a saved model of any task with its class's own load() (which verifies the folder)."""
    task = task_of(folder)
    module, name = TASKS[task]
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        raise LstmkitError(f"model folder {folder} holds a {task!r} model, but {module}.{name} is not "
                           f"available in this lstmkit") from None
    return cls.load(folder)


def inspect_model(folder: str | Path, out: str | Path, example: Optional[str] = None,
                  max_units: int = 32) -> list[Path]:
    """Write the gate pictures of a saved model into `out`: gates_l{k}[_reverse].png for every layer
    and direction of the task's first recurrent layer, and gates.html embedding them all.
    `example` is handed to the task's gate_view (text for text models; None = the stored example)."""
    from lstmkit.plotting import GATE_ROWS, gates_html, plot_gates

    task = task_of(folder)
    model = load_model(folder)
    layer, x, labels = model.gate_view(example)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths, sections = [], []
    for k in range(layer.num_layers):
        for d in range(layer.num_directions):
            name = f"gates_l{k}" + ("_reverse" if d else "") + ".png"
            title = (f"{task}: {type(layer).__name__} layer {k}" + (" (reverse)" if d else "")
                     + f", {x.shape[1]} steps")
            path = plot_gates(layer, x, out / name, step_labels=labels, layer_index=k, direction=d,
                              max_units=max_units, title=title)
            paths.append(path)
            sections.append((title, _caption(layer, k, d), path.read_bytes()))
    intro = ("Each picture is one layer reading the same input (drawn on top). Rows are units, "
             "columns are time steps. " + " ".join(GUIDE[g] for g, _ in GATE_ROWS["lstm"] if g in GUIDE)
             if layer.cell_kind == "lstm" else
             "Each picture is one GRU layer reading the same input (drawn on top). Rows are units, "
             "columns are time steps. The update gate z decides how much of the old hidden state is "
             "kept; the reset gate r how much of it the candidate n may read.")
    sections[0] = (sections[0][0], intro + " " + sections[0][1], sections[0][2])
    paths.append(gates_html(out / "gates.html", f"lstmkit gate viewer: {Path(folder).name} ({task})",
                            sections))
    return paths


def _caption(layer, k: int, d: int) -> str:
    if k == 0 and d == 0:
        return "The first layer reads the input directly."
    if d:
        return "The reverse direction reads the sequence from its end; time still runs left to right."
    return f"Layer {k} reads the hidden states of layer {k - 1}."
