"""Building, verifying and loading lstmkit's fused C++ kernels (``kernels/csrc``), and choosing their
instruction set and GEMM path.

* **Instruction set.** The library is compiled for one ISA, chosen once per process from the CPU's
  features: ``avx512`` (AVX-512 F/BW/VL/DQ), ``avx2`` (AVX2 + FMA) or ``portable`` (GCC/Clang vector
  extensions at the compiler's baseline: SSE2 on x86, NEON on ARM). ``LSTMKIT_ISA`` overrides the
  choice (``auto``, the default, takes the best the CPU runs). On x86 the build uses ``-march=native``
  capped at the chosen ISA (``-mno-avx512f`` for avx2, ``-mno-avx`` for portable); elsewhere no
  ``-march``. ``csrc/isa.h`` sizes the GEMM register block for each.
* **Threads from torch.** Where torch's intra-op threads are OpenMP (its x86 and ARM Linux wheels)
  and the compiler has OpenMP, the build uses ``-fopenmp`` so that ``at::parallel_for`` runs the
  kernels on torch's own pool: one pool for torch's ops and lstmkit's, sized by
  ``torch.set_num_threads``. The library links the compiler's runtime by its soname
  (``libgomp.so.1``), which resolves to the copy torch has already loaded. Without OpenMP the build
  still works and the threads come from torch's inter-op pool (``csrc/parallel.cpp``).
* **GEMM path by measurement.** lstmkit's register-blocked kernel and the BLAS's packed GEMM (MKL in
  torch's x86 wheels) are timed against each other over a ladder of row counts at the first load
  of a build (about a second); the crossover is cached beside the library (``gemm-<blas>.json``)
  and handed to the kernels. ``LSTMKIT_OWN_GEMM_ROWS`` overrides.
* **Cache.** Libraries live under :func:`cache_root` in a folder named by a hash of the sources, the
  flags, torch's and Python's versions, the CPU, the ISA and ``$CXX``. A build writes
  ``BUILD_OK`` (JSON: the library's size and SHA-256) last; a load first checks the library against
  it, and a damaged library (truncated, replaced) is rebuilt instead of loaded.
* **One builder at a time.** A build holds an exclusive ``flock`` on ``<folder>.lock``; the kernel
  releases it when its process dies, so a killed build never blocks later runs, and the lock file
  torch's builder leaves behind after a kill is removed. A process that finds another one building
  waits (one line on stderr) at most ``LSTMKIT_BUILD_WAIT`` seconds (default 600), then falls back to
  the reference loop with a message naming the builder.
* **Compiler errors.** Before the build, the compiler (``$CXX``, default ``c++``) compiles a one-line
  program with the build's flags; if that fails, its own message is the error. A failing build
  reports the compiler's diagnostics (not ninja's or torch's wrapper lines) and keeps the whole log in
  ``<folder>/build.log``.

If the library cannot be built or loaded, :func:`available` is False, :func:`build_error` says why,
and the dispatcher falls back to the reference loop with one warning.

Environment variables:

=========================  ==========================================================================
``LSTMKIT_CACHE_DIR``      where built libraries are kept (see :func:`cache_root`)
``LSTMKIT_DISABLE_FUSED``  ``1``: do not build or load; the reference loop runs (one warning)
``LSTMKIT_ISA``            ``auto`` (default), ``avx512``, ``avx2`` or ``portable``
``LSTMKIT_OPENMP``         ``auto`` (default): compile with ``-fopenmp`` where torch's threads are
                           OpenMP and the compiler has it, so the kernels run on torch's intra-op
                           pool; ``1``: insist; ``0``: no OpenMP, threads from torch's inter-op pool
``LSTMKIT_BUILD_WAIT``     seconds to wait for another process's build (default 600)
``LSTMKIT_VERBOSE_BUILD``  ``1``: show the compiler's output during the first build
``LSTMKIT_OWN_GEMM_ROWS``  rows up to which lstmkit's GEMM kernel runs, overriding the measurement
                           (``0``: always the BLAS; tests)
``LSTMKIT_NO_BLAS``        ``1``: ignore the BLAS symbols, plain loops instead (tests)
``LSTMKIT_POOL_MB``        MiB of freed big buffers kept for reuse (default 1024)
``LSTMKIT_THP``            ``0``: plain pages for the big buffers (default: blocks from 2 MiB up are
                           advised as transparent huge pages)
=========================  ==========================================================================
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Iterator, Optional

import torch

from . import _fork

_CSRC = Path(__file__).with_name("csrc")
_SOURCES = ("binding.cpp", "tuning.cpp", "parallel.cpp", "memory.cpp", "blas.cpp", "lstm_forward.cpp",
            "lstm_backward.cpp", "gru.cpp")
_NAME = "lstmkit_fused"
ISAS = ("avx512", "avx2", "portable")  # best first
_BASE_FLAGS = ("-O3", "-fno-math-errno", "-fno-trapping-math", "-w")
# Threads (csrc/parallel.cpp): -fopenmp makes at::parallel_for run on torch's own OpenMP pool; without
# it (no OpenMP in the compiler, or LSTMKIT_OPENMP=0) only the `omp simd` loop hints are kept and the
# threads come from torch's inter-op pool.
_OPENMP_FLAGS = ("-fopenmp",)
_NO_OPENMP_FLAGS = ("-fopenmp-simd",)
_X86_CAP = {"avx512": (), "avx2": ("-mno-avx512f",), "portable": ("-mno-avx",)}
_X86 = ("x86_64", "amd64", "i386", "i686", "x86")

_lock = threading.Lock()
_state: dict = {"loaded": False, "error": None, "path": None, "build_seconds": None,
                "load_seconds": None, "isa": None, "gemm": None, "rebuilt": None}


class BuildLockTimeout(RuntimeError):
    """Another process held the build lock longer than LSTMKIT_BUILD_WAIT seconds."""


# ---- where ---------------------------------------------------------------------------------------
def cache_root() -> Path:
    """Where built libraries are kept: $LSTMKIT_CACHE_DIR, else $XDG_CACHE_HOME/lstmkit, else
    ~/.cache/lstmkit."""
    env = os.environ.get("LSTMKIT_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "lstmkit"


def _cpu_flags() -> tuple[str, set]:
    """(model name, feature flags) from /proc/cpuinfo; empty where there is none (macOS)."""
    model, flags = "", set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, val = line.partition(":")
                key = key.strip()
                if key in ("model name", "Model", "Hardware") and not model:
                    model = val.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = set(val.split())
                if model and flags:
                    break
    except OSError:
        pass
    return model, flags


def cpu_model() -> str:
    """The CPU's model name (for benchmark tables)."""
    model = _cpu_flags()[0]
    if not model and sys.platform == "darwin":
        with contextlib.suppress(Exception):
            model = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True,
                                   text=True, timeout=5).stdout.strip()
    return model or platform.processor() or platform.machine()


