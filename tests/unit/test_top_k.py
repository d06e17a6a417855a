"""The sorted top-k collection (`_collect_top_k`) against a NumPy reference ranking.

Exactness matters here: the radix paths must give the same documents, order
and float32 scores as sorting by (-score, doc), including on heavy ties.
"""

from __future__ import annotations

import numpy as np
import pytest

from sparsearch.index import kernels, kernels_topk
from sparsearch.index.config import IndexConfig, Scoring
from sparsearch.index.inverted import InvertedIndex
from sparsearch.index.segment import build_segment
from sparsearch.types import SparseBatch


def reference(scores: np.ndarray, docs: np.ndarray, deleted: np.ndarray, k: int, doc_base: int):
    live = deleted[docs] == 0 if len(deleted) else np.ones(len(docs), bool)
    s, d = scores[live], docs[live]
    order = np.lexsort((d, -s))[:k]
    return s[order], d[order].astype(np.int64) + doc_base


def random_scores(rng: np.random.Generator, n: int, kind: str) -> np.ndarray:
    if kind == "quantized":  # few distinct values: most candidates tie with others
        return (rng.integers(1, 12, n) * np.float32(0.37)).astype(np.float32)
    if kind == "equal":
        return np.full(n, 1.5, np.float32)
    if kind == "wide":  # many binades, tiny to large
        return np.exp(rng.uniform(-20, 20, n)).astype(np.float32)
    return (rng.gamma(1.0, 2.0, n) + 1e-3).astype(np.float32)


def collect(acc_len: int, docs: np.ndarray, scores: np.ndarray, deleted: np.ndarray, k: int, doc_base: int,
            radix_hist: bool):
    acc = np.zeros(acc_len, np.float32)
    acc[docs] = scores
    touched = np.empty(acc_len + 1, np.int32)
    touched[: len(docs)] = docs
    hist = np.zeros(kernels.RADIX_BUCKETS if radix_hist else 0, np.int32)
    out_scores = np.zeros(k, np.float32)
    out_docs = np.zeros(k, np.int64)
    n = kernels._collect_top_k(acc, touched, len(docs), deleted, k, out_scores, out_docs, doc_base, hist)
    assert not acc.any(), "the accumulator must be left zeroed"
    assert not hist.any(), "the radix histogram must be left zeroed"
    return out_scores[:n], out_docs[:n]


CASES = [
    # (n candidates, k): around the heap / radix-select / sort-all / 16-bit pre-selection boundaries
    (0, 10), (1, 1), (5, 1), (40, 32), (40, 33), (33, 32), (32, 33), (300, 100), (999, 1000), (1000, 1000),
    (1001, 1000), (1400, 1000), (5000, 1000), (5000, 4999), (8191, 1000), (8192, 1000), (8193, 8192),
    (9000, 10), (12000, 3000),
]


@pytest.mark.parametrize("n,k", CASES)
@pytest.mark.parametrize("kind", ["quantized", "gamma", "wide", "equal"])
def test_collect_top_k_matches_lexsort(n: int, k: int, kind: str) -> None:
    rng = np.random.default_rng(n * 7919 + k * 31 + len(kind))
    for trial in range(3):
        acc_len = max(n, 1) + int(rng.integers(0, 3 * max(n, 1)))
        if trial == 2:
            acc_len = 1 << int(np.ceil(np.log2(max(n, 2))))  # doc ids filling a power of two exactly
        docs = rng.permutation(acc_len)[:n].astype(np.int32)
        scores = random_scores(rng, n, kind)
        deleted = np.zeros(0, np.uint8)
        if trial == 1:
            deleted = (rng.random(acc_len) < 0.3).astype(np.uint8)
        doc_base = int(rng.integers(0, 1 << 40)) if trial else 0
        for radix_hist in (False, True):
            got_s, got_d = collect(acc_len, docs, scores, deleted, k, doc_base, radix_hist)
            want_s, want_d = reference(scores, docs, deleted, k, doc_base)
            np.testing.assert_array_equal(got_d, want_d)
            np.testing.assert_array_equal(got_s.view(np.uint32), want_s.view(np.uint32))


