"""Generic training for lstmkit's task models: the loop (trainer), early stopping, masked losses,
progress bar, atomic writes and safetensors model folders. Nothing here knows about forecasting."""
from .checkpoint import load_bundle, save_bundle, tensors_from_bytes, tensors_to_bytes
from .early_stopping import EarlyStopping
from .losses import cross_entropy, masked_cross_entropy, masked_mse
from .trainer import (Run, Stream, TrainConfig, TrainResult, Windows, config_from_dict, evaluate_loss, run_stream,
                      train)

__all__ = ["EarlyStopping", "cross_entropy", "Run", "Stream", "TrainConfig", "TrainResult", "Windows", "config_from_dict", "evaluate_loss",
           "load_bundle", "masked_cross_entropy", "masked_mse", "run_stream", "save_bundle", "tensors_from_bytes",
           "tensors_to_bytes", "train"]
