"""`SequenceClassifier`: the Python API behind `lstmkit classify`.

    clf = SequenceClassifier(ClassifyConfig()).fit(train)        # SequenceSet, file, arrays or texts
    clf.predict(test)            # (N,) labels, or N arrays (L_i,) of labels with per_step
    clf.predict_proba(test)      # (N, C), or N arrays (L_i, C); columns in clf.classes order
    clf.evaluate(test)           # accuracy, balanced accuracy, per-class precision/recall, baselines
    clf.save("model/");  SequenceClassifier.load("model/")

Inputs (X), each with its labels (y) or inside a SequenceSet that carries them:
    a SequenceSet (lstmkit.data.read_ts / read_sequence_csv), or the path of a .ts / CSV file
    numbers: a list of N arrays (L_i, F) or (L_i,); or an array (N, L, F) / (N, L) with lengths=
             (N,) giving each sequence's real length: steps past it are never read, whatever they hold
    text:    a list of N strings (tokenised with config.tokens) or N lists of tokens
The pipeline, each step in its own module: data.sequences (reading, padding) -> data.StandardScaler
(per channel, fitted on the training steps) or data.text.Vocabulary -> training.train (the shared
trainer, cross-entropy on class indices) -> LSTMClassifier; baselines and metrics beside it.
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
import torch

from lstmkit.data import StandardScaler
from lstmkit.data.sequences import SequenceSet, pad, pad_ids, read_sequences
from lstmkit.data.text import PAD, UNK, Vocabulary
from lstmkit.errors import LstmkitError
from lstmkit.training import TrainResult, Windows, train
from lstmkit.training.checkpoint import (json_bytes, load_bundle, load_members, member_state, save_bundle,
                                         tensors_to_bytes)
from lstmkit.training.losses import IGNORE, cross_entropy

from . import baselines as bl
from .config import ClassifyConfig
from .metrics import classification_metrics
from .model import LSTMClassifier

FILES = ["config.json", "preprocess.json", "weights.safetensors"]
TASK = "classifier"
_CHUNK = 512   # sequences per forward pass at prediction time
_ONEHOT_VALUES = 2 ** 25   # at most this many one-hot values (128 MB of float32) per forward pass


@dataclass
class Evaluation:
    """The report of evaluate(): the LSTM's metrics, each baseline's, and every prediction."""
    metrics: dict                        # classification_metrics() of the LSTM
    baselines: dict                      # {name: classification_metrics()} of each baseline
    ids: list                            # sequence ids
    truth: list                          # labels: (N,) or N arrays (L_i,)
    pred: list                           # LSTM predictions, same form
    proba: list                          # (N, C) or N arrays (L_i, C)
    classes: list                        # the C class labels, in the probability columns' order
    per_step: bool = False
    notes: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return {**{k: v for k, v in self.metrics.items()}, "baselines": self.baselines,
                "per_step": self.per_step, "n_sequences": len(self.ids),
                "n_predictions": len(_flat(self.truth)), "notes": self.notes}

    def frame(self) -> pd.DataFrame:
        """One row per sequence (id, label, predicted, p_<class>...), or per step with per_step."""
        if self.per_step:
            rows = {"id": [i for i, t in zip(self.ids, self.truth) for _ in t],
                    "step": [s for t in self.truth for s in range(len(t))],
                    "label": _flat(self.truth), "predicted": _flat(self.pred)}
            proba = np.concatenate(self.proba)
        else:
            rows = {"id": list(self.ids), "label": list(self.truth), "predicted": list(self.pred)}
            proba = np.asarray(self.proba)
        out = pd.DataFrame(rows)
        for j, c in enumerate(self.classes):
            out[f"p_{c}"] = proba[:, j]
        return out

    def table(self) -> str:
        lines = [f"{'model':<22}{'accuracy':>10}{'balanced':>10}",
                 f"{'LSTM':<22}{self.metrics['accuracy']:>10.4f}{self.metrics['balanced_accuracy']:>10.4f}"]
        for name, m in self.baselines.items():
            lines.append(f"{name:<22}{m['accuracy']:>10.4f}{m['balanced_accuracy']:>10.4f}")
        return "\n".join(lines)


def _missing(v) -> bool:
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):   # not a scalar: not a missing value
        return False


def _strings(labels, where: str = "") -> list:
    """Labels as strings; a missing one (None, NaN) is an error, not a class called 'nan'."""
    out = []
    for i, v in enumerate(labels):
        if _missing(v):
            raise LstmkitError(f"{where}label {i} is missing ({v!r}); every sequence needs a label")
        out.append(str(v))
    return out


def label_order(labels) -> list:
    """The classes in order: numeric order when every label is a number ('1', '2', '10'), else
    string order. --class-weights, the probability columns and the confusion matrix follow it."""
    labels = sorted(labels)
    try:
        return sorted(labels, key=float)
    except ValueError:
        return labels


def _all_integers(y) -> bool:
    """Whether the labels given to fit (per sequence, or per step as N sequences) are all integers."""
    if y is None:
        return False
    items = []
    for v in (y.tolist() if hasattr(y, "tolist") else list(y)):
        items.extend(np.asarray(v).tolist() if isinstance(v, (list, tuple, np.ndarray)) else [v])
    return bool(items) and all(isinstance(v, int) and not isinstance(v, bool) for v in items)


def _flat(labels) -> list:
    """Per-step labels (N arrays) -> one flat list; per-sequence labels -> a list."""
    if len(labels) and isinstance(labels[0], np.ndarray):
        return [v for seq in labels for v in seq]
    return list(labels)


def stratified_split(data: SequenceSet, fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices (kept, held out): `fraction` of each class's sequences held out at random (of all
    sequences for per-step labels), a class with one sequence never held out. fraction 0 = none."""
    n = len(data)
    if fraction == 0:
        return np.arange(n), np.arange(0)
    rng = np.random.default_rng(seed)
    keys = np.zeros(n, dtype=object) if data.per_step or data.labels is None else data.labels
    out = []
    for c in dict.fromkeys(keys):
        members = np.flatnonzero(keys == c)
        k = int(round(fraction * len(members)))
        k = min(max(k, 1), len(members) - 1)
        if k > 0:
            out.extend(rng.choice(members, size=k, replace=False).tolist())
    held = np.array(sorted(out), dtype=np.int64)
    return np.setdiff1d(np.arange(n), held), held


