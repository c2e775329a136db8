"""ONNX export of lstmkit layers: the ``onnx`` backend that :mod:`lstmkit.kernels.dispatch` picks
while ``torch.onnx.export`` traces a model, with either exporter.

Where the ONNX ``LSTM`` operator expresses the math exactly (:func:`expressible`), one direction of a
layer becomes one ONNX ``LSTM`` node (gate order i, o, f, c; peephole P = [p_i, p_o, p_f];
``input_forget=1`` is lstmkit's CIFG, ``f = 1 - i``; activations Sigmoid, Tanh, Relu, Softsign,
HardSigmoid(1/6, 1/2) and Affine(1, 0) for identity; ``sequence_lens`` from ``lengths``). That
covers the vanilla cell, peepholes, CIFG, the activation variants (NIAF, NOAF...) and bias=False.
Every other cell (layer norm, gate recurrence, projection, removed gates NIG/NFG/NOG, zoneout in
eval) runs its step in a loop over the dynamic time axis:

* dynamo exporter (``dynamo=True``): :func:`lstm_node` / :func:`gru_node` emit the ONNX nodes with
  ``torch.onnx.ops.symbolic_multi_out`` (no custom translation table); the loop is the reference
  direction (``kernels/reference.py``), whose time loop ``layers/scan.py`` traces as torch's
  ``scan`` operator, exported as an ONNX ``Scan``. The gate trace is exported (the Scan's outputs).
* TorchScript exporter: the fused operator translated by :func:`lstm_forward_symbolic`, or a
  TorchScript loop generated per variant (:func:`_loop_source`) that becomes an ONNX ``Loop``.
  The gate trace is refused.

Bidirectional layers and stacks are composed around the directions by the layer (time reversal
within each length). Export layers in eval mode: recurrent dropout and sampled zoneout are
training-time options.
"""
from __future__ import annotations

import sys
from typing import Optional

import torch
from torch import Tensor

_ACTIVATIONS = {  # lstmkit name -> (ONNX name, alpha, beta)
    "sigmoid": ("Sigmoid", None, None),
    "tanh": ("Tanh", None, None),
    "identity": ("Affine", 1.0, 0.0),
    "relu": ("Relu", None, None),
    "hard_sigmoid": ("HardSigmoid", 1.0 / 6.0, 0.5),  # torch's hardsigmoid: clip(x/6 + 1/2, 0, 1)
    "softsign": ("Softsign", None, None),
}
_registered = {"done": False}
OPSET = 14


def _exporting_flags():
    """A function that reads torch.onnx.is_in_onnx_export()'s two flags directly: that function
    imports their modules on every call, and the layers ask on every forward. torch.onnx's own
    function where those private modules are not found, and while dynamo traces (it may not trace
    into torch.onnx's internals)."""
    try:
        from torch.onnx._internal.exporter import _flags
        from torch.onnx._internal.torchscript_exporter._globals import GLOBALS
    except ImportError:
        return torch.onnx.is_in_onnx_export
    if not (hasattr(_flags, "_is_onnx_exporting") and hasattr(GLOBALS, "in_onnx_export")):
        return torch.onnx.is_in_onnx_export
    public = torch.onnx.is_in_onnx_export  # (what dynamo knows how to trace)
    return lambda: (public() if torch.compiler.is_compiling()
                    else GLOBALS.in_onnx_export or _flags._is_onnx_exporting)


_is_exporting: list = []  # _exporting_flags(), once torch.onnx is imported


def exporter() -> Optional[str]:
    """"dynamo" or "torchscript" while ``torch.onnx.export`` traces a model (the TorchScript
    exporter traces with ``torch.jit``), else None."""
    if not _is_exporting:
        if "torch.onnx" not in sys.modules:
            return None  # (torch.onnx is imported lazily: not imported, not exporting)
        _is_exporting.append(_exporting_flags())
    if not _is_exporting[0]():
        return None
    return "torchscript" if torch.jit.is_tracing() else "dynamo"


def _none(v) -> bool:
    return v is None or v.node().mustBeNone()


