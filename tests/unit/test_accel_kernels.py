"""Hand-computed cases for the kernels of the forward index, static pruning, BMP and approximate search.

The collection of most cases (block size 2, identity order unless said)::

    d0: t0 1.0            d1: t0 0.5, t1 2.0
    d2: t1 1.0            d3: t0 0.25
"""

from __future__ import annotations

import numpy as np
import pytest

from sparsearch.index import kernels, kernels_approx, kernels_bmp, kernels_forward

# Postings of the collection above (CSR by term, docs ascending).
P_OFFSETS = np.array([0, 3, 5], np.int64)
P_DOCS = np.array([0, 1, 3, 1, 2], np.uint32)
P_WEIGHTS = np.array([1.0, 0.5, 0.25, 2.0, 1.0], np.float32)
N_DOCS, N_TERMS = 4, 2
ONES = np.ones(N_TERMS, np.float32)


def _forward():
    offsets, terms, weights = kernels.invert(P_OFFSETS, P_DOCS.astype(np.int32), P_WEIGHTS, N_DOCS, 1)
    return offsets, terms.astype(np.uint16), weights


def test_forward_index_is_the_transposed_postings() -> None:
    offsets, terms, weights = _forward()
    assert offsets.tolist() == [0, 1, 3, 4, 5]
    assert terms.tolist() == [0, 0, 1, 1, 0]
    assert weights.tolist() == [1.0, 0.5, 2.0, 1.0, 0.25]


def test_prune_keeps_the_heaviest_postings_heaviest_first_ties_by_doc() -> None:
    offsets = np.array([0, 4, 5], np.int64)
    docs = np.array([0, 1, 2, 3, 1], np.uint32)
    weights = np.array([0.5, 2.0, 1.0, 2.0, 3.0], np.float32)
    out_offsets, out_docs, out_weights = kernels_forward.prune_impact_ordered(offsets, docs, weights, 3)
    assert out_offsets.tolist() == [0, 3, 4]
    assert out_docs.tolist() == [1, 3, 2, 1]
    assert out_weights.tolist() == [2.0, 2.0, 1.0, 3.0]


def test_score_doc_adds_contributions_in_query_order_with_repeats_and_skips() -> None:
    fwd_offsets = np.array([0, 3], np.int64)
    fwd_terms = np.array([0, 2, 5], np.uint16)
    fwd_weights = np.array([1.0, 2.0, 4.0], np.float32)
    scales = np.ones(6, np.float32)
    scales[5] = 0.5
    q_terms = np.array([5, 2, 7, 2, 0, 3], np.int32)  # 7 is outside the vocabulary; t0's weight is negative
    q_weights = np.array([1.0, 3.0, 9.0, 0.5, -1.0, 2.0], np.float32)
    qw = np.empty(6, np.float32)
    kernels_forward.query_weights(q_terms, q_weights, scales, 6, qw)
    assert qw.tolist() == [0.5, 3.0, 0.0, 0.5, 0.0, 2.0]
    # 0.5 * 4 + 3 * 2 + 0.5 * 2 = 9 (t3 is not in the document)
    assert kernels_forward.score_doc(0, fwd_offsets, fwd_terms, fwd_weights, q_terms, qw) == np.float32(9.0)


def test_max_term_order_groups_documents_by_their_heaviest_term() -> None:
    offsets, terms, weights = _forward()
    # Heaviest terms: d0 t0 (1.0), d1 t1 (2.0), d2 t1 (1.0), d3 t0 (0.25).
    assert kernels_bmp.max_term_order(offsets, terms, weights, ONES).tolist() == [0, 3, 1, 2]


@pytest.mark.parametrize("perm, blocks, maxima", [
    # ceil(255 * w / term max): t0 b0 1.0 -> 255, b1 0.25 -> 64; t1 b0 2.0 -> 255, b1 1.0 -> 128.
    ([0, 1, 2, 3], [0, 1, 0, 1], [255, 64, 255, 128]),
    # Blocks {d3, d0} and {d1, d2}: t0 b0 max(0.25, 1.0) -> 255, b1 0.5 -> 128; t1 b1 2.0 -> 255.
    ([3, 0, 1, 2], [0, 1, 1], [255, 128, 255]),
])
def test_block_maxima_are_ceil_quantised_per_term(perm: list[int], blocks: list[int], maxima: list[int]) -> None:
    offsets, terms, weights = _forward()
    bm_offsets, bm_blocks, bm_max, term_max = kernels_bmp.block_maxima(offsets, terms, weights,
                                                                       np.array(perm, np.uint32), 2, N_TERMS)
    assert term_max.tolist() == [1.0, 2.0]
    assert bm_blocks.tolist() == blocks
    assert bm_max.tolist() == maxima
    assert bm_offsets[-1] == len(blocks)


