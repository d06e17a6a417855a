"""Numba kernels of dynamically pruned top-k search: per-term score bounds and document-at-a-time MaxScore.

Exhaustive search (:mod:`sparsearch.index.kernels_topk`) scores every
posting of every query term; MaxScore skips the documents whose best
possible score (the sum of their terms' upper bounds, :func:`term_bounds`)
cannot reach the current k-th score, and returns exactly the same hits,
ties included.  Bounds depend on collection-wide ``avgdl``, so they are
computed per index snapshot, never stored.

Compiled lazily and cached on disk (:mod:`sparsearch.index.kernels_jit`).
"""

from __future__ import annotations

import numpy as np

from sparsearch.index.kernels_jit import njit
from sparsearch.index.kernels_topk import _LOW32, _sift_down
from sparsearch.scoring import TRANSFORM_LINEAR, TRANSFORM_SATURATE

prange = range  # numba.prange once the kernels are compiled (kernels_jit.materialize)


# ---------------------------------------------------------------- dynamic pruning


@njit(parallel=True, cache=True, nogil=True)
def term_bounds(postings_offsets, postings_docs, postings_weights, term_scales,
                transform, k_table, doc_norms, k1, b_over_avgdl, one_minus_b, doc_lengths, use_exact_lengths):
    """Largest contribution per unit of query weight of every term: MaxScore's upper bounds.

    Exact (the maximum over the term's postings), so pruning is as tight as the
    data allows; it depends on ``avgdl`` and is therefore computed per index
    snapshot, never stored.
    """
    n_terms = len(postings_offsets) - 1
    out = np.zeros(n_terms, np.float32)
    for t in prange(n_terms):
        best = np.float32(0.0)
        scale = term_scales[t]
        for p in range(postings_offsets[t], postings_offsets[t + 1]):
            w = np.float32(postings_weights[p]) * scale
            if transform == TRANSFORM_SATURATE:
                d = postings_docs[p]
                if use_exact_lengths:
                    kd = np.float32(k1 * (one_minus_b + b_over_avgdl * doc_lengths[d]))
                else:
                    kd = k_table[doc_norms[d]]
                w = w / (w + kd)
            if w > best:
                best = w
        # Round up by a relative 1e-6 so float32 evaluation order can never make a bound too tight.
        out[t] = best * np.float32(1.000001)
    return out


@njit(cache=True, nogil=True)
def _next_geq(docs, lo, hi, target):
    """First position in ``docs[lo:hi]`` (ascending) holding a doc id >= target: galloping search."""
    if lo >= hi or docs[lo] >= target:
        return lo
    step = 1
    prev = lo
    cur = lo + 1
    while cur < hi and docs[cur] < target:
        prev = cur
        step *= 2
        cur = lo + step
    if cur > hi:
        cur = hi
    # docs[prev] < target <= docs[cur] (or cur == hi): binary search in (prev, cur]
    left = prev + 1
    right = cur
    while left < right:
        mid = (left + right) // 2
        if docs[mid] < target:
            left = mid + 1
        else:
            right = mid
    return left