def cpu_isas() -> tuple[str, ...]:
    """The instruction sets of :data:`ISAS` this CPU runs, best first (``portable`` always)."""
    out = []
    if platform.machine().lower() in _X86:
        flags = _cpu_flags()[1]
        if flags:
            avx512 = {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags
            avx2 = {"avx2", "fma"} <= flags
        else:  # no /proc/cpuinfo: what torch detected
            cap = torch.backends.cpu.get_cpu_capability()
            avx512, avx2 = cap.startswith("AVX512"), cap.startswith(("AVX512", "AVX2"))
        out += ["avx512"] if avx512 else []
        out += ["avx2"] if avx2 else []
    return tuple(out) + ("portable",)


def selected_isa() -> str:
    """The ISA this process builds for: $LSTMKIT_ISA, or the best of :func:`cpu_isas`.

    Raises ValueError for an unknown name or one this CPU cannot run."""
    want = os.environ.get("LSTMKIT_ISA", "auto").strip().lower() or "auto"
    runs = cpu_isas()
    if want == "auto":
        return runs[0]
    if want not in ISAS:
        raise ValueError(f"LSTMKIT_ISA must be one of auto, {', '.join(ISAS)}; got {want!r}")
    if want not in runs:
        raise ValueError(f"LSTMKIT_ISA={want}, but this CPU runs only {', '.join(runs)}")
    return want


def torch_uses_openmp() -> bool:
    """Whether torch's intra-op threads are an OpenMP pool (ATen's parallel backend)."""
    return "parallel backend: OpenMP" in torch.__config__.parallel_info()


_openmp_probe: dict = {}


def _openmp_request() -> str:
    want = os.environ.get("LSTMKIT_OPENMP", "auto").strip().lower() or "auto"
    if want not in ("auto", "1", "0"):
        raise ValueError(f"LSTMKIT_OPENMP must be auto, 1 or 0; got {want!r}")
    return want


def uses_openmp() -> bool:
    """Whether the build compiles with ``-fopenmp``, so that its ``at::parallel_for`` runs on torch's
    own OpenMP pool: torch's backend is OpenMP, ``$LSTMKIT_OPENMP`` is not ``0``, and the compiler
    builds and links an OpenMP shared library (Apple's clang, for one, cannot) whose runtime is the
    one torch loaded (see :func:`_compiler_has_openmp`). Otherwise the kernels'
    threads come from torch's inter-op pool (see ``csrc/parallel.cpp``).

    Raises ValueError for a ``LSTMKIT_OPENMP`` other than ``auto``, ``1`` or ``0``."""
    want = _openmp_request()
    if want == "0" or not torch_uses_openmp():
        return False
    if want == "1":  # asked for: a compiler without OpenMP then fails the build with its own message,
        return True  # and no runtime check is made (a second OpenMP runtime is then the user's choice)
    key = tuple(_compiler())
    if key not in _openmp_probe:
        _openmp_probe[key] = _compiler_has_openmp()
    return _openmp_probe[key]


# Seconds a probe's compiler (or the runtime check's interpreter) may take before it is stopped.
_PROBE_TIMEOUT = 120


def _run(cmd: list[str], timeout: float, **kw) -> subprocess.CompletedProcess:
    """subprocess.run(cmd, capture_output=True, text=True) in a session of its own: on a timeout the
    whole process group is killed (a compiler driver's cc1plus too, not only the driver), then
    subprocess.TimeoutExpired is raised as by subprocess.run."""
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          start_new_session=True, **kw) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()  # (not communicate: a process that left the group may still hold the pipes)
            raise
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


