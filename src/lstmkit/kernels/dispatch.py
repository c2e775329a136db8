"""The one place that chooses how a recurrent layer is computed.

Backends:

``native``     torch's own kernel (``torch._VF.lstm`` / ``torch._VF.gru``): used whenever the math is
               exactly ``torch.nn.LSTM``'s or ``torch.nn.GRU``'s, so drop-in users lose no speed.
``fused``      lstmkit's compiled C++ kernels (``kernels/fused.py``): every other variant.
``reference``  the pure-PyTorch loop (``kernels/reference.py``): always there; what tests trust.

``auto`` (the default) picks native where it can, else fused where it is built, else reference.
Force one with :func:`set_backend`, the :func:`use_backend` context manager, or the environment
variable ``LSTMKIT_BACKEND``. Forcing ``native`` for a variant torch cannot compute, or ``fused`` where
the extension cannot be built, is an error rather than a silent change of math or speed.

Vanilla math stays on torch's kernel under ``auto`` (a drop-in ``torch.nn.LSTM`` user gets torch's
exact numbers and never waits for a first build), except where a measured rule below shows torch's
kernel several times slower (per-sequence lengths). ``use_backend("fused")`` opts vanilla
layers into the fused kernel.

The fused library is built on first use (``kernels/fused.py``); if that fails (no compiler, no ninja,
``LSTMKIT_DISABLE_FUSED=1``...) ``auto`` warns once, saying why, and runs the reference loop.

Under ``torch.onnx.export`` a fourth, internal backend ``onnx`` (``kernels/onnx.py``) stands in for
``auto`` and ``fused``: each direction becomes an ONNX ``LSTM`` / ``GRU`` node where that operator
computes the cell exactly, else a loop over the dynamic time axis (dynamo exporter: the reference
step in an ONNX ``Scan``; TorchScript exporter: a generated step in an ONNX ``Loop``). Vanilla
layers under the TorchScript exporter keep torch's kernel and its translation, as before.
"""
from __future__ import annotations

import contextlib
import contextvars
import os
import warnings
from typing import Callable, Iterator, Optional, Union

import torch

from . import reference
from .onnx import exporter as onnx_exporter

BACKENDS = ("auto", "native", "fused", "reference")
# The process-wide default (set_backend, LSTMKIT_BACKEND) and a context-local override
# (use_backend): each thread and each asyncio task sees only its own `with use_backend(...)` blocks.
_state = {"backend": os.environ.get("LSTMKIT_BACKEND", "auto").lower(), "warned": False}
_override: contextvars.ContextVar[Optional[str]] = contextvars.ContextVar("lstmkit_backend", default=None)


def _check(name: str) -> str:
    name = str(name).lower()
    if name not in BACKENDS:
        raise ValueError(f"lstmkit backend: expected one of {BACKENDS}, got {name!r}")
    return name


def set_backend(name: str) -> None:
    """Set the process-wide default backend ("auto", "native", "fused", "reference"); a
    ``use_backend`` block still takes precedence inside it."""
    _state["backend"] = _check(name)


def get_backend() -> str:
    """The backend in force here: the innermost ``use_backend`` of this thread / task, else the
    process-wide default."""
    override = _override.get()
    return _check(override if override is not None else _state["backend"])


@torch.compiler.assume_constant_result
def _traced_backend() -> str:
    """get_backend() as a constant of a traced graph (torch.compile / export): the backend is
    fixed when the graph is traced, as torch's own cuDNN / oneDNN choices are."""
    return get_backend()




@torch.compiler.assume_constant_result
def _traced_fused_available() -> bool:
    return fused_available()


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[None]:
    """``with use_backend("reference"): ...`` forces a backend inside the block.

    Context-local (a ``contextvars.ContextVar``): it applies to the code of this thread or asyncio
    task only; other threads and tasks keep theirs, and interleaved blocks restore correctly."""
    token = _override.set(_check(name))
    try:
        yield
    finally:
        _override.reset(token)


_fused_module: list = []  # lstmkit.kernels.fused once imported (imported on first use)


def fused_available() -> bool:
    """True when the compiled kernels are built (or can be built now) and loaded."""
    if not _fused_module:
        try:
            from . import fused
        except ImportError:
            return False
        _fused_module.append(fused)
    return _fused_module[0].available()


def _fused_error() -> str:
    try:
        from . import fused
    except ImportError as e:
        return f"ImportError: {e}"
    return fused.build_error() or "unknown reason"


