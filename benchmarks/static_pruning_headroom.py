"""How much of a query's postings static pruning can skip on real learned-sparse vectors at recall@10 ≥ 0.99.

For each test query of a set: the exact top 10 (exhaustive dot product), then
the top ``C`` of scores computed over a pruned copy of the postings, re-scored
exactly (what the approximate mode does: only *which* documents are found is
approximate).  Two prunings: every posting of weight ≥ τ (a global impact
threshold), and the heaviest fraction ``f`` of each term's list (Seismic's
top-λ, as a fraction).  The share of the query's postings read is the
candidate pass's cost against exhaustive scoring; the ``C`` exact re-scorings
come on top.  NumPy and SciPy only: an upper bound on what any kernel built on
these prunings can gain.

    python benchmarks/dump_vectors.py --model models/inference-free-general --data DATA --out VEC
    python benchmarks/static_pruning_headroom.py --vectors VEC --model models/inference-free-general --data DATA \
        --out docs/results/static_pruning_headroom.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dump_vectors import read_vectors  # noqa: E402
from general_model import SETS  # noqa: E402


def top_fraction_per_list(docs: sp.csr_matrix, fraction: float) -> sp.csr_matrix:
    """Each term's ``ceil(fraction · len)`` heaviest postings (ties at the cut kept)."""
    by_term = docs.tocsc(copy=True)
    data = by_term.data
    for t in range(by_term.shape[1]):
        lo, hi = by_term.indptr[t], by_term.indptr[t + 1]
        n = hi - lo
        keep = max(1, int(np.ceil(fraction * n))) if n else 0
        if 0 < keep < n:
            cut = np.partition(data[lo:hi], n - keep)[n - keep]
            part = data[lo:hi]
            part[part < cut] = 0
    by_term.eliminate_zeros()
    return by_term.tocsr()


def recall_at_10(exact: np.ndarray, approx: np.ndarray, candidates: int) -> float:
    """Recall@10 of the top ``candidates`` by approximate score, re-scored exactly (ties: lower row first)."""
    truth = np.argsort(-exact, axis=1, kind="stable")[:, :10]
    cand = np.argsort(-approx, axis=1, kind="stable")[:, :candidates]
    rescored = np.take_along_axis(exact, cand, 1)
    top = np.take_along_axis(cand, np.argsort(-rescored, axis=1, kind="stable")[:, :10], 1)
    return float(np.mean([len(set(top[i]) & set(truth[i])) / 10 for i in range(len(truth))]))


def main() -> None:
    from sparsearch.eval.datasets import load_beir
    from sparsearch.retriever.registry import build_encoder

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", type=Path, required=True)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--sets", nargs="+", default=["scifact", "nfcorpus"], choices=list(SETS))
    parser.add_argument("--taus", type=float, nargs="+", default=[0.2, 0.3, 0.5, 0.7])
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.7, 0.5, 0.3, 0.2])
    parser.add_argument("--candidates", type=int, nargs="+", default=[10, 20, 50, 100])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    vectors = read_vectors(list(args.vectors.glob("*.npz")))
    encoder = build_encoder("inference-free", {"model_dir": str(args.model)})
    report: dict[str, object] = {}
    for name in args.sets:
        doc_ids, docs = vectors[name]
        dataset = load_beir(args.data / SETS[name], "test")
        qids = list(dataset.queries)
        batch = encoder.queries.encode([dataset.queries[q] for q in qids])
        queries = sp.csr_matrix((batch.weights.astype(np.float32), batch.term_ids, batch.offsets),
                                shape=(len(qids), docs.shape[1]))
        list_lengths = np.diff(docs.tocsc().indptr)
        full = float(list_lengths[batch.term_ids].sum())
        exact = (queries @ docs.T).toarray()
        rows = []
        prunings = [("tau", t, docs.multiply(docs >= t).tocsr()) for t in args.taus]
        prunings += [("fraction", f, top_fraction_per_list(docs, f)) for f in args.fractions]
        for kind, value, pruned in prunings:
            read = float(np.diff(pruned.tocsc().indptr)[batch.term_ids].sum()) / full
            approx = (queries @ pruned.T).toarray()
            rows.append({"pruning": kind, "value": value, "postings_read": round(read, 3),
                         "recall_at_10": {str(c): round(recall_at_10(exact, approx, c), 4) for c in args.candidates}})
            print(name, rows[-1], flush=True)
        report[name] = {"documents": len(doc_ids), "queries": len(qids),
                        "postings_per_query": round(full / len(qids), 1), "rows": rows}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
