"""Faults around building and loading the fused kernels (issue 8, items 4, 5, 11): a build killed
mid-way never blocks later runs, a live builder is waited for only so long, a damaged cached library
is rebuilt instead of crashing the process or falling back for good, and a broken compiler's own
message reaches the user."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from lstmkit.kernels import build

from .helpers import needs_fused
from .test_fused_build import FALLBACK_SCRIPT, _check_fallback, run_python

HOLD = """
import fcntl, json, os, sys, time
path = sys.argv[1]
fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
fcntl.flock(fd, fcntl.LOCK_EX)
os.write(fd, json.dumps({"pid": os.getpid(), "host": "here", "since": time.time()}).encode())
print("held", flush=True)
time.sleep(60)
"""


def _holder(lock: Path) -> subprocess.Popen:
    """A process that takes the build lock (as a building lstmkit would) and keeps it."""
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(lock)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "held"
    return p


def _lock_of(build_dir: Path) -> Path:
    return build_dir.with_name(build_dir.name + ".lock")


def test_a_killed_build_leaves_no_lock_that_blocks(tmp_path):
    build_dir = tmp_path / "fused-x"
    build_dir.mkdir()
    (build_dir / "lock").write_text("")  # what torch's builder leaves when its process is killed
    p = _holder(_lock_of(build_dir))
    p.send_signal(signal.SIGKILL)
    p.wait()
    t0 = time.monotonic()
    with build.build_lock(build_dir, wait_s=30):
        assert not (build_dir / "lock").exists(), "the dead build's torch lock file must be removed"
    assert time.monotonic() - t0 < 10


def test_a_live_builder_is_waited_for_only_so_long(tmp_path, capfd):
    build_dir = tmp_path / "fused-x"
    p = _holder(_lock_of(build_dir))
    try:
        with pytest.raises(build.BuildLockTimeout, match=f"pid {p.pid}.*LSTMKIT_BUILD_WAIT"):
            with build.build_lock(build_dir, wait_s=1):
                pass
        assert f"waiting for the fused-kernel build of another process (pid {p.pid}" in capfd.readouterr().err
    finally:
        p.kill()
        p.wait()
    with build.build_lock(build_dir, wait_s=5):  # free again once the holder is gone
        pass


def test_load_falls_back_with_a_message_when_the_builder_never_finishes(tmp_path, monkeypatch):
    env = {"LSTMKIT_CACHE_DIR": str(tmp_path), "LSTMKIT_BUILD_WAIT": "1"}
    monkeypatch.setenv("LSTMKIT_CACHE_DIR", str(tmp_path))
    p = _holder(_lock_of(build.library_dir()))
    try:
        res = run_python(FALLBACK_SCRIPT, **env)
    finally:
        p.kill()
        p.wait()
    _check_fallback(res, "another process")
    assert f"pid {p.pid}" in res["error"]


def test_verify_library_rejects_truncated_and_replaced_files(tmp_path):
    lib = tmp_path / "lstmkit_fused.so"
    lib.write_bytes(os.urandom(4096))
    assert not build.verify_library(tmp_path)  # no BUILD_OK
    (tmp_path / "BUILD_OK").write_text(json.dumps(build._digest(lib)))
    assert build.verify_library(tmp_path)
    lib.write_bytes(lib.read_bytes()[:1000])  # truncated
    assert not build.verify_library(tmp_path)
    (tmp_path / "BUILD_OK").write_text(json.dumps(build._digest(lib)))
    lib.write_bytes(os.urandom(1000))  # same size, other bytes
    assert not build.verify_library(tmp_path)
    (tmp_path / "BUILD_OK").write_text("1.0\n")  # the old, unverifiable marker
    assert not build.verify_library(tmp_path)


@pytest.mark.slow
@needs_fused
@pytest.mark.parametrize("damage", ["truncated", "junk"])
def test_a_damaged_cached_library_is_rebuilt(tmp_path, damage):
    """A copy of this machine's build with its library damaged: the next process notices, rebuilds
    (ninja relinks: the objects are intact) and runs the kernels, instead of a Bus error or a
    permanent fallback."""
    src = Path(build.build_info()["path"]).parent
    dst = tmp_path / src.name
    shutil.copytree(src, dst)
    lib = dst / "lstmkit_fused.so"
    data = lib.read_bytes()
    lib.write_bytes(data[: len(data) // 3] if damage == "truncated" else os.urandom(len(data)))
    res = run_python("""
        import json, torch
        from lstmkit.cells.lstm import PRESETS
        from lstmkit.kernels import fused
        from tests.kernels.helpers import check_against, lstm_case
        check_against(lstm_case(PRESETS["V"], torch.float32, lengths=[5, 2, 4]))
        print(json.dumps(fused.build_info()))
    """, LSTMKIT_CACHE_DIR=tmp_path)
    assert res["error"] is None and res["rebuilt"] is True and res["build_seconds"] is not None
    assert build.verify_library(dst)


def test_a_broken_compiler_shows_its_own_message(tmp_path):
    cxx = tmp_path / "mycc"
    cxx.write_text("#!/bin/sh\necho 'mycc: licence server unreachable (code 7)' >&2\nexit 3\n")
    cxx.chmod(0o755)
    res = run_python(FALLBACK_SCRIPT, CXX=cxx, LSTMKIT_CACHE_DIR=tmp_path)
    _check_fallback(res, "licence server unreachable (code 7)")
    assert "exit 3" in res["error"]


def test_build_errors_show_the_compilers_diagnostics():
    log = textwrap.dedent("""\
        Error building extension 'lstmkit_fused': [1/8] c++ -MMD -MF blas.o.d -O3 -c /src/blas.cpp -o blas.o
        FAILED: blas.o
        c++ -MMD -MF blas.o.d -O3 -c /src/blas.cpp -o blas.o
        /src/blas.cpp: In function 'void f()':
        /src/blas.cpp:12:3: error: 'foo' was not declared in this scope
        ninja: build stopped: subcommand failed.
    """)
    said = build._compiler_lines(log)
    assert said == ["/src/blas.cpp: In function 'void f()':",
                    "/src/blas.cpp:12:3: error: 'foo' was not declared in this scope"]


def test_a_build_says_it_has_started_before_the_compiler_probes(tmp_path, monkeypatch, capfd):
    """A first build takes about a minute (and a stuck compiler up to its probes' timeouts): the first
    line on stderr says what is happening before any compiler runs."""
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    with pytest.raises(RuntimeError, match="no C\\+\\+ compiler"):
        build._build(tmp_path / "lib", "portable")
    assert "lstmkit: building the fused kernels (portable)" in capfd.readouterr().err


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="looks for the processes in /proc (Linux)")
def test_a_stuck_compiler_is_stopped_with_its_children(tmp_path, monkeypatch):
    """A compiler driver that hangs is killed with everything it started (cc1plus for g++), and the
    error says it timed out."""
    marker = f"lstmkit-stuck-{os.getpid()}"
    cxx = tmp_path / "stuck-cxx"
    cxx.write_text(f"#!/bin/sh\nsh -c 'sleep 300; :' {marker} &\nsleep 300\n")  # $0 = the marker
    cxx.chmod(0o755)
    monkeypatch.setenv("CXX", str(cxx))
    monkeypatch.setattr(build, "_PROBE_TIMEOUT", 1)
    with pytest.raises(RuntimeError, match="timed out after 1 second"):
        build._probe_compiler([])
    time.sleep(0.2)

    def cmdline(p: Path) -> bytes:
        try:
            return (p / "cmdline").read_bytes()
        except OSError:  # gone meanwhile
            return b""

    left = [p.name for p in Path("/proc").iterdir() if p.name.isdigit() and marker.encode() in cmdline(p)]
    assert not left, f"the compiler's child outlived the timeout: pids {left}"
