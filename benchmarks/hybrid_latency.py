"""Query latency with query encoding included: dense alone vs BM25 + dense hybrid, SciFact, one query at a time.

    python benchmarks/hybrid_latency.py --vectors DIR [--data $SPARSEARCH_DATA] [--depth 100]

Documents' dense vectors come from ``encode_for_eval.py`` (``DIR/dense.npz``);
queries are encoded here by the real ``DenseEncoder`` (all-MiniLM-L6-v2 on
these CPU cores), as a user's search would be.  Both systems in one process,
interleaved query by query so that load changes hit both alike.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np

from sparsearch.eval.datasets import load_beir
from sparsearch.retriever.fusion import FusionConfig
from sparsearch.retriever.hybrid import HybridRetriever, HybridSettings
from sparsearch.retriever.registry import build_encoder
from sparsearch.retriever.resolve import resolve_model
from sparsearch.retriever.retriever import Retriever

HERE = Path(__file__).resolve().parent


class PrecomputedDocsDense:
    """The real dense encoder for queries; documents' vectors looked up (encoded on a GPU beforehand)."""

    name = "dense"

    def __init__(self, real, docs: dict[str, np.ndarray]) -> None:  # type: ignore[no-untyped-def]
        self.real, self.docs = real, docs

    def encode_documents(self, documents):  # type: ignore[no-untyped-def]
        return np.array([self.docs[d.doc_id] for d in documents], np.float32).reshape(len(documents), -1)

    def encode_queries(self, queries, stats=None):  # type: ignore[no-untyped-def]
        return self.real.encode_queries(queries)

    def config(self):  # type: ignore[no-untyped-def]
        return self.real.config()

    def state_files(self):  # type: ignore[no-untyped-def]
        return {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("SPARSEARCH_DATA")
                                                          or HERE.parent.parent / "shared" / "data"))
    parser.add_argument("--vectors", type=Path, required=True)
    parser.add_argument("--depth", type=int, default=100)
    parser.add_argument("--out", type=Path, default=HERE.parent / "docs" / "results" / "hybrid_latency.json")
    args = parser.parse_args()
    ds = load_beir(args.data / "beir" / "scifact", "test")
    corpus = list(ds.corpus())
    dense_npz = np.load(args.vectors / "dense.npz")
    docs = dict(zip(dense_npz["scifact.doc_ids"].tolist(), dense_npz["scifact.docs"]))
    real = build_encoder("dense", {"device": "cpu", "batch_size": 1}, model=resolve_model("all-minilm-l6-v2"))
    dense = Retriever.build(corpus, encoder=PrecomputedDocsDense(real, docs))
    bm25 = Retriever.build(corpus)
    hybrid = HybridRetriever([bm25, dense], HybridSettings(fusion=FusionConfig(method="minmax", alpha=0.5),
                                                           depth=args.depth))
    queries = list(ds.queries.values())
    for q in queries[:10]:  # warm-up: model load, kernels
        dense.search(q, 10)
        hybrid.search(q, 10)
    times: dict[str, list[float]] = {"dense": [], "hybrid": []}
    for q in queries:
        for label, fn in (("dense", dense.search), ("hybrid", hybrid.search)):
            t = time.perf_counter()
            fn(q, 10)
            times[label].append((time.perf_counter() - t) * 1000)
    out = {}
    for label, ts in times.items():
        ts.sort()
        out[label] = {"p50_ms": statistics.median(ts), "p99_ms": ts[int(0.99 * (len(ts) - 1))],
                      "mean_ms": statistics.fmean(ts)}
    out["ratio_p50"] = out["hybrid"]["p50_ms"] / out["dense"]["p50_ms"]
    out["ratio_p99"] = out["hybrid"]["p99_ms"] / out["dense"]["p99_ms"]
    out.update(depth=args.depth, queries=len(queries), load_average_1min=os.getloadavg()[0],
               torch_threads=__import__("torch").get_num_threads())
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