# The OpenMP runtimes by file name (GNU's, LLVM's, Intel's); torch's wheels may suffix them.
_OPENMP_RUNTIMES = ("libgomp", "libomp", "libiomp")

# Run in a fresh interpreter (given the parent's sys.path): import torch (which maps its OpenMP
# runtime), load the probe library, and print {"new": the OpenMP runtimes the probe brought in beside
# torch's, or null where the loaded libraries cannot be listed (neither /proc/self/maps nor macOS's
# dyld)}, or {"unloadable": why} if the probe library does not load. Fails if torch does not import.
_RUNTIME_CHECK = r"""
import ctypes, json, sys
from pathlib import Path
import torch
torch.ones(64).sum()

def loaded():
    maps = Path("/proc/self/maps")
    if maps.is_file():
        return {ln.split()[-1] for ln in maps.read_text().splitlines() if len(ln.split()) >= 6}
    if sys.platform == "darwin":
        libc = ctypes.CDLL(None)
        libc._dyld_get_image_name.restype = ctypes.c_char_p
        return {libc._dyld_get_image_name(i).decode() for i in range(libc._dyld_image_count())}
    return None

before = loaded()
try:
    ctypes.CDLL(sys.argv[1])
except OSError as e:
    print(json.dumps({"unloadable": str(e)}))
    sys.exit(0)
after = loaded()
new = None if before is None else sorted(p for p in after - before if Path(p).name.startswith(%r))
print(json.dumps({"new": new}))
""" % (_OPENMP_RUNTIMES,)


