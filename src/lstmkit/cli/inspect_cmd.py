"""`lstmkit inspect MODEL_DIR --out DIR`: the gate viewer for a saved model of any task (forecaster,
classifier, language model, seq2seq). Writes one PNG per layer and direction (forget, input and output
gates, candidate, cell and hidden state as heat maps, units x steps, with the input above) and
gates.html, one self-contained page with the images embedded."""
from __future__ import annotations

import argparse

from lstmkit.inspection import inspect_model


def add_parser(sub) -> None:
    p = sub.add_parser("inspect", help="draw the gates and cell state of a saved model (PNG + HTML)",
                       description=__doc__)
    p.add_argument("model", help="model folder written by lstmkit (…/model)")
    p.add_argument("--out", default="gates_out", help="output folder (default: gates_out)")
    p.add_argument("--example", help="input to show, for text models a string (default: the example "
                   "stored with the model)")
    p.add_argument("--max-units", type=int, default=32, help="units shown per heat map (default 32)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    paths = inspect_model(args.model, args.out, args.example, args.max_units)
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0
