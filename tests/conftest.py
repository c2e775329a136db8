"""Shared pytest set-up: the --run-slow switch for end-to-end runs; the rewrite_config fixture."""
import hashlib
import json

import pytest
import torch


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", default=False,
                     help="also run tests marked slow (CI does)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed_and_one_thread():
    """Every test starts from seed 0 on one intra-op thread: the tests use small tensors, for which
    OpenMP threads spinning on 2 shared cores are many times slower (LayerNorm ~50x) and noisier."""
    torch.manual_seed(0)
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _rewrite_config(folder, edit, name: str = "config.json") -> None:
    """Edit a JSON file of a saved model folder (edit(dict) in place) and sign it again in the
    manifest, as another program or version might: the folder's checks then pass, and what the
    loader makes of the values is what is tested."""
    meta = json.loads((folder / name).read_text())
    edit(meta)
    data = json.dumps(meta).encode()
    (folder / name).write_bytes(data)
    man = json.loads((folder / "manifest.json").read_text())
    man["files"][name] = hashlib.sha256(data).hexdigest()
    man["sizes"][name] = len(data)
    (folder / "manifest.json").write_text(json.dumps(man))


@pytest.fixture
def rewrite_config():
    """_rewrite_config(folder, edit, name="config.json")."""
    return _rewrite_config
