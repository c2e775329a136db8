"""Data-parallel training: two processes under torch.distributed.run (gloo on CPU) end with the same
weights, and the trainer splits each batch between them."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lstmkit.training import Windows
from lstmkit.training.trainer import _epoch_windows, TrainConfig

WORKER = Path(__file__).parent / "ddp_worker.py"


@pytest.mark.slow
def test_two_processes_train_the_same_model(tmp_path):
    src = Path(__file__).resolve().parents[2] / "src"
    env = dict(os.environ, PYTHONPATH=f"{src}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
               OMP_NUM_THREADS="1")
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                          "--standalone", str(WORKER), str(tmp_path)],
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["world"] == r1["world"] == 2
    assert r0["digest"] == r1["digest"]            # gradients averaged: identical weights
    assert r0["losses"] == r1["losses"]            # the training loss is reduced over processes
    assert all(l[-1] < l[0] for l in r0["losses"])


def test_batches_are_split_between_processes(monkeypatch):
    """With world size 2, rank 1 sees the odd positions of every shuffled batch."""
    import lstmkit.training.trainer as trainer
    seen = []

    class Probe(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.head = torch.nn.Linear(1, 1)

        def forward(self, x, state=None):
            seen.append(x[:, 0, 0].tolist())
            return self.head(x), None
    monkeypatch.setattr(trainer, "_world", lambda: (1, 2))
    monkeypatch.setattr("torch.distributed.all_reduce", lambda t: None)
    data = Windows(torch.arange(8.0).reshape(8, 1, 1), torch.zeros(8, 1))
    model = Probe()
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    gen = torch.Generator().manual_seed(0)
    order = torch.randperm(8, generator=torch.Generator().manual_seed(0))
    _epoch_windows(model, opt, data, torch.nn.functional.mse_loss, TrainConfig(batch_size=4), gen)
    assert seen == [order[1:4:2].float().tolist(), order[5:8:2].float().tolist()]
