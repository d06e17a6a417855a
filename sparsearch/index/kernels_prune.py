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
from sparsearch.index.kernels_topk import (
    _LOW32,
    _RADIX_MIN_CANDIDATES,
    RADIX_BUCKETS,
    _accumulate,
    _collect_top_k,
    _offer,
    _sift_down,
    _write_hits,
)
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


# ---------------------------------------------------------------- MaxScore, term at a time


@njit(cache=True, nogil=True)
def _best_live(acc, docs, n, deleted, k, keys):
    """The k live documents of ``docs[:n]`` with the largest ``acc``, as a min-heap of packed keys; returns how many."""
    has_deletes = len(deleted) > 0
    size = 0
    for i in range(n):
        d = docs[i]
        if has_deletes and deleted[d]:
            continue
        size = _offer(keys, size, k, (np.int64(_float_bits(acc[d])) << 32) | np.int64(d))
    return size


@njit(cache=True, nogil=True)
def _kth_live_score(acc, docs, n, deleted, k, keys):
    """The k-th largest ``acc[d]`` over the live documents of ``docs[:n]``, or 0 with fewer than k of them."""
    if _best_live(acc, docs, n, deleted, k, keys) < k:
        return np.float32(0.0)
    return _bits_float(np.uint32(keys[0] >> 32))


@njit(inline="always")
def _exact_contribution(q_weight, t, p, d, postings_weights, term_scales, transform, k_table, doc_norms, k1,
                        b_over_avgdl, one_minus_b, doc_lengths, use_exact_lengths):
    """One posting's contribution computed by the very expressions of ``kernels_topk._accumulate`` (same bits)."""
    if transform == TRANSFORM_LINEAR:
        return (np.float32(q_weight) * term_scales[t]) * np.float32(postings_weights[p])
    w = np.float32(postings_weights[p]) * term_scales[t]
    if use_exact_lengths:
        kd = np.float32(k1 * (one_minus_b + b_over_avgdl * doc_lengths[d]))
    else:
        kd = k_table[doc_norms[d]]
    return np.float32(q_weight) * (w / (w + kd))


