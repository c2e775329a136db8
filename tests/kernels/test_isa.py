"""The ISA layer: the instruction set is chosen from the CPU (LSTMKIT_ISA overrides), every ISA this
machine runs is built and checked fused against reference (outputs and gradients), the GEMM path is
chosen by measurement, and the threads are torch's: its own OpenMP pool where the compiler has OpenMP,
its inter-op pool in a build without OpenMP (which must keep working)."""
from __future__ import annotations

import os
import platform
import subprocess
import sys
import warnings
from shutil import which as shutil_which
from pathlib import Path

import pytest
import torch

from lstmkit.cells.lstm import LSTMOptions, PRESETS
from lstmkit.kernels import build, fused

from .helpers import check_against, lstm_case, needs_fused
from .test_fused_build import run_python


def test_isa_selection_and_override(monkeypatch):
    runs = build.cpu_isas()
    assert runs[-1] == "portable" and set(runs) <= set(build.ISAS)
    monkeypatch.delenv("LSTMKIT_ISA", raising=False)
    assert build.selected_isa() == runs[0]
    monkeypatch.setenv("LSTMKIT_ISA", "portable")
    assert build.selected_isa() == "portable"
    monkeypatch.setenv("LSTMKIT_ISA", "sse9")
    with pytest.raises(ValueError, match="LSTMKIT_ISA must be one of auto, avx512, avx2, portable; got 'sse9'"):
        build.selected_isa()
    missing = [i for i in build.ISAS if i not in runs]
    if missing:
        monkeypatch.setenv("LSTMKIT_ISA", missing[0])
        with pytest.raises(ValueError, match="this CPU runs only"):
            build.selected_isa()


def test_each_isa_builds_into_its_own_folder_openmp_by_request(monkeypatch):
    monkeypatch.delenv("LSTMKIT_ISA", raising=False)
    monkeypatch.delenv("LSTMKIT_OPENMP", raising=False)
    dirs = {isa: build.library_dir(isa) for isa in build.ISAS}
    assert len(set(dirs.values())) == len(build.ISAS)
    for isa in build.ISAS:
        assert "-fopenmp" not in build.compiler_flags(isa, openmp=False)
        assert "-fopenmp" in build.compiler_flags(isa, openmp=True)
    if platform.machine().lower() in ("x86_64", "amd64"):
        assert "-mno-avx" in build.compiler_flags("portable")  # AVX (and AVX2, FMA) off at compile time
        assert "-mno-avx512f" in build.compiler_flags("avx2")
    auto = build.library_dir()
    monkeypatch.setenv("LSTMKIT_OPENMP", "0")  # a build without OpenMP has its own folder
    assert not build.uses_openmp() and build.library_dir() != auto
    monkeypatch.setenv("LSTMKIT_OPENMP", "yes")
    with pytest.raises(ValueError, match="LSTMKIT_OPENMP must be auto, 1 or 0; got 'yes'"):
        build.uses_openmp()


RUNTIMES_CHECK = """
    import json, torch, lstmkit
    from pathlib import Path
    from lstmkit.kernels import build, fused
    fused.load()
    m, x = lstmkit.LSTM(8, 16), torch.randn(5, 4, 8)
    with torch.no_grad(), lstmkit.use_backend("fused"):
        m(x)
    names = ("libgomp", "libomp", "libiomp")
    maps = [ln.split()[-1] for ln in Path("/proc/self/maps").read_text().splitlines() if len(ln.split()) >= 6]
    print(json.dumps({"runtimes": sorted({p for p in maps if Path(p).name.startswith(names)}),
                      "torch": str(Path(torch.__file__).resolve().parent), "openmp": build.uses_openmp()}))
"""


@needs_fused
def test_the_library_is_the_selected_isa_and_shares_torchs_openmp_runtime():
    info = fused.build_info()
    assert info["isa"] == build.selected_isa() == torch.ops.lstmkit.isa()
    assert info["blas"].startswith(info["isa"] + ": ")
    openmp = build.uses_openmp()
    assert info["threads"].startswith("torch's intra-op pool" if openmp else "torch's inter-op pool")
    if openmp and Path("/proc/self/maps").is_file():
        # in a process with only torch and lstmkit (other packages, scikit-learn for one, bring their
        # own renamed copies): the library links the runtime by soname and gets the copy torch
        # loaded, so there is one pool, not two
        res = run_python(RUNTIMES_CHECK)
        assert len(res["runtimes"]) == 1, res
        assert Path(res["torch"]) in Path(res["runtimes"][0]).resolve().parents, res


