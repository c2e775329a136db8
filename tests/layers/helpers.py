"""Shared tools of the cell and layer tests (STYLE rule 7: every number is checked against a trusted
reference, and every variant goes through the one checker below).

- :func:`backends`: the backends a layer test runs on ("reference", "native" where the math is
  torch's, "fused" when built).
- :func:`check_pair`: THE checker. Runs our computation and a reference computation, asserts that
  every output tensor agrees, then back-propagates the same fixed random cotangent through both and
  asserts that the gradients of matching leaves agree.
- :func:`twin`: a ``torch.nn`` module and ours with torch's state dict loaded as it is.
- :func:`step_by_hand`: a layer recomputed by stepping its cells in a Python loop, one sequence and
  one step at a time (no scan, no masks, no reversal helpers).
- :func:`onnx_lstm` / :func:`onnx_inputs`: the ONNX ``LSTM`` operator run by onnxruntime.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np
import pytest
import torch
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence

import lstmkit
from lstmkit.kernels.dispatch import fused_available

FUSED = fused_available()


def backends(vanilla: bool) -> list[str]:
    """Backends to parametrize over: the reference loop always, torch's kernel for vanilla math,
    the fused kernels when they are built here."""
    out = ["reference"]
    if vanilla:
        out.append("native")
    if FUSED:
        out.append("fused")
    return out


# -- the checker -------------------------------------------------------------------------------
def flat(obj) -> list[Tensor]:
    """Tensors of a nested result in a fixed order (PackedSequence -> its data, dict by key)."""
    if obj is None:
        return []
    if isinstance(obj, PackedSequence):
        return [obj.data]
    if isinstance(obj, Tensor):
        return [obj]
    if isinstance(obj, dict):
        return [t for k in sorted(obj) for t in flat(obj[k])]
    if isinstance(obj, (tuple, list)):
        return [t for o in obj for t in flat(o)]
    raise TypeError(f"cannot flatten {type(obj).__name__}")


def assert_close(got: Tensor, want: Tensor, what: str, atol: float, rtol: float = 0.0) -> None:
    assert tuple(got.shape) == tuple(want.shape), f"{what}: shape {tuple(got.shape)} != {tuple(want.shape)}"
    want = want.to(got.dtype)
    err = (got - want).abs()
    bound = atol + rtol * want.abs()
    if not bool((err <= bound).all()):
        worst = float((err - bound).max())
        raise AssertionError(f"{what}: max |got - want| = {float(err.max()):.3g} exceeds "
                             f"atol={atol:g}, rtol={rtol:g} (by {worst:.3g})")


def check_pair(ours: Callable[[], object], ref: Callable[[], object], *,
               leaves: Sequence[Tensor] = (), ref_leaves: Sequence[Tensor] = (),
               names: Optional[Sequence[str]] = None, atol: float = 1e-5, rtol: float = 0.0,
               grad_atol: Optional[float] = None, grad_rtol: float = 1e-4):
    """Assert that ``ours()`` and ``ref()`` give the same tensors, and the same gradients.

    Args:
        ours, ref: callables returning nested tuples/dicts of tensors (flattened with :func:`flat`).
        leaves, ref_leaves: tensors (inputs, states, parameters) whose gradients must agree; pairs
            in the same order. Empty: values only.
        names: names of the leaves, for messages.
    Returns:
        The two flattened outputs (ours, ref), for further checks.
    """
    got, want = flat(ours()), flat(ref())
    assert len(got) == len(want), f"{len(got)} outputs vs {len(want)} from the reference"
    for k, (g, w) in enumerate(zip(got, want)):
        assert_close(g.detach(), torch.as_tensor(w).detach(), f"output[{k}]", atol, rtol)
    if leaves:
        assert len(leaves) == len(ref_leaves)
        gen = torch.Generator().manual_seed(1234)
        cots = [torch.randn(g.shape, generator=gen, dtype=torch.float64) for g in got]
        loss_g = sum((g * c.to(g.dtype)).sum() for g, c in zip(got, cots) if g.requires_grad)
        loss_w = sum((w * c.to(w.dtype)).sum() for w, c in zip(want, cots) if w.requires_grad)
        dg = torch.autograd.grad(loss_g, list(leaves), allow_unused=True)
        dw = torch.autograd.grad(loss_w, list(ref_leaves), allow_unused=True)
        names = names or [f"leaf[{k}]" for k in range(len(leaves))]
        for n, a, b, leaf in zip(names, dg, dw, leaves):
            a = torch.zeros_like(leaf) if a is None else a
            b = torch.zeros_like(leaf) if b is None else b
            assert_close(a, b, f"grad of {n}", grad_atol if grad_atol is not None else atol,
                         grad_rtol)
    return got, want


# -- torch twins ---------------------------------------------------------------------------------
def twin(torch_cls, ours_cls, *args, **kwargs):
    """(torch module, our module) with identical weights: torch's state dict loaded strictly."""
    theirs = torch_cls(*args, **kwargs)
    ours = ours_cls(*args, **kwargs)
    ours.load_state_dict(theirs.state_dict())  # strict: also checks the public weight layout
    return theirs, ours


