"""Numba kernels of block-max pruned exact top-k: per-block score bounds of long posting lists, and the search.

A segment's doc id space is cut into blocks of ``1 << shift`` documents.
For a long posting list (a common word's) the largest contribution per unit
of query weight inside each block, and where the block starts in the list,
are a row of :func:`block_rows`; they depend on collection-wide ``avgdl``
and are therefore computed per index snapshot, for the terms queries use
(``inverted.BlockMaxRows``).  :func:`blockmax_one` then scores the short
lists exhaustively, bounds every block by its best partial score plus the
long lists' block maxima, and visits blocks by decreasing bound, scoring
the long lists inside each, until no block left can beat the k-th score:
block-max MaxScore (Ding & Suel, SIGIR 2011; Chakrabarti et al., WSDM 2011)
run block at a time over the accumulator of exhaustive search.

Compiled lazily and cached on disk (:mod:`sparsearch.index.kernels_jit`).
"""

from __future__ import annotations

import numpy as np

from sparsearch.index.kernels_jit import njit
from sparsearch.index.kernels_prune import _exact_contribution, _float_bits, _next_geq
from sparsearch.index.kernels_topk import (
    _LOW32,
    _RADIX_MIN_CANDIDATES,
    RADIX_BUCKETS,
    _accumulate,
    _collect_top_k,
    _offer,
    _write_hits,
)
from sparsearch.scoring import TRANSFORM_SATURATE

prange = range  # numba.prange once the kernels are compiled (kernels_jit.materialize)


@njit(parallel=True, cache=True, nogil=True)
def block_rows(postings_offsets, postings_docs, postings_weights, term_scales,
               transform, k_table, doc_norms, k1, b_over_avgdl, one_minus_b, doc_lengths, use_exact_lengths,
               terms, shift, out_offsets, out_max):
    """Row ``r`` for term ``terms[r]``: where each block starts in its list, and its largest contribution there.

    ``out_offsets[r, b]`` is the first posting of block ``b`` or later
    (``n_blocks + 1`` entries, the last the list's end); ``out_max[r, b]``
    the largest ``w / (w + kd)`` (or ``w``, linear) over the block's
    postings, rounded up by 1e-6 so float32 evaluation order can never make
    it too tight (as :func:`kernels_prune.term_bounds`), 0 for an empty block.
    """
    n_blocks = out_max.shape[1]
    for r in prange(len(terms)):
        t = terms[r]
        lo = postings_offsets[t]
        hi = postings_offsets[t + 1]
        scale = term_scales[t]
        cur = -1
        for b in range(n_blocks):
            out_max[r, b] = 0.0
        for p in range(lo, hi):
            d = postings_docs[p]
            b = d >> shift
            while cur < b:
                cur += 1
                out_offsets[r, cur] = p
            w = np.float32(postings_weights[p]) * scale
            if transform == TRANSFORM_SATURATE:
                if use_exact_lengths:
                    kd = np.float32(k1 * (one_minus_b + b_over_avgdl * doc_lengths[d]))
                else:
                    kd = k_table[doc_norms[d]]
                w = w / (w + kd)
            if w > out_max[r, b]:
                out_max[r, b] = w
        while cur < n_blocks:
            cur += 1
            out_offsets[r, cur] = hi
        for b in range(n_blocks):
            out_max[r, b] *= np.float32(1.000001)