def _runtime_check(lib: Path, cwd: str) -> Optional[dict]:
    """Run _RUNTIME_CHECK on the probe library `lib`; its answer, or None if the check itself could
    not run (no interpreter, torch not importable there, a timeout, output not understood)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([p for p in sys.path if p] +
                                        [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    try:
        res = _run([sys.executable, "-c", _RUNTIME_CHECK, str(lib)], 2.5 * _PROBE_TIMEOUT, env=env,
                   cwd=cwd)
        answer = json.loads(res.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None
    return answer if res.returncode == 0 and isinstance(answer, dict) else None


def _compiler_has_openmp() -> bool:
    """Can the compiler build and link a shared library with ``#pragma omp parallel`` whose OpenMP
    runtime is torch's own? The probe library is built, then loaded beside torch in a fresh
    interpreter (with this one's ``sys.path``): if it maps an OpenMP runtime that torch had not
    (LLVM's libomp from clang, or Homebrew's on macOS, where torch is built with GNU's or its own
    bundled copy), the kernels would get a second thread pool, so the answer is no and the build keeps
    the inter-op path. If that check cannot run at all (``sys.executable`` is not a Python that can
    import torch, say), the compiler's word is taken, as before the check existed, with a warning."""
    cxx = _compiler()
    if shutil.which(cxx[0]) is None:
        return False
    with tempfile.TemporaryDirectory(prefix="lstmkit-probe-") as tmp:
        src = Path(tmp) / "omp.cpp"
        lib = Path(tmp) / ("omp.dylib" if sys.platform == "darwin" else "omp.so")
        src.write_text("#include <omp.h>\nint lstmkit_probe() { int n = 0;\n"
                       "#pragma omp parallel\n{ if (omp_get_thread_num() == 0) n = omp_get_num_threads(); }\n"
                       "return n; }\n")
        try:
            res = _run([*cxx, *_OPENMP_FLAGS, "-shared", "-fPIC", str(src), "-o", str(lib)],
                       _PROBE_TIMEOUT)
        except (OSError, subprocess.SubprocessError):
            return False
        if res.returncode != 0:
            return False
        answer = _runtime_check(lib, tmp)
    if answer is None:
        warnings.warn("lstmkit: could not check which OpenMP runtime the compiler's -fopenmp links "
                      f"(a fresh {sys.executable!r} did not run the check); building with -fopenmp "
                      "unchecked. If the compiler's OpenMP is not torch's (clang's libomp, Homebrew's), "
                      "set LSTMKIT_OPENMP=0.", RuntimeWarning, stacklevel=2)
        return True
    if "unloadable" in answer:  # the probe would not even load beside torch
        return False
    return not answer.get("new")  # null (cannot tell: as before) or no second runtime


def compiler_flags(isa: str, openmp: Optional[bool] = None) -> list[str]:
    """The C++ flags of a build for `isa`, with ``-fopenmp`` if `openmp` (default:
    :func:`uses_openmp`, which compiles a probe the first time it is asked)."""
    if openmp is None:
        openmp = uses_openmp()
    flags = list(_BASE_FLAGS) + list(_OPENMP_FLAGS if openmp else _NO_OPENMP_FLAGS)
    if platform.machine().lower() in _X86:
        flags += ["-march=native", *_X86_CAP[isa]]
    return flags


def _sources() -> list[Path]:
    return sorted(p for p in _CSRC.iterdir() if p.suffix in (".cpp", ".h"))


def _build_key(isa: str) -> str:
    h = hashlib.sha256()
    for p in _sources():
        h.update(p.name.encode())
        h.update(p.read_bytes())
    # the OpenMP request, not the probe's answer: a cached load compiles nothing
    h.update(" ".join(compiler_flags(isa, openmp=False)).encode())
    h.update(f"openmp={_openmp_request()} torch-openmp={torch_uses_openmp()}".encode())
    h.update(isa.encode())
    h.update(torch.__version__.encode())
    h.update(platform.python_version().encode())
    h.update(" ".join(sorted(_cpu_flags()[1])).encode() or platform.machine().encode())
    h.update(os.environ.get("CXX", "").encode())
    return h.hexdigest()[:20]


def library_dir(isa: Optional[str] = None) -> Path:
    """The folder of the library built from the current sources on this machine for `isa`
    (default: :func:`selected_isa`)."""
    isa = isa or selected_isa()
    return cache_root() / f"fused-{isa}-{_build_key(isa)}"


# ---- the lock --------------------------------------------------------------------------------------
@contextlib.contextmanager
def build_lock(build_dir: Path, wait_s: Optional[float] = None) -> Iterator[None]:
    """Hold the exclusive build lock of `build_dir` (``<build_dir>.lock``, flock: released by the
    kernel when the holder dies). Waits at most `wait_s` seconds (default $LSTMKIT_BUILD_WAIT or 600),
    saying once on stderr whom it waits for; raises :class:`BuildLockTimeout` after that. While held,
    a lock file left in `build_dir` by torch's builder is stale (its process is gone) and removed."""
    if wait_s is None:
        wait_s = float(os.environ.get("LSTMKIT_BUILD_WAIT", "600"))
    path = build_dir.with_name(build_dir.name + ".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # no flock (Windows): no concurrent builds to guard against that we know of
        yield
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline, said = time.monotonic() + wait_s, False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                holder = _read_holder(path)
                if time.monotonic() >= deadline:
                    raise BuildLockTimeout(
                        f"another process ({holder}) has been building the fused kernels for longer "
                        f"than {wait_s:g} s (lock {path}); set LSTMKIT_BUILD_WAIT to wait longer, or "
                        f"end that process") from None
                if not said:
                    print(f"lstmkit: waiting for the fused-kernel build of another process ({holder}), "
                          f"at most {wait_s:g} s", file=sys.stderr, flush=True)
                    said = True
                time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": platform.node(),
                                 "since": time.time()}).encode())
        stale = build_dir / "lock"  # torch's FileBaton: only a killed build leaves it
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()
        yield
    finally:
        os.close(fd)  # releases the flock


