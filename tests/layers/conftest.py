"""Layer and cell tests use tiny tensors: one intra-op thread is much faster for them (OpenMP
threads spinning on 2 shared cores made LayerNorm alone ~50x slower) and keeps timings stable."""
import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
