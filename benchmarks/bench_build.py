"""How long the fused kernels take to build the first time, and to load from the cache afterwards.

    python benchmarks/bench_build.py

Builds into a fresh temporary cache folder (so the real cache is untouched), in a new interpreter
as a user's first call would, then loads the cached library in another new interpreter. Prints the
seconds measured by lstmkit.kernels.fused (build_seconds: the whole first-use build including
torch's C++ extension machinery and ninja; load_seconds: finding the cached library by its source
hash and loading it) and the wall time of each interpreter.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

PROBE = """
import json
from lstmkit.kernels import fused
fused.load()
print(json.dumps(fused.build_info()))
"""


def probe(cache: str) -> tuple[dict, float]:
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", PROBE], env=dict(os.environ, LSTMKIT_CACHE_DIR=cache),
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1]), time.perf_counter() - t


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="lstmkit-build-") as cache:
        first, wall1 = probe(cache)
        if first["error"]:
            print(f"build failed: {first['error']}")
            return 1
        second, wall2 = probe(cache)
    print(f"first build:  {first['build_seconds']:.2f} s   (interpreter wall {wall1:.2f} s)")
    print(f"cached load:  {second['load_seconds'] * 1e3:.1f} ms (interpreter wall {wall2:.2f} s, "
          f"mostly importing torch)")
    print(f"GEMM: {second['blas']}; {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