@pytest.mark.skipif(not Path("/proc/self/maps").is_file() or not build.torch_uses_openmp(),
                    reason="lists loaded libraries through /proc (Linux); torch's backend is OpenMP")
def test_a_compiler_whose_openmp_is_a_second_runtime_gets_the_inter_op_path(tmp_path, monkeypatch):
    """clang's -fopenmp links LLVM's libomp, Homebrew's on macOS its own: beside torch's runtime that
    would be a second OpenMP pool. The probe loads its library beside torch and says no; with the
    plain compiler it says yes. The stand-in compiler is g++ linking one more library named libomp."""
    cxx = os.environ.get("CXX", "c++")
    if not shutil_which(cxx.split()[0]):
        pytest.skip("no C++ compiler")
    fake = tmp_path / "libomp.so"
    (tmp_path / "fake.c").write_text("int omp_fake_runtime(void) { return 1; }\n")
    subprocess.run([*cxx.split(), "-x", "c", "-shared", "-fPIC", str(tmp_path / "fake.c"), "-o", str(fake)],
                   check=True, capture_output=True)
    wrapper = tmp_path / "cxx-with-libomp"
    wrapper.write_text(f"#!/bin/sh\nexec {cxx} \"$@\" -L{tmp_path} -Wl,--no-as-needed -lomp "
                       f"-Wl,-rpath,{tmp_path}\n")
    wrapper.chmod(0o755)
    monkeypatch.delenv("LSTMKIT_OPENMP", raising=False)
    monkeypatch.setattr(build, "_openmp_probe", {})
    assert build._compiler_has_openmp()  # the plain compiler: torch's own runtime
    monkeypatch.setenv("CXX", str(wrapper))
    assert not build._compiler_has_openmp()
    assert not build.uses_openmp()
    assert "-fopenmp" not in build.compiler_flags(build.selected_isa())


@pytest.mark.skipif(not Path("/proc/self/maps").is_file() or not build.torch_uses_openmp(),
                    reason="lists loaded libraries through /proc (Linux); torch's backend is OpenMP")
def test_the_runtime_check_sees_this_interpreters_sys_path_and_says_when_it_cannot_run(tmp_path,
                                                                                       monkeypatch):
    """The check runs in a fresh interpreter: it gets this one's sys.path (a torch reached through
    sys.path, not site-packages, is still found there), and where it cannot run at all the compiler's
    word is taken with a warning, never a silent 'no OpenMP'."""
    if not shutil_which(os.environ.get("CXX", "c++").split()[0]):
        pytest.skip("no C++ compiler")
    monkeypatch.delenv("LSTMKIT_OPENMP", raising=False)
    bare = tmp_path / "python-without-site"  # this Python without site-packages (-S): torch only via
    bare.write_text(f"#!/bin/sh\nexec {sys.executable} -S \"$@\"\n")  # the PYTHONPATH the check gives
    bare.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(bare))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert build._compiler_has_openmp()
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-such-python"))
    with pytest.warns(RuntimeWarning, match="could not check which OpenMP runtime"):
        assert build._compiler_has_openmp()


def test_a_cxx_with_arguments_is_refused_with_the_reason(monkeypatch):
    """torch's builder writes CXX into build.ninja as one program name, so 'g++ -O2' would fail every
    compile with 'g++ -O2: not found'; the build says why before it starts."""
    cxx = os.environ.get("CXX", "c++").split()[0]
    if not shutil_which(cxx):
        pytest.skip("no C++ compiler")
    monkeypatch.setenv("CXX", f"{cxx} -O2")
    with pytest.raises(RuntimeError, match=r"single program name.*set CXX to the compiler alone"):
        build._probe_compiler([])


ISA_CHECK = """
    import json, torch
    from lstmkit.cells.lstm import PRESETS, LSTMOptions
    from lstmkit.kernels import fused
    from tests.kernels.helpers import check_against, gru_case, lstm_case
    for own in ("0", "64"):  # the BLAS and lstmkit's kernel for the per-step products
        import os; os.environ["LSTMKIT_OWN_GEMM_ROWS"] = own
        check_against(lstm_case(PRESETS["V"], torch.float32, N=7, H=20, lengths=[5, 1, 2, 3, 4, 5, 5]))
        check_against(lstm_case(LSTMOptions(layer_norm=True), torch.float32, N=3, H=20))
        check_against(gru_case(torch.float32, N=7, H=20))
    print(json.dumps({"isa": torch.ops.lstmkit.isa(), "info": fused.build_info()}))
"""


