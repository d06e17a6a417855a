"""Numba kernels of block-max pruning (BMP, Mallia, Suel & Tonellotto, SIGIR 2024): exact top-k that skips blocks.

Documents are cut into blocks of ``block_size`` consecutive positions of a
permutation (identity, or documents sorted by their heaviest term so that
blocks gather documents about the same thing).  Per term, every block holding
the term stores its largest weight, ceil-quantised to 8 bits of the term's
maximum (``ceil(255 w / max)``), so ``q8 * max / 255`` never understates a
weight.  A query sums ``q * scale * q8 * max / 255`` over its terms into one
upper bound per block, visits blocks from the highest bound down (a bucket
order: one counting pass, no sort), scores each visited block's documents
exactly from the forward index, and stops when no remaining bound reaches
the k-th best score.  Scores come from
:func:`~sparsearch.index.kernels_forward.score_doc`, bit-identical to the
exhaustive kernel's, and a block is skipped only when its bound (inflated by
``_BOUND_MARGIN`` against float32 rounding) is below the k-th score, so the
top-k, ties by lower doc id included, is exactly the exhaustive one.
"""

from __future__ import annotations

import numpy as np

from sparsearch.index.kernels_forward import query_weights, score_doc
from sparsearch.index.kernels_jit import njit
from sparsearch.index.kernels_topk import _sift_down

prange = range  # numba.prange once the kernels are compiled (kernels_jit.materialize)

#: Relative slack on every block bound: float32 sums of up to a few hundred terms round by far less.
_BOUND_MARGIN = 1e-4
#: Buckets of the bound order (at most this many; fewer for segments with fewer blocks).
_BUCKETS = 4096


@njit(cache=True, nogil=True)
def max_term_order(fwd_offsets, fwd_terms, fwd_weights, term_scales):
    """A permutation of the documents sorted by their heaviest term (then that weight, descending).

    The cheap reordering: documents whose strongest term is the same land in
    the same blocks, so block maxima of the terms that matter most get tight.
    """
    n_docs = len(fwd_offsets) - 1
    top = np.empty(n_docs, np.int64)
    top_w = np.empty(n_docs, np.float64)
    for d in range(n_docs):
        best = -1
        best_w = -1.0
        for p in range(fwd_offsets[d], fwd_offsets[d + 1]):
            w = np.float64(fwd_weights[p]) * term_scales[fwd_terms[p]]
            if w > best_w:
                best_w = w
                best = fwd_terms[p]
        top[d] = best
        top_w[d] = -best_w
    by_weight = np.argsort(top_w, kind="mergesort")
    by_term = np.argsort(top[by_weight], kind="mergesort")
    return by_weight[by_term].astype(np.uint32)


@njit(cache=True, nogil=True)
def block_maxima(fwd_offsets, fwd_terms, fwd_weights, perm, block_size, n_terms):
    """Per term, the blocks holding it (ascending) and their 8-bit ceil-quantised maxima.

    Returns ``(offsets int64 [n_terms + 1], blocks uint32, maxima uint8, term_max float32 [n_terms])``:
    the true block maximum ``w`` satisfies ``w <= maxima * term_max / 255``.
    """
    n_docs = len(fwd_offsets) - 1
    term_max = np.zeros(n_terms, np.float32)
    for p in range(len(fwd_terms)):
        w = np.float32(fwd_weights[p])
        if w > term_max[fwd_terms[p]]:
            term_max[fwd_terms[p]] = w
    last = np.full(n_terms, -1, np.int64)
    counts = np.zeros(n_terms + 1, np.int64)
    n_blocks = (n_docs + block_size - 1) // block_size
    for b in range(n_blocks):
        for pos in range(b * block_size, min(n_docs, (b + 1) * block_size)):
            d = perm[pos]
            for p in range(fwd_offsets[d], fwd_offsets[d + 1]):
                t = fwd_terms[p]
                if last[t] != b:
                    last[t] = b
                    counts[t + 1] += 1
    offsets = np.cumsum(counts)
    cursor = offsets[:-1].copy()
    blocks = np.empty(offsets[-1], np.uint32)
    maxima = np.zeros(offsets[-1], np.uint8)
    last[:] = -1
    slot = np.zeros(n_terms, np.int64)
    for b in range(n_blocks):
        for pos in range(b * block_size, min(n_docs, (b + 1) * block_size)):
            d = perm[pos]
            for p in range(fwd_offsets[d], fwd_offsets[d + 1]):
                t = fwd_terms[p]
                if last[t] != b:
                    last[t] = b
                    slot[t] = cursor[t]
                    blocks[cursor[t]] = b
                    cursor[t] += 1
                q = np.ceil(np.float64(fwd_weights[p]) * 255.0 / np.float64(term_max[t]))
                q8 = np.uint8(min(255.0, max(1.0, q)))
                if q8 > maxima[slot[t]]:
                    maxima[slot[t]] = q8
    return offsets, blocks, maxima, term_max