# Measured rules for ``auto`` where both torch's kernel and the fused one compute the call (a rule
# is a measurement, with the command that repeats it; never a guess):
#
# * Per-sequence lengths (a padded batch with ``lengths=`` or a PackedSequence): torch's kernel runs
#   its packed-sequence path, several times slower than the fused kernel, which carries padded rows
#   along in one batched loop. Vanilla LSTM, (B, T, I, H) = (128, 110, 2, 32), lengths uniform in
#   [55, 110], ``python benchmarks/bench_dispatch.py``: one training step (forward + backward + Adam)
#   ~160 ms native vs ~14 ms fused on the AVX-512 machine (issue 10); on the AVX2 machine (AMD EPYC
#   Zen 3, shared, loaded) 416 vs 45 ms with 1 thread (0.11) and 4805 vs 288 ms with 2 threads
#   (0.06); forward without grad 23.2 vs 12.0 ms with 1 thread (0.52), 80.7 vs 20.5 ms with 2
#   (0.25). Hence ``auto`` takes the fused kernel for every call with lengths, where it is built.


def select(owner: str, native_ok: bool, why_not_native: Union[str, Callable[[], str]],
           fused_ok: bool = True, packed: bool = False, dtype_note: str = "") -> str:
    """Choose the backend for one forward call.

    Args:
        owner: the layer's class name, for messages.
        native_ok: whether torch's kernel computes exactly this call (vanilla math, no trace...).
        why_not_native: what stops native (or a function that says it), for the error when native
            is forced.
        fused_ok: whether the fused kernels support this call.
        packed: the call has per-sequence lengths (torch's kernel would take its slow
            packed-sequence path; see the measured rules above).
        dtype_note: why fused_ok is False, when it is a property of the input (its dtype or device).

    While a graph is traced (``torch.compile``, ``torch.export``) ``auto`` uses the fused operator
    for vanilla math too: torch's own fused RNN kernel cannot be traced (dynamo refuses
    ``torch.nn.LSTM`` under ``fullgraph=True``), the fused operator has a fake implementation.
    Under ``torch.onnx.export`` it returns ``onnx`` (see the module docstring).
    """
    tracing = torch.compiler.is_compiling()
    wanted = _traced_backend() if tracing else get_backend()
    if wanted == "native":
        if not native_ok:
            why = why_not_native() if callable(why_not_native) else why_not_native
            raise ValueError(f"{owner}: backend 'native' was forced but torch's kernel cannot "
                             f"compute this call: {why}")
        return "native"
    if wanted == "auto" and not tracing and torch._C._are_functorch_transforms_active():
        # inside torch.func (vmap, grad, jacrev...): torch's RNN kernel has no vmap batching rule
        # and the fused operator's autograd cannot run there; the reference loop is ordinary ops
        return "reference"
    exporter = onnx_exporter()
    if exporter == "dynamo" and wanted in ("auto", "fused"):
        return "onnx"  # torch's own LSTM/GRU translations keep the traced length: not used
    if exporter == "torchscript" and fused_ok and (
            wanted == "fused" or (wanted == "auto" and not (native_ok and not packed))):
        return "onnx"
    if wanted == "auto" and native_ok and not tracing:
        if packed and fused_ok and fused_available():
            return "fused"
        return "native"
    if wanted == "reference":
        return "reference"
    available = _traced_fused_available() if tracing else fused_available()
    if fused_ok and available:
        return "fused"
    if wanted == "fused":
        why = _fused_error() if fused_ok else f"this call is not supported by them ({dtype_note or 'dtype'})"
        raise RuntimeError(f"{owner}: backend 'fused' was forced but the fused kernels cannot run "
                           f"it: {why}")
    if wanted == "auto" and native_ok:  # tracing without the fused library: torch's kernel
        return "native"
    if not tracing and not _state["warned"] and fused_ok:
        _state["warned"] = True
        warnings.warn(f"lstmkit: fused kernels unavailable ({_fused_error()}); using the "
                      f"pure-PyTorch reference loop (slower, same numbers)", RuntimeWarning,
                      stacklevel=3)
    return "reference"


def direction_kernel(cell: str, backend: str) -> Callable:
    """The per-layer, per-direction function of a backend (contract in ``kernels/reference.py``)."""
    if backend == "onnx":
        from . import onnx

        return getattr(onnx, f"{cell}_direction")
    if backend == "fused":
        from . import fused

        return getattr(fused, f"{cell}_direction")
    return getattr(reference, f"{cell}_direction")
