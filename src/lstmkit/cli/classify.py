"""`lstmkit classify TRAIN [--test TEST] --out DIR`: train an LSTM classifier on labelled sequences and
report it beside a 1-nearest-neighbour baseline on the test sequences (without --test: a stratified
holdout of TRAIN). TRAIN is a UEA/UCR .ts file or a CSV file:
  one row per step:      --id-col seq [--time-col t] [--features a,b] --label-col label
  one row per sequence:  the numeric columns are the steps (empty cells at the end: shorter sequences)
  text:                  --text-col text --label-col label   (one text per row; with --id-col, one
                         token per row, e.g. for tagging with --per-step)
Writes DIR/metrics.json, DIR/predictions.csv, DIR/confusion.png and DIR/model/."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from lstmkit.classification import ClassifyConfig, SequenceClassifier
from lstmkit.classification.classifier import Evaluation, stratified_split
from lstmkit.errors import LstmkitError
from lstmkit.plotting import plot_confusion
from lstmkit.training import atomic
from lstmkit.training.checkpoint import json_bytes

from .forecast import check_output_folder, set_threads


def _columns(text: str) -> list[str]:
    return [c.strip() for c in text.split(",") if c.strip()]


def _weights(text: str):
    if text in ("balanced", "none"):
        return None if text == "none" else text
    try:
        return [float(w) for w in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'balanced', 'none' or weights like '1,2.5', got {text!r}")


def add_parser(sub) -> None:
    d = ClassifyConfig()
    t = d.train
    p = sub.add_parser("classify", help="train an LSTM sequence classifier (.ts, CSV, text) and compare "
                       "it with a 1-NN baseline", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("train_file", metavar="TRAIN", help="training data: .ts or .csv")
    p.add_argument("--test", help="test data in the same format (default: hold out --holdout of TRAIN)")
    p.add_argument("--holdout", type=float, default=0.25,
                   help="share of TRAIN held out for the test when there is no --test (default 0.25)")
    p.add_argument("--out", default="classify_out", help="output folder (default: classify_out)")
    g = p.add_argument_group("data (CSV)")
    g.add_argument("--label-col", help="label column (default: label)")
    g.add_argument("--id-col", help="sequence id column: one row per step (long form)")
    g.add_argument("--time-col", help="order of the steps within a sequence (default: file order)")
    g.add_argument("--features", type=_columns, help="input columns, comma-separated (default: every "
                   "numeric column but id, time and label)")
    g.add_argument("--text-col", help="text column: classify texts (or tokens, one per row, with --id-col)")
    g.add_argument("--per-step", action="store_true", help="one label per step (sequence labelling); "
                   "needs --id-col")
    g = p.add_argument_group("text")
    g.add_argument("--tokens", choices=("word", "char"), help=f"tokenisation (default {d.tokens})")
    g.add_argument("--no-lowercase", dest="lowercase", action="store_false", default=None,
                   help="keep the case of the text")
    g.add_argument("--min-count", type=int, help=f"rarer training tokens become <unk> (default {d.min_count})")
    g.add_argument("--max-vocab", type=int, help=f"vocabulary size limit (default {d.max_vocab})")
    g.add_argument("--input", choices=("embedding", "onehot"), help=f"token input (default {d.input})")
    g.add_argument("--embed-dim", type=int, help=f"embedding size (default {d.embed_dim})")
    g = p.add_argument_group("model")
    g.add_argument("--preset", help="LSTM variant from lstmkit.PRESETS, e.g. V, NP, CIFG (default: vanilla)")
    g.add_argument("--hidden", type=int, help=f"hidden size per direction (default {d.hidden})")
    g.add_argument("--layers", type=int, help=f"stacked LSTM layers (default {d.layers})")
    g.add_argument("--bidirectional", action=argparse.BooleanOptionalAction, default=None,
                   help=f"read sequences both ways (default {d.bidirectional})")
    g.add_argument("--pooling", choices=("last", "mean", "attention"),
                   help=f"summary of the steps (default {d.pooling})")
    g.add_argument("--dropout", type=float, help=f"dropout (default {d.dropout})")
    g.add_argument("--class-weights", type=_weights, help="'balanced', 'none', or one weight per class "
                   "in label order (numeric labels numerically), e.g. '1,3'")
    g = p.add_argument_group("training")
    g.add_argument("--val", type=float, help=f"share of TRAIN held out for early stopping (default {d.val})")
    g.add_argument("--epochs", type=int, help=f"most epochs per run (default {t.epochs})")
    g.add_argument("--lr", type=float, help=f"Adam learning rate (default {t.lr})")
    g.add_argument("--weight-decay", type=float, help=f"Adam L2 penalty (default {t.weight_decay})")
    g.add_argument("--batch-size", type=int, help=f"sequences per step (default {t.batch_size})")
    g.add_argument("--patience", type=int, help=f"early-stopping patience in epochs (default {t.patience})")
    g.add_argument("--restarts", type=int, help=f"initialisations (default {t.restarts})")
    g.add_argument("--combine", choices=("mean", "best"), help=f"average all runs or keep the best "
                   f"(default {t.combine})")
    g.add_argument("--seed", type=int, help=f"random seed (default {t.seed})")
    g.add_argument("--baseline", choices=("auto", "dtw", "euclidean", "both", "none"),
                   help="1-NN baseline (default auto: DTW, and Euclidean for equal lengths)")
    g.add_argument("--threads", type=int, default=1, help="CPU threads for torch (default 1)")
    p.set_defaults(run=run)


_CONFIG_FLAGS = ("label_col", "id_col", "time_col", "features", "text_col", "tokens", "lowercase",
                 "min_count", "max_vocab", "input", "embed_dim", "preset", "hidden", "layers",
                 "bidirectional", "pooling", "dropout", "class_weights", "val", "baseline")
_TRAIN_FLAGS = {"epochs": "epochs", "lr": "lr", "weight_decay": "weight_decay", "batch_size": "batch_size", "patience": "patience",
                "restarts": "restarts", "combine": "combine", "seed": "seed"}


def config_from_args(args: argparse.Namespace) -> ClassifyConfig:
    cfg = ClassifyConfig()
    for name in _CONFIG_FLAGS:
        value = getattr(args, name, None)
        if value is not None:
            setattr(cfg, name, value)
    for flag, field_name in _TRAIN_FLAGS.items():
        value = getattr(args, flag, None)
        if value is not None:
            setattr(cfg.train, field_name, value)
    cfg.per_step = bool(args.per_step)
    return cfg


OUTPUTS = ("metrics.json", "predictions.csv", "confusion.png")   # besides model/


def write_outputs(clf: SequenceClassifier, ev: Evaluation, out: Path, extra: dict) -> list[Path]:
    """metrics.json, predictions.csv, confusion.png and model/ in `out`; returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    return [
        atomic.write_bytes(out / "metrics.json", json_bytes({**ev.to_dict(), **extra,
                                                             "config": clf.config.to_dict()})),
        atomic.write_text(out / "predictions.csv", ev.frame().to_csv(index=False)),
        plot_confusion(out / "confusion.png", ev.metrics["confusion"], ev.metrics["labels"],
                       title=f"LSTM: accuracy {ev.metrics['accuracy']:.3f}, balanced "
                             f"{ev.metrics['balanced_accuracy']:.3f}"),
        clf.save(out / "model"),
    ]