def randomize_(module: torch.nn.Module, scale: float = 0.8, seed: int = 0) -> torch.nn.Module:
    """Uniform(-scale, scale) weights (LayerNorm gains around 1), so gates are far from trivial."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            r = (torch.rand(p.shape, generator=gen, dtype=torch.float64) * 2 - 1) * scale
            if name.startswith("ln_") and "bias" not in name:
                r = 1 + 0.5 * r
            p.copy_(r.to(p.dtype))
    return module


# -- a layer stepped by hand -------------------------------------------------------------------
def cell_of(layer, l: int, d: int):
    """The cell of layer ``l``, direction ``d``, with the layer's weights (loaded strictly)."""
    suffix = f"_l{l}" + ("_reverse" if d else "")
    sd = {k[: -len(suffix)]: v for k, v in layer.state_dict().items() if k.endswith(suffix)}
    in_size = layer.input_size if l == 0 else layer.output_size * layer.num_directions
    kw = {"dtype": next(layer.parameters()).dtype}
    if isinstance(layer, lstmkit.LSTM):
        cell = lstmkit.LSTMCell(in_size, layer.hidden_size, bias=layer.bias,
                                proj_size=layer.proj_size, options=layer.options, **kw)
    else:
        cell = lstmkit.GRUCell(in_size, layer.hidden_size, bias=layer.bias, **kw)
    cell.load_state_dict(sd)
    return cell


def step_by_hand(layer, x: Tensor, hx=None, lengths=None):
    """Recompute ``layer`` (eval mode, no dropout) by stepping its cells one sequence at a time.

    Args:
        x: (T, N, H_in) time-first. hx: as the layer takes it (or None). lengths: list/tensor or None.
    Returns:
        y (T, N, D*P) with zeros at padded steps, the final states (tuple of (L*D, N, .)), and the
        trace dict of (L*D, T, N, .) tensors with the gate names of the cell plus "c" (LSTM) and "h".
    """
    T, N = x.shape[0], x.shape[1]
    D, is_lstm = layer.num_directions, isinstance(layer, lstmkit.LSTM)
    H, P = layer.hidden_size, layer.output_size
    names = ("i", "f", "g", "o", "c", "h") if is_lstm else ("r", "z", "n", "h")
    if hx is not None and not isinstance(hx, (tuple, list)):
        hx = (hx,)
    lens = [T] * N if lengths is None else [int(v) for v in lengths]
    layer_in = x
    finals: list[list[Tensor]] = [[], []] if is_lstm else [[]]
    trace: dict[str, list[Tensor]] = {k: [] for k in names}
    for l in range(layer.num_layers):
        outs = []
        for d in range(D):
            idx = l * D + d
            cell = cell_of(layer, l, d)
            y = x.new_zeros(T, N, P)
            tr = {k: x.new_zeros(T, N, P if k == "h" else H) for k in names}
            fin = [x.new_zeros(N, s) for s in ((P, H) if is_lstm else (H,))]
            for n in range(N):
                if hx is None:
                    state = cell.initial_state(1, x)
                else:
                    state = tuple(s[idx, n:n + 1] for s in hx)
                    if is_lstm and layer.options.gate_recurrence:
                        state = state + (x.new_zeros(1, 3 * H),)
                order = range(lens[n]) if d == 0 else range(lens[n] - 1, -1, -1)
                for t in order:
                    state, gates = cell.gates(layer_in[t, n:n + 1], state)
                    y[t, n] = state[0][0]
                    for k, v in gates._asdict().items():
                        tr[k][t, n] = v[0]
                    if is_lstm:
                        tr["c"][t, n] = state[1][0]
                    tr["h"][t, n] = state[0][0]
                for k in range(len(fin)):
                    fin[k][n] = state[k][0]
            outs.append(y)
            for k in range(len(fin)):
                finals[k].append(fin[k])
            for k in names:
                trace[k].append(tr[k])
        layer_in = torch.cat(outs, dim=2)
    return layer_in, tuple(torch.stack(f) for f in finals), {k: torch.stack(v) for k, v in trace.items()}