def _read_holder(path: Path) -> str:
    try:
        d = json.loads(path.read_text())
        return f"pid {d['pid']} on {d['host']}, since {time.strftime('%H:%M:%S', time.localtime(d['since']))}"
    except Exception:  # noqa: BLE001 - written in the instant between open and write
        return "pid unknown"


# ---- verification ---------------------------------------------------------------------------------
def _digest(path: Path) -> dict:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return {"size": path.stat().st_size, "sha256": h.hexdigest()}


def verify_library(build_dir: Path) -> bool:
    """Whether `build_dir` holds a complete library: BUILD_OK names its size and SHA-256 and the file
    on disk has them (a truncated or replaced library does not)."""
    lib, done = build_dir / f"{_NAME}.so", build_dir / "BUILD_OK"
    try:
        want = json.loads(done.read_text())
        return lib.is_file() and want.get("size") == lib.stat().st_size and want == {
            **want, **_digest(lib)}
    except (OSError, ValueError, AttributeError):
        return False


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


# ---- building ------------------------------------------------------------------------------------
def _compiler() -> list[str]:
    return shlex.split(os.environ.get("CXX", "c++")) or ["c++"]


def _probe_compiler(flags: list[str]) -> None:
    """Compile a one-line program with `flags`; raise with the compiler's own message if it fails."""
    cxx = _compiler()
    shown = " ".join(cxx)
    if shutil.which(cxx[0]) is None:
        raise RuntimeError(f"no C++ compiler: {shown!r} was not found on PATH (set CXX or install g++)")
    if len(cxx) > 1:  # torch's builder writes CXX into build.ninja as one program name
        raise RuntimeError(f"CXX={os.environ.get('CXX')!r} is a command with arguments, but torch's "
                           "extension builder runs CXX as a single program name (every compile would "
                           f"fail with '{shown}: not found'); set CXX to the compiler alone, e.g. "
                           f"CXX={cxx[0]}")
    with tempfile.TemporaryDirectory(prefix="lstmkit-probe-") as tmp:
        src = Path(tmp) / "probe.cpp"
        src.write_text("int lstmkit_probe(int x) { return x + 1; }\n")
        try:
            res = _run([*cxx, *flags, "-x", "c++", "-c", str(src), "-o", str(Path(tmp) / "p.o")],
                       _PROBE_TIMEOUT)
        except (OSError, subprocess.SubprocessError) as e:
            raise RuntimeError(f"the C++ compiler {shown!r} could not be run: {e}") from None
    if res.returncode != 0:
        out = [ln.strip() for ln in (res.stderr + "\n" + res.stdout).splitlines() if ln.strip()]
        said = " / ".join(out[:6]) or "(no output)"
        raise RuntimeError(f"the C++ compiler {shown!r} failed on a one-line program "
                           f"(exit {res.returncode}): {said}")