def run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    set_threads(args.threads)
    cfg = config_from_args(args)
    cfg.check()
    if not 0 < args.holdout < 1:
        raise LstmkitError(f"--holdout must be in (0, 1), got {args.holdout}")
    check_output_folder(Path(args.out), OUTPUTS, "classify")   # before training: replace only ours
    clf = SequenceClassifier(cfg)
    data = clf.as_set(args.train_file, need_labels=True)
    if args.test:
        train_set, test_set, source = data, clf.as_set(args.test, need_labels=True), args.test
    else:
        keep, held = stratified_split(data, args.holdout, cfg.train.seed)
        if len(held) == 0:
            raise LstmkitError(f"{args.train_file}: no sequence can be held out for the test (a class "
                               f"with one sequence is never held out, and {len(data)} sequence(s) "
                               f"were given); pass --test FILE or give more sequences per class")
        train_set, test_set = data.subset(keep), data.subset(held)
        source = f"{100 * args.holdout:.0f}% stratified holdout of {args.train_file}"
    clf.fit(train_set)
    fitted = time.perf_counter()
    ev = clf.evaluate(test_set, baselines=cfg.baseline != "none")
    seconds = time.perf_counter() - start
    extra = {"train": str(args.train_file), "test": source, "n_train": len(train_set),
             "train_seconds": round(fitted - start, 2), "seconds": round(seconds, 2)}
    paths = write_outputs(clf, ev, Path(args.out), extra)
    kind = "steps" if cfg.per_step else "sequences"
    print(f"{data.name or Path(args.train_file).name}: {len(train_set)} training and {len(test_set)} test "
          f"sequences, {len(clf.classes)} classes; test: {source}")
    print(f"LSTM {cfg.layers}x{cfg.hidden} ({cfg.preset or 'vanilla'}, "
          f"{'bidirectional, ' if cfg.bidirectional else ''}{cfg.pooling} pooling), "
          f"{len(clf.models)} member(s); scores over test {kind}:")
    print(ev.table())
    for note in ev.notes:
        print(f"note: {note}")
    print("wrote " + ", ".join(str(p) for p in paths) + f"  ({seconds:.0f} s)")
    return 0
