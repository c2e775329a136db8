"""Building, caching and falling back: the cached library loads without a build, a failed or disabled
build gives one warning and the reference loop, and the GEMM fallbacks compute the same numbers.

Each scenario runs in a fresh interpreter (the library is loaded once per process)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from .helpers import needs_fused


def run_python(code: str, **env) -> dict:
    """Run `code` in a new interpreter with extra environment variables; it prints one JSON line."""
    full = dict(os.environ, **{k: str(v) for k, v in env.items()})
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=full, capture_output=True,
                         text=True, timeout=600, cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


FALLBACK_SCRIPT = """
    import json, warnings, torch, lstmkit
    from lstmkit.kernels import fused
    torch.manual_seed(0)
    x = torch.randn(5, 2, 3)
    lstm = lstmkit.LSTM(3, 4, preset="V")
    gru = lstmkit.GRU(3, 4, zoneout=0.1).eval()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ys = [lstm(x)[0], lstm(x)[0], gru(x)[0]]
    with lstmkit.use_backend("reference"):
        refs = [lstm(x)[0], lstm(x)[0], gru(x)[0]]
    try:
        with lstmkit.use_backend("fused"):
            lstm(x)
        forced = ""
    except RuntimeError as e:
        forced = str(e)
    print(json.dumps({
        "available": fused.available(), "error": fused.build_error(),
        "warnings": [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)],
        "same": all(torch.equal(a, b) for a, b in zip(ys, refs)), "forced": forced}))
"""


def _check_fallback(res: dict, why: str) -> None:
    assert res["available"] is False
    assert why in res["error"]
    assert len(res["warnings"]) == 1, res["warnings"]  # one warning, not one per call
    assert "reference loop" in res["warnings"][0] and why in res["warnings"][0]
    assert res["same"], "the fallback must compute exactly the reference loop's numbers"
    assert "fused" in res["forced"] and why in res["forced"]


def test_disabled_build_warns_once_and_runs_the_reference():
    _check_fallback(run_python(FALLBACK_SCRIPT, LSTMKIT_DISABLE_FUSED=1), "LSTMKIT_DISABLE_FUSED")


def test_missing_compiler_warns_once_and_runs_the_reference(tmp_path):
    res = run_python(FALLBACK_SCRIPT, CXX=tmp_path / "no-such-compiler", LSTMKIT_CACHE_DIR=tmp_path)
    _check_fallback(res, "compiler")


@needs_fused
def test_second_process_loads_the_cached_library_without_building():
    res = run_python("""
        import json
        from lstmkit.kernels import fused
        print(json.dumps(fused.build_info()))
    """)
    assert res["error"] is None
    assert res["build_seconds"] is None and res["load_seconds"] is not None
    assert os.path.exists(res["path"])


@needs_fused
@pytest.mark.parametrize("env", [{"LSTMKIT_NO_BLAS": 1, "LSTMKIT_OWN_GEMM_ROWS": 0},
                                 {"LSTMKIT_NO_BLAS": 1}, {"LSTMKIT_OWN_GEMM_ROWS": 0}],
                         ids=["loops only", "own kernel + loops", "BLAS only"])
def test_gemm_fallbacks_match_the_reference(env):
    res = run_python("""
        import json, torch
        from lstmkit.cells.lstm import PRESETS, LSTMOptions
        from tests.kernels.helpers import check_against, gru_case, lstm_case
        from lstmkit.kernels import fused
        for dtype in (torch.float32, torch.float64):
            check_against(lstm_case(PRESETS["V"], dtype, N=7, H=9, P=5, lengths=[5, 1, 2, 3, 4, 5, 5]))
            check_against(lstm_case(LSTMOptions(layer_norm=True, gate_recurrence=True), dtype, N=2))
            check_against(gru_case(dtype, N=7, lengths=[5, 1, 2, 3, 4, 5, 5], rec=True))
        print(json.dumps({"blas": torch.ops.lstmkit.info()}))
    """, **env)
    if "LSTMKIT_NO_BLAS" in env:
        assert "loops" in res["blas"]
