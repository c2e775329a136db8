"""`CharLanguageModel`: a character-level LSTM language model, trained statefully over long text with
truncated backpropagation through time (the shared trainer's Stream data), scored in bits per
character beside n-gram baselines, and sampled with temperature and top-k.

    lm = CharLanguageModel(LanguageModelConfig(hidden=128)).fit(text)   # last 10% held out
    lm.evaluate()          # {"LSTM": bpc, "1-gram": ..., ..., "5-gram": ...} on the held-out text
    lm.generate("def ", length=200, temperature=0.8, top_k=20)
    lm.save("model/");  CharLanguageModel.load("model/")

Network (N streams, L steps, E embedding, H hidden, V vocabulary):
    ids (N, L, 1) -> Embedding -> (N, L, E) -> lstmkit.LSTM -> (N, L, H) -> dropout -> Linear -> (N, L, V)
The model reads character ids stored as floats in (N, L, 1) tensors, the trainer's one data layout.
"""
from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Optional

import torch
from torch import Tensor, nn

from lstmkit.data.chars import CharVocab
from lstmkit.errors import LstmkitError
from lstmkit.layers import LSTM
from lstmkit.training import Stream, TrainConfig, TrainResult, masked_cross_entropy, run_stream, train
from lstmkit.training.char_task import CharTask

from .ngram import CharNGram

TASK = "language_model"


def default_training() -> TrainConfig:
    return TrainConfig(epochs=10, lr=3e-3, clip_norm=1.0, patience=3, restarts=1, combine="best",
                       tbptt=100, seed=0)


@dataclass
class LanguageModelConfig:
    embedding: int = 32          # size of the character embedding (E)
    hidden: int = 128            # LSTM hidden size (H)
    layers: int = 2              # stacked LSTM layers
    dropout: float = 0.0         # dropout between LSTM layers and before the output layer
    residual: bool = False       # residual connections between layers (needs embedding == hidden)
    holdout: float = 0.1         # fraction of the text at its end held out for bits per char
    val: float = 0.05            # fraction before the holdout used for early stopping
    streams: int = 32            # parallel streams the training text is cut into (the batch)
    ngram_orders: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5])  # baselines to report
    device: str = "cpu"          # torch device to train on
    train: TrainConfig = field(default_factory=default_training)  # train.tbptt = chunk length

    def check(self) -> None:
        for name in ("embedding", "hidden", "layers", "streams"):
            if getattr(self, name) < 1:
                raise LstmkitError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 < self.holdout < 1 or not 0 <= self.val < 1 or self.holdout + self.val >= 1:
            raise LstmkitError(f"holdout and val must be fractions with holdout > 0 and holdout + val "
                               f"< 1, got {self.holdout} and {self.val}")
        if not 0 <= self.dropout < 1:
            raise LstmkitError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.residual and self.embedding != self.hidden:
            raise LstmkitError(f"residual=True needs embedding == hidden (layers of equal width), got "
                               f"{self.embedding} and {self.hidden}")
        if self.train.tbptt < 1:
            raise LstmkitError("the language model trains statefully: train.tbptt must be >= 1")
        self.train.check()

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "LanguageModelConfig":
        known = {f.name for f in fields(cls)}
        try:
            d = {k: v for k, v in d.items() if k in known}
            d["train"] = TrainConfig(**d.get("train", {}))
            return cls(**d)
        except TypeError as e:
            raise LstmkitError(f"language model config: {e}") from None


class CharLSTM(nn.Module):
    """Embedding -> LSTM -> Linear over the vocabulary; the trainer's model contract."""

    def __init__(self, vocab: int, cfg: LanguageModelConfig):
        super().__init__()
        self.embed = nn.Embedding(vocab, cfg.embedding)
        self.lstm = LSTM(cfg.embedding, cfg.hidden, cfg.layers, batch_first=True,
                         dropout=cfg.dropout if cfg.layers > 1 else 0.0,
                         residual=cfg.residual)
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.hidden, vocab)

    def forward(self, x: Tensor, state=None):
        """x (N, L, 1) character ids as floats -> logits (N, L, V), (h, c)."""
        h, state = self.lstm(self.embed(x[..., 0].long()), state)     # (N, L, H)
        return self.head(self.drop(h)), state