def _bmp(k: int, excluded: np.ndarray) -> tuple[int, int, list[int], list[float]]:
    offsets, terms, weights = _forward()
    perm = np.arange(N_DOCS, dtype=np.uint32)
    bm = kernels_bmp.block_maxima(offsets, terms, weights, perm, 2, N_TERMS)
    ub = np.zeros(2, np.float32)
    bits = np.zeros(k, np.uint32)
    docs = np.zeros(k, np.int64)
    n, scored = kernels_bmp.bmp_one(np.array([0, 1], np.int32), np.array([1.0, 1.0], np.float32), k, ONES, *bm, 2,
                                    perm, offsets, terms, weights, excluded, 0, ub, np.empty(2, np.int32), bits, docs)
    assert not ub.any()
    return n, scored, docs[:n].tolist(), bits[:n].view(np.float32).tolist()


def test_bmp_skips_a_block_whose_bound_is_below_the_kth_score() -> None:
    # Scores: d0 1.0, d1 2.5, d2 1.0, d3 0.25; bounds b0 3.0, b1 64/255 + 128 * 2/255 = 1.255.
    assert _bmp(1, np.zeros(0, np.uint8)) == (1, 1, [1], [2.5])


def test_bmp_scores_a_block_that_can_tie_and_keeps_the_lower_doc_id() -> None:
    # k = 2: theta 1.0 after b0; b1's bound 1.255 reaches it, d2 ties d0 at 1.0 and loses on its id.
    assert _bmp(2, np.zeros(0, np.uint8)) == (2, 2, [1, 0], [2.5, 1.0])


def test_bmp_never_returns_an_excluded_document() -> None:
    assert _bmp(1, np.array([0, 1, 0, 0], np.uint8)) == (1, 2, [0], [1.0])


def _approx(k: int, n_cand: int, n_keep: int, list_len: int) -> tuple[list[int], list[float]]:
    imp = kernels_forward.prune_impact_ordered(P_OFFSETS, P_DOCS, P_WEIGHTS, 10)
    offsets, terms, weights = _forward()
    q_terms = np.array([0, 1], np.int32)
    bits = np.zeros(k, np.uint32)
    docs = np.zeros(k, np.int64)
    acc = np.zeros(N_DOCS, np.float32)
    n = kernels_approx.approx_one(
        q_terms, np.array([1.0, 3.0], np.float32), k, n_cand, n_keep, list_len, ONES, *imp, offsets, terms,
        weights, np.zeros(0, np.uint8), 0, acc, np.empty(N_DOCS + 1, np.int32), np.zeros(0, np.int32),
        np.empty(2, np.bool_), np.empty(n_cand, np.float32),
        np.empty(n_cand, np.int64), bits, docs)
    assert not acc.any()
    return docs[:n].tolist(), bits[:n].view(np.float32).tolist()


def test_approx_cut_to_the_heaviest_term_and_one_posting_rescores_its_candidate_exactly() -> None:
    # Query t0 1.0, t1 3.0: t1 bounds 3 * 2 = 6 > t0's 1: kept alone; its first posting is d1 (partial 6),
    # re-scored exactly: 1.0 * 0.5 + 3.0 * 2.0 = 6.5.
    assert _approx(k=1, n_cand=1, n_keep=1, list_len=1) == ([1], [6.5])


def test_approx_ranks_rescored_candidates_and_misses_what_the_cut_dropped() -> None:
    # Candidates from t1's list: d1, d2 (3.0); d0 (only in t0's list) is never found.
    assert _approx(k=3, n_cand=3, n_keep=1, list_len=5) == ([1, 2], [6.5, 3.0])


def test_approx_without_cuts_is_the_exact_ranking() -> None:
    assert _approx(k=4, n_cand=4, n_keep=2, list_len=5) == ([1, 2, 0, 3], [6.5, 3.0, 1.0, 0.25])


def test_block_bounds_never_understate_a_block() -> None:
    rng = np.random.default_rng(3)
    n_docs, n_terms = 200, 30
    dense = np.where(rng.random((n_docs, n_terms)) < 0.2, rng.random((n_docs, n_terms)), 0).astype(np.float32)
    rows = [np.flatnonzero(r) for r in dense]
    offsets = np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int64)
    terms = np.concatenate(rows).astype(np.uint16)
    weights = dense[np.repeat(np.arange(n_docs), np.diff(offsets)), terms]
    perm = rng.permutation(n_docs).astype(np.uint32)
    bm = kernels_bmp.block_maxima(offsets, terms, weights, perm, 8, n_terms)
    q = rng.random(n_terms).astype(np.float32)
    ub = np.zeros(25, np.float32)
    kernels_bmp.block_bounds(np.arange(n_terms, dtype=np.int32), q, np.ones(n_terms, np.float32), *bm, ub)
    scores = dense @ q
    for b in range(25):
        assert ub[b] >= scores[perm[b * 8:(b + 1) * 8]].max()


