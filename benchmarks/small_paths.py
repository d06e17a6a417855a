"""NumPy paths of small inputs against the Numba kernels, by size: where the thresholds of index/small.py come from.

    python benchmarks/small_paths.py [--docs 20,300,1000,2000,4000]

Synthetic Zipf text (60 tokens a document, 20,000 words), BM25 in 8 bits:
build (term frequencies, inversion, quantisation, norms), the structural
check of a segment, and a 5-term query (k = 10, one at a time), once through
the NumPy twins and once through the (already compiled) kernels.  Thread CPU
time, best of 3 (the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from sparsearch.index import kernels, small, verify
from sparsearch.index.config import IndexConfig, Scoring
from sparsearch.index.inverted import InvertedIndex
from sparsearch.index.segment import build_segment
from sparsearch.types import SparseBatch


def best(f, reps: int = 3) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(reps):
        t = time.thread_time()
        f()
        times.append(time.thread_time() - t)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", default="20,300,1000,2000,4000")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    for n_docs in (int(x) for x in args.docs.split(",")):
        offsets = np.zeros(n_docs + 1, np.int64)
        np.cumsum(rng.integers(30, 90, n_docs), out=offsets[1:])
        tokens = (rng.zipf(1.3, int(offsets[-1])) % 20_000).astype(np.int32)
        vocab = int(tokens.max()) + 1
        queries = [SparseBatch(np.array([0, 5]), q.astype(np.int32), np.ones(5, np.float32))
                   for q in tokens[rng.integers(0, len(tokens), (50, 5))]]
        row: dict[str, float | int] = {"docs": n_docs, "tokens": int(offsets[-1])}
        for name, numpy_paths in (("numpy", True), ("numba", False)):
            small.ENABLED = numpy_paths
            limit = 1 << 40 if numpy_paths else -1  # every size through one path
            small.MAX_BUILD_POSTINGS = small.MAX_SEARCH_POSTINGS = small.MAX_SEARCH_DOCS = limit
            tf = small.term_frequencies if numpy_paths else kernels.term_frequencies

            def build():  # type: ignore[no-untyped-def]
                r, t, c = tf(offsets, tokens)
                batch = SparseBatch(r, t, c, lengths=np.diff(offsets).astype(np.float32))
                return build_segment(batch, [str(i) for i in range(n_docs)], [{}] * n_docs, vocab,
                                     IndexConfig(quantization="uint8"))

            seg = build()
            index = InvertedIndex([seg], Scoring("saturate", 0.9, 0.4, "lucene"), IndexConfig())
            for q in queries[:5]:
                index.search(q, 10, threads=1)
            row["postings"] = seg.n_postings
            row[f"{name}_build_ms"] = round(best(build) * 1e3, 2)
            row[f"{name}_check_ms"] = round(best(lambda: verify.structure_problems(seg)) * 1e3, 2)
            row[f"{name}_query_us"] = round(
                best(lambda: [index.search(q, 10, threads=1) for q in queries]) / len(queries) * 1e6, 1)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
