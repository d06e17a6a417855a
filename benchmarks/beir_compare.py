"""sparsearch vs bm25s vs Pyserini on every dataset in $SPARSEARCH_DATA, in one run.

    python benchmarks/beir_compare.py [--data DIR] [--out docs/results/beir.json] [--systems ...]

Each (system, dataset) pair runs as its own process (so peak RSS is that
system's alone) and writes a report and a TREC run.  Quality is then scored
here, for all systems alike, with sparsearch's metrics over every judged query
of the test split, reading each run in its rank order (see
``sparsearch.eval.runs.ranking_run``).  Speed definitions are shared:
``qps_1_thread`` is batch retrieval on one thread, ``qps_all_threads`` batch
retrieval on all cores, latency is one query at a time; all after warm-up,
queries analysed inside the timed region.  Pyserini and bm25s need the
``compare`` extra (see benchmarks/peers/INSTALL.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from sparsearch.eval.datasets import data_root, load_beir
from sparsearch.eval.metrics import evaluate
from sparsearch.eval.runs import read_trec

HERE = Path(__file__).resolve().parent
SYSTEMS = ("sparsearch", "bm25s", "pyserini")


def datasets(root: Path) -> list[Path]:
    """Every folder under ``beir/`` and ``classic/`` with a corpus and a test split."""
    found = []
    for group in ("beir", "classic"):
        for d in sorted((root / group).glob("*")):
            if (d / "corpus.jsonl").exists() and (d / "qrels" / "test.tsv").exists():
                found.append(d)
    return found


def command(system: str, dataset: Path, out: Path, repeats: int) -> list[str]:
    threads = str(os.cpu_count() or 1)
    if system == "sparsearch":
        return [sys.executable, "-m", "sparsearch.cli", "eval", str(dataset), "--report", str(out / "report.json"),
                "--run", str(out / "run.trec")]
    script = {"bm25s": "bm25s_bm25.py", "pyserini": "pyserini_bm25.py"}[system]
    return [sys.executable, str(HERE / "peers" / script), str(dataset), "--out-dir", str(out), "--threads", threads,
            "--warmup", "50", "--repeats", str(repeats)]


def run_system(system: str, dataset: Path, work: Path, repeats: int) -> dict[str, Any]:
    out = work / dataset.name / system
    out.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    proc = subprocess.run(command(system, dataset, out, repeats), capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{system} on {dataset.name} failed:\n{proc.stderr[-3000:]}")
    report = json.loads((out / "report.json").read_text())
    qrels = load_beir(dataset).qrels
    report["metrics"] = evaluate(qrels, read_trec(out / "run.trec", by_rank=True))
    report["wall_seconds"] = time.perf_counter() - t
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="data folder (default: $SPARSEARCH_DATA)")
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=SYSTEMS)
    parser.add_argument("--work", type=Path, default=Path("/tmp/sparsearch-beir-compare"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=HERE.parent / "docs" / "results" / "beir.json")
    args = parser.parse_args()
    root = data_root(args.data or os.environ.get("SPARSEARCH_DATA") or HERE.parent.parent / "shared" / "data")
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "runs": {},
    }
    for dataset in datasets(root):
        for system in args.systems:
            print(f"== {system} on {dataset.name}", flush=True)
            report = run_system(system, dataset, args.work, args.repeats)
            results["runs"].setdefault(dataset.name, {})[system] = report
            m = report["metrics"]
            print(f"   NDCG@10 {m['ndcg_cut_10']:.4f} R@100 {m['recall_100']:.4f} build {report['build_seconds']:.2f}s "
                  f"QPS1 {report['qps_1_thread']:.0f} QPSn {report['qps_all_threads']:.0f} "
                  f"size {report['index_bytes']} rss {report['peak_rss_bytes']}", flush=True)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
