"""The generic training loop: Adam with separate learning rates for the recurrent layers and the output
layer, gradient clipping, early stopping on validation with the best weights kept, several
initialisations (keep the best run or all of them for averaging), and truncated backpropagation through
time over long sequences trained statefully in consecutive chunks.

Model contract (what every lstmkit task model provides):
    model(x, state=None) -> (out, state)     x (N, L, F), out (N, L, O); state is the carried
                                             recurrent state (any nesting of tensors) or None
    model(x, lengths=lengths)                only for Windows data that carry `lengths` (padded
                                             sequences of different lengths, x (N, L, ...))
    parameters of the output layer live under the attribute named by `head` (default "head").

Data comes in one of two forms:
    Windows(x, y)   independent windows, x (N, L, F); y (N, O) is compared with the last step's
                    output, y (N, L, O) with every step's output. Integer y holds class indices
                    (classification): the model's out has one more (class) dimension than y and
                    is given to the loss as it is, e.g. out (N, C) for y (N,), (N, L, C) for y (N, L).
                    Optional lengths (N,): x is padded past them; they go to the model as lengths=.
                    x may also be a tuple of tensors that share their first dimension N (e.g. an
                    encoder-decoder's source, source lengths and decoder input); the model then
                    receives the tuple as its x.
                    `extra` holds other per-window tensors (N, ...) passed to the model as keyword
                    arguments (e.g. ids=, future= of the global forecaster).
    Stream(x, y)    B long sequences, x (B, T, F), y (B, T, O) with NaN where a step has no target;
                    trained in chunks of `tbptt` steps whose final state starts the next chunk
                    (detached: gradients stop at chunk borders). A validation Stream runs the model
                    over all of x (the training part warms the state up) and scores its y.

Distributed data parallel: when torch.distributed is initialised (e.g. under
`torchrun --nproc_per_node 2`, backend gloo on CPU), every process builds the same model from the
same seed, wraps it in DistributedDataParallel and trains on its share (rank::world) of each batch of
Windows; gradients are averaged across processes, so all of them end with the same weights.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, fields
from typing import Callable, Optional, Union

import torch
from torch import Tensor, nn

from lstmkit.errors import LstmkitError

from .early_stopping import EarlyStopping
from .losses import masked_mse
from .progress import progress_bar


@dataclass
class TrainConfig:
    epochs: int = 300                # most passes over the training data per initialisation
    lr: float = 1e-2                 # Adam learning rate of everything but the output layer
    head_lr: Optional[float] = None  # Adam learning rate of the output layer; None = lr
    weight_decay: float = 0.0        # Adam L2 penalty
    batch_size: int = 32             # windows per optimiser step (Windows data); 0 = all at once
    clip_norm: float = 1.0           # clip the global gradient norm to this; 0 = no clipping
    patience: int = 30               # stop after this many epochs without validation improvement; 0 = never
    min_delta: float = 0.0           # smallest decrease of the validation loss that counts as improvement
    restarts: int = 3                # independent initialisations (seeds seed, seed+1, ...)
    combine: str = "mean"            # "best": keep the run with the lowest validation loss;
                                     # "mean": keep every run, predictions are averaged
    seed: int = 0                    # seed of the first initialisation and of the batch order
    tbptt: int = 0                   # chunk length for truncated BPTT on Stream data; 0 = whole sequence
    progress: Optional[bool] = None  # progress bar; None = only when stderr is a terminal

    def check(self) -> None:
        if self.epochs < 1 or self.restarts < 1:
            raise LstmkitError(f"epochs and restarts must be >= 1, got {self.epochs} and {self.restarts}")
        if self.combine not in ("best", "mean"):
            raise LstmkitError(f"combine must be 'best' or 'mean', got {self.combine!r}")
        ok = lambda v: math.isfinite(v) and v > 0  # noqa: E731  (NaN and inf fail here, not after training)
        if not ok(self.lr) or (self.head_lr is not None and not ok(self.head_lr)):
            raise LstmkitError(f"learning rates must be > 0 and finite, got lr={self.lr}, "
                               f"head_lr={self.head_lr}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise LstmkitError(f"weight_decay must be >= 0 and finite, got {self.weight_decay}")
        if min(self.batch_size, self.tbptt, self.patience) < 0 or not self.clip_norm >= 0:
            raise LstmkitError("batch_size, tbptt, patience and clip_norm must be >= 0")
        if not math.isfinite(self.min_delta):
            raise LstmkitError(f"min_delta must be finite, got {self.min_delta}")


def config_from_dict(cls, d: dict):
    """A task's config dataclass (ForecastConfig, GlobalConfig, ClassifyConfig) from its to_dict()
    form as saved in config.json: unknown fields are refused, "train" becomes a TrainConfig, and
    "layer_options" pairs (zoneout) come back as tuples (JSON turns them into lists). Raises
    LstmkitError naming the problem."""
    try:
        extra = set(d) - {f.name for f in fields(cls)}
        if extra:
            raise LstmkitError(f"config: unknown fields {sorted(extra)}")
        d = dict(d)
        if "train" in d:
            d["train"] = TrainConfig(**d["train"])
        if isinstance(d.get("layer_options"), dict):
            d["layer_options"] = {k: tuple(v) if isinstance(v, list) else v
                                  for k, v in d["layer_options"].items()}
        return cls(**d)
    except TypeError as e:
        raise LstmkitError(f"config: {e}") from None


@dataclass
class Windows:
    x: Union[Tensor, tuple]  # (N, L, F), or a tuple of tensors each with N rows first
    y: Tensor  # (N, O) for the last step, or (N, L, O) for every step; integer: class indices
    lengths: Optional[Tensor] = None  # (N,) int64 real length of each padded sequence, or None
    extra: Optional[dict[str, Tensor]] = None  # per-window model keyword arguments, each (N, ...)

    def kwargs(self, idx=None) -> dict[str, Tensor]:
        """The model's keyword arguments for all windows (or the subset idx): lengths and extra."""
        out = {k: v if idx is None else v[idx] for k, v in (self.extra or {}).items()}
        if self.lengths is not None:
            out["lengths"] = self.lengths if idx is None else self.lengths[idx]
        return out