# -- the ONNX LSTM operator ------------------------------------------------------------------------
#: lstmkit activation name -> (ONNX name, alpha or None, beta or None)
ONNX_ACTIVATIONS = {
    "sigmoid": ("Sigmoid", None, None),
    "tanh": ("Tanh", None, None),
    "identity": ("Affine", 1.0, 0.0),
    "relu": ("Relu", None, None),
    "hard_sigmoid": ("HardSigmoid", 1.0 / 6.0, 0.5),  # torch's hardsigmoid = clip(x/6 + 1/2, 0, 1)
    "softsign": ("Softsign", None, None),
}


def _ifgo_to_iofc(w: Tensor) -> Tensor:
    i, f, g, o = w.chunk(4, dim=0)
    return torch.cat([i, o, f, g], dim=0)


def onnx_inputs(layer, l: int = 0) -> dict[str, np.ndarray]:
    """W, R, B, P of ONNX's LSTM (gate order i, o, f, c; P = [p_i, p_o, p_f]) from layer ``l``."""
    Ws, Rs, Bs, Ps = [], [], [], []
    H = layer.hidden_size
    for d in range(layer.num_directions):
        p = layer.params_of(l, d)
        Ws.append(_ifgo_to_iofc(p.weight_ih))
        Rs.append(_ifgo_to_iofc(p.weight_hh))
        zero = p.weight_ih.new_zeros(4 * H)
        Bs.append(torch.cat([_ifgo_to_iofc(p.bias_ih if p.bias_ih is not None else zero),
                             _ifgo_to_iofc(p.bias_hh if p.bias_hh is not None else zero)]))
        pp = p.weight_peephole
        Ps.append(torch.cat([pp[0], pp[2], pp[1]]) if pp is not None else zero[: 3 * H])
    as_np = lambda ts: torch.stack(ts).detach().to(torch.float32).numpy()  # noqa: E731
    return {"W": as_np(Ws), "R": as_np(Rs), "B": as_np(Bs), "P": as_np(Ps)}


def onnx_lstm(X: np.ndarray, W: np.ndarray, R: np.ndarray, B: np.ndarray, P: np.ndarray,
              H0: np.ndarray, C0: np.ndarray, seq_lens: Optional[Sequence[int]] = None, *,
              input_forget: int = 0, activations: Sequence[str] = ("sigmoid", "tanh", "tanh")):
    """Run onnxruntime's LSTM. X (T, N, I); W (D, 4H, I); R (D, 4H, H); B (D, 8H); P (D, 3H);
    H0, C0 (D, N, H). ``activations`` are lstmkit names (f, g, h), used for every direction.
    Returns Y (T, D, N, H), Y_h (D, N, H), Y_c (D, N, H)."""
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper

    T, N, _ = X.shape
    D, H = W.shape[0], R.shape[2]
    acts, alphas, betas = [], [], []
    for _ in range(D):
        for a in activations:
            name, alpha, beta = ONNX_ACTIVATIONS[a]
            acts.append(name)
            if alpha is not None:
                alphas.append(alpha)
            if beta is not None:
                betas.append(beta)
    attrs = {"hidden_size": H, "input_forget": input_forget, "activations": acts,
             "direction": "bidirectional" if D == 2 else "forward"}
    if alphas:
        attrs["activation_alpha"] = alphas
    if betas:
        attrs["activation_beta"] = betas
    feeds = {"X": X, "W": W, "R": R, "B": B,
             "sequence_lens": np.asarray(seq_lens if seq_lens is not None else [T] * N, np.int32),
             "H0": H0, "C0": C0, "P": P}
    f32 = TensorProto.FLOAT
    inputs = [helper.make_tensor_value_info(k, TensorProto.INT32 if k == "sequence_lens" else f32,
                                            list(v.shape)) for k, v in feeds.items()]
    outputs = [helper.make_tensor_value_info("Y", f32, [T, D, N, H]),
               helper.make_tensor_value_info("Y_h", f32, [D, N, H]),
               helper.make_tensor_value_info("Y_c", f32, [D, N, H])]
    node = helper.make_node("LSTM", list(feeds), ["Y", "Y_h", "Y_c"], **attrs)
    model = helper.make_model(helper.make_graph([node], "lstm", inputs, outputs),
                              opset_imports=[helper.make_opsetid("", 14)], ir_version=8)
    onnx.checker.check_model(model)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {k: np.ascontiguousarray(v) for k, v in feeds.items()})
