"""Sequence classification (one label per sequence) and sequence labelling (one label per step) with
the LSTM: UEA/UCR .ts files, CSV and text; `lstmkit classify` runs it from the command line."""
from .classifier import Evaluation, SequenceClassifier
from .config import ClassifyConfig
from .metrics import classification_metrics, confusion_matrix
from .model import LSTMClassifier

__all__ = ["ClassifyConfig", "Evaluation", "LSTMClassifier", "SequenceClassifier",
           "classification_metrics", "confusion_matrix"]