class SequenceClassifier:
    def __init__(self, config: Optional[ClassifyConfig] = None):
        self.config = copy.deepcopy(config) if config is not None else ClassifyConfig()
        self.models: list[LSTMClassifier] = []
        self.result: Optional[TrainResult] = None
        self.classes: list[str] = []
        self.label_type = "str"            # "int" when every training label was an integer: predict() gives ints
        self.scaler: Optional[StandardScaler] = None
        self.vocab: Optional[Vocabulary] = None
        self.n_features = 0
        self.example = None               # first training sequence (raw), for gate_view()
        self._train: Optional[SequenceSet] = None

    # ---------------------------------------------------------------- inputs
    def _csv_options(self) -> dict:
        c = self.config
        return {"label_col": c.label_col or "label", "id_col": c.id_col, "time_col": c.time_col,
                "features": c.features, "text_col": c.text_col, "per_step": c.per_step}

    def as_set(self, X, y=None, lengths=None, need_labels: bool = False) -> SequenceSet:
        """Any accepted input form -> SequenceSet (labels from y when given)."""
        if isinstance(X, (str, Path)):
            opts = self._csv_options()
            if not need_labels and y is None:
                try:
                    data = read_sequences(X, **opts)
                except LstmkitError as e:
                    if "label column" not in str(e):
                        raise
                    data = read_sequences(X, **{**opts, "label_col": None})
            else:
                data = read_sequences(X, **opts)
        elif isinstance(X, SequenceSet):
            data = copy.copy(X)
        else:
            data = SequenceSet(self._sequences(X, lengths))
        if y is not None:
            data.labels = self._labels(y, data)
        if need_labels and data.labels is None:
            raise LstmkitError("labels are needed: pass y= or a SequenceSet/file with labels")
        if len(data) == 0:
            raise LstmkitError("no sequences given")
        return data

    @staticmethod
    def _sequences(X, lengths) -> list:
        if isinstance(X, torch.Tensor):
            X = X.detach().cpu().numpy()
        if isinstance(X, np.ndarray) and X.dtype != object:
            if X.ndim == 2:
                X = X[..., None]
            if X.ndim != 3:
                raise LstmkitError(f"SequenceClassifier: expected an array (N, L, F) or (N, L), got shape "
                                   f"{X.shape}")
            if lengths is None:
                lens = np.full(len(X), X.shape[1])
            else:
                lens = np.asarray(lengths.cpu() if isinstance(lengths, torch.Tensor) else lengths)
                if lens.shape != (len(X),) or lens.min() < 1 or lens.max() > X.shape[1]:
                    raise LstmkitError(f"SequenceClassifier: lengths must be (N,) = ({len(X)},) with 1 <= "
                                       f"length <= L = {X.shape[1]}, got {lens.tolist()[:8]}")
            return [np.asarray(X[i, :int(n)], dtype=np.float64) for i, n in enumerate(lens)]
        if lengths is not None:
            raise LstmkitError("lengths= applies to a padded array (N, L, F); a list of sequences "
                               "carries its own lengths")
        if not isinstance(X, (list, tuple)) or len(X) == 0:
            raise LstmkitError(f"SequenceClassifier: expected sequences (a list of arrays or texts, an "
                               f"array (N, L, F), a SequenceSet or a file), got {type(X).__name__}")
        if all(isinstance(s, str) for s in X):
            return list(X)
        if all(isinstance(s, (list, tuple)) and all(isinstance(t, str) for t in s) for s in X):
            return [list(s) for s in X]
        out = []
        for i, s in enumerate(X):
            a = np.asarray(s.detach().cpu() if isinstance(s, torch.Tensor) else s, dtype=np.float64)
            a = a[:, None] if a.ndim == 1 else a
            if a.ndim != 2 or len(a) == 0:
                raise LstmkitError(f"SequenceClassifier: sequence {i} must be (L_i, F) or (L_i,) with "
                                   f"L_i >= 1, got shape {a.shape}")
            out.append(a)
        return out

    def _labels(self, y, data: SequenceSet):
        if self.config.per_step:
            if len(y) != len(data):
                raise LstmkitError(f"per-step labels: expected {len(data)} label sequences, got {len(y)}")
            return [np.asarray(_strings(seq, f"sequence {data.ids[i]!r}: "), dtype=object)
                    for i, seq in enumerate(y)]
        y = np.asarray(_strings(y.tolist() if hasattr(y, "tolist") else y), dtype=object)
        if y.shape != (len(data),):
            raise LstmkitError(f"labels: expected {len(data)} labels (one per sequence), got shape {y.shape}")
        return y

    def _check_kind(self, data: SequenceSet) -> None:
        text = self.vocab is not None
        if data.is_text != text:
            raise LstmkitError(f"this classifier reads {'text' if text else 'numeric sequences'}, got "
                               f"{'text' if data.is_text else 'numeric sequences'}")
        if not text:
            for i, s in enumerate(data.sequences):
                if s.shape[1] != self.n_features:
                    raise LstmkitError(f"sequence {data.ids[i]!r}: expected {self.n_features} channel(s), "
                                       f"got {s.shape[1]}")
                if not np.isfinite(s).all():
                    raise LstmkitError(f"sequence {data.ids[i]!r}: NaN or infinite value inside the "
                                       f"sequence (pass lengths= to mark padding)")
        if data.per_step:
            for i, (s, l) in enumerate(zip(data.sequences, data.labels)):
                if len(s) != len(l):
                    raise LstmkitError(f"sequence {data.ids[i]!r}: {len(s)} steps but {len(l)} labels")

    def _tensors(self, sequences) -> tuple[torch.Tensor, torch.Tensor]:
        """Scaled, padded model input (N, L, F) or ids (N, L), and lengths (N,)."""
        if self.vocab is not None:
            return pad_ids([self.vocab.encode(s) for s in sequences])
        return pad([self.scaler.transform(s) for s in sequences])

    def _targets(self, labels, lengths: torch.Tensor) -> torch.Tensor:
        index = {c: i for i, c in enumerate(self.classes)}
        if not self.config.per_step:
            return torch.tensor([index[v] for v in labels], dtype=torch.int64)            # (N,)
        y = torch.full((len(labels), int(lengths.max())), IGNORE, dtype=torch.int64)    # (N, L)
        for i, seq in enumerate(labels):
            y[i, :len(seq)] = torch.tensor([index[v] for v in seq])
        return y

    # ---------------------------------------------------------------- fitting
    def _build(self) -> LSTMClassifier:
        c = self.config
        return LSTMClassifier(self.n_features, len(self.classes), c.hidden, c.layers, c.bidirectional,
                              c.pooling, c.dropout, c.preset,
                              vocab_size=len(self.vocab) if self.vocab is not None else 0,
                              input=c.input, embed_dim=c.embed_dim, per_step=c.per_step)

    def _class_weights(self, labels) -> Optional[torch.Tensor]:
        cw = self.config.class_weights
        if cw is None:
            return None
        if cw == "balanced":
            flat = _flat(labels)
            counts = np.array([sum(1 for v in flat if v == c) for c in self.classes], dtype=np.float64)
            return torch.tensor(len(flat) / (len(self.classes) * np.maximum(counts, 1)), dtype=torch.float32)
        if len(cw) != len(self.classes):
            raise LstmkitError(f"class_weights: expected {len(self.classes)} weights (classes "
                               f"{self.classes[:10]}), got {len(cw)}")
        return torch.tensor(cw, dtype=torch.float32)

    def _split(self, data: SequenceSet) -> tuple[np.ndarray, np.ndarray]:
        """Training / validation indices (validation empty when config.val = 0)."""
        return stratified_split(data, self.config.val, self.config.train.seed)

    def fit(self, X, y=None, lengths=None) -> "SequenceClassifier":
        """Train on labelled sequences (see the module docstring for the forms of X)."""
        cfg = self.config
        cfg.check()
        data = self.as_set(X, y, lengths, need_labels=True)
        cfg.per_step = data.per_step or cfg.per_step
        if data.per_step != cfg.per_step:
            raise LstmkitError("per_step=True needs one label per step (a list of label sequences)")
        self.classes = label_order({str(v) for v in _flat(data.labels)})
        self.label_type = "int" if _all_integers(y) else "str"
        if len(self.classes) < 2:
            raise LstmkitError(f"classification needs at least 2 classes, got {self.classes}")
        if data.is_text:
            splitter = Vocabulary([PAD, UNK], cfg.tokens, cfg.lowercase)
            self.vocab = Vocabulary.build((splitter.split(s) for s in data.sequences), cfg.tokens,
                                          cfg.lowercase, cfg.min_count, cfg.max_vocab)
            self.n_features, self.scaler = 0, None
        else:
            self.n_features = data.sequences[0].shape[1]
            self.vocab = None
            self._check_kind_features(data)
        self._check_kind(data)   # before the scaler: NaN in a sequence is named as such
        if not data.is_text:
            self.scaler = StandardScaler.fit(np.concatenate(data.sequences))
        self.example = data.sequences[0]
        self._train = data
        tr, va = self._split(data)
        weight = self._class_weights(data.labels)

        def windows(idx) -> Windows:
            x, lens = self._tensors([data.sequences[i] for i in idx])
            return Windows(x, self._targets([data.labels[i] for i in idx], lens), lens)

        self.result = train(self._build, windows(tr), windows(va) if len(va) else None, cfg.train,
                            loss_fn=cross_entropy(weight), desc="training LSTM classifier")
        self.models = self.result.models(self._build)
        return self

    def _check_kind_features(self, data: SequenceSet) -> None:
        widths = {s.shape[1] for s in data.sequences}
        if len(widths) != 1:
            raise LstmkitError(f"every sequence needs the same number of channels, got {sorted(widths)}")

    # ---------------------------------------------------------------- prediction
    def _proba(self, data: SequenceSet) -> list:
        if not self.models:
            raise LstmkitError("SequenceClassifier is not fitted: call fit() or SequenceClassifier.load()")
        self._check_kind(data)
        out = []
        chunk = _CHUNK
        if self.vocab is not None and self.config.input == "onehot":  # (chunk, L, vocabulary) floats
            longest = max(len(self.vocab.encode(s)) for s in data.sequences)
            chunk = max(1, min(_CHUNK, _ONEHOT_VALUES // (longest * len(self.vocab))))
        with torch.no_grad():
            for s in range(0, len(data), chunk):
                x, lens = self._tensors(data.sequences[s:s + chunk])
                p = torch.stack([torch.softmax(m(x, lengths=lens)[0], dim=-1) for m in self.models]).mean(0)
                p = p.double().numpy()
                if self.config.per_step:
                    out.extend(p[i, :int(n)] for i, n in enumerate(lens))     # (L_i, C)
                else:
                    out.extend(p)                                            # (C,)
        return out

    def predict_proba(self, X, lengths=None):
        """Class probabilities, averaged over the ensemble: (N, C), or N arrays (L_i, C) per step."""
        p = self._proba(self.as_set(X, lengths=lengths))
        return p if self.config.per_step else np.stack(p)

    def _decide(self, proba) -> list:
        classes = np.asarray(self.classes, dtype=object)
        if self.config.per_step:
            return [classes[np.argmax(p, axis=-1)] for p in proba]
        return classes[np.argmax(np.stack(proba), axis=-1)]

    def predict(self, X, lengths=None):
        """Labels: (N,) array, or N arrays (L_i,) per step; int64 when the training labels were all
        integers (as scikit-learn returns the labels it was given), else strings."""
        out = self._decide(self._proba(self.as_set(X, lengths=lengths)))
        if self.label_type != "int":
            return out
        if self.config.per_step:
            return [p.astype(np.int64) for p in out]
        return out.astype(np.int64)

    def evaluate(self, X, y=None, lengths=None, baselines: bool = True) -> Evaluation:
        """Score on labelled sequences: the LSTM's metrics, and the baselines' when the training data
        is at hand (after fit(); a loaded model has no training data and reports the LSTM alone)."""
        data = self.as_set(X, y, lengths, need_labels=True)
        if data.per_step != self.config.per_step:
            raise LstmkitError(f"the model labels {'steps' if self.config.per_step else 'sequences'}, "
                               f"the data has {'per-step' if data.per_step else 'per-sequence'} labels")
        proba = self._proba(data)
        pred = self._decide(proba)
        truth = list(data.labels)
        unknown = sorted({str(v) for v in _flat(truth)} - set(self.classes))
        notes = []
        if unknown:
            notes.append(f"labels {unknown[:5]} do not occur in training; they count as errors")
        labels = self.classes + unknown
        ev = Evaluation(classification_metrics(_flat(truth), _flat(pred), labels), {}, list(data.ids),
                        truth, list(pred), proba, self.classes, self.config.per_step, notes)
        if baselines:
            if self._train is None:
                ev.notes.append("baselines need the training data: skipped for a loaded model")
            else:
                for name, bpred in self._baselines(data).items():
                    ev.baselines[name] = classification_metrics(_flat(truth), _flat(bpred), labels)
        return ev

    def _baselines(self, data: SequenceSet) -> dict:
        tr, cfg = self._train, self.config
        out = {}
        if cfg.per_step:
            if data.is_text:
                split = self.vocab.split
                out["most frequent label"] = bl.most_frequent_label(
                    [split(s) for s in tr.sequences], tr.labels, [split(s) for s in data.sequences])
            else:
                pred = bl.nearest_step(np.concatenate(data.sequences), np.concatenate(tr.sequences),
                                       np.concatenate(tr.labels))
                lens = np.cumsum([0] + [len(s) for s in data.sequences])
                out["per-step 1-NN"] = [pred[lens[i]:lens[i + 1]] for i in range(len(data))]
            return out
        out["majority class"] = bl.majority(list(tr.labels), len(data))
        if data.is_text:
            split = self.vocab.split
            out["naive Bayes"] = bl.naive_bayes([split(s) for s in tr.sequences], tr.labels,
                                                [split(s) for s in data.sequences])
            return out
        choice = cfg.baseline
        equal = len({len(s) for s in [*tr.sequences, *data.sequences]}) == 1
        if choice in ("euclidean", "both") or (choice == "auto" and equal):
            if equal:
                out["1-NN Euclidean"] = bl.nearest_neighbour(
                    bl.euclidean_distances(data.sequences, tr.sequences), tr.labels)
            else:
                raise LstmkitError("the Euclidean 1-NN baseline needs sequences of one length; use "
                                   "--baseline dtw")
        if choice in ("dtw", "both", "auto"):
            out["1-NN DTW"] = bl.nearest_neighbour(bl.dtw_distances(data.sequences, tr.sequences),
                                                   tr.labels)
        return out

    # ---------------------------------------------------------------- inspection
    def gate_view(self, example=None) -> tuple:
        """(layer, x, step_labels) for lstmkit.plotting.plot_gates / `lstmkit inspect`: the first
        member's LSTM, one sequence (1, L, H_in) exactly as that layer receives it (scaled numbers,
        or token embeddings / one-hot vectors), and L labels for the time axis (tokens for text,
        step numbers otherwise). example: a text, token list or array (L, F) / (L,); None = the first
        training sequence, stored at fit time."""
        if not self.models:
            raise LstmkitError("SequenceClassifier.gate_view: not fitted")
        seq = self.example if example is None else example
        data = self.as_set([seq] if not isinstance(seq, np.ndarray) or seq.ndim < 3 else seq)
        self._check_kind(data)
        model = self.models[0]
        x, lens = self._tensors(data.sequences[:1])
        with torch.no_grad():
            inp = model.encode(x, torch.ones(x.shape[:2], dtype=torch.bool))     # (1, L, H_in)
        if self.vocab is not None:
            steps = self.vocab.split(data.sequences[0]) or ["<unk>"]
        else:
            steps = [str(i) for i in range(inp.shape[1])]
        return model.lstm, inp.detach(), steps

    # ---------------------------------------------------------------- saving
    def save(self, path) -> Path:
        """Write the model folder atomically: config.json (with "task": "classifier"), preprocess.json
        (scaler or vocabulary), weights.safetensors and manifest.json (SHA-256 of each)."""
        if not self.models:
            raise LstmkitError("SequenceClassifier.save: nothing to save, fit() first")
        example = self.example.tolist() if isinstance(self.example, np.ndarray) else self.example
        meta = {"task": TASK, "config": self.config.to_dict(), "classes": self.classes,
                "label_type": self.label_type,
                "members": len(self.models), "n_features": self.n_features, "example": example,
                "losses": [r.history for r in self.result.runs] if self.result else []}
        pre = {"scaler": self.scaler.to_dict() if self.scaler else None,
               "vocabulary": self.vocab.to_dict() if self.vocab else None}
        weights = member_state(self.models)
        return save_bundle(path, {"config.json": json_bytes(meta), "preprocess.json": json_bytes(pre),
                                  "weights.safetensors": tensors_to_bytes(weights)}, kind=TASK)

    @classmethod
    def load(cls, path) -> "SequenceClassifier":
        """Read a folder written by save(); refuses incomplete or modified folders, and a config.json
        that is not a classifier's or holds values ClassifyConfig.check() refuses (LstmkitError
        naming the folder)."""
        files = load_bundle(path, TASK, FILES)
        try:
            meta = json.loads(files["config.json"])
            pre = json.loads(files["preprocess.json"])
            if meta.get("task", "forecaster") != TASK:
                raise ValueError(f"it holds a {meta.get('task')!r} model, not a classifier")
            cfg = ClassifyConfig.from_dict(meta["config"])
            cfg.check()
            self = cls(cfg)
            self.classes = [str(c) for c in meta["classes"]]
            self.label_type = "int" if meta.get("label_type") == "int" else "str"
            self.n_features = int(meta["n_features"])
            self.scaler = StandardScaler.from_dict(pre["scaler"]) if pre["scaler"] else None
            self.vocab = Vocabulary.from_dict(pre["vocabulary"]) if pre["vocabulary"] else None
            ex = meta["example"]
            self.example = np.asarray(ex, dtype=np.float64) if self.vocab is None else ex
            members = int(meta["members"])
        except (LstmkitError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise LstmkitError(f"model folder {path}: config.json or preprocess.json is not valid ({e})") from None
        self.models = load_members(path, files["weights.safetensors"], self._build, members)
        return self
