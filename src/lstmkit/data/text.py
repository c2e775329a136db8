"""Text as token ids: character or word tokenisation and a vocabulary saved with the model.

Id 0 is padding (`<pad>`), id 1 stands for every token not in the vocabulary (`<unk>`,
out-of-vocabulary); the vocabulary is built from the training texts only, most frequent tokens first
(ties in order of first appearance), keeping tokens seen at least `min_count` times.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional, Sequence

from lstmkit.errors import LstmkitError

PAD, UNK = "<pad>", "<unk>"
_WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)   # words, and each punctuation mark on its own


def read_text(path, what: str = "text file") -> str:
    """The UTF-8 text of a file; a missing, undecodable or unreadable file is a one-line LstmkitError
    ("{what} not found: PATH", "PATH is not UTF-8 text (...)", "cannot read PATH: ...")."""
    try:
        return Path(path).read_text("utf-8")
    except FileNotFoundError:
        raise LstmkitError(f"{what} not found: {path}") from None
    except UnicodeDecodeError as e:
        raise LstmkitError(f"{path} is not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise LstmkitError(f"cannot read {path}: {e.strerror}") from None


def tokenize(text: str, level: str = "word", lowercase: bool = True) -> list[str]:
    """'word': runs of letters/digits and single punctuation marks; 'char': every character."""
    if not isinstance(text, str):
        raise LstmkitError(f"tokenize expects a string, got {type(text).__name__}")
    if lowercase:
        text = text.lower()
    if level == "word":
        return _WORD.findall(text)
    if level == "char":
        return list(text)
    raise LstmkitError(f"tokenisation must be 'word' or 'char', got {level!r}")


@dataclass
class Vocabulary:
    tokens: list[str]          # id -> token; tokens[0] = PAD, tokens[1] = UNK
    level: str = "word"        # how raw text is split: "word" or "char"
    lowercase: bool = True     # lowercase text before splitting

    def __post_init__(self):
        if self.tokens[:2] != [PAD, UNK]:
            raise LstmkitError(f"vocabulary must start with {PAD!r}, {UNK!r}, got {self.tokens[:2]}")
        self.index = {t: i for i, t in enumerate(self.tokens)}

    @classmethod
    def build(cls, token_lists: Iterable[Sequence[str]], level: str = "word", lowercase: bool = True,
              min_count: int = 1, max_size: Optional[int] = None) -> "Vocabulary":
        """Vocabulary of the tokens seen at least min_count times, at most max_size ids in all."""
        if min_count < 1:
            raise LstmkitError(f"min_count must be >= 1, got {min_count}")
        counts = Counter()
        for tokens in token_lists:
            counts.update(tokens)
        kept = [t for t, c in counts.most_common() if c >= min_count and t not in (PAD, UNK)]
        if max_size is not None:
            if max_size < 3:
                raise LstmkitError(f"max_vocab must be >= 3 (padding, unknown, one token), got {max_size}")
            kept = kept[:max_size - 2]
        return cls([PAD, UNK, *kept], level, lowercase)

    def __len__(self) -> int:
        return len(self.tokens)

    def split(self, item) -> list[str]:
        """Raw text -> tokens with this vocabulary's rules; a list of tokens is kept as it is."""
        if isinstance(item, str):
            return tokenize(item, self.level, self.lowercase)
        return [t.lower() if self.lowercase else t for t in item]

    def encode(self, item) -> list[int]:
        """Text or tokens -> ids (unknown tokens -> 1). An empty text gives [1] (one unknown token),
        so that every sequence has at least one step."""
        ids = [self.index.get(t, 1) for t in self.split(item)]
        return ids or [1]

    def to_dict(self) -> dict:
        return {"tokens": self.tokens, "level": self.level, "lowercase": self.lowercase}

    @classmethod
    def from_dict(cls, d: dict) -> "Vocabulary":
        try:
            return cls(list(d["tokens"]), d["level"], bool(d["lowercase"]))
        except (KeyError, TypeError) as e:
            raise LstmkitError(f"vocabulary: expected tokens/level/lowercase, got {str(d)[:80]!r}") from e