@njit(cache=True, nogil=True)
def block_bounds(q_terms, q_weights, term_scales, bm_offsets, bm_blocks, bm_max, term_max, ub):
    """Add each query term's block bounds into ``ub`` (zeroed floats, one per block); returns the largest bound."""
    n_terms = len(bm_offsets) - 1
    for i in range(len(q_terms)):
        t = q_terms[i]
        if t < 0 or t >= n_terms or not q_weights[i] > 0.0:
            continue
        c = np.float32(np.float64(q_weights[i]) * term_scales[t] * term_max[t] / 255.0 * (1.0 + _BOUND_MARGIN))
        for p in range(bm_offsets[t], bm_offsets[t + 1]):
            ub[bm_blocks[p]] += c * np.float32(bm_max[p])
    top = np.float32(0.0)
    for b in range(len(ub)):
        if ub[b] > top:
            top = ub[b]
    return top


@njit(cache=True, nogil=True)
def bmp_one(q_terms, q_weights, k, term_scales, bm_offsets, bm_blocks, bm_max, term_max, block_size, perm,
            fwd_offsets, fwd_terms, fwd_weights, excluded, doc_base, ub, order, out_bits, out_docs):
    """Exact top-``k`` of one query over one segment by block-max pruning; returns the number of hits.

    Scratch: ``ub`` one zeroed float per block (zeroed again on return),
    ``order`` one int32 per block.
    ``out_bits`` gets the scores' float32 bit patterns.  Returns also the
    number of blocks scored, for the measurements that choose between BMP
    and exhaustive scoring.
    """
    n_docs = len(fwd_offsets) - 1
    n_blocks = len(ub)
    top = block_bounds(q_terms, q_weights, term_scales, bm_offsets, bm_blocks, bm_max, term_max, ub)
    if top <= 0.0:
        return 0, 0
    n_buckets = min(_BUCKETS, n_blocks)
    start = np.zeros(n_buckets + 1, np.int64)
    scale = np.float64(n_buckets) / np.float64(top)
    for b in range(n_blocks):
        if ub[b] > 0.0:
            start[min(n_buckets - 1, int(np.float64(ub[b]) * scale)) + 1] += 1
    for j in range(n_buckets):
        start[j + 1] += start[j]
    fill = start[:-1].copy()
    for b in range(n_blocks):
        if ub[b] > 0.0:
            j = min(n_buckets - 1, int(np.float64(ub[b]) * scale))
            order[fill[j]] = b
            fill[j] += 1
    qw = np.empty(len(q_terms), np.float32)
    query_weights(q_terms, q_weights, term_scales, len(bm_offsets) - 1, qw)
    heap = np.empty(k, np.int64)
    size = 0
    theta = np.float32(0.0)
    has_excluded = len(excluded) > 0
    scored = 0
    for j in range(n_buckets - 1, -1, -1):
        if size == k and np.float64(j + 1) / scale * (1.0 + 1e-6) < theta:
            break
        for r in range(start[j], start[j + 1]):
            b = order[r]
            if size == k and ub[b] < theta:
                continue
            scored += 1
            for pos in range(b * block_size, min(n_docs, (b + 1) * block_size)):
                d = perm[pos]
                if has_excluded and excluded[d]:
                    continue
                s = score_doc(d, fwd_offsets, fwd_terms, fwd_weights, q_terms, qw)
                if not s > 0.0:
                    continue
                key = (np.int64(np.float32(s).view(np.uint32)) << 32) | (np.int64(0xFFFFFFFF) - np.int64(d))
                if size < k:
                    heap[size] = key
                    size += 1
                    if size == k:
                        for h in range(k // 2 - 1, -1, -1):
                            _sift_down(heap, k, h)
                        theta = np.uint32(heap[0] >> 32).view(np.float32)
                elif key > heap[0]:
                    heap[0] = key
                    _sift_down(heap, k, 0)
                    theta = np.uint32(heap[0] >> 32).view(np.float32)
    ub[:] = 0.0
    best = heap[:size].copy()
    best.sort()
    best = best[::-1]
    for j in range(size):
        key = best[j]
        out_bits[j] = np.uint32(key >> 32)
        out_docs[j] = (np.int64(0xFFFFFFFF) - (key & np.int64(0xFFFFFFFF))) + doc_base
    return size, scored


@njit(parallel=True, cache=True, nogil=True)
def bmp_many(q_offsets, q_terms, q_weights, k, term_scales, bm_offsets, bm_blocks, bm_max, term_max, block_size,
             perm, fwd_offsets, fwd_terms, fwd_weights, excluded, doc_base, n_blocks, n_par, out_bits, out_docs,
             out_counts):
    """:func:`bmp_one` for a batch, queries split into ``n_par`` parallel blocks with their own scratch."""
    n_queries = len(q_offsets) - 1
    for blk in prange(n_par):
        ub = np.zeros(n_blocks, np.float32)
        order = np.empty(n_blocks, np.int32)
        for q in range(n_queries * blk // n_par, n_queries * (blk + 1) // n_par):
            lo = q_offsets[q]
            hi = q_offsets[q + 1]
            n, _ = bmp_one(q_terms[lo:hi], q_weights[lo:hi], k, term_scales, bm_offsets, bm_blocks, bm_max,
                           term_max, block_size, perm, fwd_offsets, fwd_terms, fwd_weights, excluded, doc_base, ub,
                           order, out_bits[q], out_docs[q])
            out_counts[q] = n
