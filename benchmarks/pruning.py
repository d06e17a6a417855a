"""Exhaustive term-at-a-time scoring vs MaxScore on an existing index, single thread.

    python benchmarks/pruning.py INDEX_DIR QUERIES_JSONL [--k 10 1000] [--limit 300]

Prints microseconds per query (scoring only: queries are encoded once, outside
the timer) and checks that both methods return the same documents.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from sparsearch import Index


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("index", type=Path)
    parser.add_argument("queries", type=Path)
    parser.add_argument("--k", nargs="+", type=int, default=[10, 1000])
    parser.add_argument("--limit", type=int, default=300)
    args = parser.parse_args()
    index = Index.open(args.index)
    with open(args.queries, encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in f][: args.limit]
    queries = index.encode_queries(texts)
    rows = {}
    for k in args.k:
        out = {}
        results = {}
        for method in ("exhaustive", "maxscore"):
            results[method] = index.inverted.search(queries, k, threads=1, method=method)  # warm-up
            seconds = []
            for _ in range(3):
                t = time.perf_counter()
                index.inverted.search(queries, k, threads=1, method=method)
                seconds.append(time.perf_counter() - t)
            out[method] = float(np.median(seconds)) / len(texts) * 1e6
        a, b = results["exhaustive"], results["maxscore"]
        out["same_documents"] = float(np.mean([set(a.row(q)[0].tolist()) == set(b.row(q)[0].tolist())
                                               for q in range(len(texts))]))
        rows[f"k{k}"] = out
    print(json.dumps({"index": str(args.index), "queries": len(texts), "us_per_query": rows}, indent=1))


if __name__ == "__main__":
    main()
