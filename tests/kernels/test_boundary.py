"""The kernel boundary: the operators' named schema, and every tensor checked at the C++ boundary
(issue 8, item 6: a parameter of the wrong shape used to be read out of bounds).

Each error must name the parameter, the expected and the actual shape; the fake implementation
(what torch.compile / export / the meta device run) says the same while a graph is traced.
"""
from __future__ import annotations

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from lstmkit.cells.gru import GRUParams
from lstmkit.cells.lstm import PRESETS, LSTMOptions, LSTMParams
from lstmkit.kernels import fused, ops, schema

from .helpers import gru_case, lstm_case, needs_fused


def _replace(case, **params):
    return case.params._replace(**params)


def _lstm_call(case, params=None, h0=None, **kw):
    h0 = case.state[0] if h0 is None else h0
    return fused.lstm_direction(case.x.detach(), h0.detach(), case.state[1].detach(),
                                LSTMParams(*(None if p is None else p.detach()
                                             for p in (params or case.params))),
                                case.opts, case.lengths, **kw)


# (what, case keywords, replaced parameter, wrong shape, the expected shape in the message)
LSTM_WRONG = [
    ("peephole (3, 2) in an H=256 layer", dict(opts=PRESETS["V"], H=256), "weight_peephole", (3, 2),
     r"weight_peephole: expected shape \(3, 256\).*got \(3, 2\)"),
    ("a bias of 4 elements", dict(opts=LSTMOptions(), H=6), "bias_ih", (4,),
     r"bias_ih: expected shape \(24,\).*got \(4,\)"),
    ("a wrong-size layer-norm gain", dict(opts=LSTMOptions(layer_norm=True), H=6), "ln_c_weight",
     (5,), r"ln_c_weight: expected shape \(6,\).*got \(5,\)"),
    ("a wrong-size input LN gain", dict(opts=LSTMOptions(layer_norm=True), H=6), "ln_ih", (20,),
     r"ln_ih: expected shape \(24,\).*got \(20,\)"),
    ("weight_gr", dict(opts=PRESETS["FGR"], H=6), "weight_gr", (18, 12),
     r"weight_gr: expected shape \(18, 18\).*got \(18, 12\)"),
    ("weight_hr", dict(opts=LSTMOptions(), H=6, P=4), "weight_hr", (4, 5),
     r"weight_hr: expected shape \(4, 6\).*got \(4, 5\)"),
    ("weight_ih", dict(opts=LSTMOptions(), H=6), "weight_ih", (24, 3),
     r"weight_ih: expected shape \(24, 4\).*got \(24, 3\)"),
]


@needs_fused
@pytest.mark.parametrize("what,kw,name,shape,message", LSTM_WRONG, ids=[w[0] for w in LSTM_WRONG])
def test_lstm_parameter_of_the_wrong_shape_is_named(what, kw, name, shape, message):
    case = lstm_case(kw.pop("opts"), torch.float32, **kw)
    bad = _replace(case, **{name: torch.randn(shape)})
    with pytest.raises(ValueError, match=message):
        _lstm_call(case, bad)


@needs_fused
def test_lstm_h0_whose_batch_differs_from_x():
    case = lstm_case(PRESETS["V"], torch.float32, N=3)
    with pytest.raises(ValueError, match=r"h0: expected shape \(3, 6\).*N=3.*got \(2, 6\)"):
        _lstm_call(case, h0=torch.randn(2, 6))


@needs_fused
@pytest.mark.parametrize("name,shape", [("bias_hh", (7,)), ("bias_ih", (9, 2)), ("weight_hh", (18, 5))])
def test_gru_parameter_of_the_wrong_shape_is_named(name, shape):
    case = gru_case(torch.float32, H=6)
    p = GRUParams(*(t.detach() for t in case.params))._replace(**{name: torch.randn(shape)})
    with pytest.raises(ValueError, match=name):
        fused.gru_direction(case.x.detach(), case.state[0].detach(), p)


