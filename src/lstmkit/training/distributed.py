"""Distributed data parallel set-up for the trainer: under `torchrun --nproc_per_node N` the
environment names the rank and world size; `init_from_env()` joins the process group (gloo on CPU,
nccl when CUDA is available) and the trainer (lstmkit.training.trainer) then wraps each model in
DistributedDataParallel and splits every batch across processes.

    torchrun --nproc_per_node 2 -m lstmkit.cli.main forecast panel.csv --out run
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist


def init_from_env() -> bool:
    """Join the process group when started by torchrun (WORLD_SIZE > 1); True when distributed."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return True


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main() -> bool:
    """Only this process writes files and prints (rank 0, or the only process)."""
    return rank() == 0


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
