"""`CharTask`: what the character-level task models share (`CharLanguageModel` in
lstmkit.generation, `Seq2Seq` in lstmkit.seq2seq): the fitted check, the gate viewer's input, and the
model folder.

The folder holds config.json (the task's name, its config, the CharVocab, the gate viewer's example,
the training losses and whatever the task adds) and weights.safetensors, written atomically with a
SHA-256 manifest by `checkpoint.save_bundle`, read back by `checkpoint.load_bundle`, which refuses
incomplete or modified folders.

A subclass sets TASK (config.json's "task") and CONFIG (its config dataclass, with to_dict /
from_dict and a `device` field), builds its network in `_build()`, names the LSTM that the gate
viewer shows in `_gate_lstm()` (its network has an `embed` embedding of the character ids), and
adds its own config.json fields through `_extra_meta` / `_read_extra_meta`.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar, Optional, Sequence

import torch
from torch import nn

from lstmkit.data.chars import CharVocab
from lstmkit.errors import LstmkitError

from .checkpoint import json_bytes, load_bundle, load_state, save_bundle, tensors_from_bytes, tensors_to_bytes
from .trainer import TrainResult

FILES = ["config.json", "weights.safetensors"]


class CharTask:
    TASK: ClassVar[str]
    CONFIG: ClassVar[type]

    config: Any
    vocab: Optional[CharVocab]
    model: Optional[nn.Module]
    result: Optional[TrainResult]
    example: str
    _losses: Sequence = ()  # the loss history read by load(), written back by save() until a new fit

    def _build(self) -> nn.Module:
        raise NotImplementedError

    def _gate_lstm(self) -> nn.Module:
        """The LSTM layer that the gate viewer shows; it reads the embedded characters."""
        raise NotImplementedError

    def _extra_meta(self) -> dict:
        """The task's own config.json fields."""
        return {}

    def _read_extra_meta(self, meta: dict) -> None:
        """Restore the task's own config.json fields (an LstmkitError, ValueError, KeyError,
        TypeError or AttributeError is reported as an invalid config.json, naming the folder)."""

    def _need(self) -> None:
        """Raises LstmkitError unless the model was fitted or loaded."""
        if self.model is None:
            name = type(self).__name__
            raise LstmkitError(f"{name} is not fitted: call fit() or {name}.load() first")

    # ---------------------------------------------------------------- gate viewer
    def gate_view(self, example: Optional[str] = None) -> tuple:
        """(the LSTM, x (1, L, E): the embedded characters of `example` (default: the task's example,
        held-out text or the first training source), the L characters as step labels); see
        lstmkit.plotting.plot_gates. Raises LstmkitError for an empty example."""
        self._need()
        text = example if example is not None else self.example
        if not text:
            raise LstmkitError("gate_view needs a non-empty example text")
        ids = torch.tensor(self.vocab.encode(text), device=self.config.device)
        with torch.no_grad():
            x = self.model.embed(ids)[None]                     # (1, L, E)
        return self._gate_lstm(), x, list(self.vocab.normalise(text))

    # ---------------------------------------------------------------- saving
    def save(self, path) -> Path:
        """Write the model folder atomically: config.json and weights.safetensors, with a SHA-256
        manifest. Returns the folder's path. The loss history is the last fit's, or the one a loaded
        folder carried."""
        self._need()
        meta = {"task": self.TASK, "config": self.config.to_dict(), "vocab": self.vocab.to_dict(),
                "example": self.example, **self._extra_meta(),
                "losses": [r.history for r in self.result.runs] if self.result else list(self._losses)}
        return save_bundle(path, {"config.json": json_bytes(meta),
                                  "weights.safetensors": tensors_to_bytes(self.model.state_dict())},
                           kind=self.TASK)

    @classmethod
    def load(cls, path, device: str = "cpu"):
        """Read a folder written by save() onto `device`; raises LstmkitError for an incomplete or
        modified folder, a config.json that is not this task's or holds values the task refuses
        (the config's own check()), or weights that do not fit the config."""
        files = load_bundle(path, cls.TASK, FILES)
        try:
            meta = json.loads(files["config.json"])
            if meta.get("task") != cls.TASK:
                raise ValueError(f"its task is {meta.get('task')!r}, expected {cls.TASK!r}")
            cfg = cls.CONFIG.from_dict(meta["config"])
            cfg.check()
            cfg.device = device
            self = cls(cfg)
            self.vocab = CharVocab.from_dict(meta["vocab"])
            example = meta.get("example")
            self.example = example if isinstance(example, str) else ""
            self._losses = list(meta.get("losses") or [])
            self._read_extra_meta(meta)
            model = self._build()
        except (LstmkitError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise LstmkitError(f"model folder {path}: config.json is not valid ({e})") from None
        self.model = load_state(model, tensors_from_bytes(files["weights.safetensors"],
                                                          f"{path}/weights.safetensors"), path)
        return self
