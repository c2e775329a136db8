"""`Seq2Seq`: the Python API behind `lstmkit seq2seq`.

    s2s = Seq2Seq(Seq2SeqConfig(attention="luong")).fit(pairs)      # [(source, target), ...]
    s2s.translate(["abc"], beam=5)      # ["cba"]
    s2s.evaluate(test_pairs)            # {"exact_match": ..., "char_accuracy": ...}
    s2s.save("model/");  Seq2Seq.load("model/")

Characters are the tokens (lstmkit.data.chars.CharVocab, built from the training pairs). Training is
teacher forcing through the shared trainer (Windows data whose x is the tuple (source ids, source
lengths, decoder input)), with cross-entropy on the target followed by the end token.
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field, fields
from typing import Optional, Sequence

import torch

from lstmkit.data.chars import CharVocab
from lstmkit.errors import LstmkitError
from lstmkit.training import TrainConfig, TrainResult, Windows, masked_cross_entropy, train
from lstmkit.training.char_task import CharTask

from .decoding import BOS, EOS, Hypothesis, beam_search, greedy
from .model import ATTENTIONS, EncoderDecoder

TASK = "seq2seq"


def default_training() -> TrainConfig:
    return TrainConfig(epochs=15, lr=3e-3, batch_size=64, clip_norm=1.0, patience=6, restarts=1,
                       combine="best", seed=0)


@dataclass
class Seq2SeqConfig:
    embedding: int = 32            # character embedding size (E), shared by encoder and decoder
    hidden: int = 64               # encoder hidden size per direction (H); the decoder has D*H
    layers: int = 1                # stacked LSTM layers in the encoder and in the decoder
    attention: str = "luong"       # "none", "bahdanau" (additive) or "luong" (general)
    bidirectional: bool = False    # bidirectional encoder (its two final states are concatenated)
    dropout: float = 0.0           # dropout on embeddings, between layers and before the output
    val: float = 0.1               # fraction of the training pairs held out for early stopping
    beam: int = 1                  # beam width of translate/evaluate; 1 = greedy
    max_len: Optional[int] = None  # longest output; None = longest training target + 10
    device: str = "cpu"            # torch device
    train: TrainConfig = field(default_factory=default_training)

    def check(self) -> None:
        for name in ("embedding", "hidden", "layers", "beam"):
            if getattr(self, name) < 1:
                raise LstmkitError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.attention not in ATTENTIONS:
            raise LstmkitError(f"attention must be one of {ATTENTIONS}, got {self.attention!r}")
        if not 0 <= self.val < 1 or not 0 <= self.dropout < 1:
            raise LstmkitError(f"val and dropout must be in [0, 1), got {self.val} and {self.dropout}")
        if self.max_len is not None and self.max_len < 1:
            raise LstmkitError(f"max_len must be >= 1, got {self.max_len}")
        self.train.check()

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Seq2SeqConfig":
        known = {f.name for f in fields(cls)}
        try:
            d = {k: v for k, v in d.items() if k in known}
            d["train"] = TrainConfig(**d.get("train", {}))
            return cls(**d)
        except TypeError as e:
            raise LstmkitError(f"seq2seq config: {e}") from None


def _check_pairs(pairs, what: str) -> list[tuple[str, str]]:
    try:
        out = [(str(s), str(t)) for s, t in pairs]
    except (TypeError, ValueError):
        raise LstmkitError(f"{what}: expected (source, target) string pairs") from None
    if not out:
        raise LstmkitError(f"{what}: no pairs")
    if any(not s or not t for s, t in out):
        raise LstmkitError(f"{what}: every source and target must be non-empty")
    return out


def char_accuracy(predictions: Sequence[str], targets: Sequence[str]) -> float:
    """Characters of the predictions equal to the target's at the same position, over the longer of
    the two lengths, summed over all pairs (a missing or extra character counts as wrong)."""
    right = sum(sum(a == b for a, b in zip(p, t)) for p, t in zip(predictions, targets))
    total = sum(max(len(p), len(t)) for p, t in zip(predictions, targets))
    return right / max(total, 1)


class Seq2Seq(CharTask):
    TASK = TASK
    CONFIG = Seq2SeqConfig

    def __init__(self, config: Optional[Seq2SeqConfig] = None):
        self.config = copy.deepcopy(config) if config is not None else Seq2SeqConfig()
        self.vocab: Optional[CharVocab] = None
        self.model: Optional[EncoderDecoder] = None
        self.result: Optional[TrainResult] = None
        self.example = ""

    def _build(self) -> EncoderDecoder:
        c = self.config
        return EncoderDecoder(len(self.vocab), c.embedding, c.hidden, c.layers, c.attention,
                              c.bidirectional, c.dropout).to(c.device)

    # ------------------------------------------------------------------ data
    def sources(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Source ids (N, S) padded with 0, and lengths (N,)."""
        ids = [self.vocab.encode(s) for s in texts]
        if any(len(i) == 0 for i in ids):
            raise LstmkitError("every source must have at least one character")
        lengths = torch.tensor([len(i) for i in ids])
        src = torch.zeros(len(ids), int(lengths.max()), dtype=torch.long)
        for k, i in enumerate(ids):
            src[k, :len(i)] = torch.tensor(i)
        return src.to(self.config.device), lengths

    def windows(self, pairs: Sequence[tuple[str, str]]) -> Windows:
        """Teacher-forcing data: x = (source ids, lengths, [start] + target), y = target + [end] as
        (N, T, 1) float ids with NaN after each target's end."""
        src, lengths = self.sources([s for s, _ in pairs])
        tgts = [self.vocab.encode(t) for _, t in pairs]
        T = max(len(t) for t in tgts) + 1
        tgt_in = torch.zeros(len(pairs), T, dtype=torch.long)
        y = torch.full((len(pairs), T, 1), float("nan"))
        for k, t in enumerate(tgts):
            tgt_in[k, :len(t) + 1] = torch.tensor([BOS, *t])
            y[k, :len(t) + 1, 0] = torch.tensor([*t, EOS], dtype=torch.float32)
        dev = self.config.device
        return Windows((src, lengths, tgt_in.to(dev)), y.to(dev))

    # ------------------------------------------------------------------ fitting
    def fit(self, pairs: Sequence[tuple[str, str]],
            val_pairs: Optional[Sequence[tuple[str, str]]] = None) -> "Seq2Seq":
        """Train on (source, target) pairs; without val_pairs the last `val` fraction is held out
        for early stopping."""
        cfg = self.config
        cfg.check()
        pairs = _check_pairs(pairs, "Seq2Seq.fit")
        if val_pairs is None and cfg.val > 0 and len(pairs) >= 10:
            cut = len(pairs) - max(1, int(round(len(pairs) * cfg.val)))
            pairs, val_pairs = pairs[:cut], pairs[cut:]
        val_pairs = _check_pairs(val_pairs, "validation pairs") if val_pairs else None
        self.vocab = CharVocab.build([s + t for s, t in pairs])
        if cfg.max_len is None:
            cfg.max_len = max(len(t) for _, t in pairs) + 10
        self.example = pairs[0][0]
        self.result = train(self._build, self.windows(pairs),
                            self.windows(val_pairs) if val_pairs else None, cfg.train,
                            loss_fn=masked_cross_entropy, desc="training encoder-decoder")
        self.model = self._build()
        self.model.load_state_dict(self.result.members[0])
        self.model.eval()
        return self

    # ------------------------------------------------------------------ decoding
    def decode(self, sources: Sequence[str], beam: Optional[int] = None,
               max_len: Optional[int] = None) -> list[Hypothesis]:
        """Hypotheses (tokens, score, attention per output token) for each source."""
        self._need()
        if isinstance(sources, str):
            raise LstmkitError("Seq2Seq.translate expects a list of strings, got one string")
        beam = beam or self.config.beam
        max_len = max_len or self.config.max_len
        if beam < 1 or max_len < 1:
            raise LstmkitError(f"beam and max_len must be >= 1, got {beam} and {max_len}")
        out: list[Hypothesis] = []
        self.model.eval()
        with torch.no_grad():
            for s in range(0, len(sources), 256):
                src, lengths = self.sources(sources[s:s + 256])
                mem = self.model.encode(src, lengths)
                if beam == 1:
                    out += greedy(self.model, mem, max_len)
                else:
                    out += [beam_search(self.model, mem.rows(torch.tensor([i])), max_len, beam)
                            for i in range(src.shape[0])]
        return out

    def translate(self, sources: Sequence[str], beam: Optional[int] = None,
                  max_len: Optional[int] = None) -> list[str]:
        """The output string of each source (greedy when beam is 1)."""
        return [self.vocab.decode(h.tokens) for h in self.decode(sources, beam, max_len)]

    def attention(self, source: str, beam: Optional[int] = None) -> tuple[str, "torch.Tensor"]:
        """(output, weights (T_out, S)) of one source; T_out counts the end token if emitted."""
        if self.config.attention == "none":
            raise LstmkitError("this model has no attention (attention='none')")
        h = self.decode([source], beam)[0]
        return self.vocab.decode(h.tokens), torch.stack(h.attention)

    def evaluate(self, pairs: Sequence[tuple[str, str]], beam: Optional[int] = None) -> dict:
        """exact_match: fraction of outputs equal to the target; char_accuracy: see char_accuracy()."""
        pairs = _check_pairs(pairs, "Seq2Seq.evaluate")
        pred = self.translate([s for s, _ in pairs], beam)
        targets = [t for _, t in pairs]
        return {"exact_match": sum(p == t for p, t in zip(pred, targets)) / len(pairs),
                "char_accuracy": char_accuracy(pred, targets), "pairs": len(pairs),
                "beam": beam or self.config.beam}

    # ------------------------------------------------------------------ gate viewer and saving
    # (CharTask: gate_view, save, load)
    def _gate_lstm(self) -> torch.nn.Module:
        return self.model.encoder