def _iofc(g, w):
    """Rows [i | f | g | o] -> ONNX's [i | o | f | c]."""
    i, f, c, o = _split4(g, w, 0)
    return g.op("Concat", i, o, f, c, axis_i=0)


def _split4(g, w, axis):
    from torch.onnx import symbolic_helper as sh

    n = sh._get_tensor_sizes(w)[axis] // 4
    sizes = g.op("Constant", value_t=torch.tensor([n] * 4, dtype=torch.int64))
    return g.op("Split", w, sizes, axis_i=axis, outputs=4)


def lstm_forward_symbolic(g, x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh, weight_hr,
                          weight_peephole, weight_gr, ln_ih, ln_hh, ln_c_weight, ln_c_bias, lengths,
                          rec_mask, zoneout_c, zoneout_h, peephole, coupled, input_gate,
                          forget_gate, output_gate, gate_activation, input_activation,
                          output_activation, gate_recurrence, layer_norm, need_backward,
                          input_grad):
    from torch.onnx import symbolic_helper as sh

    flag = lambda v: bool(sh._maybe_get_const(v, "b"))  # noqa: E731
    name = lambda v: sh._maybe_get_const(v, "s")  # noqa: E731
    refused = [n for n, bad in (("layer_norm", flag(layer_norm)),
                                ("gate_recurrence", flag(gate_recurrence)),
                                ("input_gate=False", not flag(input_gate)),
                                ("forget_gate=False", not flag(forget_gate)),
                                ("output_gate=False", not flag(output_gate)),
                                ("proj_size", not _none(weight_hr)),
                                ("recurrent dropout", not _none(rec_mask)),
                                ("zoneout", not (_none(zoneout_c) and _none(zoneout_h))))
               if bad]
    if refused:
        raise ValueError(f"lstmkit ONNX export: the ONNX LSTM operator cannot express "
                         f"{', '.join(refused)}; export supports the vanilla cell, peepholes, CIFG, "
                         f"activation variants, bias=False, bidirectional and lengths")
    H = sh._get_tensor_sizes(weight_hh)[0] // 4
    W = sh._unsqueeze_helper(g, _iofc(g, weight_ih), [0])
    R = sh._unsqueeze_helper(g, _iofc(g, weight_hh), [0])
    if _none(bias_ih):
        B = g.op("Constant", value_t=torch.zeros(1, 8 * H))
    else:
        B = sh._unsqueeze_helper(g, g.op("Concat", _iofc(g, bias_ih), _iofc(g, bias_hh), axis_i=0), [0])
    shape = g.op("Shape", x)
    T = sh._slice_helper(g, shape, axes=[0], starts=[0], ends=[1])
    N = sh._slice_helper(g, shape, axes=[0], starts=[1], ends=[2])
    if _none(lengths):
        seq = g.op("Expand", T, N)
    else:
        seq = lengths
    seq = g.op("Cast", seq, to_i=6)  # INT32
    inputs = [x, W, R, B, seq, sh._unsqueeze_helper(g, h0, [0]), sh._unsqueeze_helper(g, c0, [0])]
    if flag(peephole):
        pi, pf, po = g.op("Split", weight_peephole,
                          g.op("Constant", value_t=torch.tensor([1, 1, 1], dtype=torch.int64)),
                          axis_i=0, outputs=3)
        inputs.append(g.op("Reshape", g.op("Concat", pi, po, pf, axis_i=0),
                           g.op("Constant", value_t=torch.tensor([1, 3 * H], dtype=torch.int64))))
    acts, alphas, betas = [], [], []
    for a in (name(gate_activation), name(input_activation), name(output_activation)):
        onnx_name, alpha, beta = _ACTIVATIONS[a]
        acts.append(onnx_name)
        if alpha is not None:
            alphas.append(alpha)
        if beta is not None:
            betas.append(beta)
    attrs = dict(hidden_size_i=H, activations_s=acts, input_forget_i=int(flag(coupled)),
                 direction_s="forward")
    if alphas:
        attrs["activation_alpha_f"] = alphas
    if betas:
        attrs["activation_beta_f"] = betas
    Y, Y_h, Y_c = g.op("LSTM", *inputs, outputs=3, **attrs)
    y = sh._squeeze_helper(g, Y, [1])  # (T, N, H)
    h_all = g.op("Concat", sh._unsqueeze_helper(g, h0, [0]), y, axis_i=0)
    h_n, c_n = sh._squeeze_helper(g, Y_h, [0]), sh._squeeze_helper(g, Y_c, [0])
    empty = [g.op("Constant", value_t=torch.zeros(0)) for _ in range(9)]  # trace/backward buffers
    return (h_all, h_n, c_n, *empty)


