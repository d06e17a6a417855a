"""Numba kernels of approximate learned-sparse search: a cheap candidate pass, then exact re-scoring.

Candidate pass: term at a time over the impact-ordered, statically pruned
posting lists (:func:`~sparsearch.index.kernels_forward.prune_impact_ordered`),
reading only the query's heaviest terms (the query-term cut) and only the
first ``list_len`` postings of each, into the same dense accumulator and
touched list as the exhaustive kernel.  The ``n_cand`` best partial scores
are then re-scored exactly from the forward index
(:func:`~sparsearch.index.kernels_forward.score_doc`) and the ``k`` best of
those returned.  This is Seismic's recipe (Bruch et al. SIGIR 2024: static
pruning, query cut, forward-index re-scoring) without its block summaries:
the re-scoring step makes the final scores exact, so only *which* documents
are found is approximate.

With no cut, no list shortened and ``n_cand`` at least the number of
documents touched, every matching document is re-scored and the result is
exactly the exhaustive one.
"""

from __future__ import annotations

import numpy as np

from sparsearch.index.kernels_forward import query_weights, score_doc
from sparsearch.index.kernels_jit import njit
from sparsearch.index.kernels_topk import (
    DENSE_DOCS_PER_POSTING,
    RADIX_BUCKETS,
    _RADIX_MIN_CANDIDATES,
    _collect_dense,
    _collect_top_k,
    _largest_by_heap,
)

prange = range  # numba.prange once the kernels are compiled (kernels_jit.materialize)

#: Candidate counts up to which the candidate pass may collect by scanning (a heap of that size per query).
_SCAN_MAX_CANDIDATES = 4096


@njit(cache=True, nogil=True)
def _kept_terms(q_terms, q_weights, term_scales, imp_offsets, imp_weights, n_keep, keep):
    """Mark in ``keep`` the ``n_keep`` query positions of largest ``q * max weight`` (the query-term cut)."""
    n = len(q_terms)
    n_terms = len(imp_offsets) - 1
    bound = np.zeros(n, np.float64)
    for i in range(n):
        keep[i] = False
        t = q_terms[i]
        if t < 0 or t >= n_terms or not q_weights[i] > 0.0 or imp_offsets[t + 1] == imp_offsets[t]:
            bound[i] = -1.0
        else:
            bound[i] = np.float64(q_weights[i]) * term_scales[t] * np.float64(imp_weights[imp_offsets[t]])
    order = np.argsort(-bound, kind="mergesort")
    for j in range(min(n_keep, n)):
        if bound[order[j]] >= 0.0:
            keep[order[j]] = True


@njit(cache=True, nogil=True)
def _candidate_pass(q_terms, q_weights, term_scales, imp_offsets, imp_docs, imp_weights, list_len, keep,
                    acc, touched):
    """Accumulate partial scores from the kept terms' list prefixes; returns #touched (query order kept).

    ``keep``: the query-term cut (:func:`_kept_terms`).  An empty ``touched``
    turns the touched list off (returns 0; see :func:`_scan_pays`).
    """
    n_terms = len(imp_offsets) - 1
    n_touched = 0
    track = len(touched) > 0
    for i in range(len(q_terms)):
        if not keep[i]:
            continue
        t = q_terms[i]
        if t < 0 or t >= n_terms:
            continue
        qw = np.float32(q_weights[i]) * term_scales[t]
        lo = imp_offsets[t]
        hi = min(imp_offsets[t + 1], lo + list_len)
        first = np.uint64(lo)  # unsigned indices: no negative-index wraparound per load and store
        if track:
            for j in range(np.uint64(hi - lo)):
                p = first + j
                d = np.uint64(imp_docs[p])
                a = acc[d]
                updated = a + qw * np.float32(imp_weights[p])
                touched[n_touched] = d
                n_touched += (a == 0.0) & (updated != 0.0)
                acc[d] = updated
        else:
            for j in range(np.uint64(hi - lo)):
                p = first + j
                d = np.uint64(imp_docs[p])
                acc[d] = acc[d] + qw * np.float32(imp_weights[p])
    return n_touched


@njit(cache=True, nogil=True)
def _scan_pays(q_terms, keep, imp_offsets, list_len, n_docs, n_cand):
    """Whether the candidate pass reads enough postings that scanning every score beats listing touched ones.

    The touched list costs a store per posting and, to collect, two random
    reads per touched document across the whole accumulator; a scan reads
    the accumulator once in order (:func:`kernels_topk._collect_dense`).
    The exhaustive kernel's rule (:func:`kernels_topk._dense_pays`), on the
    postings this pass reads.
    """
    if n_cand > _SCAN_MAX_CANDIDATES:
        return False
    n_terms = len(imp_offsets) - 1
    total = 0
    for i in range(len(q_terms)):
        t = q_terms[i]
        if keep[i] and 0 <= t < n_terms:
            total += min(imp_offsets[t + 1] - imp_offsets[t], list_len)
    return n_docs <= DENSE_DOCS_PER_POSTING * total


