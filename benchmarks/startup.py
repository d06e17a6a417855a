"""Cold and warm start of the CLI: what a user waits for on ``sparsearch search``.

    python benchmarks/startup.py INDEX_DIR [--runs 5]

Cold: an empty Numba cache (``NUMBA_CACHE_DIR`` pointed at a fresh folder), so
every kernel the command needs is compiled.  Warm: the cache filled by a
previous run, as after installation and a first use.  Also times
``import sparsearch`` alone.  Medians of ``--runs`` whole-process runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def wall(cmd: list[str], env: dict[str, str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("index", type=Path)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--query", default="coronary heart disease risk")
    args = parser.parse_args()
    exe = str(Path(sys.executable).parent / "sparsearch")
    search = [exe, "search", str(args.index), args.query]
    importing = [sys.executable, "-c", "import sparsearch"]
    results: dict[str, float] = {}
    cold = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as cache:
            cold.append(wall(search, {**os.environ, "NUMBA_CACHE_DIR": cache}))
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        wall(search, env)  # fills the cache
        results["search_warm_s"] = statistics.median(wall(search, env) for _ in range(args.runs))
    results["search_cold_s"] = statistics.median(cold)
    results["import_s"] = statistics.median(wall(importing, dict(os.environ)) for _ in range(args.runs))
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