def gru_forward_symbolic(g, x, h0, weight_ih, weight_hh, bias_ih, bias_hh, lengths, rec_mask, zoneout_h):
    """``lstmkit::gru_forward`` -> one ONNX ``GRU`` node (forward direction, ``linear_before_reset=1``,
    which is torch's and lstmkit's GRU; gates [r|z|n] reordered to ONNX's [z|r|h]); ``sequence_lens``
    from lengths. Recurrent dropout and zoneout (training only) are refused."""
    from torch.onnx import symbolic_helper as sh

    if not (_none(rec_mask) and _none(zoneout_h)):
        raise ValueError("lstmkit ONNX export: the ONNX GRU operator cannot express recurrent dropout or "
                         "zoneout in training mode; export the model in eval mode (model.eval())")
    H = sh._get_tensor_sizes(weight_hh)[0] // 3

    def zrh(w):
        n = sh._get_tensor_sizes(w)[0] // 3
        r, z, c = g.op("Split", w, g.op("Constant", value_t=torch.tensor([n] * 3, dtype=torch.int64)),
                       axis_i=0, outputs=3)
        return g.op("Concat", z, r, c, axis_i=0)

    W = sh._unsqueeze_helper(g, zrh(weight_ih), [0])
    R = sh._unsqueeze_helper(g, zrh(weight_hh), [0])
    if _none(bias_ih):
        B = g.op("Constant", value_t=torch.zeros(1, 6 * H))
    else:
        B = sh._unsqueeze_helper(g, g.op("Concat", zrh(bias_ih), zrh(bias_hh), axis_i=0), [0])
    shape = g.op("Shape", x)
    T = sh._slice_helper(g, shape, axes=[0], starts=[0], ends=[1])
    N = sh._slice_helper(g, shape, axes=[0], starts=[1], ends=[2])
    seq = g.op("Cast", g.op("Expand", T, N) if _none(lengths) else lengths, to_i=6)  # INT32
    Y, Y_h = g.op("GRU", x, W, R, B, seq, sh._unsqueeze_helper(g, h0, [0]), outputs=2, hidden_size_i=H,
                  direction_s="forward", linear_before_reset_i=1)
    y = sh._squeeze_helper(g, Y, [1])  # (T, N, H)
    h_all = g.op("Concat", sh._unsqueeze_helper(g, h0, [0]), y, axis_i=0)
    empty = [g.op("Constant", value_t=torch.zeros(0)) for _ in range(3)]  # gates, hn, h_in buffers
    return (h_all, sh._squeeze_helper(g, Y_h, [0]), *empty)


def register() -> None:
    """Register the symbolics once (called when a layer runs inside torch.onnx.export)."""
    if _registered["done"]:
        return
    torch.onnx.register_custom_op_symbolic("lstmkit::lstm_forward", lstm_forward_symbolic, OPSET)
    torch.onnx.register_custom_op_symbolic("lstmkit::gru_forward", gru_forward_symbolic, OPSET)
    _registered["done"] = True


# ---- the dynamo exporter (torch.onnx.export(..., dynamo=True)) ----------------------------------------
# The layer emits the ONNX nodes itself while the exporter traces it, so no custom translation table
# is needed: torch.onnx.ops.symbolic_multi_out puts an ONNX LSTM / GRU node into the traced graph
# (its output shapes are symbolic, so batch and time stay dynamic); every other call runs the
# reference direction, whose time loop (layers/scan.py) is traced as torch's scan operator and
# exported as an ONNX Scan.
def _reorder(w: Tensor, order: tuple[int, ...]) -> Tensor:
    """Blocks of rows of w in the given order (lstmkit/torch packing -> ONNX packing)."""
    n = w.shape[0] // len(order)  # (slices, not chunk: the exporter folds them into the weights)
    return torch.cat([w[k * n:(k + 1) * n] for k in order], 0)


