"""Characters as token ids for the text tasks (language model, seq2seq): a vocabulary saved with the
model. Id 0 is padding, 1 every character not in the vocabulary, 2 and 3 start and end of a sequence
(used by the decoder of an encoder-decoder); the characters follow in sorted order.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Sequence

from lstmkit.errors import LstmkitError

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<s>", "</s>"
SPECIALS = (PAD, UNK, BOS, EOS)


@dataclass
class CharVocab:
    tokens: list[str]          # id -> token: PAD, UNK, BOS, EOS, then one character per id

    def __post_init__(self):
        if list(self.tokens[:4]) != list(SPECIALS):
            raise LstmkitError(f"CharVocab: expected the tokens to start with {SPECIALS}, got "
                               f"{list(self.tokens[:4])}")
        self.index = {t: i for i, t in enumerate(self.tokens)}

    @classmethod
    def build(cls, texts: Iterable[str], min_count: int = 1) -> "CharVocab":
        """The characters seen at least `min_count` times in `texts`, sorted."""
        counts: Counter = Counter()
        for t in texts:
            counts.update(t)
        return cls([*SPECIALS, *sorted(c for c, n in counts.items() if n >= min_count)])

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def pad(self) -> int:
        return 0

    @property
    def unk(self) -> int:
        return 1

    @property
    def bos(self) -> int:
        return 2

    @property
    def eos(self) -> int:
        return 3

    def encode(self, text: str) -> list[int]:
        """One id per character; characters outside the vocabulary become UNK (1)."""
        if not isinstance(text, str):
            raise LstmkitError(f"CharVocab.encode: expected a string, got {type(text).__name__}")
        get = self.index.get
        return [get(ch, 1) for ch in text]

    def decode(self, ids: Sequence[int]) -> str:
        """The characters of `ids`, skipping padding, start and end; UNK shows as U+FFFD."""
        out = []
        for i in ids:
            i = int(i)
            if i == 1:
                out.append("\ufffd")
            elif i >= 4:
                out.append(self.tokens[i])
        return "".join(out)

    def normalise(self, text: str) -> str:
        """`text` with every character outside the vocabulary replaced by U+FFFD (what the model sees)."""
        return "".join(ch if ch in self.index else "\ufffd" for ch in text)

    def to_dict(self) -> dict:
        return {"tokens": list(self.tokens)}

    @classmethod
    def from_dict(cls, d: dict) -> "CharVocab":
        try:
            return cls(list(d["tokens"]))
        except (KeyError, TypeError) as e:
            raise LstmkitError(f"CharVocab: not a saved vocabulary ({e})") from None
