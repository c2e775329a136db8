"""The gate viewer tutorial (docs/gates.md): train a tiny LSTM to count, then watch its gates.

Task: a stream of symbols, each a 1 ("count me"), a 0 ("ignore me") or a reset marker. The target at
every step is how many 1s have come since the last reset. To solve it the LSTM must carry a number in
its cell state (the notes' "conveyor belt") and erase it when the reset marker arrives: the forget gate
must close on exactly those steps.

Run:  python docs/gates_tutorial.py [OUT_DIR]     (about 20 s on one CPU core)
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

import lstmkit
from lstmkit.plotting import gate_trace, plot_gates
from lstmkit.training import TrainConfig, Windows, train


def counting_task(n: int, length: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """x (n, length, 2): [is a 1, is a reset]; y (n, length, 1): count of 1s since the last reset / 4."""
    rng = np.random.default_rng(seed)
    kind = rng.choice(3, size=(n, length), p=[0.45, 0.45, 0.10])       # 0: zero, 1: one, 2: reset
    x = np.stack([kind == 1, kind == 2], axis=-1).astype(np.float32)
    y = np.zeros((n, length, 1), dtype=np.float32)
    count = np.zeros(n)
    for t in range(length):
        count = np.where(kind[:, t] == 2, 0, count + (kind[:, t] == 1))
        y[:, t, 0] = count / 4
    return torch.tensor(x), torch.tensor(y)


class Counter(nn.Module):
    """LSTM (2 inputs, 4 units) and a linear read-out at every step; the trainer's model contract."""

    def __init__(self):
        super().__init__()
        self.lstm = lstmkit.LSTM(2, 4, batch_first=True)
        self.head = nn.Linear(4, 1)

    def forward(self, x, state=None):
        h, state = self.lstm(x, state)
        return self.head(h), state


def main(out: Path) -> dict:
    torch.manual_seed(0)
    x, y = counting_task(512, 40, seed=0)
    xv, yv = counting_task(128, 40, seed=1)
    cfg = TrainConfig(epochs=150, lr=1e-2, batch_size=32, patience=20, restarts=1, combine="best",
                      progress=False)
    result = train(Counter, Windows(x, y), Windows(xv, yv), cfg)
    model = Counter()
    model.load_state_dict(result.members[0])
    model.eval()

    # one test sequence, drawn with symbols as step labels
    xs, ys = counting_task(1, 40, seed=7)
    labels = ["R" if r else ("1" if o else "0") for o, r in xs[0].tolist()]
    plot_gates(model.lstm, xs, out / "counting_gates.png", step_labels=labels,
               input_labels=["one", "reset"], title="counting LSTM: gates over one sequence")

    # what the pictures show, in numbers: the unit whose cell state follows the count best
    tr = gate_trace(model.lstm, xs)
    count = ys[0, :, 0].numpy() * 4
    corr = [abs(np.corrcoef(tr["c"][:, u], count)[0, 1]) for u in range(4)]
    u = int(np.argmax(corr))
    reset = xs[0, :, 1].numpy() == 1
    with torch.no_grad():
        pred = model(xv)[0]
    facts = {
        "validation_mse": float(((pred - yv) ** 2).mean()),
        "count_error": float((pred * 4 - yv * 4).abs().mean()),        # in counts
        "unit": u, "corr_cell_count": float(corr[u]),
        "forget_at_reset": float(tr["f"][reset, u].mean()),
        "forget_elsewhere": float(tr["f"][~reset, u].mean()),
        "input_at_one": float(tr["i"][xs[0, :, 0].numpy() == 1, u].mean()),
        "input_at_zero": float(tr["i"][(xs[0].sum(-1) == 0).numpy(), u].mean()),
    }
    return facts


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "gates_tutorial_out")
    torch.set_num_threads(1)
    for k, v in main(out).items():
        print(f"{k}: {v:.3f}" if isinstance(v, float) else f"{k}: {v}")
    print(f"wrote {out / 'counting_gates.png'}")