_IOFC, _ZRH = (0, 3, 1, 2), (1, 0, 2)  # [i|f|g|o] -> ONNX [i|o|f|c]; [r|z|n] -> ONNX [z|r|h]


def _activation_attrs(names) -> dict:
    acts, alphas, betas = [], [], []
    for a in names:
        onnx_name, alpha, beta = _ACTIVATIONS[a]
        acts.append(onnx_name)
        if alpha is not None:
            alphas.append(alpha)
            betas.append(beta)
    attrs = {"activations": acts}
    if alphas:
        attrs.update(activation_alpha=alphas, activation_beta=betas)
    return attrs


def _seq_lens(lengths: Optional[Tensor]) -> Optional[Tensor]:
    return None if lengths is None else lengths.to(torch.int32)


def lstm_node(x: Tensor, h0: Tensor, c0: Tensor, p, opts, lengths: Optional[Tensor]):
    """One ONNX ``LSTM`` node (forward direction) for a cell it expresses exactly
    (:func:`expressible`): y (T, N, H), h_n (N, H), c_n (N, H)."""
    T, N, H = x.shape[0], x.shape[1], c0.shape[1]
    W = _reorder(p.weight_ih, _IOFC).unsqueeze(0)  # (1, 4H, I)
    R = _reorder(p.weight_hh, _IOFC).unsqueeze(0)  # (1, 4H, H)
    B = None if p.bias_ih is None else torch.cat(
        [_reorder(p.bias_ih, _IOFC), _reorder(p.bias_hh, _IOFC)]).unsqueeze(0)  # (1, 8H)
    P = None
    if opts.peephole:  # rows [p_i, p_f, p_o] -> ONNX [p_i, p_o, p_f]
        P = _reorder(p.weight_peephole, (0, 2, 1)).reshape(1, 3 * H)
    attrs = dict(hidden_size=H, direction="forward", input_forget=int(opts.coupled),
                 **_activation_attrs((opts.gate_activation, opts.input_activation,
                                      opts.output_activation)))
    Y, Y_h, Y_c = torch.onnx.ops.symbolic_multi_out(
        "LSTM", [x, W, R, B, _seq_lens(lengths), h0.unsqueeze(0), c0.unsqueeze(0), P], attrs,
        dtypes=[x.dtype] * 3, shapes=[(T, 1, N, H), (1, N, H), (1, N, H)], version=OPSET)
    return Y.squeeze(1), Y_h.squeeze(0), Y_c.squeeze(0)


def gru_node(x: Tensor, h0: Tensor, p, lengths: Optional[Tensor]):
    """One ONNX ``GRU`` node (forward direction, ``linear_before_reset=1``, which is torch's GRU):
    y (T, N, H), h_n (N, H)."""
    T, N, H = x.shape[0], x.shape[1], h0.shape[1]
    W = _reorder(p.weight_ih, _ZRH).unsqueeze(0)  # (1, 3H, I)
    R = _reorder(p.weight_hh, _ZRH).unsqueeze(0)  # (1, 3H, H)
    B = None if p.bias_ih is None else torch.cat(
        [_reorder(p.bias_ih, _ZRH), _reorder(p.bias_hh, _ZRH)]).unsqueeze(0)  # (1, 6H)
    Y, Y_h = torch.onnx.ops.symbolic_multi_out(
        "GRU", [x, W, R, B, _seq_lens(lengths), h0.unsqueeze(0)],
        dict(hidden_size=H, direction="forward", linear_before_reset=1),
        dtypes=[x.dtype] * 2, shapes=[(T, 1, N, H), (1, N, H)], version=OPSET)
    return Y.squeeze(1), Y_h.squeeze(0)


def translation_table() -> dict:
    """Kept for code written for an earlier lstmkit: ``torch.onnx.export(..., dynamo=True)`` needs no
    custom translation table any more (the layers emit ONNX nodes themselves), so this is empty and
    passing it changes nothing."""
    return {}