@njit(cache=True, nogil=True)
def pruned_one(
    q_terms, q_weights, k,
    postings_offsets, postings_docs, postings_weights, term_scales,
    transform, k_table, doc_norms, k1, b_over_avgdl, one_minus_b, doc_lengths, use_exact_lengths,
    deleted, doc_base, min_weight, max_kd, bounds, theta_seed, min_postings, acc, touched, hist, out_scores, out_docs,
):
    """Exact top-k of one query over one segment by MaxScore run term at a time; returns the hits written.

    MaxScore's split (Turtle & Flood, 1995) over the dense accumulator of
    exhaustive search: terms are taken by decreasing upper bound
    (``q_weight * bounds[t]``, :func:`term_bounds`) and their lists scored
    whole ("essential") until the bounds of the terms left sum below the
    k-th partial score so far: from then on no unseen document can enter
    the top k, so the remaining lists (the long ones of common words) are
    only probed, by galloping search, for the candidates that can still
    make it, and candidates whose bound falls below the threshold are
    dropped after each list.  ``theta_seed`` (the k-th score of segments
    already searched, or 0) starts the threshold: a segment that cannot
    beat it costs a few comparisons.

    Why term at a time: the essential lists run the branch-free loop of
    exhaustive search, where document-at-a-time MaxScore (:func:`maxscore_one`)
    pays a cursor merge per document and lost to exhaustive scoring.

    Exactness: partial sums run in bound order, so every comparison carries
    a relative slack of a few float32 roundings per term (pruning keeps a
    superset of the top k), and the survivors nearest the cut are scored
    again in query-term order, the order of :func:`kernels_topk._accumulate`:
    hits and scores are those of exhaustive search to the bit, ties broken
    by lower doc id.  ``acc`` (zeroed), ``touched`` (n_docs + 1 slots) and
    ``hist`` are scratch, as in ``search_one``, and left zeroed.

    A query whose lists hold fewer than ``min_postings`` postings in all is
    scored exhaustively (``search_one``'s path): below some length the
    bookkeeping costs more than pruning saves (docs/query_speed.md measured
    where).
    """
    n_terms_index = len(postings_offsets) - 1
    m = len(q_terms)
    pos_q = np.empty(m, np.int64)  # positions in the query row of the terms that can score
    ub = np.empty(m, np.float64)
    n = 0
    total = 0
    for i in range(m):
        t = q_terms[i]
        if t < 0 or t >= n_terms_index or not q_weights[i] > 0.0:
            continue
        if postings_offsets[t + 1] == postings_offsets[t]:
            continue
        pos_q[n] = i
        ub[n] = np.float64(np.float32(q_weights[i]) * bounds[t])
        total += postings_offsets[t + 1] - postings_offsets[t]
        n += 1
    if n == 0:
        return 0
    if total < min_postings:
        n_touched = _accumulate(q_terms, q_weights, postings_offsets, postings_docs, postings_weights, term_scales,
                                transform, k_table, doc_norms, k1, b_over_avgdl, one_minus_b, doc_lengths,
                                use_exact_lengths, min_weight, max_kd, acc, touched)
        return _collect_top_k(acc, touched, n_touched, deleted, k, out_scores, out_docs, doc_base, hist)
    order = pos_q[:n][np.argsort(-ub[:n], kind="mergesort")]  # query positions by decreasing bound
    ub_sorted = -np.sort(-ub[:n])
    rest = np.zeros(n + 1)  # rest[j]: sum of the bounds of terms j.. in that order
    for j in range(n - 1, -1, -1):
        rest[j] = rest[j + 1] + ub_sorted[j]
    slack = 1.0 + 4.0 * (n + 2) * 1.2e-7  # relative float32 rounding of n-term sums, twice over, with margin
    theta = np.float64(theta_seed) / slack
    if theta > 0.0 and rest[0] * slack < theta:
        return 0  # no document here can reach the seeded threshold
    keys = np.empty(k, np.int64)
    n_touched = 0
    checked = 0
    essential = n
    for j in range(n):
        i = order[j]
        n_touched += _accumulate_one(q_terms, q_weights, i, postings_offsets, postings_docs, postings_weights,
                                     term_scales, transform, k_table, doc_norms, k1, b_over_avgdl, one_minus_b,
                                     doc_lengths, use_exact_lengths, min_weight, max_kd, acc, touched, n_touched)
        if j + 1 == n:
            break
        if rest[j + 1] * slack >= theta and n_touched >= 2 * checked:
            # The k best partial scores so far, scored in full: their k-th exact score is a threshold close to
            # the final one long before partial scores get there.  Redone once the touched documents have
            # doubled, so all checks together cost at most two passes over them.
            checked = n_touched
            kth = np.float64(_kth_full_score(acc, touched, n_touched, deleted, k, keys, q_terms, q_weights,
                                             postings_offsets, postings_docs, postings_weights, term_scales,
                                             transform, k_table, doc_norms, k1, b_over_avgdl, one_minus_b,
                                             doc_lengths, use_exact_lengths))
            if kth > theta:
                theta = kth
        if rest[j + 1] * slack < theta:
            essential = j + 1
            break
    # Candidates: live touched documents whose bound still reaches the threshold, by increasing doc id.
    cands = np.empty(n_touched, np.int32)
    n_cands = 0
    has_deletes = len(deleted) > 0
    if essential < n and n_touched * 16 > len(doc_norms):
        # Many: a scan of the accumulator lists them in doc id order for less than sorting them would cost.
        for d in range(len(doc_norms)):
            a = acc[d]
            if a != 0.0 and not (has_deletes and deleted[d]) and (np.float64(a) + rest[essential]) * slack >= theta:
                cands[n_cands] = d
                n_cands += 1
    else:
        for c in range(n_touched):
            d = touched[c]
            if has_deletes and deleted[d]:
                continue
            if (np.float64(acc[d]) + rest[essential]) * slack >= theta:
                cands[n_cands] = d
                n_cands += 1
        if essential < n:
            cands[:n_cands].sort()  # probing needs ascending ids
    cands = cands[:n_cands]
    for j in range(essential, n):
        i = order[j]
        t = q_terms[i]
        p = postings_offsets[t]
        end = postings_offsets[t + 1]
        kept = 0
        for c in range(n_cands):
            d = cands[c]
            p = _next_geq(postings_docs, p, end, d)
            if p < end and postings_docs[p] == d:
                acc[d] += _exact_contribution(q_weights[i], t, p, d, postings_weights, term_scales, transform, k_table,
                                              doc_norms, k1, b_over_avgdl, one_minus_b, doc_lengths, use_exact_lengths)
            if (np.float64(acc[d]) + rest[j + 1]) * slack >= theta:
                cands[kept] = d
                kept += 1
        n_cands = kept
        if n_cands >= k:
            kth = np.float64(_kth_live_score(acc, cands, n_cands, deleted, k, keys)) / slack
            if kth > theta:
                theta = kth
    # Every candidate now holds its full score (summed in bound order): the top k are among those within
    # rounding of the k-th; score those again in query-term order.
    kth = np.float64(_kth_live_score(acc, cands, n_cands, deleted, k, keys)) / (slack * slack)
    cut = max(kth, theta)
    keys = np.empty(n_cands, np.int64)
    n_keys = 0
    for c in range(n_cands):
        d = cands[c]
        if np.float64(acc[d]) * slack < cut:
            continue
        score = _exact_score(d, q_terms, q_weights, postings_offsets, postings_docs, postings_weights, term_scales,
                             transform, k_table, doc_norms, k1, b_over_avgdl, one_minus_b, doc_lengths,
                             use_exact_lengths)
        if score > 0.0:
            keys[n_keys] = (np.int64(_float_bits(score)) << 32) | (_LOW32 - d)
            n_keys += 1
    for c in range(n_touched):
        acc[touched[c]] = 0.0
    return _write_hits(np.sort(keys[:n_keys])[::-1], min(k, n_keys), 32, _LOW32, doc_base, out_scores, out_docs)


