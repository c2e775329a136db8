"""ONNX export of lstmkit layers, run by onnxruntime and compared with eager at several lengths and
batch sizes (dynamic batch and time axes), with both exporters and the direct
``torch.onnx.export(layer, (x,), ...)`` call.

What is exported today: layers with torch's math (vanilla LSTM, GRU) export to the ONNX ``LSTM`` /
``GRU`` operators (TorchScript exporter: dynamic batch and time; dynamo exporter: dynamic batch). Variants (peepholes, CIFG, layer norm, ...) run on the fused operator, which has
no ONNX translation yet: exporting them raises an error naming the operator.
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
    # the dynamo exporter's translation of torch's own LSTM/GRU keeps the traced length (7) in a
    # Reshape: its time axis is not dynamic yet (the batch axis is)
    for T in ((7,) if dynamo else LENGTHS):
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


@pytest.mark.slow
@needs_fused
@pytest.mark.parametrize("kw,backend", [(dict(preset="CIFG", bidirectional=True), "auto"),
                                        (dict(), "fused")], ids=["CIFG-bi", "vanilla-fused"])
def test_dynamo_exporter_with_lstmkits_translation_table(kw, backend, tmp_path):
    """dynamo=True with lstmkit.kernels.onnx.translation_table(): dynamic batch AND time axes
    (vanilla layers get them by forcing the fused operator)."""
    pytest.importorskip("onnxscript")
    from lstmkit.kernels.onnx import translation_table

    torch.manual_seed(0)
    m = lstmkit.LSTM(5, 6, **kw).eval()
    T, N = torch.export.Dim("T", min=1), torch.export.Dim("N", min=1)
    with warnings.catch_warnings(), lstmkit.use_backend(backend):
        warnings.simplefilter("ignore")
        torch.onnx.export(m, (torch.randn(7, 2, 5),), str(tmp_path / "d.onnx"), dynamo=True,
                          input_names=["x"], dynamic_shapes=({0: T, 1: N},),
                          custom_translation_table=translation_table())
    sess = ort.InferenceSession(str(tmp_path / "d.onnx"), providers=["CPUExecutionProvider"])
    for T in LENGTHS:
        for N in BATCHES:
            x = torch.randn(T, N, 5)
            out, (h, c) = m(x)
            for g, w in zip(sess.run(None, {"x": x.numpy()}), (out, h, c)):
                np.testing.assert_allclose(g, w.detach().numpy(), atol=1e-5, rtol=1e-5)
