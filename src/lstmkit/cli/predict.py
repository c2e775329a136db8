"""`lstmkit predict --model DIR [CSV]`: forecast beyond the end of the data with a saved model, as CSV
on stdout or in a file. Without a CSV it forecasts beyond the data the model was trained on."""
from __future__ import annotations

import argparse
import sys

from pathlib import Path

from lstmkit.data import read_csv
from lstmkit.errors import LstmkitError
from lstmkit.forecasting import Forecaster
from lstmkit.training import atomic


def add_parser(sub) -> None:
    p = sub.add_parser("predict", help="forecast beyond the data with a saved model",
                       description=__doc__)
    p.add_argument("csv", nargs="?", help="CSV with the same columns as the training data "
                   "(default: the data saved with the model); for a global model a long CSV or .tsf")
    p.add_argument("--model", required=True, help="model folder written by 'lstmkit forecast' (…/model)")
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
            raise LstmkitError(f"--output {path} exists and is not a forecast written by lstmkit predict; "
                               f"choose another file name, or remove it")


def run(args: argparse.Namespace) -> int:
    from lstmkit.forecasting.global_forecaster import is_global_folder
    if is_global_folder(args.model):
        from .panel import predict
        return predict(args)                     # a global model: every series it was trained on
    fc = Forecaster.load(args.model)
    data = read_csv(args.csv) if args.csv else None
    table = fc.predict(args.horizon, data=data)
    text = table.to_csv(index=False, float_format="%.6g")
    if args.output:
        _check_output(Path(args.output), text.split("\n", 1)[0])
        atomic.write_text(args.output, text)
        print(f"wrote {len(table)} steps to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