@njit(cache=True, nogil=True)
def rank_rescored(cand_docs, n_cand, q_terms, q_weights, term_scales, fwd_offsets, fwd_terms, fwd_weights,
                  k, doc_base, n_terms, out_scores, out_docs):
    """Exact scores of ``cand_docs[:n_cand]`` (local ids) from the forward index; the ``k`` best written out.

    Same order as every path: higher score first, lower doc id first among equal scores.
    """
    qw = np.empty(len(q_terms), np.float32)
    query_weights(q_terms, q_weights, term_scales, n_terms, qw)
    keys = np.empty(n_cand, np.int64)
    m = 0
    for j in range(n_cand):
        d = cand_docs[j]
        s = score_doc(d, fwd_offsets, fwd_terms, fwd_weights, q_terms, qw)
        if s > 0.0:
            keys[m] = (np.int64(np.float32(s).view(np.uint32)) << 32) | (np.int64(0xFFFFFFFF) - d)
            m += 1
    # The k best by a size-k heap, then sorted in place (numba's np.sort of a fresh slice measured up
    # to 30x slower on such keys: 290 us for 1,000 of them).
    best = _largest_by_heap(keys, m, k) if m > k else keys[:m].copy()
    best.sort()
    best = best[::-1]
    n = min(k, m)
    for j in range(n):
        key = best[j]
        out_scores[j] = np.uint32(key >> 32)
        out_docs[j] = (np.int64(0xFFFFFFFF) - (key & np.int64(0xFFFFFFFF))) + doc_base
    return n


@njit(cache=True, nogil=True)
def approx_one(q_terms, q_weights, k, n_cand, n_keep, list_len, term_scales, imp_offsets, imp_docs, imp_weights,
               fwd_offsets, fwd_terms, fwd_weights, excluded, doc_base, acc, touched, hist, keep,
               cand_scores, cand_docs, out_bits, out_docs):
    """Approximate top-``k`` of one query over one segment; returns the number of hits.

    ``out_bits`` receives each hit's float32 score as its uint32 bit pattern
    (the caller views it as float32).  ``excluded`` (uint8 per document, or
    empty) masks deleted and filtered-out documents before the candidate cut.
    Scratch: ``acc`` zeroed floats and ``touched`` (n_docs + 1) as in the
    exhaustive kernel, ``hist`` RADIX_BUCKETS zeroed counters or empty,
    ``slot_of`` int32 -1 per term, ``keep`` one bool per query position,
    ``cand_*`` ``n_cand`` slots; every scratch array is left as it was found.
    """
    _kept_terms(q_terms, q_weights, term_scales, imp_offsets, imp_weights, n_keep, keep)
    if _scan_pays(q_terms, keep, imp_offsets, list_len, len(acc), n_cand):
        _candidate_pass(q_terms, q_weights, term_scales, imp_offsets, imp_docs, imp_weights, list_len, keep, acc,
                        touched[:0])
        n = _collect_dense(acc, excluded, n_cand, cand_scores, cand_docs, 0)
    else:
        n_touched = _candidate_pass(q_terms, q_weights, term_scales, imp_offsets, imp_docs, imp_weights, list_len,
                                    keep, acc, touched)
        n = _collect_top_k(acc, touched, n_touched, excluded, n_cand, cand_scores, cand_docs, 0, hist)
    return rank_rescored(cand_docs, n, q_terms, q_weights, term_scales, fwd_offsets, fwd_terms, fwd_weights, k,
                         doc_base, len(imp_offsets) - 1, out_bits, out_docs)


@njit(parallel=True, cache=True, nogil=True)
def approx_many(q_offsets, q_terms, q_weights, k, n_cand, n_keep, list_len, term_scales, imp_offsets, imp_docs,
                imp_weights, fwd_offsets, fwd_terms, fwd_weights, excluded, doc_base, n_docs, n_blocks,
                out_bits, out_docs, out_counts):
    """:func:`approx_one` for a batch, queries split into ``n_blocks`` parallel blocks with their own scratch."""
    n_queries = len(q_offsets) - 1
    for blk in prange(n_blocks):
        acc = np.zeros(n_docs, np.float32)
        touched = np.empty(n_docs + 1, np.int32)
        hist = np.zeros(RADIX_BUCKETS if n_docs >= _RADIX_MIN_CANDIDATES else 0, np.int32)
        cand_scores = np.empty(n_cand, np.float32)
        cand_docs = np.empty(n_cand, np.int64)
        for q in range(n_queries * blk // n_blocks, n_queries * (blk + 1) // n_blocks):
            lo = q_offsets[q]
            hi = q_offsets[q + 1]
            keep = np.empty(hi - lo, np.bool_)
            out_counts[q] = approx_one(q_terms[lo:hi], q_weights[lo:hi], k, n_cand, n_keep, list_len, term_scales,
                                       imp_offsets, imp_docs, imp_weights, fwd_offsets, fwd_terms, fwd_weights,
                                       excluded, doc_base, acc, touched, hist, keep, cand_scores,
                                       cand_docs, out_bits[q], out_docs[q])