_NO_TRACE = ("lstmkit ONNX export: the gate trace (return_trace=True) is not exported by the "
             "TorchScript exporter; use torch.onnx.export(..., dynamo=True)")


# ---- the "onnx" backend of kernels/dispatch.py: one direction of a layer under torch.onnx.export ----
def lstm_direction(x: Tensor, h0: Tensor, c0: Tensor, p, opts, lengths: Optional[Tensor] = None,
                   rec_mask: Optional[Tensor] = None, zoneout_c: Optional[Tensor] = None,
                   zoneout_h: Optional[Tensor] = None, want_trace: bool = False):
    """The contract of :func:`lstmkit.kernels.reference.lstm_direction`, while a layer is exported.

    ONNX ``LSTM`` node where the operator computes the cell exactly (:func:`expressible`, no
    zoneout or recurrent dropout, no gate trace); otherwise the step as a loop over the dynamic
    time axis: an ONNX ``Scan`` of the reference step (dynamo exporter) or an ONNX ``Loop`` of the
    generated TorchScript step (TorchScript exporter).
    """
    exact = expressible(opts, p) and zoneout_c is None and zoneout_h is None and rec_mask is None
    if not torch.jit.is_tracing():  # dynamo exporter
        if exact and not want_trace:
            y, h_n, c_n = lstm_node(x, h0, c0, p, opts, lengths)
            return y, h_n, c_n, None
        from . import reference

        return reference.lstm_direction(x, h0, c0, p, opts, lengths, rec_mask, zoneout_c,
                                        zoneout_h, want_trace)
    if want_trace:
        raise ValueError(_NO_TRACE)
    from . import fused

    if exact and fused.available():  # the fused operator, translated by lstm_forward_symbolic
        register()
        return fused.lstm_direction(x, h0, c0, p, opts, lengths, rec_mask, None, None)
    if lengths is not None:
        lengths = lengths.to(device="cpu", dtype=torch.int64)
    y, h_n, c_n = lstm_direction_loop(x, h0, c0, p, opts, lengths, rec_mask, zoneout_c, zoneout_h)
    return y, h_n, c_n, None


def gru_direction(x: Tensor, h0: Tensor, p, lengths: Optional[Tensor] = None,
                  rec_mask: Optional[Tensor] = None, zoneout_h: Optional[Tensor] = None,
                  want_trace: bool = False):
    """The contract of :func:`lstmkit.kernels.reference.gru_direction` under the dynamo exporter:
    an ONNX ``GRU`` node, or the reference step in an ONNX ``Scan`` (zoneout, recurrent dropout,
    gate trace). Under the TorchScript exporter the fused operator, which :func:`gru_forward_symbolic`
    translates to the same ``GRU`` node (dynamic time axis); without the fused library, or with
    zoneout, the step in an ONNX ``Loop`` over the dynamic time axis (:func:`gru_direction_loop`)."""
    if not torch.jit.is_tracing():
        if zoneout_h is None and rec_mask is None and not want_trace:
            y, h_n = gru_node(x, h0, p, lengths)
            return y, h_n, None
        from . import reference

        return reference.gru_direction(x, h0, p, lengths, rec_mask, zoneout_h, want_trace)
    if want_trace:
        raise ValueError(_NO_TRACE)
    from . import fused, reference

    if fused.available() and rec_mask is None and zoneout_h is None:
        register()
        return fused.gru_direction(x, h0, p, lengths, None, None, False)
    return gru_direction_loop(x, h0, p, lengths, rec_mask, zoneout_h) + (None,)


# ---- variants the ONNX LSTM operator cannot express: the step in an ONNX Loop ------------------------
# One TorchScript function per variant, generated from the equations of lstmkit.cells.lstm.lstm_step
# with the variant's choices fixed (no branch inside the loop: the exporter cannot convert branches
# on strings or None). Called while the TorchScript exporter traces a layer, its `for t in range(T)`
# becomes an ONNX Loop over the (dynamic) time axis.
_ACT_CODE = {
    "sigmoid": "torch.sigmoid({})", "tanh": "torch.tanh({})", "relu": "torch.relu({})",
    "hard_sigmoid": "torch.clamp({} / 6.0 + 0.5, 0.0, 1.0)",
    "softsign": "({0}) / (1.0 + torch.abs({0}))", "identity": "({})",
}
_LN = "(({0}) - ({0}).mean(-1, keepdim=True)) / torch.sqrt(({0}).var(-1, unbiased=False, keepdim=True) + 1e-5)"
_loops: dict = {}


