"""Run by tests/training/test_ddp.py under `torch.distributed.run --nproc_per_node 2`: each process
trains the same small global model data-parallel and writes its final weights' digest and its loss
history to OUT/rank{R}.json."""
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import torch

from lstmkit.forecasting import GlobalConfig, GlobalForecaster
from lstmkit.training import TrainConfig, distributed

out = Path(sys.argv[1])
torch.set_num_threads(1)
assert distributed.init_from_env()
values = [(3.0 + i) * 1.04 ** np.arange(15 + i) for i in range(6)]
cfg = GlobalConfig(horizon=3, hidden=8, head_hidden=8, holdout=0,
                   train=TrainConfig(epochs=3, lr=1e-2, batch_size=16, patience=0, restarts=2,
                                     progress=False))
gf = GlobalForecaster(cfg).fit(values)
digest = hashlib.sha256(b"".join(t.numpy().tobytes() for m in gf.models
                                 for t in m.state_dict().values())).hexdigest()
(out / f"rank{distributed.rank()}.json").write_text(json.dumps(
    {"digest": digest, "world": distributed.world_size(),
     "losses": [r.history["train"] for r in gf.result.runs]}))
distributed.shutdown()