@njit(cache=True, nogil=True)
def blockmax_one(
    q_terms, q_weights, k,
    postings_offsets, postings_docs, postings_weights, term_scales,
    transform, k_table, doc_norms, k1, b_over_avgdl, one_minus_b, doc_lengths, use_exact_lengths,
    deleted, doc_base, min_weight, max_kd, slot, block_offsets, block_max, shift, theta_seed,
    acc, touched, hist, out_scores, out_docs,
):
    """Exact top-k of one query over one segment, skipping blocks that cannot reach the k-th score.

    Terms with a block row (``slot[t] >= 0``: long lists) are "long", the
    rest "short".  Short lists are scored whole into ``acc``; then each
    block's bound is the largest partial score in it plus the sum of the
    long terms' block maxima (times their query weights).  Blocks are taken
    by decreasing bound; inside one, the long lists' postings are added and
    the block's documents, now fully scored, offered to a size-k heap whose
    smallest score is the threshold; the search stops at the first block
    whose bound is below it (or below ``theta_seed``, the k-th score of
    segments searched before).

    Exactness: scores are summed short terms first, so every comparison
    carries a relative slack of a few float32 roundings per term, and the
    documents within rounding of the k-th are scored again in query-term
    order (as :func:`kernels_topk._accumulate` adds): the hits and scores of
    exhaustive search to the bit, ties to the lower doc id.  ``acc``,
    ``touched`` and ``hist`` as in ``search_one``, left zeroed.
    """
    n_terms_index = len(postings_offsets) - 1
    m = len(q_terms)
    n_docs = len(doc_norms)
    n_blocks = block_max.shape[1]
    block = 1 << shift
    slack = 1.0 + 4.0 * (m + 2) * 1.2e-7  # relative float32 rounding of m-term sums, twice over, with margin
    # Short lists first, exhaustively, into the accumulator (one term at a time: same loop as exhaustive search).
    n_touched = 0
    n_long = 0
    long_pos = np.empty(m, np.int64)
    for i in range(m):
        t = q_terms[i]
        if t < 0 or t >= n_terms_index or not q_weights[i] > 0.0:
            continue
        if slot[t] >= 0:
            long_pos[n_long] = i
            n_long += 1
            continue
        n_touched += _accumulate(q_terms[i:i + 1], q_weights[i:i + 1], postings_offsets, postings_docs,
                                 postings_weights, term_scales, transform, k_table, doc_norms, k1, b_over_avgdl,
                                 one_minus_b, doc_lengths, use_exact_lengths, min_weight, max_kd, acc,
                                 touched[n_touched:])
    if n_long == 0:  # short lists only, added in query order: exhaustive search's scores already
        return _collect_top_k(acc, touched, n_touched, deleted, k, out_scores, out_docs, doc_base, hist)
    # Block bounds: best partial score in the block plus the long lists' maxima there.
    bound = np.zeros(n_blocks, np.float64)
    for c in range(n_touched):
        d = touched[c]
        s = np.float64(acc[d])
        if s > bound[d >> shift]:
            bound[d >> shift] = s
    for j in range(n_long):
        i = long_pos[j]
        row = slot[q_terms[i]]
        qw = np.float64(np.float32(q_weights[i]))
        for b in range(n_blocks):
            bound[b] += qw * np.float64(block_max[row, b])
    order = np.argsort(-bound)
    has_deletes = len(deleted) > 0
    heap = np.empty(k, np.float32)
    size = 0
    theta = np.float64(theta_seed) / slack
    visited = np.zeros(n_blocks, np.uint8)
    for o in range(n_blocks):
        b = order[o]
        if bound[b] == 0.0 or bound[b] * slack < theta:
            break
        visited[b] = 1
        for j in range(n_long):
            i = long_pos[j]
            t = q_terms[i]
            row = slot[t]
            for p in range(block_offsets[row, b], block_offsets[row, b + 1]):
                d = postings_docs[p]
                acc[d] += _exact_contribution(q_weights[i], t, p, d, postings_weights, term_scales, transform,
                                              k_table, doc_norms, k1, b_over_avgdl, one_minus_b, doc_lengths,
                                              use_exact_lengths)
        for d in range(b * block, min((b + 1) * block, n_docs)):
            s = acc[d]
            if s == 0.0 or (has_deletes and deleted[d]):
                continue
            size = _offer(heap, size, k, s)
            if size == k and np.float64(heap[0]) / slack > theta:
                theta = np.float64(heap[0]) / slack
    # The top k are in visited blocks, within rounding of the k-th: score those candidates again in query order.
    cut = theta / slack
    keys = np.empty(16, np.int64)
    n_keys = 0
    for b in range(n_blocks):
        if not visited[b]:
            continue
        for d in range(b * block, min((b + 1) * block, n_docs)):
            s = acc[d]
            if s == 0.0 or (has_deletes and deleted[d]) or np.float64(s) * slack < cut:
                continue
            score = np.float32(0.0)
            for j in range(m):
                t = q_terms[j]
                if t < 0 or t >= n_terms_index or not q_weights[j] > 0.0:
                    continue
                end = postings_offsets[t + 1]
                lo = postings_offsets[t]
                if slot[t] >= 0:
                    lo = block_offsets[slot[t], b]
                    end = block_offsets[slot[t], b + 1]
                p = _next_geq(postings_docs, lo, end, d)
                if p < end and postings_docs[p] == d:
                    score += _exact_contribution(q_weights[j], t, p, d, postings_weights, term_scales, transform,
                                                 k_table, doc_norms, k1, b_over_avgdl, one_minus_b, doc_lengths,
                                                 use_exact_lengths)
            if score > 0.0:
                if n_keys == len(keys):
                    grown = np.empty(2 * len(keys), np.int64)
                    grown[:n_keys] = keys
                    keys = grown
                keys[n_keys] = (np.int64(_float_bits(score)) << 32) | (_LOW32 - d)
                n_keys += 1
        acc[b * block:min((b + 1) * block, n_docs)] = 0.0
    for c in range(n_touched):
        acc[touched[c]] = 0.0
    return _write_hits(np.sort(keys[:n_keys])[::-1], min(k, n_keys), 32, _LOW32, doc_base, out_scores, out_docs)


@njit(parallel=True, cache=True, nogil=True)
def blockmax_many(
    q_offsets, q_terms, q_weights, k, n_blocks,
    postings_offsets, postings_docs, postings_weights, term_scales,
    transform, k_table, doc_norms, k1, b_over_avgdl, one_minus_b, doc_lengths, use_exact_lengths,
    deleted, doc_base, min_weight, max_kd, slot, block_offsets, block_max, shift, theta_seeds,
    out_scores, out_docs, out_counts,
):
    """:func:`blockmax_one` over a batch, in parallel over blocks of queries (one accumulator per block)."""
    n_queries = len(q_offsets) - 1
    n_docs = len(doc_norms)
    for blk in prange(n_blocks):
        acc = np.zeros(n_docs, np.float32)
        touched = np.empty(n_docs + 1, np.int32)
        hist = np.zeros(RADIX_BUCKETS if n_docs >= _RADIX_MIN_CANDIDATES else 0, np.int32)
        for q in range(n_queries * blk // n_blocks, n_queries * (blk + 1) // n_blocks):
            lo = q_offsets[q]
            hi = q_offsets[q + 1]
            out_counts[q] = blockmax_one(
                q_terms[lo:hi], q_weights[lo:hi], k, postings_offsets, postings_docs, postings_weights, term_scales,
                transform, k_table, doc_norms, k1, b_over_avgdl, one_minus_b, doc_lengths, use_exact_lengths,
                deleted, doc_base, min_weight, max_kd, slot, block_offsets, block_max, shift, theta_seeds[q],
                acc, touched, hist, out_scores[q], out_docs[q],
            )
