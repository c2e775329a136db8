"""ONNX export of lstmkit layers, run by onnxruntime and compared with eager at several lengths and
batch sizes (dynamic batch and time axes), with both exporters and the direct
``torch.onnx.export(layer, (x,), ...)`` call.

TorchScript exporter: vanilla layers export torch's LSTM / GRU; every variant exports the ONNX
``LSTM`` operator where it is exact, else an ONNX ``Loop`` of the step. Dynamo exporter
(``dynamo=True``, no custom translation table): the ONNX ``LSTM`` / ``GRU`` operator where exact
(vanilla included), else an ONNX ``Scan`` of the reference step. The traced length is 7; the
lengths checked (1, 5, 11) differ from it, so a graph whose time axis is not dynamic fails.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import lstmkit
import lstmkit.kernels.fused
from lstmkit.cells.lstm import PRESETS

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

LENGTHS, BATCHES = (1, 5, 11), (1, 3)


def _export(m, path, dynamo):
    x = torch.randn(7, 2, 5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            pytest.importorskip("onnxscript")
            T, N = torch.export.Dim("T", min=1), torch.export.Dim("N", min=1)
            torch.onnx.export(m, (x,), str(path), dynamo=True, input_names=["x"],
                              dynamic_shapes=({0: T, 1: N},))
        else:
            torch.onnx.export(m, (x,), str(path), dynamo=False, input_names=["x"],
                              dynamic_axes={"x": {0: "T", 1: "N"}})
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("dynamo", [False, pytest.param(True, marks=pytest.mark.slow)],
                         ids=["torchscript", "dynamo"])
@pytest.mark.parametrize("cls", [lstmkit.LSTM, lstmkit.GRU], ids=["LSTM", "GRU"])
def test_vanilla_exports_and_onnxruntime_agrees(cls, dynamo, tmp_path):
    torch.manual_seed(0)
    m = cls(5, 6).eval()
    sess = _export(m, tmp_path / "m.onnx", dynamo)
    if dynamo:  # lstmkit's own ONNX node (torch's translation would keep the traced length)
        import onnx

        ops = {n.op_type for n in onnx.load(str(tmp_path / "m.onnx")).graph.node}
        assert cls.__name__ in ops and "Scan" not in ops
    for T in LENGTHS:
        for N in BATCHES:
            x = torch.randn(T, N, 5)
            want = m(x)
            want = [want[0], *(want[1] if isinstance(want[1], tuple) else (want[1],))]
            got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})
            assert len(got) == len(want)
            for g, w in zip(got, want):
                np.testing.assert_allclose(g, w.detach().numpy(), atol=1e-5, rtol=1e-5)


needs_fused = pytest.mark.skipif(not lstmkit.kernels.fused.available(),
                                 reason="fused kernels not built here")

# every variant: the ONNX LSTM operator where it expresses the math, else the step in an ONNX Loop
ONNX_VARIANTS = {name: dict(preset=name) for name in PRESETS} | {
    "V-bi-2layer": dict(preset="V", bidirectional=True, num_layers=2),
    "acts-nobias": dict(preset="CIFG", gate_activation="hard_sigmoid", input_activation="relu",
                        output_activation="softsign", bias=False),
    "LN": dict(layer_norm=True), "V+LN-bi": dict(preset="V", layer_norm=True, bidirectional=True),
    "proj": dict(preset="V", proj_size=3), "zoneout": dict(preset="NOG", zoneout=(0.3, 0.2)),
}
ONNX_QUICK = ["V-bi-2layer", "V+LN-bi", "FGR"]


def _variant_round_trip(kw, tmp_path, with_lengths):
    torch.manual_seed(0)
    m = lstmkit.LSTM(5, 6, **kw).eval()
    x = torch.randn(7, 2, 5)
    args, names, axes = (x,), ["x"], {"x": {0: "T", 1: "N"}}
    if with_lengths:
        args, names = (x, None, torch.tensor([7, 3])), ["x", "lengths"]
        axes["lengths"] = {0: "N"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(m, args, str(tmp_path / "v.onnx"), dynamo=False, input_names=names,
                          dynamic_axes=axes)
    sess = ort.InferenceSession(str(tmp_path / "v.onnx"), providers=["CPUExecutionProvider"])
    for T in LENGTHS:
        for N in BATCHES:
            x = torch.randn(T, N, 5)
            feeds = {"x": x.numpy()}
            lengths = None
            if with_lengths:
                lengths = torch.tensor([T] + [max(1, T - 2 - k) for k in range(N - 1)])
                feeds["lengths"] = lengths.numpy()
            out, (h, c) = m(x, lengths=lengths)
            got = sess.run(None, feeds)
            for g, w in zip(got, (out, h, c)):
                np.testing.assert_allclose(g, w.detach().numpy(), atol=1e-5, rtol=1e-5)


@needs_fused
@pytest.mark.parametrize("name", ONNX_QUICK)
def test_variant_exports_and_onnxruntime_agrees(name, tmp_path):
    _variant_round_trip(ONNX_VARIANTS[name], tmp_path, with_lengths=True)


@pytest.mark.slow
@needs_fused
@pytest.mark.parametrize("name", [n for n in ONNX_VARIANTS if n not in ONNX_QUICK])
def test_every_expressible_variant_exports(name, tmp_path):
    _variant_round_trip(ONNX_VARIANTS[name], tmp_path, with_lengths=True)


@needs_fused
def test_the_onnx_graph_uses_the_lstm_operator_or_a_loop(tmp_path):
    import onnx

    for kw, want in ((dict(preset="CIFG"), "LSTM"), (dict(layer_norm=True), "Loop")):
        m = lstmkit.LSTM(5, 6, **kw).eval()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(m, (torch.randn(7, 2, 5),), str(tmp_path / "v.onnx"), dynamo=False)
        ops = {n.op_type for n in onnx.load(str(tmp_path / "v.onnx")).graph.node}
        assert want in ops and ({"LSTM", "Loop"} - {want}).isdisjoint(ops)


@needs_fused
def test_torchscript_exporter_gru_with_lengths_is_one_gru_node(tmp_path):
    """A GRU call with lengths reaches the fused operator (dispatch's measured rule); the TorchScript
    exporter translates it to ONNX GRU with sequence_lens (it used to fail: no symbolic)."""
    import onnx

    torch.manual_seed(0)
    m = lstmkit.GRU(5, 6, bidirectional=True).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(m, (torch.randn(7, 2, 5), None, torch.tensor([7, 3])), str(tmp_path / "g.onnx"),
                          dynamo=False, input_names=["x", "lengths"],
                          dynamic_axes={"x": {0: "T", 1: "N"}, "lengths": {0: "N"}})
    ops = [n.op_type for n in onnx.load(str(tmp_path / "g.onnx")).graph.node]
    assert ops.count("GRU") == 2 and "Loop" not in ops
    sess = ort.InferenceSession(str(tmp_path / "g.onnx"), providers=["CPUExecutionProvider"])
    for T in LENGTHS:
        for N in BATCHES:
            x = torch.randn(T, N, 5)
            lengths = torch.tensor([T] + [max(1, T - 2 - k) for k in range(N - 1)])
            out, h = m(x, lengths=lengths)
            got = sess.run(None, {"x": x.numpy(), "lengths": lengths.numpy()})
            for g, w in zip(got, (out, h)):
                np.testing.assert_allclose(g, w.detach().numpy(), atol=1e-5, rtol=1e-5)


def test_first_kernel_load_inside_a_trace_keeps_the_kernels(tmp_path):
    """When the first lstmkit call of a process is inside torch.jit.trace (or the TorchScript ONNX
    exporter), loading the kernels must not be recorded into the trace: it used to fail ('ArrayRef:
    invalid index' / 'unsupported output type: str') and leave the fused kernels off for the process."""
    import subprocess
    import sys

    code = """
import warnings, torch, lstmkit
from lstmkit.kernels import fused
warnings.simplefilter("ignore")
class M(torch.nn.Module):
    def __init__(s):
        super().__init__(); s.g = lstmkit.LSTM(3, 4, batch_first=True)
    def forward(s, x, lengths):
        return s.g(x, lengths=lengths)[0]
m = M().eval()
x, L = torch.randn(2, 5, 3), torch.tensor([5, 3])
traced = torch.jit.trace(m, (x, L))
x2, L2 = torch.randn(3, 8, 3), torch.tensor([8, 2, 5])
assert torch.allclose(traced(x2, L2), m(x2, L2), atol=1e-6)
print(fused.available(), fused.build_error())
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    want = "True None" if lstmkit.kernels.fused.available() else "False"
    assert run.stdout.strip().startswith(want), run.stdout


def test_torchscript_exporter_refuses_the_gate_trace_with_a_clear_error(tmp_path):
    class Traced(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = lstmkit.LSTM(5, 6, preset="CIFG")

        def forward(self, x):
            y, _, trace = self.lstm(x, return_trace=True)
            return y, trace["i"]

    with warnings.catch_warnings(), pytest.raises(ValueError, match="gate trace.*dynamo=True"):
        warnings.simplefilter("ignore")
        torch.onnx.export(Traced().eval(), (torch.randn(7, 2, 5),), str(tmp_path / "t.onnx"),
                          dynamo=False)


# ---- the dynamo exporter, no custom translation table ----------------------------------------------
def _dynamo_export(m, args, dynamic_shapes, path, names, optimize=True):
    pytest.importorskip("onnxscript")
    import onnx

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(m, args, str(path), dynamo=True, input_names=names,
                          dynamic_shapes=dynamic_shapes, optimize=optimize)
    ops: dict[str, int] = {}
    for n in onnx.load(str(path)).graph.node:
        ops[n.op_type] = ops.get(n.op_type, 0) + 1
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]), ops


def _flat(result):
    """(output, (h, c)) / (output, h) [, trace] -> a flat list of tensors."""
    out = []
    for r in result:
        if isinstance(r, dict):
            out += list(r.values())
        elif isinstance(r, tuple):
            out += list(r)
        else:
            out.append(r)
    return out


def _compare_at_lengths(m, sess, with_lengths, **kw):
    for T in LENGTHS:
        for N in BATCHES:
            x = torch.randn(T, N, 5)
            feeds = {"x": x.numpy()}
            if with_lengths:
                lengths = torch.tensor([T] + [max(1, T - 2 - k) for k in range(N - 1)])
                feeds["lengths"], kw = lengths.numpy(), dict(kw, lengths=lengths)
            want = _flat(m(x, **kw))
            got = sess.run(None, feeds)
            assert len(got) == len(want)
            for g, w in zip(got, want):
                np.testing.assert_allclose(g, w.detach().numpy(), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kw,node", [(dict(), "LSTM"), (dict(layer_norm=True), "Scan")],
                         ids=["vanilla", "LN"])
def test_dynamo_export_without_a_translation_table(kw, node, tmp_path):
    """The user's call, dynamic batch and time: the ONNX LSTM node where it is exact, else a Scan."""
    torch.manual_seed(0)
    m = lstmkit.LSTM(5, 6, **kw).eval()
    T, N = torch.export.Dim("T", min=1), torch.export.Dim("N", min=1)
    sess, ops = _dynamo_export(m, (torch.randn(7, 2, 5),), ({0: T, 1: N},), tmp_path / "d.onnx",
                               ["x"])
    assert ops.get(node) == 1 and not {"LSTM", "Scan", "Loop"} - {node} & set(ops)
    _compare_at_lengths(m, sess, with_lengths=False)


class _Many(torch.nn.Module):
    """Several layers side by side, one export for all (lengths for every layer)."""

    def __init__(self, layers: dict):
        super().__init__()
        self.layers = torch.nn.ModuleDict(layers)

    def forward(self, x, lengths):
        return tuple(t for m in self.layers.values() for t in _flat(m(x, lengths=lengths)))


@pytest.mark.slow
def test_dynamo_export_of_every_variant_with_lengths(tmp_path):
    """Every preset, layer norm, projection, zoneout (eval), activations without bias, bidirectional
    and 2-layer stacks, and GRU (plain and zoneout), all with per-sequence lengths: one export,
    onnxruntime agrees with eager at 3 new lengths x 2 batch sizes."""
    torch.manual_seed(0)
    specs = {k.replace("+", "_").replace("-", "_"): kw for k, kw in ONNX_VARIANTS.items()
             if k != "LN"}  # (V+LN-bi covers layer norm)
    layers = {k: lstmkit.LSTM(5, 6, **kw) for k, kw in specs.items()}
    layers |= {"GRU": lstmkit.GRU(5, 6), "GRU_zoneout": lstmkit.GRU(5, 6, zoneout=0.25)}
    m = _Many(layers).eval()
    T, N = torch.export.Dim("T", min=1), torch.export.Dim("N", min=1)
    # (without onnxscript's optimizer, a third of this export's time; the other tests run it)
    sess, ops = _dynamo_export(m, (torch.randn(7, 2, 5), torch.tensor([7, 3])),
                               ({0: T, 1: N}, {0: N}), tmp_path / "all.onnx", ["x", "lengths"],
                               optimize=False)
    # ONNX LSTM: V, NIAF, NOAF, NP, CIFG, acts-nobias, V-bi-2layer (4 directions); Scan: NIG, NFG,
    # NOG, FGR, V+LN-bi (2), proj, zoneout, GRU_zoneout; the ONNX GRU: GRU
    assert (ops.get("LSTM"), ops.get("Scan"), ops.get("GRU"), ops.get("Loop")) == (10, 9, 1, None)
    _compare_at_lengths(m, sess, with_lengths=True)


@pytest.mark.slow
def test_dynamo_export_of_the_gate_trace(tmp_path):
    torch.manual_seed(0)
    m = lstmkit.LSTM(5, 6, preset="CIFG").eval()
    T, N = torch.export.Dim("T", min=1), torch.export.Dim("N", min=1)

    class Traced(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = m

        def forward(self, x, lengths):
            return self.lstm(x, lengths=lengths, return_trace=True)

    sess, ops = _dynamo_export(Traced().eval(), (torch.randn(7, 2, 5), torch.tensor([7, 3])),
                               ({0: T, 1: N}, {0: N}), tmp_path / "t.onnx", ["x", "lengths"])
    assert ops.get("Scan") == 1 and "LSTM" not in ops
    _compare_at_lengths(m, sess, with_lengths=True, return_trace=True)


@pytest.mark.slow
def test_lstmkits_old_translation_table_is_harmless(tmp_path):
    """Code written for the earlier lstmkit passes translation_table() (now empty), here with the
    fused backend forced: the export is the same as without it."""
    pytest.importorskip("onnxscript")
    from lstmkit.kernels.onnx import translation_table

    torch.manual_seed(0)
    m = lstmkit.LSTM(5, 6, preset="CIFG", bidirectional=True).eval()
    T, N = torch.export.Dim("T", min=1), torch.export.Dim("N", min=1)
    with warnings.catch_warnings(), lstmkit.use_backend("fused"):
        warnings.simplefilter("ignore")
        torch.onnx.export(m, (torch.randn(7, 2, 5),), str(tmp_path / "d.onnx"), dynamo=True,
                          input_names=["x"], dynamic_shapes=({0: T, 1: N},),
                          custom_translation_table=translation_table())
    sess = ort.InferenceSession(str(tmp_path / "d.onnx"), providers=["CPUExecutionProvider"])
    _compare_at_lengths(m, sess, with_lengths=False)


@pytest.mark.parametrize("lengths", [False, True], ids=["plain", "lengths"])
def test_torchscript_exporter_gru_zoneout_keeps_the_time_axis_dynamic(lengths, tmp_path):
    """A GRU with zoneout (eval) under the TorchScript exporter: the reference loop was unrolled at
    the traced length, so onnxruntime silently returned 7 steps for an 11-step input. Now the step
    is an ONNX Loop over the dynamic time axis, as for the LSTM variants."""
    import onnx

    torch.manual_seed(0)
    m = lstmkit.GRU(5, 6, zoneout=0.25, bidirectional=True).eval()

    class Wrap(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.m = m

        def forward(self, x, n):
            y, h = self.m(x, lengths=n if lengths else None)
            return y, h

    w = Wrap().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(w, (torch.randn(7, 2, 5), torch.tensor([7, 3])), str(tmp_path / "g.onnx"),
                          dynamo=False, input_names=["x", "n"],
                          dynamic_axes={"x": {0: "T", 1: "N"}, "n": {0: "N"}})
    assert "Loop" in {n.op_type for n in onnx.load(str(tmp_path / "g.onnx")).graph.node}
    sess = ort.InferenceSession(str(tmp_path / "g.onnx"), providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    for T in LENGTHS:
        for N in BATCHES:
            x, n = torch.randn(T, N, 5), torch.randint(1, T + 1, (N,))
            with torch.no_grad():
                want = w(x, n)
            feed = {"x": x.numpy(), "n": n.numpy()}
            got = sess.run(None, {k: feed[k] for k in names})
            for a, b in zip(want, got):
                assert b.shape == tuple(a.shape)
                np.testing.assert_allclose(b, a.numpy(), atol=1e-5)
