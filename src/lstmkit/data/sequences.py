"""Labelled sequences for classification: the UEA/UCR `.ts` format, CSV files (one row per step or one
row per sequence, numbers or text), and padding into a batch with lengths.

A `SequenceSet` keeps every sequence at its own length, never padded:
    sequences  list of N arrays (L_i, F) float64 (numbers), or of N lists of L_i token strings
               (text already split into tokens), or of N strings (raw text, tokenised by the model)
    labels     (N,) array of str, one label per sequence; or, for per-step labelling, a list of N
               arrays (L_i,) of str, one label per step
    ids        (N,) sequence names (the CSV id column, or 0..N-1)

The `.ts` reader follows the format of the UEA & UCR archives (Bagnall et al., "The UEA multivariate
time series classification archive, 2018"; reference reader: sktime/aeon `load_from_ts_file`): a
header of `@key value` lines, then `@data` and one case per line, the dimensions separated by `:`,
values by `,`, `?` for a missing value, the class label last. Time-stamped data
(`@timeStamps true`) is not supported.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import pandas as pd
import torch

from lstmkit.errors import LstmkitError


@dataclass
class SequenceSet:
    sequences: list                      # N arrays (L_i, F) float64, token lists, or strings
    labels: Optional[Union[np.ndarray, list]] = None  # (N,) str, or N arrays (L_i,) of str (per step)
    ids: list = field(default_factory=list)            # N sequence names
    channels: list = field(default_factory=list)       # F channel names (numbers) or [] (text)
    name: str = ""                                      # data set name (file stem, @problemName)

    def __post_init__(self):
        if not self.ids:
            self.ids = list(range(len(self.sequences)))

    def __len__(self) -> int:
        return len(self.sequences)

    def subset(self, idx) -> "SequenceSet":
        """The sequences at positions idx (a new SequenceSet sharing the arrays)."""
        idx = [int(i) for i in idx]
        labels = None
        if self.labels is not None:
            labels = [self.labels[i] for i in idx] if self.per_step else self.labels[idx]
        return SequenceSet([self.sequences[i] for i in idx], labels, [self.ids[i] for i in idx],
                           self.channels, self.name)

    @property
    def per_step(self) -> bool:
        return self.labels is not None and isinstance(self.labels, list)

    @property
    def is_text(self) -> bool:
        return bool(self.sequences) and not isinstance(self.sequences[0], np.ndarray)

    @property
    def lengths(self) -> np.ndarray:
        return np.array([len(s) for s in self.sequences], dtype=np.int64)


# ---------------------------------------------------------------------------------------- .ts files
_BOOL = {"true": True, "false": False}


def read_ts(path: Union[str, Path]) -> SequenceSet:
    """Read a UEA/UCR `.ts` file: univariate or multivariate, equal or unequal lengths, with class
    labels (`@classLabel true ...`) or without (`@classLabel false`: cases to label, `labels` None). Trailing missing values (`?`, NaN) of a case are padding and are dropped; a missing value
    inside a case, cases whose dimensions differ in length, a wrong number of dimensions, a label not
    declared in `@classLabel`, or a malformed header raise LstmkitError naming the file and line."""
    path = Path(path)
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise LstmkitError(f"file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise LstmkitError(f"{path}: cannot read as UTF-8 text ({e.__class__.__name__})") from None
    header: dict[str, str] = {}
    data_at = None
    lines = text.splitlines()
    for no, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith(("#", "%")):
            continue
        if not line.startswith("@"):
            raise LstmkitError(f"{path}:{no}: expected a '@key value' header line or '@data' before the "
                               f"data, got {line[:40]!r}")
        key, _, value = line[1:].partition(" ")
        key = key.lower()
        if key == "data":
            data_at = no
            break
        header[key] = value.strip()
    if data_at is None:
        raise LstmkitError(f"{path}: not a .ts file: no '@data' line")

    def flag(key: str, default: Optional[bool]) -> Optional[bool]:
        if key not in header:
            return default
        v = header[key].split()[0].lower() if header[key] else ""
        if v not in _BOOL:
            raise LstmkitError(f"{path}: @{key} must be true or false, got {header[key]!r}")
        return _BOOL[v]

    if flag("timestamps", False):
        raise LstmkitError(f"{path}: @timeStamps true is not supported (only plain value lists)")
    if "classlabel" not in header:
        raise LstmkitError(f"{path}: expected '@classLabel true <labels>' (or 'false' for unlabelled "
                           f"cases) in the header, got none")
    labelled = flag("classlabel", False)             # false: cases to label, no label field
    declared = header["classlabel"].split()[1:]
    univariate = flag("univariate", None)
    dims = None
    if "dimensions" in header:
        try:
            dims = int(header["dimensions"])
        except ValueError:
            raise LstmkitError(f"{path}: @dimensions must be an integer, got {header['dimensions']!r}") from None
    if univariate and dims not in (None, 1):
        raise LstmkitError(f"{path}: @univariate true but @dimensions {dims}")
    if univariate:
        dims = 1

    sequences, labels = [], []
    for no in range(data_at + 1, len(lines) + 1):
        line = lines[no - 1].strip()
        if not line or line.startswith(("#", "%")):
            continue
        parts = line.split(":")
        label = parts[-1].strip() if labelled else None
        fields = parts[:-1] if labelled else parts
        if dims is None:
            dims = len(fields)
        if len(fields) != dims or dims == 0:
            raise LstmkitError(f"{path}:{no}: expected {dims} dimension(s)"
                               f"{' and a class label' if labelled else ''} separated by ':', got "
                               f"{len(fields)} dimension(s)")
        if declared and label not in declared:
            raise LstmkitError(f"{path}:{no}: class label {label!r} is not one of @classLabel "
                               f"{declared}")
        channels = []
        for d, f in enumerate(fields):
            try:
                v = np.array([np.nan if t.strip() in ("?", "NaN", "nan") else float(t)
                              for t in f.split(",")], dtype=np.float64)
            except ValueError:
                bad = next(t for t in f.split(",") if not _is_number(t))
                raise LstmkitError(f"{path}:{no}: dimension {d + 1}: expected numbers or '?', got "
                                   f"{bad.strip()[:30]!r}") from None
            channels.append(_trim_trailing_nan(v))
        length = {len(c) for c in channels}
        if len(length) != 1:
            raise LstmkitError(f"{path}:{no}: the dimensions of one case must have equal lengths, got "
                               f"{[len(c) for c in channels]}")
        if length == {0}:
            raise LstmkitError(f"{path}:{no}: empty case (no values)")
        x = np.stack(channels, axis=1)                                   # (L_i, F)
        if np.isnan(x).any():
            raise LstmkitError(f"{path}:{no}: missing value ('?') inside a case; only trailing "
                               f"missing values (padding) are supported")
        if not np.isfinite(x).all():
            raise LstmkitError(f"{path}:{no}: infinite value in a case")
        sequences.append(x)
        labels.append(label)
    if not sequences:
        raise LstmkitError(f"{path}: no cases after '@data'")
    name = header.get("problemname", path.stem)
    return SequenceSet(sequences, np.array(labels, dtype=object) if labelled else None,
                       list(range(len(sequences))),
                       [f"dim_{d}" for d in range(dims)], name)


def _is_number(t: str) -> bool:
    try:
        float(t)
        return True
    except ValueError:
        return t.strip() == "?"


def _trim_trailing_nan(v: np.ndarray) -> np.ndarray:
    finite = np.flatnonzero(~np.isnan(v))
    return v[:finite[-1] + 1] if finite.size else v[:0]


# ---------------------------------------------------------------------------------------- CSV files
def _read_frame(path: Union[str, Path]) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise LstmkitError(f"file not found: {path}")
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise LstmkitError(f"{path}: not a readable CSV file ({str(e).splitlines()[0][:120]})") from None
    if frame.empty:
        raise LstmkitError(f"{path}: no data rows")
    return frame


def _need(frame: pd.DataFrame, path, column: Optional[str], what: str) -> None:
    if column is not None and column not in frame.columns:
        raise LstmkitError(f"{path}: {what} column {column!r} not found; columns are "
                           f"{list(frame.columns)[:12]}")


def read_sequence_csv(path: Union[str, Path], label_col: Optional[str] = "label",
                      id_col: Optional[str] = None, time_col: Optional[str] = None,
                      features: Optional[Sequence[str]] = None, text_col: Optional[str] = None,
                      per_step: bool = False) -> SequenceSet:
    """Read labelled sequences from a CSV file.

    With `id_col` (long form): one row per step; rows with the same id form one sequence, in file
    order (or sorted by `time_col`). The label is per sequence (it must not change within one) or,
    with per_step=True, per row. Inputs are the `features` columns (default: every numeric column but
    id, time and label), or with `text_col` one token per row.
    Without `id_col` (wide form): one row per sequence. With `text_col` its text is the sequence
    (tokenised by the model); otherwise the numeric columns are the steps of a univariate sequence,
    and empty cells at the end of a row shorten it (unequal lengths).
    label_col=None reads unlabelled sequences (for prediction)."""
    frame = _read_frame(path)
    for col, what in ((label_col, "label"), (id_col, "id"), (time_col, "time"), (text_col, "text")):
        _need(frame, path, col, what)
    for col in features or []:
        _need(frame, path, col, "feature")
    if label_col is not None and frame[label_col].isna().any():
        row = int(np.flatnonzero(frame[label_col].isna())[0]) + 2
        raise LstmkitError(f"{path}:{row}: empty label in column {label_col!r}")
    labels_all = frame[label_col].astype(str).to_numpy(dtype=object) if label_col else None
    name = Path(path).stem
    if id_col is None:
        if per_step:
            raise LstmkitError("per-step labels need the long form: one row per step and an id column "
                               "(--id-col) naming the sequence of each row")
        if text_col is not None:
            texts = frame[text_col].fillna("").astype(str).tolist()
            return SequenceSet(texts, labels_all, list(range(len(texts))), [], name)
        cols = list(features) if features else [c for c in frame.columns if c != label_col]
        values = _numeric(frame, cols, path)                               # (N, L) with trailing NaN
        seqs = []
        for i, row in enumerate(values):
            v = _trim_trailing_nan(row)
            if v.size == 0 or np.isnan(v).any():
                raise LstmkitError(f"{path}:{i + 2}: a sequence row needs numbers from the first step "
                                   f"on, with empty cells only at the end")
            seqs.append(v[:, None])
        return SequenceSet(seqs, labels_all, list(range(len(seqs))), ["value"], name)

    if time_col is not None:
        frame = frame.sort_values([id_col, time_col], kind="stable")
        if frame[time_col].isna().any() or frame.duplicated([id_col, time_col]).any():
            bad = frame[time_col].isna() | frame.duplicated([id_col, time_col])
            row = frame.index[int(np.flatnonzero(bad.to_numpy())[0])]
            raise LstmkitError(f"{path}:{int(row) + 2}: time {frame[time_col].loc[row]!s:.30} is missing "
                               f"or repeats a time step of sequence {frame[id_col].loc[row]!s:.30}; "
                               f"each sequence needs distinct times in column {time_col!r}")
        labels_all = frame[label_col].astype(str).to_numpy(dtype=object) if label_col else None
    if text_col is not None:
        inputs = frame[text_col].fillna("").astype(str).to_numpy(dtype=object)
        channels = []
    else:
        skip = {id_col, time_col, label_col}
        if not features:
            _refuse_mostly_numeric(frame, [c for c in frame.columns if c not in skip], path)
        cols = list(features) if features else [c for c in frame.columns if c not in skip
                                                and pd.api.types.is_numeric_dtype(frame[c])]
        if not cols:
            raise LstmkitError(f"{path}: no numeric feature columns besides id/time/label; columns are "
                               f"{list(frame.columns)[:12]}")
        inputs = _numeric(frame, cols, path)
        if np.isnan(inputs).any():
            row = int(np.flatnonzero(np.isnan(inputs).any(axis=1))[0])
            raise LstmkitError(f"{path}:{int(frame.index[row]) + 2}: empty feature value (columns "
                               f"{list(cols)[:6]})")
        channels = cols
    groups = pd.factorize(frame[id_col], sort=False)[0]
    order = np.argsort(groups, kind="stable")
    bounds = np.flatnonzero(np.diff(groups[order])) + 1
    seqs, labels, ids = [], [], []
    for rows in np.split(order, bounds):
        seq = inputs[rows]
        seqs.append(list(seq) if text_col is not None else seq)
        first = frame[id_col].iloc[rows[0]]
        ids.append(first.item() if isinstance(first, np.generic) else first)
        if labels_all is not None:
            lab = labels_all[rows]
            if per_step:
                labels.append(lab)
            else:
                if len(set(lab)) != 1:
                    raise LstmkitError(f"{path}: sequence {ids[-1]!r} has {len(set(lab))} different "
                                       f"labels {sorted(set(lab))[:5]}; a sequence label must not change "
                                       f"within a sequence (use --per-step for one label per step)")
                labels.append(lab[0])
    lab_out = None if labels_all is None else (labels if per_step else np.array(labels, dtype=object))
    return SequenceSet(seqs, lab_out, ids, channels, name)


def _refuse_mostly_numeric(frame: pd.DataFrame, cols: Sequence[str], path) -> None:
    """The default inputs are the numeric columns; a column of numbers with a non-number cell (a
    typo) would otherwise be left out silently: name the cell instead."""
    for c in cols:
        col = frame[c]
        if pd.api.types.is_numeric_dtype(col):
            continue
        parsed = pd.to_numeric(col, errors="coerce")
        bad = parsed.isna() & col.notna()
        if parsed.notna().any() and bad.any():
            row = col.index[int(np.flatnonzero(bad.to_numpy())[0])]
            raise LstmkitError(f"{path}:{int(row) + 2}: column {c!r} holds numbers and the non-number "
                               f"{str(col.loc[row])[:30]!r}; fix the cell, or name the input columns "
                               f"with --features")


def _numeric(frame: pd.DataFrame, cols: Sequence[str], path) -> np.ndarray:
    out = np.empty((len(frame), len(cols)))
    for j, c in enumerate(cols):
        v = pd.to_numeric(frame[c], errors="coerce")
        bad = v.isna() & frame[c].notna()
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise LstmkitError(f"{path}: column {c!r} must be numeric, got {str(frame[c].iloc[i])[:30]!r}")
        out[:, j] = v.to_numpy(dtype=np.float64)
    if np.isinf(out).any():
        raise LstmkitError(f"{path}: infinite value in columns {list(cols)[:6]}")
    return out


def read_sequences(path: Union[str, Path], **csv_options) -> SequenceSet:
    """`.ts` files by read_ts, anything else by read_sequence_csv(**csv_options)."""
    if Path(path).suffix.lower() == ".ts":
        return read_ts(path)
    return read_sequence_csv(path, **csv_options)


# ---------------------------------------------------------------------------------------- batches
def pad(sequences: Sequence[np.ndarray], value: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """N arrays (L_i, F) -> x (N, L_max, F) float32 padded with `value`, lengths (N,) int64."""
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.int64)
    if len(sequences) == 0 or int(lengths.min()) < 1:
        raise LstmkitError("pad: expected at least one sequence, each with at least one step")
    f = sequences[0].shape[1]
    x = np.full((len(sequences), int(lengths.max()), f), value, dtype=np.float32)
    for i, s in enumerate(sequences):
        x[i, :len(s)] = s
    return torch.from_numpy(x), lengths


def pad_ids(sequences: Sequence[Sequence[int]], value: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """N int sequences -> ids (N, L_max) int64 padded with `value`, lengths (N,) int64."""
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.int64)
    if len(sequences) == 0 or int(lengths.min()) < 1:
        raise LstmkitError("pad_ids: expected at least one sequence, each with at least one token")
    x = torch.full((len(sequences), int(lengths.max())), value, dtype=torch.int64)
    for i, s in enumerate(sequences):
        x[i, :len(s)] = torch.as_tensor(np.asarray(s, dtype=np.int64))
    return x, lengths