@needs_fused
def test_masks_and_lengths_are_checked():
    case = lstm_case(LSTMOptions(), torch.float32, T=5, N=3, H=6)
    with pytest.raises(ValueError, match=r"zoneout_c: expected shape \(5, 3, 6\).*got \(5, 3, 5\)"):
        _lstm_call(case, zoneout_c=torch.rand(5, 3, 5))
    with pytest.raises(ValueError, match=r"rec_mask: expected shape \(3, 6\)"):
        _lstm_call(case, rec_mask=torch.ones(6, 3))
    p = case.params
    args = dict(x=case.x.detach(), h0=case.state[0].detach(), c0=case.state[1].detach(),
                **{k: (None if v is None else v.detach()) for k, v in p._asdict().items()})
    with pytest.raises(ValueError, match=r"lengths: expected every value in \[1, T=5\], got 9 at index 1"):
        ops.lstm_forward(**args, lengths=torch.tensor([5, 9, 1]))
    with pytest.raises(TypeError, match=r"lengths: expected dtype Long, got Int"):
        ops.lstm_forward(**args, lengths=torch.tensor([5, 2, 1], dtype=torch.int32))


@needs_fused
def test_dtype_contiguity_and_options_are_checked_at_the_operator():
    case = lstm_case(PRESETS["V"], torch.float32, H=6)
    args = dict(x=case.x.detach(), h0=case.state[0].detach(), c0=case.state[1].detach(),
                **{k: (None if v is None else v.detach()) for k, v in case.params._asdict().items()})
    with pytest.raises(ValueError, match="weight_hh: expected a contiguous tensor"):
        ops.lstm_forward(**{**args, "weight_hh": args["weight_hh"].t().contiguous().t()},
                         peephole=True)
    with pytest.raises(TypeError, match=r"weight_ih: expected dtype Float \(x's dtype\), got Double"):
        ops.lstm_forward(**{**args, "weight_ih": args["weight_ih"].double()}, peephole=True)
    with pytest.raises(ValueError, match="peephole=False but weight_peephole is given"):
        ops.lstm_forward(**args)
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        ops.lstm_forward(**args, peephole=True, gate_activation="swish")


def test_the_fake_implementation_names_the_wrong_parameter():
    """While a graph is traced (fake tensors: torch.compile, export) the same error is raised."""
    case = lstm_case(PRESETS["V"], torch.float32, H=256, N=3)
    mode = FakeTensorMode()
    real = dict(x=case.x, h0=case.state[0], c0=case.state[1], **case.params._asdict(),
                bad=torch.randn(3, 2))

    def fake(t):
        return None if t is None else mode.from_tensor(t.detach())

    args = {k: fake(v) for k, v in real.items()}
    bad = args.pop("bad")
    with mode:
        out = ops.lstm_forward(**args, peephole=True)
        assert tuple(out["h_all"].shape) == (6, 3, 256) and out["h_in"] is None
        with pytest.raises(ValueError, match=r"weight_peephole: expected shape \(3, 256\).*\(3, 2\)"):
            ops.lstm_forward(**{**args, "weight_peephole": bad}, peephole=True)


def test_schema_is_generated_from_the_named_tables():
    """Every LSTMParams field and every LSTMOptions field is a named argument of the operator."""
    s = torch.ops.lstmkit.lstm_forward.default._schema
    names = [a.name for a in s.arguments]
    assert names[:3] == ["x", "h0", "c0"]
    assert names[3:3 + len(LSTMParams._fields)] == list(LSTMParams._fields)
    kwarg_only = [a.name for a in s.arguments if a.kwarg_only]
    assert kwarg_only == [f for f in LSTMOptions.__dataclass_fields__] + ["need_backward", "input_grad"]
    assert [r.name for r in s.returns] == [r.name for r in schema.LSTM_RESULTS]
    g = torch.ops.lstmkit.gru_forward.default._schema
    assert [a.name for a in g.arguments][2:6] == list(GRUParams._fields)


