"""`lstmkit predict --model DIR [FILE]`: use a saved model, writing CSV to stdout or a file.

A forecaster (`lstmkit forecast`) forecasts beyond the end of FILE (a CSV; without one, beyond the data
it was trained on). A classifier (`lstmkit classify`) labels the sequences of FILE (.ts, or CSV in the
training file's layout, where the label column may be absent; labels present are not used): one row
per sequence (id, predicted, p_<class>...), or per step for a per-step model."""
from __future__ import annotations

import argparse
import sys

from pathlib import Path

from lstmkit.data import read_csv
from lstmkit.errors import LstmkitError
from lstmkit.forecasting import Forecaster
from lstmkit.training import atomic


def add_parser(sub) -> None:
    p = sub.add_parser("predict", help="forecast or classify with a saved model",
                       description=__doc__)
    p.add_argument("csv", nargs="?", help="CSV with the same columns as the training data "
                   "(default: the data saved with the model); for a global model a long CSV or .tsf; "
                   "for a classifier the sequences to label (.ts or CSV)")
    p.add_argument("--model", required=True, help="model folder written by 'lstmkit forecast' or "
                   "'lstmkit classify' (…/model)")
    p.add_argument("--horizon", type=int, help="steps to forecast (default: the model's horizon; "
                   "longer forecasts feed predictions back)")
    p.add_argument("--output", "-o", help="CSV file to write (default: stdout)")
    p.set_defaults(run=run)


def _check_output(path: Path, header: str) -> None:
    """Only a new file, or a forecast table this command wrote (same header), is replaced."""
    if path.is_dir():
        raise LstmkitError(f"--output {path} is a folder; expected a CSV file name")
    if path.exists():
        try:
            with open(path, encoding="utf-8") as f:
                first = f.readline(1 << 16).rstrip("\r\n")
        except (OSError, UnicodeDecodeError):
            first = None
        if first != header:
            raise LstmkitError(f"--output {path} exists and is not a table written by lstmkit predict; "
                               f"choose another file name, or remove it")


def _classify(args: argparse.Namespace):
    """The predictions of a saved classifier for the sequences of args.csv, as a table."""
    import numpy as np
    import pandas as pd

    from lstmkit.classification import SequenceClassifier

    if not args.csv:
        raise LstmkitError(f"{args.model} is a classifier: give the sequences to label, "
                           f"lstmkit predict --model {args.model} FILE (.ts or .csv)")
    if args.horizon is not None:
        raise LstmkitError("--horizon is for forecasters; this model is a classifier")
    clf = SequenceClassifier.load(args.model)
    data = clf.as_set(args.csv)
    proba = clf.predict_proba(data)
    pred = clf.predict(data)
    if clf.config.per_step:
        table = pd.DataFrame({"id": [i for i, p in zip(data.ids, pred) for _ in p],
                              "step": [s for p in pred for s in range(len(p))],
                              "predicted": [v for p in pred for v in p]})
        proba = np.concatenate(proba)
    else:
        table = pd.DataFrame({"id": list(data.ids), "predicted": list(pred)})
    for j, c in enumerate(clf.classes):
        table[f"p_{c}"] = proba[:, j]
    return table, "rows"


def _is_classifier(folder) -> bool:
    from lstmkit.inspection import task_of
    try:
        return task_of(folder) == "classifier"
    except LstmkitError:                         # Forecaster.load says what is wrong with the folder
        return False


def run(args: argparse.Namespace) -> int:
    from lstmkit.forecasting.global_forecaster import is_global_folder
    if is_global_folder(args.model):
        from .panel import predict
        return predict(args)                     # a global model: every series it was trained on
    if _is_classifier(args.model):
        table, unit = _classify(args)
    else:
        fc = Forecaster.load(args.model)
        data = read_csv(args.csv) if args.csv else None
        table, unit = fc.predict(args.horizon, data=data), "steps"
    text = table.to_csv(index=False, float_format="%.6g")
    if args.output:
        _check_output(Path(args.output), text.split("\n", 1)[0])
        atomic.write_text(args.output, text)
        print(f"wrote {len(table)} {unit} to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