@pytest.mark.parametrize("isa", build.ISAS)
def test_each_isa_path_matches_the_reference(isa, request):
    """One small float32 configuration per ISA the CPU runs, on both GEMM paths. The machine's own
    ISA is the cached build (quick); the others need a build of their own (slow)."""
    if isa not in build.cpu_isas():
        pytest.skip(f"this CPU does not run {isa}")
    if isa != build.selected_isa() and not request.config.getoption("--run-slow"):
        pytest.skip("builds another ISA's library: run with --run-slow")
    if isa == build.selected_isa() and not fused.available():
        pytest.skip("fused kernels not built here")
    res = run_python(ISA_CHECK, LSTMKIT_ISA=isa)
    assert res["isa"] == isa and res["info"]["error"] is None


@needs_fused
def test_gemm_crossover_is_measured_and_applied():
    plan = fused.build_info()["gemm"]
    assert len(plan["cols"]) == len(plan["rows"]) >= 1 and all(r >= 1 for r in plan["rows"])
    ops = torch.ops.lstmkit
    try:
        ops.set_own_rows([256], [0])
        assert "kernel" not in ops.info()
        case = lstm_case(PRESETS["V"], torch.float32, N=8, H=40, lengths=[5, 4, 5, 3, 5, 1, 2, 5])
        check_against(case)
        ops.set_own_rows([256], [1 << 30])
        assert "kernel up to any number of rows" in ops.info()
        check_against(case)
        check_against(lstm_case(LSTMOptions(layer_norm=True, peephole=True), torch.float32, N=13, H=24))
    finally:
        ops.set_own_rows(plan["cols"], plan["rows"])
    assert ops.gemm_seconds(3, 16, 32, True, 1) > 0 and ops.gemm_seconds(3, 16, 32, False, 1) > 0


@pytest.mark.slow
@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="x86 ISA")
def test_an_isa_this_cpu_lacks_still_compiles(tmp_path):
    """The AVX-512 kernels cannot run on an AVX2 machine, but they must still compile: a change to
    the shared kernel code that breaks another ISA's build is caught here, not on a user's machine.
    Compiled in a new interpreter into a scratch folder (the library is built, never called)."""
    missing = [isa for isa in ("avx512", "avx2") if isa not in build.cpu_isas()]
    if not missing:
        pytest.skip("this CPU runs every x86 ISA: test_each_isa_path_matches_the_reference checks them")
    res = run_python(f"""
        import json
        from pathlib import Path
        from lstmkit.kernels import build
        lib = build._build(Path({str(tmp_path)!r}) / {missing[0]!r}, {missing[0]!r})
        print(json.dumps({{"lib": str(lib), "size": lib.stat().st_size,
                          "ok": json.loads((lib.parent / "BUILD_OK").read_text())["isa"]}}))
    """)
    assert res["ok"] == missing[0] and res["size"] > 0


THREADS_CHECK = """
    import json, os, torch, lstmkit
    from lstmkit.kernels import fused
    from lstmkit.kernels.dispatch import use_backend
    fused.load()
    torch.set_num_threads({threads})
    tasks = lambda: len(os.listdir("/proc/self/task"))
    m, x = lstmkit.LSTM(8, 16), torch.randn(5, 4, 8)
    before = tasks()
    with torch.no_grad(), use_backend("fused"):
        y = m(x)[0]
    after = tasks()
    torch.randn(1 << 22).exp_().sum()  # one of torch's own parallel ops
    print(json.dumps({{"before": before, "after": after, "torch_op": tasks(),
                      "threads": fused.build_info()["threads"]}}))
"""


def _check_threads(**env):
    one = run_python(THREADS_CHECK.format(threads=1), **env)
    two = run_python(THREADS_CHECK.format(threads=2), **env)
    assert one["after"] == one["before"]
    assert two["after"] > two["before"]
    if two["threads"].startswith("torch's intra-op pool"):
        # torch's op runs on the pool the kernel started: no second pool of threads fighting it for
        # the cores (the inter-op build starts a thread of its own pool here)
        assert two["torch_op"] == two["after"], two
    return two


@needs_fused
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads through /proc (Linux)")
def test_the_kernels_run_on_torch_threads():
    """With torch.set_num_threads(2) a fused call runs its rows on two threads of torch's (at::parallel_for
    without -fopenmp in this build would have run everything on the caller: the kernels were silently
    single-threaded); with one thread no thread is started. Where the build has OpenMP those threads
    are torch's intra-op pool itself, which torch's next op reuses."""
    two = _check_threads()
    assert two["threads"] == fused.build_info()["threads"]


