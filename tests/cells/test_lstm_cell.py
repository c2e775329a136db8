"""LSTMCell: torch.nn.LSTMCell parity (values and gradients, torch's state dict loaded as it is), the
peephole / coupled / activation variants against one step of the ONNX LSTM operator, the step
contract, gradcheck of every preset and option, and input errors."""
from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck
from torch.func import functional_call

import lstmkit
from lstmkit import PRESETS, LSTMCell
from layers.helpers import check_pair, onnx_inputs, onnx_lstm, randomize_, twin

N, I, H = 3, 4, 5


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["fp32", "fp64"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("form", ["batched", "batched_hx", "unbatched", "unbatched_hx"])
def test_matches_torch_lstm_cell(form, bias, dtype):
    theirs, ours = twin(torch.nn.LSTMCell, LSTMCell, I, H, bias=bias, dtype=dtype)
    lead = () if form.startswith("unbatched") else (N,)
    x = torch.randn(lead + (I,), dtype=dtype, requires_grad=True)
    states = [torch.randn(lead + (H,), dtype=dtype, requires_grad=True) for _ in range(2)] \
        if form.endswith("hx") else []
    hx = tuple(states) if states else None
    names = [n for n, _ in ours.named_parameters()]
    tp = dict(theirs.named_parameters())
    tol = 1e-6 if dtype == torch.float32 else 1e-12
    check_pair(lambda: ours(x, hx), lambda: theirs(x, hx),
               leaves=[x, *states, *ours.parameters()],
               ref_leaves=[x, *states, *(tp[n] for n in names)], atol=tol)


CELL_VARIANTS = [
    ("V", dict(preset="V"), 0),
    ("CIFG", dict(preset="CIFG"), 1),
    ("NIAF", dict(preset="NIAF"), 0),
    ("NOAF", dict(preset="NOAF"), 0),
    ("V-hard_sigmoid-relu", dict(preset="V", gate_activation="hard_sigmoid", input_activation="relu"), 0),
]


@pytest.mark.parametrize("name,kw,input_forget", CELL_VARIANTS, ids=[v[0] for v in CELL_VARIANTS])
def test_variant_cell_matches_one_onnx_step(name, kw, input_forget):
    """The ONNX operator over a single time step is one cell step."""
    layer = randomize_(lstmkit.LSTM(I, H, **kw))  # only to pack the ONNX inputs
    cell = LSTMCell(I, H, **kw)
    cell.load_state_dict({k[: -len("_l0")]: v for k, v in layer.state_dict().items()})
    x, h0, c0 = torch.randn(N, I), torch.randn(N, H), torch.randn(N, H)
    o = cell.options
    Y, Yh, Yc = onnx_lstm(x[None].numpy(), **onnx_inputs(layer), H0=h0[None].numpy(),
                          C0=c0[None].numpy(), input_forget=input_forget,
                          activations=(o.gate_activation, o.input_activation, o.output_activation))
    check_pair(lambda: cell(x, (h0, c0)), lambda: (torch.from_numpy(Yh[0]), torch.from_numpy(Yc[0])),
               atol=1e-5)


def test_step_contract_and_state():
    cell = LSTMCell(I, H, proj_size=2, preset="FGR")
    assert cell.state_size == (2, H, 3 * H)
    x = torch.randn(N, I)
    state = cell.initial_state(N, x)
    assert [tuple(s.shape) for s in state] == [(N, 2), (N, H), (N, 3 * H)]
    assert all(float(s.abs().sum()) == 0 for s in state)
    y, new = cell.step(x, state)
    new2, gates = cell.gates(x, state)
    assert torch.equal(y, new[0]) and all(torch.equal(a, b) for a, b in zip(new, new2))
    assert torch.equal(new[2], torch.cat([gates.i, gates.f, gates.o], dim=1))  # FGR carries gates
    assert all(torch.equal(a, b) for a, b in zip(cell(x, state), new))
    # the carried gates are used: a different a_{t-1} changes the step
    other = (state[0], state[1], torch.rand(N, 3 * H))
    assert not torch.allclose(cell(x, other)[0], new[0])
    # unbatched: every state tensor loses its batch dimension
    out = cell(x[0], tuple(s[0] for s in state))
    assert [tuple(s.shape) for s in out] == [(2,), (H,), (3 * H,)]
    assert all(torch.allclose(a, b[0]) for a, b in zip(out, new))


@pytest.mark.parametrize("preset,gate,value", [("NIG", "i", "one"), ("NFG", "f", "one"),
                                               ("NOG", "o", "one"), ("CIFG", "f", "1-i")])
def test_removed_gate_in_cell(preset, gate, value):
    cell = randomize_(LSTMCell(I, H, preset=preset))
    _, gates = cell.gates(torch.randn(N, I), (torch.randn(N, H), torch.randn(N, H)))
    want = torch.ones(N, H) if value == "one" else 1 - gates.i
    assert torch.equal(getattr(gates, gate), want)


CELL_GRADCHECK = [dict(preset=p) for p in PRESETS] + [
    dict(preset="V", layer_norm=True), dict(preset="CIFG", proj_size=2),
    dict(gate_activation="softsign", input_activation="identity", output_activation="relu"),
    dict(preset="FGR", bias=False, layer_norm=True),
]


@pytest.mark.parametrize("kw", CELL_GRADCHECK, ids=lambda kw: "-".join(f"{k}={v}" for k, v in kw.items()))
def test_cell_gradcheck(kw):
    cell = randomize_(LSTMCell(2, 3, dtype=torch.float64, **kw))
    x = torch.randn(2, 2, dtype=torch.float64, requires_grad=True)
    state = [torch.randn(2, n, dtype=torch.float64, requires_grad=True) for n in cell.state_size]
    names = [n for n, _ in cell.named_parameters()]
    params = [p.detach().clone().requires_grad_() for p in cell.parameters()]
    k = len(state)

    def f(x, *rest):
        return functional_call(cell, dict(zip(names, rest[k:])), (x, tuple(rest[:k])))

    assert gradcheck(f, (x, *state, *params), eps=1e-6, atol=1e-6, rtol=1e-4)


ERRORS = [
    ("rank", lambda c: c(torch.randn(2, N, I)), ValueError,
     r"^LSTMCell: expected input of shape \(N, 4\) or \(4,\), got tensor of shape \(2, 3, 4\)"),
    ("features", lambda c: c(torch.randn(N, I + 1)), ValueError,
     r"^LSTMCell: expected input with 4 features \(input_size\), got 5"),
    ("dtype", lambda c: c(torch.randn(N, I, dtype=torch.float64)), TypeError,
     r"^LSTMCell: expected input of dtype torch\.float32 .*got torch\.float64"),
    ("device", lambda c: c(torch.empty(N, I, device="meta")), ValueError,
     r"^LSTMCell: expected input on device cpu .*got meta"),
    ("not-a-tensor", lambda c: c([[0.0] * I]), TypeError,
     r"^LSTMCell: expected input to be a torch\.Tensor, got list"),
    ("state-count", lambda c: c(torch.randn(N, I), (torch.zeros(N, H),)), ValueError,
     r"^LSTMCell: expected a state of 2 tensor\(s\) with features \(5, 5\), got 1"),
    ("state-shape", lambda c: c(torch.randn(N, I), (torch.zeros(N, H), torch.zeros(N + 1, H))),
     ValueError, r"^LSTMCell: expected state\[1\] of shape \(3, 5\), got tensor of shape \(4, 5\)"),
    ("state-unbatched", lambda c: c(torch.randn(I), (torch.zeros(N, H), torch.zeros(N, H))),
     ValueError, r"^LSTMCell: expected state\[0\] of shape \(5,\), got tensor of shape \(3, 5\)"),
    ("state-dtype", lambda c: c(torch.randn(N, I), (torch.zeros(N, H).double(), torch.zeros(N, H))),
     TypeError, r"^LSTMCell: expected state\[0\] of dtype torch\.float32 .*got torch\.float64"),
]


@pytest.mark.parametrize("call,exc,pattern", [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_cell_rejects_bad_input(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call(LSTMCell(I, H))


@pytest.mark.parametrize("make,exc,pattern", [
    (lambda: LSTMCell(I, H, preset="W"), ValueError, r"^LSTMCell: unknown preset 'W'; expected one of"),
    (lambda: LSTMCell(I, H, peep=True), TypeError,
     r"^LSTMCell: unknown option\(s\) \['peep'\]; expected fields of LSTMOptions"),
    (lambda: LSTMCell(I, H, coupled=True, input_gate=False), ValueError,
     r"^LSTMCell: coupled=True derives f from i.*got input_gate=False"),
    (lambda: LSTMCell(I, H, proj_size=H), ValueError,
     r"^LSTMCell: expected ints input_size > 0, hidden_size > 0 and 0 <= proj_size < hidden_size; "
     r"got 4, 5, 5"),
    (lambda: LSTMCell(I, "5"), ValueError, r"^LSTMCell: expected ints .*got 4, '5', 0"),
    (lambda: LSTMCell(0, H), ValueError, r"^LSTMCell: expected ints .*got 0, 5, 0"),
    (lambda: LSTMCell(I, H, output_activation="gelu"), ValueError,
     r"^LSTMCell: unknown activation 'gelu'; expected one of"),
], ids=["preset", "option", "coupled-nig", "proj", "hidden-str", "input-zero", "activation"])
def test_cell_rejects_bad_arguments(make, exc, pattern):
    with pytest.raises(exc, match=pattern):
        make()


# -- the equations of lstmkit.cells.lstm's docstring, written out independently -------------------
WRITTEN_ACTIVATIONS = {
    "sigmoid": lambda v: 1 / (1 + torch.exp(-v)),
    "tanh": lambda v: (torch.exp(v) - torch.exp(-v)) / (torch.exp(v) + torch.exp(-v)),
    "identity": lambda v: v,
    "relu": lambda v: torch.where(v > 0, v, torch.zeros_like(v)),
    "hard_sigmoid": lambda v: torch.clamp(v / 6 + 0.5, 0, 1),  # torch.nn.Hardsigmoid
    "softsign": lambda v: v / (1 + v.abs()),
}


def _ln(v, gain, bias=None, eps=1e-5):
    """LayerNorm over the last dimension, written out (biased variance, as Ba et al.)."""
    mu = v.mean(-1, keepdim=True)
    var = ((v - mu) ** 2).mean(-1, keepdim=True)
    out = (v - mu) / torch.sqrt(var + eps) * gain
    return out if bias is None else out + bias


def written_out_step(x, h, c, a, p: dict, o: lstmkit.LSTMOptions, H: int):
    """One step of every variant, from the docstring's equations; returns (h, c, a, (i, f, g, o))."""
    sig, act_in, act_out = (WRITTEN_ACTIVATIONS[n] for n in
                            (o.gate_activation, o.input_activation, o.output_activation))
    wx, wh = x @ p["weight_ih"].t(), h @ p["weight_hh"].t()  # (N, 4H) each
    if o.layer_norm:
        wx, wh = _ln(wx, p["ln_ih"]), _ln(wh, p["ln_hh"])
    z = wx + wh
    if "bias_ih" in p:
        z = z + p["bias_ih"] + p["bias_hh"]
    pre = {k: z[:, n * H:(n + 1) * H] for n, k in enumerate("ifgo")}
    if o.peephole:
        pre["i"] = pre["i"] + p["weight_peephole"][0] * c
        pre["f"] = pre["f"] + p["weight_peephole"][1] * c
    if o.gate_recurrence:
        r = a @ p["weight_gr"].t()  # (N, 3H): rows [i; f; o]
        pre["i"], pre["f"], pre["o"] = pre["i"] + r[:, :H], pre["f"] + r[:, H:2 * H], pre["o"] + r[:, 2 * H:]
    one = torch.ones_like(c)
    i = sig(pre["i"]) if o.input_gate else one
    f = (1 - i) if o.coupled else (sig(pre["f"]) if o.forget_gate else one)
    g = act_in(pre["g"])
    c_new = f * c + i * g
    if o.peephole:
        pre["o"] = pre["o"] + p["weight_peephole"][2] * c_new
    og = sig(pre["o"]) if o.output_gate else one
    c_act = _ln(c_new, p["ln_c_weight"], p["ln_c_bias"]) if o.layer_norm else c_new
    h_new = og * act_out(c_act)
    if "weight_hr" in p:
        h_new = h_new @ p["weight_hr"].t()
    return h_new, c_new, torch.cat([i, f, og], 1), (i, f, g, og)


EQUATION_CASES = [dict(preset=p) for p in PRESETS] + [
    dict(preset="V", layer_norm=True),
    dict(preset="NIG", layer_norm=True, proj_size=2, bias=False),
    dict(preset="FGR", layer_norm=True, proj_size=3),
    dict(preset="CIFG", gate_activation="hard_sigmoid", input_activation="relu",
         output_activation="softsign"),
    dict(preset="NP", gate_activation="softsign", input_activation="identity", proj_size=1),
]


@pytest.mark.parametrize("kw", EQUATION_CASES, ids=lambda kw: "-".join(f"{k}={v}" for k, v in kw.items()))
def test_cell_equals_written_out_equations(kw):
    """lstm_step (which the layers, the reference kernel and the hand-stepped checks all use) against
    the docstring's equations written out here: values of h, c, the carried gates and i, f, g, o,
    and gradients of the inputs, states and every parameter."""
    cell = randomize_(LSTMCell(I, H, dtype=torch.float64, **kw), scale=1.2)
    with torch.no_grad():  # LayerNorm biases away from zero too
        for name, prm in cell.named_parameters():
            if name == "ln_c_bias":
                prm.uniform_(-0.5, 0.5)
    x = torch.randn(N, I, dtype=torch.float64, requires_grad=True)
    h = torch.randn(N, cell.state_size[0], dtype=torch.float64, requires_grad=True)
    c = torch.randn(N, H, dtype=torch.float64, requires_grad=True)
    a = torch.rand(N, 3 * H, dtype=torch.float64, requires_grad=True)
    gr = cell.options.gate_recurrence
    state = (h, c, a) if gr else (h, c)
    params = dict(cell.named_parameters())

    def ours():
        new, gates = cell.gates(x, state)
        return tuple(new) + ((torch.cat([gates.i, gates.f, gates.o], 1),) if not gr else ()) + tuple(gates)

    def written():
        h1, c1, a1, gates = written_out_step(x, h, c, a if gr else None, params, cell.options, H)
        return (h1, c1, a1) + tuple(gates)

    # torch's hardsigmoid backward multiplies by a float32 1/6 even in float64 (relative 3e-8)
    grad_rtol = 1e-6 if cell.options.gate_activation == "hard_sigmoid" else 1e-9
    check_pair(ours, written, leaves=[x, *state, *params.values()],
               ref_leaves=[x, *state, *params.values()],
               names=["x", "h", "c", "a"][:len(state) + 1] + list(params), atol=1e-12,
               grad_atol=1e-11, grad_rtol=grad_rtol)
