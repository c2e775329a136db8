"""lstmkit's fused CPU kernels: the loader, the autograd Functions, and the per-direction entry points.

The C++ core is in ``kernels/csrc`` (``fused.h`` documents every argument's shape). This module

* builds it with ``torch.utils.cpp_extension.load`` on first use and caches the library under
  ``$LSTMKIT_CACHE_DIR`` (default ``$XDG_CACHE_HOME/lstmkit`` or ``~/.cache/lstmkit``), in a folder
  named by a hash of the sources, the flags, torch's version and the CPU; later imports find the
  cached library by that hash and load it directly (no compiler, no ninja);
* runs each direction as one call of the operator ``torch.ops.lstmkit.lstm_forward`` /
  ``gru_forward``, registered with ``torch.library`` by :mod:`lstmkit.kernels.ops` (named
  arguments from :mod:`lstmkit.kernels.schema`, fake implementations, autograd whose backward is
  the hand-written backward through time of the C++ core, and exact double backward);
* implements the contract of ``kernels/reference.py``: :func:`lstm_direction` and
  :func:`gru_direction` take and return exactly what the reference functions do, gate traces included.

If the library cannot be built (no compiler, no ninja, a compile error, or ``LSTMKIT_DISABLE_FUSED=1``)
:func:`available` is False, :func:`build_error` says why, and the dispatcher falls back to the
reference loop with one warning.

Environment variables:

=========================  ==========================================================================
``LSTMKIT_CACHE_DIR``      where built libraries are kept (see :func:`cache_root`)
``LSTMKIT_DISABLE_FUSED``  ``1``: do not build or load; the reference loop runs (one warning)
``LSTMKIT_VERBOSE_BUILD``  ``1``: show the compiler's output during the first build
``LSTMKIT_POOL_MB``        MiB of freed big buffers kept for reuse (default 1024): repeated calls
                           then never fault fresh pages
``LSTMKIT_OWN_GEMM_ROWS``  ``0``: use the BLAS's (packed) GEMM instead of lstmkit's kernel (tests)
``LSTMKIT_NO_BLAS``        ``1``: ignore the BLAS symbols, plain loops instead (tests)
``LSTMKIT_THP``            ``0``: plain pages for the big buffers (default: blocks from 2 MiB up are
                           advised as transparent huge pages, fewer TLB misses on (T, N, 4H) buffers)
=========================  ==========================================================================
"""
from __future__ import annotations

import hashlib
import os
import platform
import shlex
import shutil
import threading
import time
from pathlib import Path
from typing import Optional

import torch
from torch import Tensor

from ..cells.gru import GRUParams
from ..cells.lstm import LSTMOptions, LSTMParams
from . import ops  # the operator schemas, fake implementations and autograd (torch.library)

_CSRC = Path(__file__).with_name("csrc")
_SOURCES = ("binding.cpp", "blas.cpp", "lstm.cpp", "gru.cpp")
_HEADERS = ("fused.h", "blas.h", "pointwise.h", "rows.h")
_NAME = "lstmkit_fused"
# -march=native: the library is built on the machine that runs it (the CPU is part of the cache key).
_CFLAGS = ("-O3", "-march=native", "-fopenmp", "-fno-math-errno", "-fno-trapping-math", "-w")
_LDFLAGS = ("-fopenmp",)

_lock = threading.Lock()
_state: dict = {"loaded": False, "error": None, "path": None, "build_seconds": None,
                "load_seconds": None}