def _loop_source(opts, bias: bool, proj: bool, lengths: bool, zc: bool, zh: bool) -> str:
    act = lambda name, z: _ACT_CODE[name].format(z)  # noqa: E731
    o = opts
    L = ["def lstm_loop(x: Tensor, h0: Tensor, c0: Tensor, w_ih: Tensor, w_hh: Tensor, b: Tensor,",
         "              w_hr: Tensor, w_peep: Tensor, w_gr: Tensor, ln_ih: Tensor, ln_hh: Tensor,",
         "              ln_cw: Tensor, ln_cb: Tensor, valid: Tensor, zone_c: Tensor, zone_h: Tensor):",
         "    H = c0.size(1)",
         "    h, c = h0, c0",
         "    a = torch.cat([c0 * 0.0, c0 * 0.0, c0 * 0.0], 1)",
         "    ys = h0.unsqueeze(0)[:0]",
         "    for t in range(x.size(0)):",
         "        xw = torch.matmul(x[t], w_ih.t())",
         "        hw = torch.matmul(h, w_hh.t())"]
    if o.layer_norm:
        L += [f"        xw = {_LN.format('xw')} * ln_ih", f"        hw = {_LN.format('hw')} * ln_hh"]
    L += ["        z = xw + hw" + (" + b" if bias else ""),
          "        zi, zf, zg, zo = z[:, :H], z[:, H:2 * H], z[:, 2 * H:3 * H], z[:, 3 * H:]"]
    if o.peephole:
        L += ["        zi = zi + w_peep[0] * c", "        zf = zf + w_peep[1] * c"]
    if o.gate_recurrence:
        L += ["        r = torch.matmul(a, w_gr.t())",
              "        zi, zf, zo = zi + r[:, :H], zf + r[:, H:2 * H], zo + r[:, 2 * H:]"]
    L += ["        i = " + (act(o.gate_activation, "zi") if o.input_gate else "c * 0.0 + 1.0")]
    L += ["        f = " + ("1.0 - i" if o.coupled else
                           act(o.gate_activation, "zf") if o.forget_gate else "c * 0.0 + 1.0")]
    L += ["        g = " + act(o.input_activation, "zg"), "        c_t = f * c + i * g"]
    if o.peephole:
        L += ["        zo = zo + w_peep[2] * c_t"]
    L += ["        o = " + (act(o.gate_activation, "zo") if o.output_gate else "c * 0.0 + 1.0")]
    c_out = f"{_LN.format('c_t')} * ln_cw + ln_cb" if o.layer_norm else "c_t"
    L += [f"        c_out = {c_out}", "        h_t = o * " + act(o.output_activation, "c_out")]
    if proj:
        L += ["        h_t = torch.matmul(h_t, w_hr.t())"]
    if zc:
        L += ["        c_t = zone_c[t] * c + (1.0 - zone_c[t]) * c_t"]
    if zh:
        L += ["        h_t = zone_h[t] * h + (1.0 - zone_h[t]) * h_t"]
    L += ["        a_t = torch.cat([i, f, o], 1)"]
    if lengths:
        L += ["        v = valid[t]", "        h_t = v * h_t + (1.0 - v) * h",
              "        c_t = v * c_t + (1.0 - v) * c", "        a_t = v * a_t + (1.0 - v) * a",
              "        ys = torch.cat([ys, (v * h_t).unsqueeze(0)], 0)"]
    else:
        L += ["        ys = torch.cat([ys, h_t.unsqueeze(0)], 0)"]
    L += ["        h, c, a = h_t, c_t, a_t", "    return ys, h, c"]
    return "\n".join(L) + "\n"


def _loop_fn(opts, bias, proj, lengths, zc, zh):
    key = (opts, bias, proj, lengths, zc, zh)
    if key not in _loops:
        _loops[key] = torch.jit.CompilationUnit(_loop_source(*key)).lstm_loop
    return _loops[key]