def _rows(x, idx: Tensor):
    """Rows idx of a tensor or of every tensor in a tuple."""
    return tuple(t[idx] for t in x) if isinstance(x, tuple) else x[idx]


@dataclass
class Stream:
    x: Tensor  # (B, T, F)
    y: Tensor  # (B, T, O), NaN where there is no target


Data = Union[Windows, Stream]


@dataclass
class Run:
    val_loss: float                  # best validation loss (training loss without validation data)
    best_epoch: int                  # epoch whose weights were kept (0-based)
    state: dict[str, Tensor]         # the weights of that epoch, on the CPU
    history: dict[str, list[float]]  # {"train": [...], "val": [...]}, one value per epoch


@dataclass
class TrainResult:
    runs: list[Run]      # every initialisation, in seed order
    kept: list[int]      # indices of the runs whose weights are used (one for "best", all for "mean")
    seconds: float = 0.0

    @property
    def members(self) -> list[dict[str, Tensor]]:
        return [self.runs[i].state for i in self.kept]

    def models(self, build: Callable[[], nn.Module]) -> list[nn.Module]:
        """The kept runs as models: each built by `build()`, given its weights, in eval mode."""
        out = []
        for state in self.members:
            model = build()
            model.load_state_dict(state)
            out.append(model.eval())
        return out


def param_groups(model: nn.Module, lr: float, head_lr: Optional[float], head: str) -> list[dict]:
    """Two Adam groups: parameters under `model.<head>` at head_lr, the rest at lr."""
    body, out = [], []
    for name, p in model.named_parameters():
        (out if name.split(".")[0] == head else body).append(p)
    groups = [{"params": body, "lr": lr}]
    if out:
        groups.append({"params": out, "lr": head_lr if head_lr is not None else lr})
    return [g for g in groups if g["params"]]


def detach_state(state):
    """Detach every tensor in a nested state (tuple/list/dict) so gradients stop at a chunk border."""
    if state is None:
        return None
    if isinstance(state, Tensor):
        return state.detach()
    if isinstance(state, (tuple, list)):
        return type(state)(detach_state(s) for s in state)
    if isinstance(state, dict):
        return {k: detach_state(v) for k, v in state.items()}
    return state


def run_stream(model: nn.Module, x: Tensor, chunk: int, state=None) -> tuple[Tensor, object]:
    """Run a model statefully over x (B, T, F) in chunks (no gradient); returns out (B, T, O), state."""
    outs = []
    step = chunk or x.shape[1]
    with torch.no_grad():
        for s in range(0, x.shape[1], step):
            out, state = model(x[:, s:s + step], state)
            outs.append(out)
    return torch.cat(outs, dim=1), state


def _pick(out: Tensor, y: Tensor) -> Tensor:
    if not y.is_floating_point():       # class indices: out carries the class dimension
        return out
    return out[:, -1] if y.dim() == out.dim() - 1 else out


def _forward(model: nn.Module, data: "Windows", idx=None):
    """model(x) on the windows (or the subset idx), passing lengths= when the data has them and the
    `extra` tensors as keyword arguments."""
    x = data.x if idx is None else _rows(data.x, idx)
    return model(x, **data.kwargs(idx))


