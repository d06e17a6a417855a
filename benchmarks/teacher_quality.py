"""How good is the distillation target?  NDCG@10 of each teacher and of their ensemble on test splits.

A student distilled from an ensemble rarely beats it by much, so the
ensemble's own quality on the *test* queries bounds what distillation alone
can give (the student also learns from in-domain labels, which can add to it).
Each teacher scores every (test query, document) pair exactly, as in training
(``sparsearch.training.teachers``); the ensemble is the mean of per-query
min-max normalised scores over the whole corpus, the training target's form
(Geng et al. 2024), ranked by that mean.

    python benchmarks/teacher_quality.py --data $SPARSEARCH_DATA --minilm DIR --splade DIR --out teachers.json
    python benchmarks/teacher_quality.py ... --datasets scifact:train,nfcorpus:dev   # DATASET:SPLIT

The teachers are zero-shot models, so their quality on the *training* queries is a fair basis for
choosing the ensemble without looking at test queries (SciFact has no dev split).
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
from pathlib import Path

import numpy as np

from sparsearch.eval.datasets import load_beir
from sparsearch.eval.metrics import evaluate
from sparsearch.training.teachers import bm25_score_matrix, dense_score_matrix, splade_score_matrix

log = logging.getLogger("teacher_quality")


def min_max(scores: np.ndarray) -> np.ndarray:
    """Per-row min-max normalisation; a constant row becomes zeros."""
    lo = scores.min(axis=1, keepdims=True)
    span = scores.max(axis=1, keepdims=True) - lo
    return np.where(span > 0, (scores - lo) / np.where(span > 0, span, 1.0), 0.0)


def run_of(scores: np.ndarray, query_ids: list[str], doc_ids: list[str], k: int = 1000) -> dict[str, dict[str, float]]:
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return {q: {doc_ids[j]: float(scores[i, j]) for j in top[i]} for i, q in enumerate(query_ids)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--minilm", type=Path, required=True)
    ap.add_argument("--splade", type=Path, required=True)
    ap.add_argument("--datasets", default="scifact,nfcorpus")
    ap.add_argument("--split", default="test")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    results: dict[str, dict[str, float]] = {}
    for item in args.datasets.split(","):
        name, _, split = item.partition(":")
        ds = load_beir(args.data / "beir" / name, split or args.split)
        documents = list(ds.corpus())
        query_ids = list(ds.queries)
        texts = [ds.queries[q] for q in query_ids]
        doc_ids = [d.doc_id for d in documents]
        matrices = {"bm25": bm25_score_matrix(documents, texts),
                    "splade": splade_score_matrix(args.splade, documents, texts),
                    "dense": dense_score_matrix(args.minilm, documents, texts)}
        normalised = {t: min_max(m.astype(np.float64)) for t, m in matrices.items()}
        scores: dict[str, float] = {}
        for r in range(1, len(matrices) + 1):
            for combo in itertools.combinations(sorted(matrices), r):
                fused = matrices[combo[0]] if r == 1 else sum(normalised[t] for t in combo) / r
                scores["+".join(combo)] = evaluate(ds.qrels, run_of(fused, query_ids, doc_ids))["ndcg_cut_10"]
        results[item] = scores
        log.info("%s: %s", item, {k: round(v, 4) for k, v in scores.items()})
    names = next(iter(results.values())).keys()
    results["mean"] = {k: float(np.mean([results[d][k] for d in results if d != "mean"])) for k in names}
    log.info("mean: %s", {k: round(v, 4) for k, v in results["mean"].items()})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