# ---- building and loading ----------------------------------------------------------------------------
def cache_root() -> Path:
    """Where built libraries are kept: $LSTMKIT_CACHE_DIR, else $XDG_CACHE_HOME/lstmkit, else
    ~/.cache/lstmkit."""
    env = os.environ.get("LSTMKIT_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "lstmkit"


def _cpu_signature() -> str:
    """The CPU's feature flags (the build uses -march=native), so a cache shared between machines
    never hands one machine another's instructions."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _build_key() -> str:
    h = hashlib.sha256()
    for name in _SOURCES + _HEADERS:
        h.update(name.encode())
        h.update((_CSRC / name).read_bytes())
    h.update(" ".join(_CFLAGS + _LDFLAGS).encode())
    h.update(torch.__version__.encode())
    h.update(platform.python_version().encode())
    h.update(_cpu_signature().encode())
    h.update(os.environ.get("CXX", "").encode())
    return h.hexdigest()[:20]


def library_dir() -> Path:
    """The folder of the library built from the current sources on this machine."""
    return cache_root() / f"fused-{_build_key()}"


def _build(build_dir: Path) -> Path:
    from torch.utils import cpp_extension

    cxx = os.environ.get("CXX", "c++")
    if shutil.which((shlex.split(cxx) or ["c++"])[0]) is None:
        raise RuntimeError(f"no C++ compiler: {cxx!r} was not found on PATH (set CXX or install g++)")
    try:
        cpp_extension.verify_ninja_availability()
    except RuntimeError:
        raise RuntimeError("ninja was not found (pip install ninja); torch's C++ extension builder "
                           "needs it") from None
    build_dir.mkdir(parents=True, exist_ok=True)
    cpp_extension.load(name=_NAME, sources=[str(_CSRC / s) for s in _SOURCES],
                       extra_cflags=list(_CFLAGS), extra_ldflags=list(_LDFLAGS),
                       build_directory=str(build_dir), with_cuda=False, is_python_module=False,
                       verbose=bool(os.environ.get("LSTMKIT_VERBOSE_BUILD")))
    return build_dir / f"{_NAME}.so"


def load() -> bool:
    """Load the compiled kernels, building them first if this machine has no cached build. Returns
    whether they are available; never raises for a failed build (see :func:`build_error`)."""
    if _state["loaded"] or _state["error"] is not None:
        return _state["loaded"]
    with _lock:
        if _state["loaded"] or _state["error"] is not None:
            return _state["loaded"]
        if os.environ.get("LSTMKIT_DISABLE_FUSED", "") not in ("", "0"):
            _state["error"] = "disabled by the environment variable LSTMKIT_DISABLE_FUSED"
            return False
        t0 = time.perf_counter()
        try:
            build_dir = library_dir()
            lib, done = build_dir / f"{_NAME}.so", build_dir / "BUILD_OK"
            if lib.exists() and done.exists():
                torch.ops.load_library(str(lib))
                _state["load_seconds"] = time.perf_counter() - t0
            else:
                lib = _build(build_dir)
                done.write_text(f"{torch.__version__}\n")
                _state["build_seconds"] = time.perf_counter() - t0
            _state["path"] = str(lib)
            _state["loaded"] = True
        except Exception as e:  # noqa: BLE001 - any build failure means "use the reference loop"
            lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()]
            errors = [ln for ln in lines if "error" in ln.lower()]  # the compiler's, if any
            _state["error"] = f"{type(e).__name__}: " + " / ".join((errors or lines)[-4:])
        return _state["loaded"]


def available() -> bool:
    """True when the fused kernels are built (or could be built just now) and loaded."""
    return load()


def build_error() -> Optional[str]:
    """Why the fused kernels are unavailable, or None."""
    load()
    return _state["error"]


def build_info() -> dict:
    """Where the library is, how long its build or cached load took, which BLAS it uses."""
    load()
    info = {k: _state[k] for k in ("path", "build_seconds", "load_seconds", "error")}
    info["blas"] = torch.ops.lstmkit.info() if _state["loaded"] else None
    return info


def _ops():
    """torch.ops.lstmkit, loading (or building) the library on first use."""
    if not load():
        raise RuntimeError(f"lstmkit fused kernels are not available: {_state['error']}")
    return torch.ops.lstmkit


def _functorch_active() -> bool:
    """Inside torch.func.grad / vmap / jacrev...: torch's generated autograd Function of a
    torch.library operator cannot run there (it has no separate setup_context), so these calls take
    the reference path, which is made of ordinary differentiable ops."""
    return not torch.compiler.is_compiling() and torch._C._are_functorch_transforms_active()


def _ensure_loaded() -> None:
    if not _state["loaded"]:  # a plain read, so that torch.compile traces through it
        _ops()


# ---- the contract of kernels/reference.py --------------------------------------------------------------
_HALF = (torch.float16, torch.bfloat16)


def _lengths(lengths: Optional[Tensor], T: int) -> Optional[Tensor]:
    """int64 CPU lengths, or None when every sequence is full (the kernels then skip the checks).
    While a graph is traced (torch.compile / export / jit.trace) the lengths are passed as they
    are: whether all are full is a property of the data, not of the graph."""
    if lengths is None:
        return None
    lengths = lengths.to(device="cpu", dtype=torch.int64).contiguous()
    if torch.compiler.is_compiling() or torch.jit.is_tracing():
        return lengths
    return None if bool((lengths == T).all()) else lengths


def _wants_grad(*args) -> bool:
    """Whether a call must be able to run backward."""
    return torch.is_grad_enabled() and any(isinstance(a, Tensor) and a.requires_grad for a in args)


def _up(t: Optional[Tensor]) -> Optional[Tensor]:
    """float16/bfloat16 tensors run in float32 (the kernels accumulate in float32), contiguous."""
    if t is None:
        return None
    return (t.float() if t.dtype in _HALF else t).contiguous()


def lstm_direction(x: Tensor, h0: Tensor, c0: Tensor, p: LSTMParams, opts: LSTMOptions,
                   lengths: Optional[Tensor] = None, rec_mask: Optional[Tensor] = None,
                   zoneout_c: Optional[Tensor] = None, zoneout_h: Optional[Tensor] = None,
                   want_trace: bool = False):
    """Same arguments and results as :func:`lstmkit.kernels.reference.lstm_direction`.

    One call of the operator ``lstmkit::lstm_forward`` (:mod:`lstmkit.kernels.ops`) with named
    arguments. float16 and bfloat16 inputs run in float32 and the results are cast back.
    """
    # another device, an empty batch (nothing to compute), or inside a torch.func transform
    if x.device.type != "cpu" or x.shape[1] == 0 or _functorch_active():
        from . import reference

        return reference.lstm_direction(x, h0, c0, p, opts, lengths, rec_mask, zoneout_c,
                                        zoneout_h, want_trace)
    _ensure_loaded()
    tensors = dict(x=_up(x), h0=_up(h0), c0=_up(c0), **{k: _up(v) for k, v in p._asdict().items()},
                   lengths=_lengths(lengths, x.shape[0]), rec_mask=_up(rec_mask),
                   zoneout_c=_up(zoneout_c), zoneout_h=_up(zoneout_h))
    # (a jit trace is checked by re-tracing under no_grad: keep the same graph either way)
    grad = _wants_grad(*tensors.values()) or torch.jit.is_tracing()
    if torch.jit.is_tracing() and torch.onnx.is_in_onnx_export():
        from . import onnx as onnx_export

        if not onnx_export.expressible(opts, p) or zoneout_c is not None or zoneout_h is not None:
            if want_trace:
                raise ValueError("lstmkit ONNX export: the gate trace (return_trace=True) is not "
                                 "exported")
            y, h_n, c_n = onnx_export.lstm_direction_loop(x, h0, c0, p, opts, tensors["lengths"],
                                                          rec_mask, zoneout_c, zoneout_h)
            return y, h_n, c_n, None
        onnx_export.register()
    input_grad = grad and (tensors["x"].requires_grad or torch.jit.is_tracing())
    out = ops.lstm_forward(**tensors, **opts.to_dict(), need_backward=grad, input_grad=input_grad)
    y, h_n, c_n, gates, c = out["h_all"][1:], out["h_n"], out["c_n"], out["gates"], out["c"]
    if x.dtype in _HALF:
        y, h_n, c_n, gates, c = (t.to(x.dtype) for t in (y, h_n, c_n, gates, c))
    trace = None
    if want_trace:
        T, N, H = c.shape
        trace = dict(zip(("i", "f", "g", "o"), gates.view(T, N, 4, H).unbind(2)), c=c)
    return y, h_n, c_n, trace


def gru_direction(x: Tensor, h0: Tensor, p: GRUParams, lengths: Optional[Tensor] = None,
                  rec_mask: Optional[Tensor] = None, zoneout_h: Optional[Tensor] = None,
                  want_trace: bool = False):
    """Same arguments and results as :func:`lstmkit.kernels.reference.gru_direction` (one call of
    ``lstmkit::gru_forward``; float16/bfloat16 run in float32)."""
    if x.device.type != "cpu" or x.shape[1] == 0 or _functorch_active():
        from . import reference

        return reference.gru_direction(x, h0, p, lengths, rec_mask, zoneout_h, want_trace)
    _ensure_loaded()
    out = ops.gru_forward(x=_up(x), h0=_up(h0), **{k: _up(v) for k, v in p._asdict().items()},
                          lengths=_lengths(lengths, x.shape[0]), rec_mask=_up(rec_mask),
                          zoneout_h=_up(zoneout_h))
    y, h_n, gates = out["h_all"][1:], out["h_n"], out["gates"]
    if x.dtype in _HALF:
        y, h_n, gates = (t.to(x.dtype) for t in (y, h_n, gates))
    trace = None
    if want_trace:
        T, N, G = gates.shape
        trace = dict(zip(("r", "z", "n"), gates.view(T, N, 3, G // 3).unbind(2)))
    return y, h_n, trace
