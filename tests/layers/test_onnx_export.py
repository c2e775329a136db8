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


def test_a_variant_names_the_operator_that_has_no_onnx_translation(tmp_path):
    m = lstmkit.LSTM(5, 6, preset="V").eval()
    from lstmkit.kernels import fused

    if not fused.available():
        pytest.skip("fused kernels not built here")
    with pytest.raises(Exception, match="lstm_forward"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(m, (torch.randn(7, 2, 5),), str(tmp_path / "v.onnx"), dynamo=False)