@njit(cache=True, nogil=True)
def _exact_score(d, q_terms, q_weights, postings_offsets, postings_docs, postings_weights, term_scales, transform,
                 k_table, doc_norms, k1, b_over_avgdl, one_minus_b, doc_lengths, use_exact_lengths):
    """Document ``d``'s score summed in query-term order, as exhaustive search sums it (the same float32 bits)."""
    n_terms_index = len(postings_offsets) - 1
    score = np.float32(0.0)
    for j in range(len(q_terms)):
        t = q_terms[j]
        if t < 0 or t >= n_terms_index or not q_weights[j] > 0.0:
            continue
        end = postings_offsets[t + 1]
        p = _next_geq(postings_docs, postings_offsets[t], end, d)
        if p < end and postings_docs[p] == d:
            score += _exact_contribution(q_weights[j], t, p, d, postings_weights, term_scales, transform, k_table,
                                         doc_norms, k1, b_over_avgdl, one_minus_b, doc_lengths, use_exact_lengths)
    return score


@njit(cache=True, nogil=True)
def _kth_full_score(acc, docs, n, deleted, k, keys, q_terms, q_weights, postings_offsets, postings_docs,
                    postings_weights, term_scales, transform, k_table, doc_norms, k1, b_over_avgdl, one_minus_b,
                    doc_lengths, use_exact_lengths):
    """The k-th largest exact score among the k live documents of ``docs[:n]`` with the best ``acc``, or 0.

    Any k documents' exact scores bound the final k-th score from below;
    those best so far on part of the query bound it tightly.
    """
    if _best_live(acc, docs, n, deleted, k, keys) < k:
        return np.float32(0.0)
    lowest = np.float32(np.inf)
    for i in range(k):
        s = _exact_score(np.int64(keys[i] & _LOW32), q_terms, q_weights, postings_offsets, postings_docs,
                         postings_weights, term_scales, transform, k_table, doc_norms, k1, b_over_avgdl, one_minus_b,
                         doc_lengths, use_exact_lengths)
        if s < lowest:
            lowest = s
    return lowest


@njit(cache=True, nogil=True)
def _accumulate_one(q_terms, q_weights, i, postings_offsets, postings_docs, postings_weights, term_scales, transform,
                    k_table, doc_norms, k1, b_over_avgdl, one_minus_b, doc_lengths, use_exact_lengths, min_weight,
                    max_kd, acc, touched, n_touched):
    """Exhaustive accumulation of query term ``i`` alone (``_accumulate`` on one term); returns #newly touched."""
    return _accumulate(q_terms[i:i + 1], q_weights[i:i + 1], postings_offsets, postings_docs, postings_weights,
                       term_scales, transform, k_table, doc_norms, k1, b_over_avgdl, one_minus_b, doc_lengths,
                       use_exact_lengths, min_weight, max_kd, acc, touched[n_touched:])


@njit(parallel=True, cache=True, nogil=True)
def pruned_many(
    q_offsets, q_terms, q_weights, k, n_blocks,
    postings_offsets, postings_docs, postings_weights, term_scales,
    transform, k_table, doc_norms, k1, b_over_avgdl, one_minus_b, doc_lengths, use_exact_lengths,
    deleted, doc_base, min_weight, max_kd, bounds, theta_seeds, min_postings, n_docs, out_scores, out_docs,
    out_counts,
):
    """:func:`pruned_one` over a batch, in parallel over blocks of queries (one accumulator per block)."""
    n_queries = len(q_offsets) - 1
    for blk in prange(n_blocks):
        acc = np.zeros(n_docs, np.float32)
        touched = np.empty(n_docs + 1, np.int32)
        hist = np.zeros(RADIX_BUCKETS if n_docs >= _RADIX_MIN_CANDIDATES else 0, np.int32)
        for q in range(n_queries * blk // n_blocks, n_queries * (blk + 1) // n_blocks):
            lo = q_offsets[q]
            hi = q_offsets[q + 1]
            out_counts[q] = pruned_one(
                q_terms[lo:hi], q_weights[lo:hi], k, postings_offsets, postings_docs, postings_weights, term_scales,
                transform, k_table, doc_norms, k1, b_over_avgdl, one_minus_b, doc_lengths, use_exact_lengths,
                deleted, doc_base, min_weight, max_kd, bounds, theta_seeds[q], min_postings, acc, touched, hist,
                out_scores[q], out_docs[q],
            )
