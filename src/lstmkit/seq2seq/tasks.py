"""The classic teaching tasks of encoder-decoder models, generated so that everything runs without a
data file. Each returns a list of (source, target) string pairs, reproducible from `seed`.

    reverse   "hgfcab" -> "bacfgh"                  letters a-j, length min_len..max_len
    addition  "4721+93" -> "4814"                  operands of min_len..max_len digits (no leading 0)
    dates     "Tuesday, March 5, 1998" -> "1998-03-05"  (also "5 Mar 1998", "03/05/1998", "March 5th 98")
"""
from __future__ import annotations

import datetime as dt
import random

from lstmkit.errors import LstmkitError

TASKS = ("reverse", "addition", "dates")
_LETTERS = "abcdefghij"


def _reverse(rng: random.Random, lo: int, hi: int) -> tuple[str, str]:
    s = "".join(rng.choice(_LETTERS) for _ in range(rng.randint(lo, hi)))
    return s, s[::-1]


def _number(rng: random.Random, lo: int, hi: int) -> int:
    digits = rng.randint(lo, hi)
    return rng.randint(10 ** (digits - 1) if digits > 1 else 0, 10 ** digits - 1)


def _addition(rng: random.Random, lo: int, hi: int) -> tuple[str, str]:
    a, b = _number(rng, lo, hi), _number(rng, lo, hi)
    return f"{a}+{b}", str(a + b)


def _ordinal(d: int) -> str:
    return f"{d}{'th' if 11 <= d % 100 <= 13 else {1: 'st', 2: 'nd', 3: 'rd'}.get(d % 10, 'th')}"


def _dates(rng: random.Random, lo: int, hi: int) -> tuple[str, str]:
    day = dt.date(1950, 1, 1) + dt.timedelta(days=rng.randrange(0, 365 * 100))
    month, short = day.strftime("%B"), day.strftime("%b")
    forms = [f"{day.strftime('%A')}, {month} {day.day}, {day.year}", f"{day.day} {short} {day.year}",
             f"{day.month:02d}/{day.day:02d}/{day.year}", f"{month} {_ordinal(day.day)} {day.year % 100:02d}",
             f"{day.day} {month} {day.year}"]
    return rng.choice(forms), day.isoformat()


def teaching_pairs(task: str, n: int, min_len: int = 4, max_len: int = 12,
                   seed: int = 0) -> list[tuple[str, str]]:
    """`n` (source, target) pairs of a teaching task. min_len/max_len: string length for reverse,
    digits per operand for addition (dates have their own lengths)."""
    if task not in TASKS:
        raise LstmkitError(f"unknown task {task!r}, expected one of {TASKS}")
    if n < 1 or min_len < 1 or max_len < min_len:
        raise LstmkitError(f"expected n >= 1 and 1 <= min_len <= max_len, got n={n}, "
                           f"min_len={min_len}, max_len={max_len}")
    rng = random.Random(f"{task}-{seed}")
    make = {"reverse": _reverse, "addition": _addition, "dates": _dates}[task]
    return [make(rng, min_len, max_len) for _ in range(n)]


def read_pairs(path) -> list[tuple[str, str]]:
    """A UTF-8 file of `source<TAB>target` lines; blank lines are skipped. Columns after the second
    (such as the attribution column of the Tatoeba / manythings.org pair files that Keras' seq2seq
    example reads) are ignored, as that example does."""
    from lstmkit.data.text import read_text

    text = read_text(path, "pairs file")
    pairs = []
    for no, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if "\t" not in line:
            raise LstmkitError(f"{path}, line {no}: expected 'source<TAB>target', got {line[:40]!r}")
        src, tgt = line.split("\t")[:2]
        if not src or not tgt:
            raise LstmkitError(f"{path}, line {no}: empty source or target")
        pairs.append((src, tgt))
    if not pairs:
        raise LstmkitError(f"{path}: no source<TAB>target pairs")
    return pairs