def _approx_reference(docs: list[dict[int, float]], q_terms: np.ndarray, q_weights: np.ndarray, imp: tuple,
                      k: int, n_cand: int, n_keep: int, list_len: int, excluded: np.ndarray) -> list[int]:
    """The approximate search spelled out in NumPy: cut, prefix partial scores, candidates, exact re-scoring."""
    imp_offsets, imp_docs, imp_weights = imp
    bound = [float(w) * float(imp_weights[imp_offsets[t]]) if imp_offsets[t + 1] > imp_offsets[t] else -1.0
             for t, w in zip(q_terms, q_weights)]
    order = np.argsort(-np.array(bound), kind="mergesort")
    keep = {int(i) for i in order[:n_keep] if bound[i] >= 0}
    acc = np.zeros(len(docs), np.float32)
    for i, (t, w) in enumerate(zip(q_terms, q_weights)):
        if i in keep:
            lo = imp_offsets[t]
            hi = min(imp_offsets[t + 1], lo + list_len)
            d = imp_docs[lo:hi].astype(np.int64)
            acc[d] = acc[d] + np.float32(w) * imp_weights[lo:hi]
    live = [d for d in np.flatnonzero(acc > 0) if not excluded[d]]
    cands = sorted(live, key=lambda d: (-acc[d], d))[:n_cand]
    exact = {}
    for d in cands:
        s = np.float32(0.0)
        for t, w in zip(q_terms, q_weights):
            if t in docs[d]:
                s = np.float32(s + np.float32(w) * np.float32(docs[d][t]))
        exact[d] = s
    return sorted((d for d in cands if exact[d] > 0), key=lambda d: (-exact[d], d))[:k]


@pytest.mark.parametrize("list_len,scan", [(6, False), (400, True)])
def test_approx_collects_the_same_candidates_by_touched_list_and_by_scan(list_len: int, scan: bool) -> None:
    # Few postings read for many documents: the touched list; many: a scan of every score. Same hits either way.
    rng = np.random.default_rng(11)
    n_docs, n_terms = 3000, 40
    docs = [{int(t): float(rng.integers(1, 6)) / 4 for t in rng.choice(n_terms, rng.integers(1, 9), replace=False)}
            for _ in range(n_docs)]
    by_term: list[list[tuple[int, float]]] = [[] for _ in range(n_terms)]
    for d, row in enumerate(docs):
        for t, w in row.items():
            by_term[t].append((d, w))
    offsets = np.cumsum([0] + [len(p) for p in by_term]).astype(np.int64)
    p_docs = np.array([d for p in by_term for d, _ in p], np.uint32)
    p_weights = np.array([w for p in by_term for _, w in p], np.float32)
    imp = kernels_forward.prune_impact_ordered(offsets, p_docs, p_weights, 10**6)
    fwd_offsets, fwd_terms, fwd_weights = kernels.invert(offsets, p_docs.astype(np.int32), p_weights, n_docs, 1)
    excluded = (rng.random(n_docs) < 0.1).astype(np.uint8)
    k, n_cand, n_keep = 10, 50, 4
    for _ in range(20):
        q_terms = rng.choice(n_terms, 7, replace=False).astype(np.int32)
        q_weights = (rng.integers(1, 9, 7) / 4).astype(np.float32)
        keep = np.empty(7, np.bool_)
        kernels_approx._kept_terms(q_terms, q_weights, np.ones(n_terms, np.float32), imp[0], imp[2], n_keep, keep)
        assert kernels_approx._scan_pays(q_terms, keep, imp[0], list_len, n_docs, n_cand) == scan
        acc = np.zeros(n_docs, np.float32)
        bits, out = np.zeros(k, np.uint32), np.zeros(k, np.int64)
        n = kernels_approx.approx_one(
            q_terms, q_weights, k, n_cand, n_keep, list_len, np.ones(n_terms, np.float32), *imp, fwd_offsets,
            fwd_terms.astype(np.uint16), fwd_weights, excluded, 0, acc, np.empty(n_docs + 1, np.int32),
            np.zeros(kernels.RADIX_BUCKETS, np.int32), keep, np.empty(n_cand, np.float32),
            np.empty(n_cand, np.int64), bits, out)
        assert not acc.any()
        assert out[:n].tolist() == _approx_reference(docs, q_terms, q_weights, imp, k, n_cand, n_keep, list_len,
                                                     excluded)
