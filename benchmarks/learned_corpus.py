"""Seeded learned-sparse collections for the query-speed benchmark (benchmarks/query_speed_learned.py).

Two generators, both returning document and query :class:`SparseBatch` es:

* :func:`synthetic`: a 30,522-term vocabulary (BERT WordPiece's size), term
  ids drawn from a Zipf law (``p(rank r) ∝ 1/(r + 2.7)^s``; ranks shuffled
  over the ids), ~119 distinct terms a document and 30 a query, weights
  log-normal like SPLADE's.  ``s`` is chosen so that a query reads about
  7.8 M postings at 10^6 documents (issue 20's figure for this collection).
* :func:`recombined`: documents made of real encoded ones: each new document
  is the union of a random half of the terms of two random source documents
  (their weights kept; the larger on a shared term), so term statistics and
  weights are real while the collection is as large as asked.  Queries are
  the real encoded queries.

Run alone it prints the statistics of a generated collection::

    python benchmarks/learned_corpus.py --docs 100000
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from sparsearch.types import SparseBatch

VOCAB = 30522
ZIPF_S = 1.05
ZIPF_SHIFT = 2.7
DRAW_FACTOR = 1.29


def _zipf_probabilities(rng: np.random.Generator, vocab: int, s: float) -> np.ndarray:
    p = 1.0 / (np.arange(vocab) + ZIPF_SHIFT) ** s
    p /= p.sum()
    return p[rng.permutation(vocab)]


def _rows(rng: np.random.Generator, n_rows: int, per_row: np.ndarray, p: np.ndarray, sigma: float,
          mu: float) -> SparseBatch:
    """Rows of distinct term ids drawn from ``p`` (``per_row`` draws each, duplicates dropped), log-normal weights."""
    cdf = np.cumsum(p)
    cdf[-1] = 1.0
    rows = np.repeat(np.arange(n_rows, dtype=np.int64), per_row)
    terms = np.searchsorted(cdf, rng.random(len(rows)), side="right").astype(np.int64)
    keys = np.unique(rows * len(p) + terms)
    rows, terms = keys // len(p), keys % len(p)
    offsets = np.zeros(n_rows + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=n_rows), out=offsets[1:])
    weights = rng.lognormal(mu, sigma, len(terms)).astype(np.float32)
    return SparseBatch(offsets, terms.astype(np.int32), weights)


def synthetic(n_docs: int, n_queries: int, seed: int = 0, doc_terms: float = 119.0,
              query_terms: int = 30) -> tuple[SparseBatch, SparseBatch]:
    """The synthetic learned-sparse collection (see the module docstring)."""
    rng = np.random.default_rng(seed)
    p = _zipf_probabilities(rng, VOCAB, ZIPF_S)
    # Draws per document, before duplicates are dropped: calibrated so that ~doc_terms remain.
    draws = np.maximum(8, rng.normal(doc_terms * DRAW_FACTOR, doc_terms * 0.3, n_docs)).astype(np.int64)
    docs = _rows(rng, n_docs, draws, p, sigma=0.6, mu=-0.4)
    q_draws = np.full(n_queries, int(query_terms * 1.6), np.int64)
    queries = _rows(rng, n_queries, q_draws, p, sigma=0.5, mu=0.0)
    return docs, _first_terms(queries, query_terms, rng)


def _first_terms(batch: SparseBatch, n: int, rng: np.random.Generator) -> SparseBatch:
    """Keep at most ``n`` random terms of every row."""
    keep = np.zeros(len(batch.term_ids), bool)
    for i in range(len(batch)):
        lo, hi = batch.offsets[i], batch.offsets[i + 1]
        keep[lo + rng.permutation(hi - lo)[:n]] = True
    counts = np.add.reduceat(keep, batch.offsets[:-1]) if len(batch.term_ids) else np.zeros(len(batch), int)
    offsets = np.zeros(len(batch) + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    return SparseBatch(offsets, batch.term_ids[keep], batch.weights[keep])


def recombined(sources: SparseBatch, n_docs: int, seed: int = 0) -> SparseBatch:
    """``n_docs`` documents, each a random half of two random source documents' terms (see the module docstring)."""
    rng = np.random.default_rng(seed)
    n_src = len(sources)
    pick = rng.integers(0, n_src, (n_docs, 2))
    lens = np.diff(sources.offsets)
    rows, terms, weights = [], [], []
    for side in range(2):
        src = pick[:, side]
        counts = lens[src]
        starts = sources.offsets[src]
        idx = np.repeat(starts - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts) + np.arange(counts.sum())
        keep = rng.random(len(idx)) < 0.5
        rows.append(np.repeat(np.arange(n_docs, dtype=np.int64), counts)[keep])
        terms.append(sources.term_ids[idx][keep].astype(np.int64))
        weights.append(sources.weights[idx][keep])
    row = np.concatenate(rows)
    term = np.concatenate(terms)
    weight = np.concatenate(weights)
    vocab = int(term.max()) + 1 if len(term) else 1
    key = row * vocab + term
    order = np.lexsort((-weight, key))  # per (row, term): the largest weight first
    key, weight = key[order], weight[order]
    first = np.concatenate([[True], key[1:] != key[:-1]])
    key, weight = key[first], weight[first]
    row, term = key // vocab, key % vocab
    offsets = np.zeros(n_docs + 1, np.int64)
    np.cumsum(np.bincount(row, minlength=n_docs), out=offsets[1:])
    return SparseBatch(offsets, term.astype(np.int32), weight.astype(np.float32))


def postings_per_query(docs: SparseBatch, queries: SparseBatch, n_terms: int) -> float:
    """Mean postings an exhaustive search of these queries reads."""
    df = np.bincount(docs.term_ids, minlength=n_terms)
    return float(df[queries.term_ids].sum() / max(len(queries), 1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--docs", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="save docs and queries (.npz)")
    args = ap.parse_args()
    docs, queries = synthetic(args.docs, args.queries, args.seed)
    per_doc = len(docs.term_ids) / len(docs)
    print(f"{len(docs)} documents, {per_doc:.1f} terms each; {len(queries)} queries, "
          f"{len(queries.term_ids) / len(queries):.1f} terms each; "
          f"{postings_per_query(docs, queries, VOCAB):,.0f} postings a query")
    if args.out:
        np.savez(args.out, **{f"d_{k}": getattr(docs, k) for k in ("offsets", "term_ids", "weights")},
                 **{f"q_{k}": getattr(queries, k) for k in ("offsets", "term_ids", "weights")})


if __name__ == "__main__":
    main()
