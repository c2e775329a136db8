"""`lstmkit generate [TEXT_FILE] --out DIR`: train a character LSTM language model statefully with
truncated BPTT on the text (its last 10% held out), print held-out bits per character beside
Witten-Bell n-gram baselines (orders 1-5) counted on the same training text, and write samples.txt,
loss.png, metrics.json and model/. Without a file it trains on the Python documentation topics the
standard library ships (pydoc_data.topics).

`lstmkit generate --model DIR/model --prompt "..." --length N --temperature T [--top-k K]` samples
from a saved model and prints the prompt and its continuation."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from lstmkit.errors import LstmkitError
from lstmkit.data.text import read_text
from lstmkit.generation import CharLanguageModel, LanguageModelConfig, pydoc_topics
from lstmkit.plotting import plot_loss
from lstmkit.training import atomic
from lstmkit.training.checkpoint import json_bytes

from .forecast import set_threads

PROMPTS = ("The ", "def ", "A ")


def add_parser(sub) -> None:
    p = sub.add_parser("generate", help="train a character language model, or sample from one",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("text", nargs="?", help="UTF-8 text file to train on (default: the standard "
                   "library's pydoc_data.topics)")
    p.add_argument("--out", default="generate_out", help="output folder (default: generate_out)")
    p.add_argument("--model", help="sample from this saved model (…/model) instead of training")
    g = p.add_argument_group("sampling")
    g.add_argument("--prompt", default="", help="text to continue (default: start after a newline)")
    g.add_argument("--length", type=int, default=300, help="characters to generate (default 300)")
    g.add_argument("--temperature", type=float, default=0.8, help="softmax temperature; 0 = most "
                   "likely character (default 0.8)")
    g.add_argument("--top-k", type=int, help="sample among the k most likely characters only")
    d = LanguageModelConfig()
    t = d.train
    g = p.add_argument_group("model and training")
    g.add_argument("--max-chars", type=int, help="use only the first N characters of the text")
    g.add_argument("--embedding", type=int, help=f"embedding size (default {d.embedding})")
    g.add_argument("--hidden", type=int, help=f"LSTM hidden size (default {d.hidden})")
    g.add_argument("--layers", type=int, help=f"stacked LSTM layers (default {d.layers})")
    g.add_argument("--dropout", type=float, help=f"dropout (default {d.dropout})")
    g.add_argument("--residual", action="store_true", help="residual connections between layers "
                   "(needs --embedding equal to --hidden)")
    g.add_argument("--streams", type=int, help=f"parallel streams = batch size (default {d.streams})")
    g.add_argument("--tbptt", type=int, help=f"truncated BPTT chunk length (default {t.tbptt})")
    g.add_argument("--epochs", type=int, help=f"most passes over the text (default {t.epochs})")
    g.add_argument("--lr", type=float, help=f"Adam learning rate (default {t.lr})")
    g.add_argument("--patience", type=int, help=f"early-stopping patience (default {t.patience})")
    g.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    g.add_argument("--device", help="torch device, e.g. cuda (default cpu)")
    g.add_argument("--threads", type=int, default=1, help="CPU threads for torch (default 1)")
    p.set_defaults(run=run)


def config_from_args(args: argparse.Namespace) -> LanguageModelConfig:
    cfg = LanguageModelConfig()
    for name in ("embedding", "hidden", "layers", "dropout", "streams", "device"):
        if getattr(args, name) is not None:
            setattr(cfg, name, getattr(args, name))
    cfg.residual = bool(args.residual)
    for name in ("tbptt", "epochs", "lr", "patience", "seed"):
        if getattr(args, name) is not None:
            setattr(cfg.train, name, getattr(args, name))
    return cfg


def run(args: argparse.Namespace) -> int:
    set_threads(args.threads)
    if args.model:
        lm = CharLanguageModel.load(args.model, device=args.device or "cpu")
        print(args.prompt + lm.generate(args.prompt, args.length, args.temperature, args.top_k, args.seed))
        return 0
    start = time.perf_counter()
    text, name = (read_text(args.text), Path(args.text).name) if args.text else (pydoc_topics(), "pydoc_data.topics")
    if args.max_chars is not None:
        if args.max_chars < 100:
            raise LstmkitError(f"--max-chars must be >= 100, got {args.max_chars}")
        text = text[:args.max_chars]
    lm = CharLanguageModel(config_from_args(args)).fit(text)
    m = lm.evaluate()
    out = Path(args.out)
    samples = "\n\n".join(f"--- prompt {p!r}, temperature {args.temperature}"
                          + (f", top-k {args.top_k}" if args.top_k else "") + f" ---\n{p}"
                          + lm.generate(p, args.length, args.temperature, args.top_k, args.seed + i)
                          for i, p in enumerate(PROMPTS))
    cfg = lm.config
    paths = [atomic.write_text(out / "samples.txt", samples + "\n"),
             plot_loss(out / "loss.png", [r.history for r in lm.result.runs],
                       [r.best_epoch for r in lm.result.runs], title="cross-entropy per epoch",
                       ylabel="cross-entropy (nats per character)"),
             atomic.write_bytes(out / "metrics.json", json_bytes({**m, "text": name,
                                                                   "config": cfg.to_dict()})),
             lm.save(out / "model")]
    print(f"{name}: {m['train_chars']} characters for training, last {m['heldout_chars']} held out; "
          f"vocabulary {m['vocab']}; LSTM {cfg.layers}x{cfg.hidden}, tbptt {cfg.train.tbptt}")
    print(f"{'model':<8} {'bits/char':>9}")
    for k, v in m["bits_per_char"].items():
        print(f"{k:<8} {v:>9.3f}")
    lstm, best = m["bits_per_char"]["LSTM"], m["bits_per_char"].get(m["best_ngram"])
    if best is not None:
        print(f"LSTM {lstm:.3f} vs best n-gram ({m['best_ngram']}) {best:.3f} bits per character")
    print("sample: " + lm.generate(PROMPTS[0], 120, args.temperature, args.top_k, args.seed)
          .replace("\n", " ")[:120])
    print("wrote " + ", ".join(str(p) for p in paths) + f"  ({time.perf_counter() - start:.0f} s)")
    return 0
