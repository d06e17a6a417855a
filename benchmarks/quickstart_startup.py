"""Cold and warm ``sparsearch quickstart``: what a new user waits for after installing.

    python benchmarks/quickstart_startup.py [--runs 5] [--pythonpath DIR] [-- QUICKSTART OPTIONS]

Each run is a whole process, ``sparsearch quickstart`` (through ``python -m``,
so ``--pythonpath`` can time another copy of the package), started in an empty
temporary folder with no ``../shared`` beside it and ``SPARSEARCH_DATA``
unset, so the bundled 20-document sample is indexed, as on a fresh machine.
Cold: ``NUMBA_CACHE_DIR`` points at a new empty folder (nothing compiled
yet). Warm: the same folder again after a first run. Reports the median wall
time and the median CPU time (user + sys of the process and its children):
on a machine shared with other jobs, CPU time is the steadier of the two.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_once(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one whole-process run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(cmd, env=env, cwd=cwd, check=True, capture_output=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--pythonpath", default=None, help="Put this folder first on PYTHONPATH (another copy).")
    parser.add_argument("options", nargs="*", help="Options passed to quickstart (after --).")
    args = parser.parse_args()
    code = "import sys; from sparsearch.cli import app; sys.argv[0] = 'sparsearch'; app()"
    cmd = [sys.executable, "-c", code, "quickstart", *args.options]
    env = {key: value for key, value in os.environ.items() if key != "SPARSEARCH_DATA"}
    if args.pythonpath:
        env["PYTHONPATH"] = args.pythonpath
    cold: list[tuple[float, float]] = []
    warm: list[tuple[float, float]] = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp) / "work"
            work.mkdir()
            run_env = {**env, "NUMBA_CACHE_DIR": str(Path(tmp) / "numba-cache")}
            cold.append(run_once(cmd, run_env, work))
            warm.append(run_once(cmd, run_env, work))
    results = {
        "cold_wall_s": round(statistics.median(w for w, _ in cold), 2),
        "cold_cpu_s": round(statistics.median(c for _, c in cold), 2),
        "warm_wall_s": round(statistics.median(w for w, _ in warm), 2),
        "warm_cpu_s": round(statistics.median(c for _, c in warm), 2),
        "cold_runs": [[round(w, 2), round(c, 2)] for w, c in cold],
        "warm_runs": [[round(w, 2), round(c, 2)] for w, c in warm],
        "load_average_1min": round(os.getloadavg()[0], 1),
    }
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
