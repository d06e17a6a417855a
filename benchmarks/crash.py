"""Crash trials of the HTTP service: kill -9 while writing, restart, count lost acknowledged writes.

    python benchmarks/crash.py [--trials 20] [--out docs/results/crash.json]

Each trial is ``tests/service/test_server_crash.py::run_trial`` (a real
``sparsearch serve`` on 127.0.0.1, a client posting batches, SIGKILL at a
random moment, a restart on the same data directory, every acknowledged
document read back); trials accumulate in one data directory.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def load_trial():  # type: ignore[no-untyped-def]
    path = HERE.parent / "tests" / "service" / "test_server_crash.py"
    spec = importlib.util.spec_from_file_location("server_crash", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module.run_trial


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--out", type=Path, default=HERE.parent / "docs" / "results" / "crash.json")
    args = parser.parse_args()
    run_trial = load_trial()
    rows = []
    with tempfile.TemporaryDirectory(prefix="sparsearch-crash-") as tmp:
        total = 0
        for seed in range(args.trials):
            t = time.perf_counter()
            acked, after = run_trial(Path(tmp) / "data", 1000 + seed)  # raises if any acknowledged write is lost
            total += acked
            rows.append({"trial": seed, "acknowledged": acked, "documents_after_restart": after,
                         "seconds": time.perf_counter() - t})
            print(json.dumps(rows[-1]), flush=True)
    result = {"trials": args.trials, "acknowledged_total": total, "lost": 0, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"{args.trials} trials, {total} acknowledged documents, 0 lost")


if __name__ == "__main__":
    main()
