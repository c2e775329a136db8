"""Everything a classification run is made of, in one dataclass; `lstmkit classify` maps its flags
onto it and a saved model stores it (resolved: no "auto" left) in config.json."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional, Union

from lstmkit.errors import LstmkitError
from lstmkit.training import TrainConfig, config_from_dict

POOLING = ("last", "mean", "attention")
INPUTS = ("embedding", "onehot")


def default_training() -> TrainConfig:
    """Training defaults chosen on JapaneseVowels (docs/classification.md): 5 runs of 80 epochs whose
    class probabilities are averaged, Adam with an L2 penalty of 1e-4."""
    return TrainConfig(epochs=80, lr=1e-2, head_lr=None, weight_decay=1e-4, batch_size=32, clip_norm=1.0,
                       patience=30, restarts=5, combine="mean", seed=0)


@dataclass
class ClassifyConfig:
    # --- data (CSV; .ts files carry their own layout) ---
    label_col: Optional[str] = None        # label column; None = "label"
    id_col: Optional[str] = None           # sequence id column (long form, one row per step); None = wide
    time_col: Optional[str] = None         # order of steps within a sequence (long form); None = file order
    features: Optional[list[str]] = None   # input columns; None = every numeric column but id/time/label
    text_col: Optional[str] = None         # text column: the input is text (wide) or one token per row (long)
    per_step: bool = False                 # one label per step (sequence labelling) instead of per sequence
    # --- text ---
    tokens: str = "word"                   # "word" or "char" tokenisation of raw text
    lowercase: bool = True                 # lowercase text before tokenising
    min_count: int = 1                     # keep tokens seen at least this often in training, else <unk>
    max_vocab: Optional[int] = 20000       # most ids in the vocabulary (with <pad>, <unk>); None = no limit
    input: str = "embedding"               # token input to the LSTM: "embedding" (learned) or "onehot"
    embed_dim: int = 64                    # embedding size (input="embedding")
    # --- model ---
    preset: Optional[str] = None           # LSTM variant of lstmkit.PRESETS (Greff et al.); None = vanilla
    hidden: int = 64                       # hidden size of each direction of each layer
    layers: int = 1                        # stacked LSTM layers
    bidirectional: bool = True             # read each sequence both ways (the notes: future context)
    pooling: str = "mean"                  # sequence summary: "last" state, "mean" over steps, "attention"
    dropout: float = 0.4                   # dropout between layers and before the output layer
    class_weights: Union[str, list[float], None] = None  # None, "balanced" (n / (C * n_c)) or C weights
    # --- training ---
    val: float = 0.0                       # fraction of the training sequences held out (stratified) for
                                           # early stopping; 0 = none (early stopping on the training loss)
    train: TrainConfig = field(default_factory=default_training)
    # --- report ---
    baseline: str = "auto"                 # 1-NN baseline: "dtw", "euclidean", "both", "none"; "auto" = DTW,
                                           # plus Euclidean when every sequence has the same length

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ClassifyConfig":
        return config_from_dict(cls, d)

    def check(self) -> None:
        """Fail early on values that cannot work, naming the field."""
        for name in ("hidden", "layers", "embed_dim", "min_count"):
            if getattr(self, name) < 1:
                raise LstmkitError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.pooling not in POOLING:
            raise LstmkitError(f"pooling must be one of {POOLING}, got {self.pooling!r}")
        if self.input not in INPUTS:
            raise LstmkitError(f"input must be one of {INPUTS}, got {self.input!r}")
        if self.tokens not in ("word", "char"):
            raise LstmkitError(f"tokens must be 'word' or 'char', got {self.tokens!r}")
        if not 0 <= self.dropout < 1:
            raise LstmkitError(f"dropout must be in [0, 1), got {self.dropout}")
        if not 0 <= self.val < 1:
            raise LstmkitError(f"val must be a fraction in [0, 1), got {self.val}")
        if self.baseline not in ("auto", "dtw", "euclidean", "both", "none"):
            raise LstmkitError(f"baseline must be auto, dtw, euclidean, both or none, got {self.baseline!r}")
        cw = self.class_weights
        if not (cw is None or cw == "balanced" or (isinstance(cw, (list, tuple))
                                                    and all(isinstance(w, (int, float)) and w > 0 for w in cw))):
            raise LstmkitError(f"class_weights must be None, 'balanced' or a list of positive numbers, got {cw!r}")
        if self.preset is not None:
            from lstmkit.cells import PRESETS
            if self.preset.upper() not in PRESETS:
                raise LstmkitError(f"preset must be one of {sorted(PRESETS)} or None, got {self.preset!r}")
        self.train.check()