def _compiler_lines(log: str) -> list[str]:
    """The compiler's diagnostics in a ninja/torch build log: without ninja's progress and command
    lines, and torch's wrapper text."""
    cxx = os.path.basename(_compiler()[0])
    keep = []
    for ln in log.splitlines():
        s = ln.strip()
        if not s or s.startswith(("[", "FAILED:", "ninja:", "Error building extension")):
            continue
        first = os.path.basename(s.split(" ", 1)[0])
        if first == cxx or (" -c " in s and " -o " in s):  # the echoed command
            continue
        keep.append(s)
    errors = [i for i, s in enumerate(keep) if "error" in s.lower() or "fatal" in s.lower()]
    if errors:  # the first diagnostics with the line before each (the "In function ..." context)
        picked = sorted({j for i in errors[:3] for j in (i - 1, i) if j >= 0})
        return [keep[j] for j in picked]
    return keep[-6:]


def _build(build_dir: Path, isa: str) -> Path:
    from torch.utils import cpp_extension

    print(f"lstmkit: building the fused kernels ({isa}) in {build_dir} (once per machine and "
          "version; well under a minute)", file=sys.stderr, flush=True)
    flags = compiler_flags(isa)
    _probe_compiler(flags)
    try:
        cpp_extension.verify_ninja_availability()
    except RuntimeError:
        raise RuntimeError("ninja was not found (pip install ninja); torch's C++ extension builder "
                           "needs it") from None
    build_dir.mkdir(parents=True, exist_ok=True)
    lib = build_dir / f"{_NAME}.so"
    for stale in (build_dir / "BUILD_OK", lib):  # unlink, never overwrite: a running process may map it
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()
    try:
        cpp_extension.load(name=_NAME, sources=[str(_CSRC / s) for s in _SOURCES],
                           extra_cflags=flags, extra_ldflags=[f for f in flags if f in _OPENMP_FLAGS],
                           build_directory=str(build_dir), with_cuda=False,
                           is_python_module=False, verbose=bool(os.environ.get("LSTMKIT_VERBOSE_BUILD")))
    except Exception as e:
        text = str(e)
        (build_dir / "build.log").write_text(text)
        said = _compiler_lines(text) or [text.strip().splitlines()[-1] if text.strip() else repr(e)]
        raise RuntimeError(" / ".join(said[:8]) + f" (full log: {build_dir / 'build.log'})") from None
    _write_json(build_dir / "BUILD_OK", {**_digest(lib), "torch": torch.__version__, "isa": isa,
                                          "openmp": _OPENMP_FLAGS[0] in flags})
    return lib


# ---- the GEMM path, by measurement -------------------------------------------------------------------
_LADDER = (1, 2, 4, 6, 8, 12, 16, 24, 32, 48, 64, 128)
_SHAPES = ((80, 256), (320, 1024))  # (k, n): a step's [x | h] . [W_ih | W_hh]^T at H = 64 and 256
_ANY = 1 << 30


def calibrate_gemm(ops=None) -> dict:
    """Time lstmkit's kernel against the BLAS's packed GEMM for products of m rows (m over a ladder,
    for two shapes) and return, per shape, the row count up to which lstmkit's kernel is faster:
    ``{"cols": [...], "rows": [...], "blas": ..., "seconds": ...}``. Scanning stops after two
    consecutive losses, so one noisy point does not end it."""
    ops = ops or torch.ops.lstmkit
    t0 = time.perf_counter()
    cols, rows = [], []
    for k, n in _SHAPES:
        best, losses = 0, 0
        for m in _LADDER:
            own = blas = float("inf")
            for _ in range(2):  # interleaved: both see the same drift of a shared machine
                own = min(own, ops.gemm_seconds(m, k, n, True, 3))
                blas = min(blas, ops.gemm_seconds(m, k, n, False, 3))
            if own <= blas:
                best, losses = m, 0
            else:
                losses += 1
                if losses == 2:
                    break
        cols.append(n)
        rows.append(_ANY if best == _LADDER[-1] else max(best, 1))
    return {"cols": cols, "rows": rows, "seconds": round(time.perf_counter() - t0, 3)}