@njit(cache=True, nogil=True)
def maxscore_one(
    q_terms, q_weights, k,
    postings_offsets, postings_docs, postings_weights, term_scales,
    transform, k_table, doc_norms, k1, b_over_avgdl, one_minus_b, doc_lengths, use_exact_lengths,
    deleted, doc_base, bounds, out_scores, out_docs,
):
    """Exact top-k of one query by document-at-a-time MaxScore (Turtle & Flood, 1995).

    Terms are ordered by upper bound; those whose bounds together cannot lift a
    document past the current k-th score are "non-essential": only documents
    found in the essential lists are scored, and non-essential lists are
    probed by galloping search, stopping as soon as the remaining bounds
    cannot reach the threshold.  Documents are visited in increasing id, so a
    later document never wins a tie: ties keep the lower id, as exhaustive
    search does.  Returns the number of hits written.
    """
    n_terms_index = len(postings_offsets) - 1
    n = 0
    terms = np.empty(len(q_terms), np.int64)
    qw = np.empty(len(q_terms), np.float32)
    ub = np.empty(len(q_terms), np.float32)
    for i in range(len(q_terms)):
        t = q_terms[i]
        if t < 0 or t >= n_terms_index or not q_weights[i] > 0.0:
            continue
        if postings_offsets[t + 1] == postings_offsets[t]:
            continue
        terms[n] = t
        qw[n] = np.float32(q_weights[i])
        ub[n] = np.float32(q_weights[i]) * bounds[t]
        n += 1
    if n == 0:
        return 0
    order = np.argsort(ub[:n])
    terms = terms[:n][order]
    qw = qw[:n][order]
    ub = ub[:n][order]
    cum = np.empty(n, np.float32)
    s = np.float32(0.0)
    for i in range(n):
        s += ub[i]
        cum[i] = s
    pos = np.empty(n, np.int64)
    end = np.empty(n, np.int64)
    for i in range(n):
        pos[i] = postings_offsets[terms[i]]
        end[i] = postings_offsets[terms[i] + 1]
    has_deletes = len(deleted) > 0
    heap = np.empty(k, np.int64)  # packed (score bits, ~doc) keys, min-heap
    size = 0
    threshold = np.float32(0.0)
    first_essential = 0
    big = np.int64(1) << 40
    while True:
        d = big
        for i in range(first_essential, n):
            if pos[i] < end[i] and postings_docs[pos[i]] < d:
                d = postings_docs[pos[i]]
        if d == big:
            break
        score = np.float32(0.0)
        for i in range(first_essential, n):
            p = pos[i]
            if p < end[i] and postings_docs[p] == d:
                score += _contribution(qw[i], postings_weights[p], term_scales[terms[i]], d, transform, k_table,
                                       doc_norms, k1, b_over_avgdl, one_minus_b, doc_lengths, use_exact_lengths)
                pos[i] = p + 1
        for i in range(first_essential - 1, -1, -1):
            if size == k and score + cum[i] <= threshold:
                break
            p = _next_geq(postings_docs, pos[i], end[i], d)
            pos[i] = p
            if p < end[i] and postings_docs[p] == d:
                score += _contribution(qw[i], postings_weights[p], term_scales[terms[i]], d, transform, k_table,
                                       doc_norms, k1, b_over_avgdl, one_minus_b, doc_lengths, use_exact_lengths)
        if (has_deletes and deleted[d]) or not score > 0.0:
            continue
        if size < k or score > threshold:
            key = (np.int64(_float_bits(score)) << 32) | (_LOW32 - d)
            if size < k:
                heap[size] = key
                size += 1
                if size == k:
                    for j in range(k // 2 - 1, -1, -1):
                        _sift_down(heap, k, j)
            else:
                heap[0] = key
                _sift_down(heap, k, 0)
            if size == k:
                threshold = _bits_float(np.uint32(heap[0] >> 32))
                while first_essential < n and cum[first_essential] <= threshold:
                    first_essential += 1
                if first_essential == n:
                    break
    best = np.sort(heap[:size])
    for j in range(size):
        key = best[size - 1 - j]
        out_scores[j] = _bits_float(np.uint32(key >> 32))
        out_docs[j] = (_LOW32 - (key & _LOW32)) + doc_base
    return size


@njit(inline="always")
def _contribution(qw, stored, scale, d, transform, k_table, doc_norms, k1, b_over_avgdl, one_minus_b, doc_lengths,
                  use_exact_lengths):
    w = np.float32(stored) * scale
    if transform == TRANSFORM_LINEAR:
        return qw * w
    if use_exact_lengths:
        kd = np.float32(k1 * (one_minus_b + b_over_avgdl * doc_lengths[d]))
    else:
        kd = k_table[doc_norms[d]]
    return qw * (w / (w + kd))


@njit(inline="always")
def _float_bits(x):
    a = np.empty(1, np.float32)
    a[0] = x
    return a.view(np.uint32)[0]


@njit(inline="always")
def _bits_float(b):
    a = np.empty(1, np.uint32)
    a[0] = b
    return a.view(np.float32)[0]


@njit(parallel=True, cache=True, nogil=True)
def maxscore_many(
    q_offsets, q_terms, q_weights, k, n_blocks,
    postings_offsets, postings_docs, postings_weights, term_scales,
    transform, k_table, doc_norms, k1, b_over_avgdl, one_minus_b, doc_lengths, use_exact_lengths,
    deleted, doc_base, bounds, out_scores, out_docs, out_counts,
):
    """:func:`maxscore_one` over a batch, in parallel over blocks of queries."""
    n_queries = len(q_offsets) - 1
    for blk in prange(n_blocks):
        for q in range(n_queries * blk // n_blocks, n_queries * (blk + 1) // n_blocks):
            lo = q_offsets[q]
            hi = q_offsets[q + 1]
            out_counts[q] = maxscore_one(
                q_terms[lo:hi], q_weights[lo:hi], k, postings_offsets, postings_docs, postings_weights, term_scales,
                transform, k_table, doc_norms, k1, b_over_avgdl, one_minus_b, doc_lengths, use_exact_lengths,
                deleted, doc_base, bounds, out_scores[q], out_docs[q],
            )