@needs_fused
@pytest.mark.parametrize("kind,opts,kw", [
    ("lstm", PRESETS["V"], dict(lengths=[5, 2, 4], zoneout_c=True, rec=True)),
    pytest.param("lstm", LSTMOptions(layer_norm=True, gate_recurrence=True), dict(P=4),
                 marks=pytest.mark.slow),
    ("gru", None, dict(lengths=[5, 2, 4], rec=True)),
], ids=["lstm-V", "lstm-LN-FGR-proj", "gru"])
def test_opcheck(kind, opts, kw):
    """torch.library.opcheck: schema, fake implementation (shapes, strides, dtypes of every result),
    autograd registration and AOT dispatch agree with the real kernels."""
    case = lstm_case(opts, torch.float64, **kw) if kind == "lstm" else gru_case(torch.float64, **kw)
    args = dict(x=case.x, h0=case.state[0])
    if kind == "lstm":
        args["c0"] = case.state[1]
    args.update(case.params._asdict())
    masks = {"rec": "rec_mask", "zoneout_c": "zoneout_c", "zoneout_h": "zoneout_h"}
    args.update({masks[k]: v for k, v in case.masks.items() if v is not None})
    args["lengths"] = case.lengths
    op = getattr(torch.ops.lstmkit, f"{kind}_forward")
    kwargs = case.opts.to_dict() if kind == "lstm" else {}
    torch.library.opcheck(op, (), {**args, **kwargs},
                          test_utils=("test_schema", "test_faketensor", "test_autograd_registration",
                                      "test_aot_dispatch_dynamic"))


@needs_fused
@pytest.mark.parametrize("I", [4, 9], ids=["rewrite-I^2<=8H", "keep-xw-I^2>8H"])
def test_opcheck_layer_norm_with_input_grad(I):
    """With dx wanted, layer norm keeps x W_ih^T for backward only where I^2 > 8H (csrc/fused.h,
    ln_input_through_x); the fake implementation (schema.py, _ln_keeps_xw) declares the same
    results on both sides of the rule."""
    case = lstm_case(LSTMOptions(layer_norm=True), torch.float64, I=I, H=6, lengths=[5, 2, 4])
    args = dict(x=case.x, h0=case.state[0], c0=case.state[1], lengths=case.lengths)
    args.update(case.params._asdict())
    out = torch.ops.lstmkit.lstm_forward(**args, **case.opts.to_dict(), input_grad=True)
    xw = out[[r.name for r in schema.LSTM_RESULTS].index("xw")]
    assert xw.numel() == (0 if I * I <= 8 * 6 else 5 * 3 * 24)
    torch.library.opcheck(torch.ops.lstmkit.lstm_forward, (),
                          {**args, **case.opts.to_dict(), "input_grad": True},
                          test_utils=("test_schema", "test_faketensor", "test_autograd_registration",
                                      "test_aot_dispatch_dynamic"))


@needs_fused
def test_backward_of_a_forward_that_kept_nothing_is_refused():
    """A direct operator call with need_backward=False keeps no buffers for backward; differentiating
    its results is refused by name (it crashed the process before: a newcomer's find)."""
    case = lstm_case(LSTMOptions(layer_norm=True), torch.float64)
    args = dict(x=case.x, h0=case.state[0], c0=case.state[1], **case.params._asdict())
    out = torch.ops.lstmkit.lstm_forward(**args, **case.opts.to_dict(), need_backward=False)
    with pytest.raises(RuntimeError, match="need_backward=False and kept nothing for backward"):
        out[0].sum().backward()
    out = torch.ops.lstmkit.lstm_forward(**args, **case.opts.to_dict(), need_backward=True)
    out[0].sum().backward()
    assert case.x.grad is not None and case.params.weight_ih.grad is not None