def expressible(opts, p) -> bool:
    """Whether the ONNX LSTM operator computes this cell exactly."""
    return (opts.input_gate and opts.forget_gate and opts.output_gate and not opts.layer_norm
            and not opts.gate_recurrence and p.weight_hr is None)


def lstm_direction_loop(x, h0, c0, p, opts, lengths, rec_mask, zoneout_c, zoneout_h):
    """lstm_direction for the TorchScript ONNX exporter, through :func:`lstm_loop`."""
    if rec_mask is not None:
        raise ValueError("lstmkit ONNX export: recurrent dropout is a training-time option; "
                         "export the layer in eval mode")
    valid = None
    if lengths is not None:
        T = x.shape[0]
        valid = (torch.arange(T).unsqueeze(1) < lengths.unsqueeze(0)).to(x.dtype).unsqueeze(2)
    bias = None if p.bias_ih is None else p.bias_ih + p.bias_hh
    fn = _loop_fn(opts, bias is not None, p.weight_hr is not None, valid is not None,
                  zoneout_c is not None, zoneout_h is not None)
    none = x.new_zeros(0)  # for the tensors this variant does not read
    pick = lambda t: none if t is None else t  # noqa: E731
    return fn(x, h0, c0, p.weight_ih, p.weight_hh, pick(bias), pick(p.weight_hr),
              pick(p.weight_peephole), pick(p.weight_gr), pick(p.ln_ih), pick(p.ln_hh),
              pick(p.ln_c_weight), pick(p.ln_c_bias), pick(valid), pick(zoneout_c),
              pick(zoneout_h))


# The GRU step in an ONNX Loop (TorchScript exporter: zoneout in eval, or no fused library). It used
# to be the reference loop, unrolled at the traced length: onnxruntime then silently returned the
# traced number of steps for any input.
_GRU_LOOP = """
def gru_loop(x: Tensor, h0: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor,
             valid: Tensor, zone_h: Tensor):
    H = h0.size(1)
    h = h0
    ys = h0.unsqueeze(0)[:0]
    for t in range(x.size(0)):
        gi = torch.matmul(x[t], w_ih.t()) + b_ih
        gh = torch.matmul(h, w_hh.t()) + b_hh
        r = torch.sigmoid(gi[:, :H] + gh[:, :H])
        z = torch.sigmoid(gi[:, H:2 * H] + gh[:, H:2 * H])
        n = torch.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:])
        h_t = (1.0 - z) * n + z * h
        h_t = zone_h[t] * h + (1.0 - zone_h[t]) * h_t
        v = valid[t]
        h_t = v * h_t + (1.0 - v) * h
        ys = torch.cat([ys, (v * h_t).unsqueeze(0)], 0)
        h = h_t
    return ys, h
"""


def gru_direction_loop(x, h0, p, lengths, rec_mask, zoneout_h):
    """gru_direction for the TorchScript ONNX exporter, through an ONNX Loop of the GRU step."""
    if rec_mask is not None:
        raise ValueError("lstmkit ONNX export: recurrent dropout is a training-time option; "
                         "export the layer in eval mode")
    if "gru" not in _loops:
        _loops["gru"] = torch.jit.CompilationUnit(_GRU_LOOP).gru_loop
    ones = torch.ones_like(x[:, :, :1])                                   # (T, N, 1), dynamic
    if lengths is None:
        valid = ones
    else:
        lengths = lengths.to(device="cpu", dtype=torch.int64)
        T = x.shape[0]
        valid = (torch.arange(T).unsqueeze(1) < lengths.unsqueeze(0)).to(x.dtype).unsqueeze(2)
    zone = ones * 0.0 if zoneout_h is None else zoneout_h
    G = p.weight_ih.shape[0]
    b_ih = x.new_zeros(G) if p.bias_ih is None else p.bias_ih
    b_hh = x.new_zeros(G) if p.bias_hh is None else p.bias_hh
    return _loops["gru"](x, h0, p.weight_ih, p.weight_hh, b_ih, b_hh, valid, zone)