@pytest.mark.slow
@needs_fused
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads through /proc (Linux)")
def test_a_build_without_openmp_works_on_the_inter_op_pool():
    """LSTMKIT_OPENMP=0 builds what a compiler without OpenMP (Apple's clang) builds: the same kernels,
    threads from torch's inter-op pool. Checked against the reference and for its threads."""
    if not build.uses_openmp():
        pytest.skip("the default build already has no OpenMP (checked by the quick tests)")
    res = run_python(ISA_CHECK, LSTMKIT_OPENMP="0")
    assert res["info"]["error"] is None and res["info"]["threads"].startswith("torch's inter-op pool")
    assert "libgomp" not in Path(res["info"]["path"]).read_bytes().decode("latin-1")
    two = _check_threads(LSTMKIT_OPENMP="0")
    assert two["threads"].startswith("torch's inter-op pool")


# run `child(q)` in a forked child: it puts (max difference, build_info()["threads"]); prints one
# JSON line, with hung = True where the child did not finish in 120 s
_IN_FORKED_CHILD = """
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=child, args=(q,))
    p.start()
    p.join(120)
    hung = p.exitcode is None
    if hung:
        p.kill()
    diff, threads = (None, None) if hung or p.exitcode != 0 else q.get(timeout=10)
    print(json.dumps({"hung": hung, "exitcode": p.exitcode, "diff": diff, "threads": threads}))
"""


FORK_CHECK = """
    import json, multiprocessing as mp, torch, lstmkit
    torch.set_num_threads(2)
    torch.manual_seed(0)
    m = lstmkit.LSTM(8, 16, layer_norm=True)
    x = torch.randn(20, 32, 8, requires_grad=True)
    with lstmkit.use_backend("fused"):  # the parent starts the thread pool
        m(x)[0].sum().backward()
    want = x.grad.clone()

    def child(q):
        x.grad = None
        with lstmkit.use_backend("fused"):
            m(x)[0].sum().backward()
        from lstmkit.kernels import fused
        q.put((float((x.grad - want).abs().max()), fused.build_info()["threads"]))

""" + _IN_FORKED_CHILD


@needs_fused
@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork() is POSIX")
def test_a_forked_child_runs_the_kernels():
    """A child of fork() cannot start GNU OpenMP's pool once the parent has (its ops wait for threads
    that were not copied: torch's own do), and torch's inter-op pool aborts there now and then. The
    kernels notice the fork and run on the calling thread with a single-threaded BLAS: same gradients,
    no hang, no abort. Three children, since the abort was intermittent."""
    for _ in range(3):
        res = run_python(FORK_CHECK)
        assert not res["hung"] and res["exitcode"] == 0, res
        assert res["diff"] == 0.0
        assert res["threads"].startswith("the calling thread only")


FORK_FIRST_LOAD = """
    import json, multiprocessing as mp, torch, lstmkit
    from lstmkit.kernels import build
    torch.set_num_threads(2)
    torch.randn(1 << 22).exp_().sum()  # the parent starts torch's OpenMP pool...
    # small enough that torch's own ops stay below its parallel grain (in the child they would hang
    # too: the reference runs here, in the parent); the kernel still splits the 4 rows over 2 threads
    m, x = lstmkit.LSTM(8, 16, layer_norm=True), torch.randn(5, 4, 8)
    with torch.no_grad(), lstmkit.use_backend("reference"):
        r = m(x)[0]
    assert not build._state["loaded"]  # ...but never loads the kernels

    def child(q):
        with torch.no_grad(), lstmkit.use_backend("fused"):
            y = m(x)[0]
        from lstmkit.kernels import fused
        q.put((float((y - r).abs().max()), fused.build_info()["threads"]))

""" + _IN_FORKED_CHILD


@needs_fused
@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork() is POSIX")
def test_a_forked_child_that_loads_the_kernels_first_runs_them():
    """The parent used torch's OpenMP pool but never loaded the kernels, so the library's own fork
    handler was not there; the first load in the child is told of the fork (os.register_at_fork) and
    runs the kernels on the calling thread instead of hanging in OpenMP."""
    res = run_python(FORK_FIRST_LOAD)
    assert not res["hung"] and res["exitcode"] == 0, res
    assert res["diff"] < 1e-5
    assert res["threads"].startswith("the calling thread only")
