"""`lstmkit seq2seq [PAIRS.tsv] [--test TEST.tsv] --out DIR`: train an LSTM encoder-decoder on
`source<TAB>target` lines (characters as tokens) and write metrics.json (exact_match, char_accuracy on
the test pairs), attention heat maps of a few test examples, loss.png and model/. Without a file it
generates a teaching task (--task reverse|addition|dates). Without --test the last 10% of the pairs
are the test pairs.

`lstmkit seq2seq --model DIR/model` translates the lines of stdin, one output line per input line."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from lstmkit.errors import LstmkitError
from lstmkit.plotting import plot_attention, plot_loss
from lstmkit.seq2seq import TASKS, Seq2Seq, Seq2SeqConfig, read_pairs, teaching_pairs
from lstmkit.training import atomic
from lstmkit.training.checkpoint import json_bytes

from .forecast import set_threads


def add_parser(sub) -> None:
    p = sub.add_parser("seq2seq", help="train an encoder-decoder on source/target pairs, or translate",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("pairs", nargs="?", help="UTF-8 file of source<TAB>target lines (default: a "
                   "generated --task)")
    p.add_argument("--test", help="test pairs file (default: the last 10%% of the pairs)")
    p.add_argument("--out", default="seq2seq_out", help="output folder (default: seq2seq_out)")
    p.add_argument("--model", help="translate stdin with this saved model (…/model) instead of training")
    g = p.add_argument_group("generated task (when no pairs file is given)")
    g.add_argument("--task", choices=TASKS, default="reverse", help="teaching task (default reverse)")
    g.add_argument("--n", type=int, default=3000, help="pairs to generate (default 3000)")
    g.add_argument("--min-len", type=int, default=8, help="shortest string / fewest digits (default 8)")
    g.add_argument("--max-len", type=int, default=16, help="longest string / most digits (default 16)")
    d = Seq2SeqConfig()
    t = d.train
    g = p.add_argument_group("model and training")
    g.add_argument("--attention", choices=("none", "bahdanau", "luong"), help=f"attention (default {d.attention})")
    g.add_argument("--bidirectional", action="store_true", help="bidirectional encoder")
    g.add_argument("--embedding", type=int, help=f"embedding size (default {d.embedding})")
    g.add_argument("--hidden", type=int, help=f"hidden size per direction (default {d.hidden})")
    g.add_argument("--layers", type=int, help=f"layers of encoder and decoder (default {d.layers})")
    g.add_argument("--dropout", type=float, help=f"dropout (default {d.dropout})")
    g.add_argument("--beam", type=int, help=f"beam width for decoding; 1 = greedy (default {d.beam})")
    g.add_argument("--epochs", type=int, help=f"most epochs (default {t.epochs})")
    g.add_argument("--lr", type=float, help=f"Adam learning rate (default {t.lr})")
    g.add_argument("--batch-size", type=int, help=f"pairs per step (default {t.batch_size})")
    g.add_argument("--patience", type=int, help=f"early-stopping patience (default {t.patience})")
    g.add_argument("--seed", type=int, default=0, help="random seed of training and of the task (default 0)")
    g.add_argument("--device", help="torch device, e.g. cuda (default cpu)")
    g.add_argument("--threads", type=int, default=1, help="CPU threads for torch (default 1)")
    p.set_defaults(run=run)


def config_from_args(args: argparse.Namespace) -> Seq2SeqConfig:
    cfg = Seq2SeqConfig()
    for name in ("attention", "embedding", "hidden", "layers", "dropout", "beam", "device"):
        if getattr(args, name) is not None:
            setattr(cfg, name, getattr(args, name))
    cfg.bidirectional = bool(args.bidirectional)
    for flag, name in (("epochs", "epochs"), ("lr", "lr"), ("batch_size", "batch_size"),
                       ("patience", "patience"), ("seed", "seed")):
        if getattr(args, flag) is not None:
            setattr(cfg.train, name, getattr(args, flag))
    return cfg


def run(args: argparse.Namespace) -> int:
    set_threads(args.threads)
    if args.model:
        s2s = Seq2Seq.load(args.model, device=args.device or "cpu")
        lines = [line.rstrip("\r\n") for line in sys.stdin]
        keep = [line for line in lines if line]
        out = iter(s2s.translate(keep, args.beam) if keep else [])
        for line in lines:
            print(next(out) if line else "")
        return 0
    start = time.perf_counter()
    if args.pairs:
        pairs, name = read_pairs(args.pairs), Path(args.pairs).name
    else:
        pairs = teaching_pairs(args.task, args.n, args.min_len, args.max_len, seed=args.seed)
        name = f"generated {args.task} ({args.n} pairs, lengths {args.min_len}-{args.max_len})"
    if args.test:
        test = read_pairs(args.test)
    else:
        if len(pairs) < 10:
            raise LstmkitError(f"too few pairs to hold out a test part: {len(pairs)} (give --test)")
        cut = len(pairs) - max(1, len(pairs) // 10)
        pairs, test = pairs[:cut], pairs[cut:]
    s2s = Seq2Seq(config_from_args(args)).fit(pairs)
    metrics = s2s.evaluate(test)
    out = Path(args.out)
    paths = []
    if s2s.config.attention != "none":
        for k, (src, tgt) in enumerate(test[:3]):
            pred, w = s2s.attention(src)
            paths.append(plot_attention(out / f"attention_{k}.png", w.numpy(), list(src),
                                        list(pred) + ["</s>"] if len(w) > len(pred) else list(pred),
                                        title=f"{src!r} -> {pred!r} (target {tgt!r})"))
    cfg = s2s.config
    examples = [{"source": s, "target": t, "output": o}
                for (s, t), o in zip(test[:10], s2s.translate([s for s, _ in test[:10]]))]
    paths += [plot_loss(out / "loss.png", [r.history for r in s2s.result.runs],
                        [r.best_epoch for r in s2s.result.runs], title="cross-entropy per epoch",
                        ylabel="cross-entropy (nats per token)"),
              atomic.write_bytes(out / "metrics.json", json_bytes({**metrics, "data": name,
                                                                   "train_pairs": len(pairs),
                                                                   "examples": examples,
                                                                   "config": cfg.to_dict()})),
              s2s.save(out / "model")]
    print(f"{name}: {len(pairs)} training pairs, {len(test)} test pairs; encoder "
          f"{'bidirectional ' if cfg.bidirectional else ''}{cfg.layers}x{cfg.hidden}, attention "
          f"{cfg.attention}, {'greedy' if cfg.beam == 1 else f'beam {cfg.beam}'} decoding")
    print(f"exact match {metrics['exact_match']:.3f}, character accuracy {metrics['char_accuracy']:.3f}")
    for e in examples[:3]:
        print(f"  {e['source']!r} -> {e['output']!r} (target {e['target']!r})")
    print("wrote " + ", ".join(str(p) for p in paths) + f"  ({time.perf_counter() - start:.0f} s)")
    return 0