def test_collect_top_k_many_random_cases() -> None:
    rng = np.random.default_rng(11)
    for _ in range(300):
        acc_len = int(rng.integers(1, 20000))
        n = int(rng.integers(0, acc_len + 1))
        k = int(rng.choice([1, 10, 31, 32, 33, 100, 1000, 2500, 10000]))
        docs = rng.permutation(acc_len)[:n].astype(np.int32)
        scores = random_scores(rng, n, str(rng.choice(["quantized", "gamma", "wide"])))
        deleted = (rng.random(acc_len) < rng.random() * 0.5).astype(np.uint8) if rng.random() < 0.3 \
            else np.zeros(0, np.uint8)
        doc_base = int(rng.integers(0, 1 << 33))
        got_s, got_d = collect(acc_len, docs, scores, deleted, k, doc_base, bool(rng.random() < 0.5))
        want_s, want_d = reference(scores, docs, deleted, k, doc_base)
        np.testing.assert_array_equal(got_d, want_d)
        np.testing.assert_array_equal(got_s, want_s)


def test_the_two_pass_dense_collector_matches_lexsort() -> None:
    """``_collect_dense`` (chunk maxima, then a heap over the chunks that can reach the k-th) against the reference.

    Sizes around whole and partial chunks and fewer chunks than k; ties
    across chunk borders (quantized and equal scores); deleted documents
    holding the best scores, which the chunk maxima must not count.
    """
    rng = np.random.default_rng(23)
    chunk = kernels_topk._DENSE_CHUNK
    for trial in range(400):
        n = int(rng.choice([1, 7, chunk - 1, chunk, chunk + 1, 10 * chunk, 33 * chunk + 5, 5000, 20000]))
        k = int(rng.choice([1, 2, 10, 31, 32]))
        touched = int(rng.integers(0, n + 1))
        docs = rng.permutation(n)[:touched].astype(np.int32)
        scores = random_scores(rng, touched, str(rng.choice(["quantized", "gamma", "wide", "equal"])))
        deleted = np.zeros(0, np.uint8)
        if trial % 3 == 1:
            deleted = (rng.random(n) < rng.random() * 0.5).astype(np.uint8)
        elif trial % 3 == 2 and touched:  # the best documents deleted: their chunks' maxima must ignore them
            deleted = np.zeros(n, np.uint8)
            deleted[docs[np.argsort(-scores, kind="stable")[: 2 * k]]] = 1
        acc = np.zeros(n, np.float32)
        acc[docs] = scores
        out_scores, out_docs = np.zeros(k, np.float32), np.zeros(k, np.int64)
        doc_base = int(rng.integers(0, 1 << 33))
        got = kernels_topk._collect_dense(acc, deleted, k, out_scores, out_docs, doc_base)
        assert not acc.any(), "the accumulator must be left zeroed"
        want_s, want_d = reference(scores, docs, deleted, k, doc_base)
        np.testing.assert_array_equal(out_docs[:got], want_d)
        np.testing.assert_array_equal(out_scores[:got].view(np.uint32), want_s.view(np.uint32))


@pytest.mark.parametrize("k", [10, 100, 1000, 3000])
def test_batch_and_single_query_search_agree_with_ties_and_deletes(k: int) -> None:
    """search_many (batch) and search_one collect the same way: identical rankings, deletes honoured."""
    rng = np.random.default_rng(12)
    n = 3000
    rows = [{int(t): float(rng.integers(1, 4)) for t in rng.choice(30, 4, replace=False)} for _ in range(n)]
    docs = SparseBatch.from_dicts(rows)
    queries = SparseBatch.from_dicts(
        [{int(t): float(rng.integers(1, 3)) for t in rng.choice(30, int(rng.integers(1, 12)), replace=False)}
         for _ in range(25)])
    seg = build_segment(docs, [str(i) for i in range(n)], [{}] * n, 30, IndexConfig())
    deleted = (rng.random(n) < 0.1).astype(np.uint8)
    index = InvertedIndex([seg.with_deletes(deleted)], Scoring("linear"), IndexConfig())
    dense_docs = np.zeros((n, 30), np.float32)
    for i, r in enumerate(rows):
        dense_docs[i, list(r)] = list(r.values())
    batch = {threads: index.search(queries, k, threads=threads) for threads in (1, 2)}
    for q in range(len(queries)):
        t, w = queries.row(q)
        single = index.search(SparseBatch(np.array([0, len(t)]), t, w), k, threads=1)
        scores = dense_docs[:, t] @ w.astype(np.float32)
        live = np.flatnonzero((scores > 0) & (deleted == 0))
        want_s, want_d = reference(scores[live], live, np.zeros(0, np.uint8), k, 0)
        for top in (single, batch[1], batch[2]):
            row = 0 if top is single else q
            ids, got = top.row(row)
            np.testing.assert_array_equal(ids, want_d)
            np.testing.assert_allclose(got, want_s, rtol=1e-6)
        np.testing.assert_array_equal(single.row(0)[1], batch[1].row(q)[1])
        np.testing.assert_array_equal(batch[2].row(q)[1], batch[1].row(q)[1])
