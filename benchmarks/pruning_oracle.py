"""How much any exact dynamic pruning could skip on a BM25 index, given the final k-th score in advance.

    python benchmarks/pruning_oracle.py --sets synthetic-1000000 real-100000 --queries 300

For every query the exhaustive top-k gives the final k-th score θ.  With θ
known from the start (no real method knows it; they reach it gradually), two
upper bounds on what exact pruning can leave unscored are computed per query
over the largest segment:

* **MaxScore**: the share of the query's postings in the lists that must be
  scored whole (terms sorted by list maximum; the lists whose maxima sum below
  θ are only probed);
* **block-max**: for blocks of B consecutive documents, the share of postings
  lying in blocks whose bound (sum over query terms of each term's largest
  contribution in the block) reaches θ: the blocks no exact method may skip.

The shares are postings-weighted over all queries.  They bound the work
saved, not the time: skipping has its own cost (probes, per-posting block
tests), measured in docs/query_speed.md.  Results: ``--out`` (JSON).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.query_speed import corpus_and_queries, sparsearch_index  # noqa: E402

BLOCKS = (16, 64, 256, 1024, 8192)


def contributions(common: tuple, term: int, weight: float) -> tuple[np.ndarray, np.ndarray]:
    """Doc ids and float32 BM25 contributions of one query term's postings (the kernel's formula)."""
    offsets, docs, tfs, scales, _transform, k_table, norms = common[:7]
    lo, hi = int(offsets[term]), int(offsets[term + 1])
    d = docs[lo:hi].astype(np.int64)
    w = tfs[lo:hi].astype(np.float32) * scales[term]
    return d, np.float32(weight) * (w / (w + k_table[norms[d]]))


def oracle(name: str, n_queries: int, k: int, work: Path) -> dict[str, Any]:
    corpus, queries = corpus_and_queries(name)
    index = sparsearch_index(corpus, work / name)
    snap = index.writer.snapshot
    plan = snap._segment_plans()[0]  # the largest segment
    queries = queries[:n_queries]
    enc = index.encode_queries(queries, snap)
    theta = snap.search(enc, k, threads=1).scores[:, k - 1]
    n = plan.seg.n_docs
    total, essential = 0, 0
    live = {b: 0 for b in BLOCKS}
    for q in range(len(queries)):
        lo, hi = enc.offsets[q], enc.offsets[q + 1]
        lists = [contributions(plan.common, int(t), float(w)) for t, w in zip(enc.term_ids[lo:hi], enc.weights[lo:hi])]
        size = sum(len(d) for d, _ in lists)
        total += size
        bound, skipped = 0.0, 0
        for top, length in sorted((float(s.max()) if len(s) else 0.0, len(s)) for _, s in lists):
            bound += top
            if bound >= theta[q]:
                break
            skipped += length
        essential += size - skipped
        for b in BLOCKS:
            block_bound = np.zeros((n + b - 1) // b, np.float32)
            for d, s in lists:
                best = np.zeros_like(block_bound)
                np.maximum.at(best, d // b, s)
                block_bound += best
            alive = block_bound >= theta[q] * np.float32(1 - 1e-6)
            live[b] += sum(int(alive[d // b].sum()) for d, _ in lists)
    return {"n_docs": n, "n_queries": len(queries), "k": k, "postings_per_query": total / len(queries),
            "maxscore_essential_share": essential / total,
            "block_live_share": {str(b): live[b] / total for b in BLOCKS}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sets", nargs="+", default=["synthetic-1000000"])
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--work", type=Path, default=Path(__file__).resolve().parent / "cache" / "query_speed")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    results = {name: oracle(name, args.queries, args.k, args.work) for name in args.sets}
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