def pydoc_topics() -> str:
    """The Python documentation topics the standard library ships (pydoc_data.topics), joined in
    sorted topic order: about 465,000 characters of English prose and code on every machine."""
    from pydoc_data.topics import topics
    return "\n\n".join(topics[k] for k in sorted(topics))


def _streams(ids: Tensor, n: int) -> Stream:
    """ids (T,) -> n consecutive streams: x = ids[:-1] and y = ids[1:], each (n, T // n, 1)."""
    steps = (len(ids) - 1) // n
    if steps < 1:
        raise LstmkitError(f"text too short: {len(ids)} characters for {n} streams")
    x = ids[:n * steps].view(n, steps, 1).float()
    y = ids[1:n * steps + 1].view(n, steps, 1).float()
    return Stream(x, y)


MAX_LENGTH = 1_000_000  # characters one generate() call may sample (a bound, not a tuned value)


class CharLanguageModel(CharTask):
    TASK = TASK
    CONFIG = LanguageModelConfig

    def __init__(self, config: Optional[LanguageModelConfig] = None):
        self.config = copy.deepcopy(config) if config is not None else LanguageModelConfig()
        self.vocab: Optional[CharVocab] = None
        self.model: Optional[CharLSTM] = None
        self.result: Optional[TrainResult] = None
        self.text: Optional[str] = None       # the text given to fit (kept for evaluate)
        self.example = ""                     # a stretch of held-out text for the gate viewer
        self.metrics: dict = {}

    def _build(self) -> CharLSTM:
        return CharLSTM(len(self.vocab), self.config).to(self.config.device)

    def split(self, text: str) -> tuple[str, str, str]:
        """(train, validation, holdout) parts of `text`, in order."""
        cfg = self.config
        cut = int(round(len(text) * (1 - cfg.holdout)))
        val = int(round(len(text) * (1 - cfg.holdout - cfg.val)))
        return text[:val], text[val:cut], text[cut:]

    def fit(self, text: str) -> "CharLanguageModel":
        """Train on `text` minus its last `holdout` fraction (kept for evaluate())."""
        cfg = self.config
        cfg.check()
        if not isinstance(text, str):
            raise LstmkitError(f"CharLanguageModel.fit: expected a string, got {type(text).__name__}")
        train_text, val_text, test_text = self.split(text)
        if len(train_text) < 2 * cfg.streams or len(test_text) < 2:
            raise LstmkitError(f"text too short: {len(text)} characters leave {len(train_text)} for training "
                               f"and {len(test_text)} held out (need at least {2 * cfg.streams} and 2)")
        self.vocab = CharVocab.build([train_text + val_text])
        self.text = text
        dev = cfg.device
        enc = lambda s: torch.tensor(self.vocab.encode(s), dtype=torch.long, device=dev)  # noqa: E731
        train_data = _streams(enc(train_text), cfg.streams)
        val_data = _streams(enc(val_text), max(1, min(cfg.streams, len(val_text) // 1000))) \
            if len(val_text) >= 2 else None
        self.result = train(self._build, train_data, val_data, cfg.train, loss_fn=masked_cross_entropy,
                            desc="training character LSTM")
        self.model = self._build()
        self.model.load_state_dict(self.result.members[0])
        self.model.eval()
        self.example = test_text[:120]
        return self

    # ---------------------------------------------------------------- scoring
    def log_probs(self, text: str, chunk: int = 1000) -> Tensor:
        """log2 P(text[t] | text[:t]) for t = 1..N-1 under the LSTM, reading text from a zero state:
        a (N-1,) tensor of bits (negative)."""
        self._need()
        ids = torch.tensor(self.vocab.encode(text), dtype=torch.float32,
                           device=self.config.device)[None, :, None]   # (1, N, 1)
        out, _ = run_stream(self.model, ids[:, :-1], chunk)                # (1, N-1, V)
        logp = torch.log_softmax(out[0].double(), dim=-1)
        return logp.gather(1, ids[0, 1:].long()).squeeze(1).cpu() / math.log(2)

    def bits_per_char(self, text: str) -> float:
        """-1/(N-1) sum_t log2 P(text[t] | text[:t]), t = 1..N-1: the mean code length per character."""
        if len(text) < 2:
            raise LstmkitError(f"bits_per_char needs at least 2 characters, got {len(text)}")
        return float(-self.log_probs(text).mean())

    def evaluate(self, text: Optional[str] = None) -> dict:
        """Bits per character on the held-out text (default: the fitted text's holdout) of the LSTM and
        of the Witten-Bell n-gram baselines counted on the same training text; sets self.metrics."""
        self._need()
        if self.text is None:
            raise LstmkitError("CharLanguageModel.evaluate needs the text it was fitted on")
        train_text, val_text, test_text = self.split(self.text)
        held = self.vocab.normalise(text if text is not None else test_text)
        seen = train_text + val_text
        bpc = {"LSTM": self.bits_per_char(held)}
        for n in self.config.ngram_orders:
            bpc[f"{n}-gram"] = CharNGram(seen, n, len(self.vocab) - 3).bits_per_char(held)
        best = min((k for k in bpc if k != "LSTM"), key=bpc.get, default=None)
        self.metrics = {"bits_per_char": bpc, "best_ngram": best, "heldout_chars": len(held),
                        "train_chars": len(seen), "vocab": len(self.vocab)}
        return self.metrics

    # ---------------------------------------------------------------- sampling
    def generate(self, prompt: str = "", length: int = 200, temperature: float = 1.0,
                 top_k: Optional[int] = None, seed: Optional[int] = None) -> str:
        """Continue `prompt` by `length` sampled characters (returned without the prompt).

        temperature: logits are divided by it (0 = always the most likely character); top_k: sample
        only among the k most likely characters. An empty prompt starts after a newline. Characters of
        the prompt outside the vocabulary are read as unknown; the model never samples one."""
        self._need()
        if not 0 <= length <= MAX_LENGTH:
            raise LstmkitError(f"length must be between 0 and {MAX_LENGTH} characters, got {length}")
        if temperature < 0 or not math.isfinite(temperature):
            raise LstmkitError(f"temperature must be a finite number >= 0, got {temperature}")
        if top_k is not None and top_k < 1:
            raise LstmkitError(f"top_k must be >= 1, got {top_k}")
        gen = torch.Generator().manual_seed(seed if seed is not None else 0)
        ids = self.vocab.encode(prompt or "\n") or [4]
        dev = self.config.device
        banned = torch.zeros(len(self.vocab), dtype=torch.bool)
        banned[:4] = True                                       # pad, unk, start, end
        out_ids = []
        with torch.no_grad():
            out, state = self.model(torch.tensor(ids, dtype=torch.float32, device=dev)[None, :, None])
            for _ in range(length):
                logits = out[0, -1].double().cpu().masked_fill(banned, -math.inf)
                if temperature == 0:
                    nxt = int(logits.argmax())
                else:
                    logits = logits / temperature
                    if top_k is not None and top_k < len(logits):
                        kth = torch.topk(logits, top_k).values[-1]
                        logits = logits.masked_fill(logits < kth, -math.inf)
                    nxt = int(torch.multinomial(torch.softmax(logits, -1), 1, generator=gen))
                out_ids.append(nxt)
                x = torch.tensor([[[float(nxt)]]], device=dev)
                out, state = self.model(x, state)
        return self.vocab.decode(out_ids)

    # ---------------------------------------------------------------- gate viewer and saving
    # (CharTask: gate_view, save, load; the folder's config.json also carries the metrics)
    def _gate_lstm(self) -> nn.Module:
        return self.model.lstm

    def _extra_meta(self) -> dict:
        return {"metrics": self.metrics}

    def _read_extra_meta(self, meta: dict) -> None:
        self.metrics = dict(meta.get("metrics") or {})