def _gemm_plan(build_dir: Path) -> dict:
    """The cached crossover of this build and BLAS, measured now if there is none."""
    ops = torch.ops.lstmkit
    blas = "loops" if os.environ.get("LSTMKIT_NO_BLAS") else "torch"
    path = build_dir / f"gemm-{blas}.json"
    try:
        plan = json.loads(path.read_text())
        if plan.get("blas") == blas and len(plan["cols"]) == len(plan["rows"]):
            ops.set_own_rows(plan["cols"], plan["rows"])
            return plan
    except (OSError, ValueError, KeyError, TypeError):
        pass
    plan = {**calibrate_gemm(ops), "blas": blas}
    ops.set_own_rows(plan["cols"], plan["rows"])
    with contextlib.suppress(OSError):  # a read-only cache: measured again next time
        _write_json(path, plan)
    return plan


# ---- loading ---------------------------------------------------------------------------------------
@contextlib.contextmanager
def _outside_tracing() -> Iterator[None]:
    """Run the first load as plain eager code even when it happens inside ``torch.jit.trace`` (or
    the TorchScript ONNX exporter) or under a dispatch mode such as ``torch.export``'s fake tensors:
    otherwise the load's own operator calls (``isa()``, the GEMM timing) would be recorded into the
    user's graph or run on fake tensors, fail, and leave the kernels disabled for the process."""
    from torch.utils._python_dispatch import _disable_current_modes
    tracing = torch._C._get_tracing_state()
    torch._C._set_tracing_state(None)
    try:
        with _disable_current_modes():
            yield
    finally:
        torch._C._set_tracing_state(tracing)


def load() -> bool:
    """Load the compiled kernels, building them first if this machine has no valid cached build.
    Returns whether they are available; never raises for a failed build (see :func:`build_error`)."""
    if _state["loaded"] or _state["error"] is not None:
        return _state["loaded"]
    with _lock, _outside_tracing():
        if _state["loaded"] or _state["error"] is not None:
            return _state["loaded"]
        if os.environ.get("LSTMKIT_DISABLE_FUSED", "") not in ("", "0"):
            _state["error"] = "disabled by the environment variable LSTMKIT_DISABLE_FUSED"
            return False
        t0 = time.perf_counter()
        try:
            isa = selected_isa()
            build_dir = library_dir(isa)
            lib = build_dir / f"{_NAME}.so"
            if verify_library(build_dir):
                torch.ops.load_library(str(lib))
                _state["load_seconds"] = time.perf_counter() - t0
            else:
                with build_lock(build_dir):
                    if verify_library(build_dir):  # built by the process we waited for
                        torch.ops.load_library(str(lib))
                        _state["load_seconds"] = time.perf_counter() - t0
                    else:
                        _state["rebuilt"] = (build_dir / "BUILD_OK").exists() or lib.exists()
                        lib = _build(build_dir, isa)
                        _state["build_seconds"] = time.perf_counter() - t0
            _state["path"] = str(lib)
            if _fork.forked:  # first loaded in a child of fork(): no OpenMP regions here
                torch.ops.lstmkit.mark_forked()
            _state["isa"] = torch.ops.lstmkit.isa()
            _state["gemm"] = _gemm_plan(build_dir)
            _state["loaded"] = True
        except Exception as e:  # noqa: BLE001 - any build failure means "use the reference loop"
            msg = " ".join(str(e).split()) or repr(e)
            _state["error"] = f"{type(e).__name__}: {msg}"
        return _state["loaded"]


def available() -> bool:
    """True when the fused kernels are built (or could be built just now) and loaded."""
    return load()


def build_error() -> Optional[str]:
    """Why the fused kernels are unavailable, or None."""
    load()
    return _state["error"]


def build_info() -> dict:
    """Where the library is, how long its build or cached load took, its ISA and GEMM path."""
    load()
    info = {k: _state[k] for k in ("path", "build_seconds", "load_seconds", "error", "isa", "gemm",
                                   "rebuilt")}
    info["blas"] = torch.ops.lstmkit.info() if _state["loaded"] else None
    info["threads"] = torch.ops.lstmkit.threads() if _state["loaded"] else None
    info["cpu"] = cpu_model()
    return info


def ops():
    """torch.ops.lstmkit, loading (or building) the library on first use."""
    if not load():
        raise RuntimeError(f"lstmkit fused kernels are not available: {_state['error']}")
    return torch.ops.lstmkit
