"""Classification metrics from the confusion matrix (definitions as scikit-learn's):

    confusion[i, j]   number of sequences (or steps) of true class i predicted as class j
    accuracy          trace / total
    precision_c       confusion[c, c] / column sum c      (0 when class c is never predicted)
    recall_c          confusion[c, c] / row sum c         (NaN when class c never occurs)
    f1_c              2 precision recall / (precision + recall)   (0 when both are 0)
    balanced accuracy mean of recall_c over the classes that occur (Brodersen et al. 2010)
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from lstmkit.errors import LstmkitError


def confusion_matrix(truth: Sequence, pred: Sequence, labels: Sequence) -> np.ndarray:
    """(C, C) int64 counts; truth and pred are label values, labels the C classes in order."""
    truth, pred = np.asarray(truth, dtype=object), np.asarray(pred, dtype=object)
    if truth.shape != pred.shape or truth.ndim != 1:
        raise LstmkitError(f"metrics expect truth and predictions of the same 1-D shape, got "
                           f"{truth.shape} and {pred.shape}")
    if truth.size == 0:
        raise LstmkitError("metrics need at least one prediction, got none")
    index = {c: i for i, c in enumerate(labels)}
    unknown = sorted({str(v) for v in np.concatenate([truth, pred]) if v not in index})
    if unknown:
        raise LstmkitError(f"labels {unknown[:5]} are not among the classes {list(labels)[:10]}")
    m = np.zeros((len(labels), len(labels)), dtype=np.int64)
    np.add.at(m, ([index[v] for v in truth], [index[v] for v in pred]), 1)
    return m


def classification_metrics(truth: Sequence, pred: Sequence, labels: Sequence) -> dict:
    """{"accuracy", "balanced_accuracy", "per_class": {label: {precision, recall, f1, support}},
    "labels", "confusion"} (JSON-ready: NaN recall of an absent class is written as None)."""
    m = confusion_matrix(truth, pred, labels)
    tp = np.diag(m).astype(np.float64)
    predicted, support = m.sum(0), m.sum(1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.full_like(tp, np.nan), where=support > 0)
    rec0 = np.nan_to_num(recall)
    f1 = np.divide(2 * precision * rec0, precision + rec0, out=np.zeros_like(tp),
                   where=(precision + rec0) > 0)
    per_class = {str(c): {"precision": float(precision[i]),
                          "recall": None if np.isnan(recall[i]) else float(recall[i]),
                          "f1": float(f1[i]), "support": int(support[i])}
                 for i, c in enumerate(labels)}
    return {"accuracy": float(tp.sum() / m.sum()),
            "balanced_accuracy": float(np.nanmean(recall)),
            "per_class": per_class, "labels": [str(c) for c in labels], "confusion": m.tolist()}