def _world() -> tuple[int, int]:
    """(rank, world size) of torch.distributed, (0, 1) when it is not initialised."""
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _epoch_windows(model, opt, data: Windows, loss_fn, cfg: TrainConfig, gen, tick=None) -> float:
    n = data.y.shape[0]
    order = torch.randperm(n, generator=gen)      # the same on every process (same seed)
    size = cfg.batch_size or n
    rank, world = _world()
    total, count = 0.0, 0
    for s in range(0, n, size):
        idx = order[s:s + size]
        if world > 1 and len(idx) >= world:
            idx = idx[rank::world]                # this process's share of the batch
        out, _ = _forward(model, data, idx)
        loss = loss_fn(_pick(out, data.y), data.y[idx])
        _update(model, opt, loss, cfg)
        total += loss.item() * len(idx)
        count += len(idx)
        if tick is not None:
            tick(min(s + size, n), n)
    if world > 1:                                 # one training loss for every process, so that
        import torch.distributed as dist          # early stopping decides the same everywhere
        t = torch.tensor([total, count], dtype=torch.float64)
        dist.all_reduce(t)
        total, count = t.tolist()
    return total / max(count, 1)


def _epoch_stream(model, opt, data: Stream, loss_fn, cfg: TrainConfig) -> float:
    step = cfg.tbptt or data.x.shape[1]
    state, losses = None, []
    for s in range(0, data.x.shape[1], step):
        y = data.y[:, s:s + step]
        out, state = model(data.x[:, s:s + step], state)
        if torch.isfinite(y).any():
            loss = loss_fn(out, y)
            _update(model, opt, loss, cfg)
            losses.append(loss.item())
        state = detach_state(state)
    return sum(losses) / max(len(losses), 1)


def _update(model, opt, loss, cfg: TrainConfig) -> None:
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if cfg.clip_norm > 0:
        nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_norm)
    opt.step()


def evaluate_loss(model: nn.Module, data: Data, loss_fn, chunk: int = 0) -> float:
    """Loss of `model` on `data` without gradients (Stream data runs statefully in chunks)."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        if isinstance(data, Windows):
            out, _ = _forward(model, data)
            loss = loss_fn(_pick(out, data.y), data.y).item()
        else:
            out, _ = run_stream(model, data.x, chunk)
            loss = loss_fn(out, data.y).item()
    model.train(was_training)
    return loss


def train(build: Callable[[], nn.Module], train_data: Data, val_data: Optional[Data] = None,
          config: Optional[TrainConfig] = None, loss_fn=masked_mse, head: str = "head",
          desc: str = "training") -> TrainResult:
    """Train `config.restarts` models made by `build()` and keep the best run or all of them.

    Without validation data, early stopping and run selection use the training loss.
    """
    cfg = config or TrainConfig()
    cfg.check()
    if isinstance(train_data, Stream) != isinstance(val_data, Stream) and val_data is not None:
        raise LstmkitError("train and validation data must both be Windows or both be Stream")
    start = time.perf_counter()
    runs = []
    bar = progress_bar(cfg.restarts * cfg.epochs, desc, cfg.progress)
    try:
        for r in range(cfg.restarts):
            torch.manual_seed(cfg.seed + r)
            gen = torch.Generator().manual_seed(cfg.seed + r)
            net = build()
            net.train()
            opt = torch.optim.Adam(param_groups(net, cfg.lr, cfg.head_lr, head),
                                   weight_decay=cfg.weight_decay)
            model = net
            if _world()[1] > 1 and isinstance(train_data, Windows):
                from torch.nn.parallel import DistributedDataParallel
                model = DistributedDataParallel(net)   # averages gradients across processes
            stopper = EarlyStopping(cfg.patience, cfg.min_delta)
            hist = {"train": [], "val": []}
            for epoch in range(cfg.epochs):
                if isinstance(train_data, Windows):
                    tr = _epoch_windows(model, opt, train_data, loss_fn, cfg, gen,
                                        getattr(bar, "tick", None))
                else:
                    tr = _epoch_stream(model, opt, train_data, loss_fn, cfg)
                va = evaluate_loss(net, val_data, loss_fn, cfg.tbptt) if val_data is not None else tr
                hist["train"].append(tr)
                hist["val"].append(va)
                bar.update(1)
                bar.set_postfix(run=r + 1, train=f"{tr:.4f}", val=f"{va:.4f}")
                if not math.isfinite(tr):
                    break
                if stopper.step(va, net, epoch):
                    bar.update(cfg.epochs - epoch - 1)
                    break
            runs.append(Run(stopper.best, stopper.best_epoch, stopper.best_state, hist))
    finally:
        bar.close()
    if all(not math.isfinite(r.val_loss) for r in runs):
        raise LstmkitError("training diverged: every run ended with a non-finite loss; lower the "
                           "learning rate")
    finite = [i for i, r in enumerate(runs) if math.isfinite(r.val_loss)]
    kept = [min(finite, key=lambda i: runs[i].val_loss)] if cfg.combine == "best" else finite
    return TrainResult(runs=runs, kept=kept, seconds=time.perf_counter() - start)
