"""Numba kernels of exhaustive, exact top-k search: accumulate every posting, then rank the touched documents.

Term at a time: each query term's posting list is read once and its
contributions added into a dense per-document accumulator (float32, in
query-term order, so scores are the same to the bit on every path); the
documents it touched are then ranked, best first, lower doc id first among
equal scores, by a heap for small k and radix selection and sort for large
k.  :func:`merge_top_k` merges two such ranked lists (e.g. two segments).
The score transforms are described in :mod:`sparsearch.index.kernels`.

Compiled lazily and cached on disk (:mod:`sparsearch.index.kernels_jit`);
:mod:`sparsearch.index.kernels_prune` and :mod:`sparsearch.index.filter_kernels`
reuse the ranking helpers (``_sift_down``, ``_collect_top_k``) so that every
search path orders its hits the same way.
"""

from __future__ import annotations

import numpy as np

from sparsearch.index.kernels_jit import njit
from sparsearch.scoring import TRANSFORM_LINEAR

prange = range  # numba.prange once the kernels are compiled (kernels_jit.materialize)


# ---------------------------------------------------------------- top-k


@njit(inline="always")
def _worse(s1, d1, s2, d2):
    """Ranking order: higher score first, lower doc id first among equal scores."""
    return s1 < s2 or (s1 == s2 and d1 > d2)


_LOW32 = np.int64(0xFFFFFFFF)
# Up to this k a size-k heap (about one compare per candidate) beats the radix
# selection; measured crossover on NFCorpus near k = 32 (BM25 and learned sparse).
_HEAP_MAX_K = 32


@njit(cache=True, nogil=True)
def _largest_by_heap(keys, m, k):
    """The k largest of ``keys[:m]`` with a size-k min-heap: O(m) compares when k is small."""
    heap = keys[:k].copy()
    for i in range(k // 2 - 1, -1, -1):
        _sift_down(heap, k, i)
    for i in range(k, m):
        key = keys[i]
        if key > heap[0]:
            heap[0] = key
            _sift_down(heap, k, 0)
    return heap


@njit(cache=True, nogil=True)
def _sift_down(heap, size, i):
    while True:
        child = 2 * i + 1
        if child >= size:
            return
        if child + 1 < size and heap[child + 1] < heap[child]:
            child += 1
        if heap[child] < heap[i]:
            heap[i], heap[child] = heap[child], heap[i]
            i = child
        else:
            return


@njit(inline="always")
def _offer(heap, size, k, value):
    """Offer ``value`` to a min-heap of the k largest values seen (``size`` held so far); returns the new size."""
    if size < k:
        heap[size] = value
        size += 1
        if size == k:
            for j in range(k // 2 - 1, -1, -1):
                _sift_down(heap, k, j)
    elif value > heap[0]:
        heap[0] = value
        _sift_down(heap, k, 0)
    return size


@njit(cache=True, nogil=True)
def _write_hits(best, n, doc_bits, doc_mask, doc_base, out_scores, out_docs):
    """Unpack the first ``n`` packed keys of ``best`` (best first) into float32 scores and doc ids."""
    score_bits = np.empty(n, np.uint32)
    for j in range(n):
        key = best[j]
        score_bits[j] = np.uint32(key >> doc_bits)
        out_docs[j] = (doc_mask - (key & doc_mask)) + doc_base
    scores = score_bits.view(np.float32)
    for j in range(n):
        out_scores[j] = scores[j]
    return n


_SELECT_BITS = 11


@njit(cache=True, nogil=True)
def _radix_select(keys, m, k, varying):
    """The keys of ``keys[:m]`` (m > k) whose top varying bits reach the k-th largest's; about k of them.

    ``varying`` has a bit set wherever two keys differ.  One histogram of the
    top ``_SELECT_BITS`` varying bits finds the bucket holding the k-th
    largest key; every key in or above it is kept (unsorted).
    """
    top = 64
    while top > 0 and (varying >> (top - 1)) == 0:
        top -= 1
    shift = max(0, top - _SELECT_BITS)
    n_buckets = 1 << (top - shift)
    mask = np.int64(n_buckets - 1)
    hist = np.zeros(n_buckets, np.int32)
    for i in range(m):
        hist[(keys[i] >> shift) & mask] += 1
    bucket = n_buckets - 1
    count = 0
    while True:
        count += hist[bucket]
        if count >= k:
            break
        bucket -= 1
    cut = ((keys[0] >> top) << top) | (np.int64(bucket) << shift)  # keys < 2**63: top <= 63
    kept = np.empty(count, np.int64)
    j = 0
    for i in range(m):
        key = keys[i]
        if key >= cut:
            kept[j] = key
            j += 1
    return kept


@njit(cache=True, nogil=True)
def _radix_sort_descending(keys, varying):
    """Sort non-negative int64 keys, largest first, by LSD radix sort on bytes; returns a new array.

    Why: for the hundreds to thousands of keys a k = 1000 search ranks,
    numba's np.partition + quicksort dominated the query (NFCorpus, 1 thread:
    16 us of 18 for BM25, 32 of 35 for a learned sparse model); with this
    sort and :func:`_radix_select` collection takes 7 and 12 us.  One pass
    counts all eight byte histograms (a fixed eight-digit loop, cheaper than
    a loop over only the needed digits), then only the bytes that differ
    between keys (``varying``, the OR of ``key ^ keys[0]``) are scattered,
    typically five: the doc id's low bits and the score's mantissa and low
    exponent bits.  Each scatter is stable, so the order is exact.  A 2048-way
    MSD bucketing with small-bucket insertion sort measured slower (ties).
    """
    m = len(keys)
    a = keys.copy()
    if m < 2 or varying == 0:
        return a
    hist = np.zeros((8, 256), np.int32)
    for i in range(m):
        key = a[i]
        for p in range(8):
            hist[p, (key >> (8 * p)) & 255] += 1
    b = np.empty(m, np.int64)
    for p in range(8):
        h = hist[p]
        if (varying >> (8 * p)) & 255 == 0 or h[(a[0] >> (8 * p)) & 255] == m:
            continue  # every key has the same digit here
        pos = np.int32(0)
        for c in range(255, -1, -1):  # descending: the largest digit's bucket first
            t = h[c]
            h[c] = pos
            pos += t
        shift = 8 * p
        for i in range(m):
            key = a[i]
            c = (key >> shift) & 255
            b[h[c]] = key
            h[c] += 1
        a, b = b, a
    return a


RADIX_BUCKETS = 1 << 16
_RADIX_MIN_CANDIDATES = 8192


@njit(cache=True, nogil=True)
def _collect_top_k(acc, touched, n_touched, deleted, k, out_scores, out_docs, doc_base, hist):
    """Write the k best touched documents, best first, and clear the accumulator.

    Each candidate becomes one int64 key: the score's float32 bit pattern
    (monotonic for positive floats) above ``doc_bits`` bits holding
    ``doc_mask - doc``, so one integer comparison orders by score, then by
    lower doc id, and the key is no wider than it needs to be (fewer radix
    passes).

    Many candidates (10^5 and more on large indexes): a radix pre-selection
    first counts candidates per 16-bit score prefix (``hist``, zero on entry
    and on exit), finds the prefix holding the k-th best, and keys only the
    candidates at or above it (about k); no O(n) buffer is copied or
    partitioned.  Then: small k takes the k largest with a heap; larger k
    narrows the keys to about k with one more radix histogram
    (:func:`_radix_select`) and sorts them with an LSD radix sort
    (:func:`_radix_sort_descending`), several times faster than numba's
    partition + quicksort for k in the hundreds to thousands.
    """
    bits = acc.view(np.uint32)
    has_deletes = len(deleted) > 0
    doc_bits = 1
    while (1 << doc_bits) < len(acc):
        doc_bits += 1
    doc_mask = np.int64((1 << doc_bits) - 1)
    cut = np.uint32(0)
    m = n_touched
    preselect = n_touched > k and n_touched >= _RADIX_MIN_CANDIDATES and len(hist) == RADIX_BUCKETS
    if preselect:
        for i in range(n_touched):
            d = touched[i]
            if has_deletes and deleted[d]:
                continue
            hist[bits[d] >> 16] += 1
        count = 0
        bucket = RADIX_BUCKETS - 1
        while bucket > 0:
            count += hist[bucket]
            if count >= k:
                break
            bucket -= 1
        cut = np.uint32(bucket) << 16
        m = count if bucket > 0 else n_touched
    keys = np.empty(m, np.int64)
    j = 0
    for i in range(n_touched):
        d = touched[i]
        b = bits[d]
        acc[d] = 0.0
        if preselect:
            hist[b >> 16] = 0  # also when cut == 0 (fewer than k live candidates): hist must end zeroed
        if (has_deletes and deleted[d]) or b < cut:
            continue
        keys[j] = (np.int64(b) << doc_bits) | (doc_mask - d)
        j += 1
    if j > k and k <= _HEAP_MAX_K:
        best = _largest_by_heap(keys, j, k)
        best.sort()
        best = best[::-1]
    else:
        varying = np.int64(0)
        for i in range(j):
            varying |= keys[i] ^ keys[0]
        if j > k:
            keys = _radix_select(keys, j, k, varying)
        else:
            keys = keys[:j]
        best = _radix_sort_descending(keys, varying)
    return _write_hits(best, min(k, len(best)), doc_bits, doc_mask, doc_base, out_scores, out_docs)


# ---------------------------------------------------------------- scoring


@njit(inline="always")
def _length_term(d, k_table, doc_norms, k1, b_over_avgdl, one_minus_b, doc_lengths, use_exact_lengths):
    """BM25's ``K(d)`` of document ``d``, float32: from its exact length, or Lucene's one-byte norm table."""
    if use_exact_lengths:
        return np.float32(k1 * (one_minus_b + b_over_avgdl * doc_lengths[d]))
    return k_table[doc_norms[d]]


@njit(cache=True, nogil=True)
def _accumulate(
    q_terms, q_weights, postings_offsets, postings_docs, postings_weights, term_scales,
    transform, k_table, doc_norms, k1, b_over_avgdl, one_minus_b, doc_lengths, use_exact_lengths,
    min_weight, max_kd, acc, touched,
):
    """Term-at-a-time accumulation of one query's contributions; returns #touched docs.

    ``touched[:n]`` lists every document whose score left 0, once (so ``n <= n_docs``):
    contributions are never negative, so a score only grows, and one that rounds to
    0 (tiny weights) touches nothing and makes no hit.  Listing a document on a
    zero contribution would list it again on its next one, past the buffer's
    ``n_docs + 1`` slots: a query vector of tiny weights could write past it.

    ``min_weight`` (float32: the segment's smallest stored weight) and ``max_kd``
    (float64: an upper bound of every document's length term ``kd``, or 0 for
    linear scoring) tell, per query term, whether a contribution can round to 0
    at all; almost never, and then the loop needs only "was the score 0"
    (branch-free: always write, advance on a first touch — a ~50% branch would
    mispredict).  Otherwise a second test per posting, "is it still 0", costs
    ~15% of a query; that loop runs only for such terms.

    An empty ``touched`` turns the list off (returns 0): see :func:`_dense_pays`.
    """
    n_touched = 0
    track = len(touched) > 0
    n_terms = len(postings_offsets) - 1
    for i in range(len(q_terms)):
        t = q_terms[i]
        if t < 0 or t >= n_terms:
            continue
        if not q_weights[i] > 0.0:
            # Non-positive query weights are skipped: with no contribution
            # negative, a score that left 0 never returns to it.
            continue
        qw = np.float32(q_weights[i]) * term_scales[t]
        lo = postings_offsets[t]
        hi = postings_offsets[t + 1]
        if transform == TRANSFORM_LINEAR:
            if qw * np.float32(min_weight) > 0.0:
                # Every contribution is at least this float32 product (rounding is monotonic): none is 0.
                # Unsigned indices: no negative-index wraparound per load and store (measured faster).
                first = np.uint64(lo)
                for j in range(np.uint64(hi - lo)):
                    p = first + j
                    d = np.uint64(postings_docs[p])
                    a = acc[d]
                    if track:
                        touched[n_touched] = d
                        n_touched += a == 0.0
                    acc[d] = a + qw * np.float32(postings_weights[p])
            else:
                for p in range(lo, hi):
                    d = postings_docs[p]
                    a = acc[d]
                    updated = a + qw * np.float32(postings_weights[p])
                    if track:
                        touched[n_touched] = d
                        n_touched += (a == 0.0) & (updated != 0.0)
                    acc[d] = updated
        else:
            qs = np.float32(q_weights[i])
            scale = term_scales[t]
            # A lower bound of w / (w + kd) over the segment; far above float32's underflow (with a margin
            # for rounding), and with qs * it too, no contribution rounds to 0.
            w_low = np.float64(min_weight) * np.float64(scale)
            ratio = w_low / (w_low + np.float64(max_kd))
            if ratio >= 1e-30 and qs * ratio >= 1e-30:
                for p in range(lo, hi):
                    d = postings_docs[p]
                    w = np.float32(postings_weights[p]) * scale
                    kd = _length_term(d, k_table, doc_norms, k1, b_over_avgdl, one_minus_b, doc_lengths,
                                      use_exact_lengths)
                    a = acc[d]
                    if track:
                        touched[n_touched] = d
                        n_touched += a == 0.0
                    acc[d] = a + qs * (w / (w + kd))
            else:
                for p in range(lo, hi):
                    d = postings_docs[p]
                    w = np.float32(postings_weights[p]) * scale
                    kd = _length_term(d, k_table, doc_norms, k1, b_over_avgdl, one_minus_b, doc_lengths,
                                      use_exact_lengths)
                    a = acc[d]
                    updated = a + qs * (w / (w + kd))
                    if track:
                        touched[n_touched] = d
                        n_touched += (a == 0.0) & (updated != 0.0)
                    acc[d] = updated
    return n_touched


@njit(parallel=True, cache=True, nogil=True)
def saturated_impacts(postings_offsets, postings_docs, postings_weights, term_scales, k_table, doc_norms, k1,
                      b_over_avgdl, one_minus_b, doc_lengths, use_exact_lengths):
    """Every posting's ``w / (w + K(d))`` under one snapshot's statistics, float32.

    The same float32 operations (:func:`_length_term`), on the same argument
    types, as the saturating branch of :func:`_accumulate`, so ``q * impact`` equals that branch's
    contribution to the bit and a linear scan over these impacts ranks and
    scores exactly as the saturating one does, without a length-norm lookup
    and a division per posting (:mod:`sparsearch.index.impacts`).
    """
    n_terms = len(postings_offsets) - 1
    out = np.empty(len(postings_docs), np.float32)
    for t in prange(n_terms):
        scale = term_scales[t]
        for p in range(postings_offsets[t], postings_offsets[t + 1]):
            d = postings_docs[p]
            w = np.float32(postings_weights[p]) * scale
            kd = _length_term(d, k_table, doc_norms, k1, b_over_avgdl, one_minus_b, doc_lengths, use_exact_lengths)
            out[p] = w / (w + kd)
    return out


#: A query scans the whole accumulator instead of listing touched documents when the segment holds at most
#: this many documents per posting of the query's lists.  With the vectorised two-pass scan of
#: :func:`_collect_dense`, measured best at 32 on the 10^5 and 10^6 BM25 corpora (2 and 8 were 10-25% slower
#: there; 64 and up slower again); SciFact and NFCorpus take the scan either way.
DENSE_DOCS_PER_POSTING = 32


@njit(cache=True, nogil=True)
def _dense_pays(q_terms, postings_offsets, n_docs, k):
    """Whether to skip the touched list and scan all ``n_docs`` scores: many postings for few documents, small k.

    Listing touched documents costs a store and a compare per posting and a
    key per touched document; a scan of the accumulator costs a load per
    document.  When the query's lists hold about as many postings as the
    segment has documents, most documents are touched anyway.
    """
    if k > _HEAP_MAX_K:
        return False
    n_terms = len(postings_offsets) - 1
    total = 0
    for i in range(len(q_terms)):
        t = q_terms[i]
        if 0 <= t < n_terms:
            total += postings_offsets[t + 1] - postings_offsets[t]
    return n_docs <= DENSE_DOCS_PER_POSTING * total


#: Documents per chunk of :func:`_collect_dense`'s first pass (one maximum each).
_DENSE_CHUNK = 128


@njit(cache=True, nogil=True)
def _chunk_maxima(bits, deleted, chunk):
    """The largest score (as float32 bits) of each chunk of ``chunk`` documents, deleted documents left out.

    Branch-free with unsigned indices, so LLVM vectorises it (signed indices
    keep Numba's negative-index wraparound in the loop, which does not
    vectorise: 10x slower): a streaming pass over the accumulator, far
    cheaper than a compare and branch per document.
    """
    n = len(bits)
    n_chunks = (n + chunk - 1) // chunk
    maxima = np.zeros(n_chunks, np.uint32)
    has_deletes = len(deleted) > 0
    width = np.uint64(chunk)
    for c in range(n_chunks):
        lo = np.uint64(c) * width
        size = min(width, np.uint64(n) - lo)
        top = np.uint32(0)
        if has_deletes:
            for j in range(size):
                v = bits[lo + j] * np.uint32(deleted[lo + j] == 0)
                top = v if v > top else top
        else:
            for j in range(size):
                v = bits[lo + j]
                top = v if v > top else top
        maxima[c] = top
    return maxima


@njit(cache=True, nogil=True)
def _collect_dense(acc, deleted, k, out_scores, out_docs, doc_base):
    """:func:`_collect_top_k` for k <= _HEAP_MAX_K over every document's score (no touched list); zeroes ``acc``.

    Two passes.  The first takes each chunk's best live score; the k-th
    largest of those maxima is a lower bound of the k-th best score (k chunks
    each hold a document that good), so the second pass offers to a size-k
    heap only the documents of chunks whose maximum reaches it, in doc id
    order: the hits and their order are those of a heap over every document.
    """
    bits = acc.view(np.uint32)
    n = len(acc)
    has_deletes = len(deleted) > 0
    doc_bits = 1
    while (1 << doc_bits) < n:
        doc_bits += 1
    doc_mask = np.int64((1 << doc_bits) - 1)
    maxima = _chunk_maxima(bits, deleted, _DENSE_CHUNK)
    bound = np.uint32(1)  # scores of 0 (untouched documents) never enter
    if len(maxima) > k:
        kth = _largest_by_heap(maxima, len(maxima), k)[0]
        bound = max(bound, kth)
    heap = np.empty(k, np.int64)
    size = 0
    floor = bound
    for c in range(len(maxima)):
        if maxima[c] < floor:
            continue
        for d in range(c * _DENSE_CHUNK, min((c + 1) * _DENSE_CHUNK, n)):
            b = bits[d]
            if b < floor or (has_deletes and deleted[d]):
                continue
            size = _offer(heap, size, k, (np.int64(b) << doc_bits) | (doc_mask - d))
            if size == k:
                floor = max(bound, np.uint32(heap[0] >> doc_bits))
    acc[:] = 0.0
    best = np.sort(heap[:size])[::-1]
    return _write_hits(best, size, doc_bits, doc_mask, doc_base, out_scores, out_docs)


@njit(cache=True, nogil=True)
def search_one(
    q_terms, q_weights, k,
    postings_offsets, postings_docs, postings_weights, term_scales,
    transform, k_table, doc_norms, k1, b_over_avgdl, one_minus_b, doc_lengths, use_exact_lengths,
    deleted, doc_base, min_weight, max_kd, acc, touched, hist, out_scores, out_docs,
):
    """Exact top-k of one query over one segment; returns the number of hits written.

    ``acc`` (zeroed, one float per document), ``touched`` (int32, one more slot) and
    ``hist`` (zeroed, RADIX_BUCKETS counters, or empty for small segments) are caller-owned
    scratch so that repeated searches do not pay an O(n_docs) allocation; the
    kernel leaves ``acc`` zeroed again.  ``min_weight`` and ``max_kd``: see
    :func:`_accumulate` (and ``inverted.underflow_bounds``).
    """
    dense = _dense_pays(q_terms, postings_offsets, len(acc), k)
    n_touched = _accumulate(
        q_terms, q_weights, postings_offsets, postings_docs, postings_weights, term_scales,
        transform, k_table, doc_norms, k1, b_over_avgdl, one_minus_b, doc_lengths, use_exact_lengths,
        min_weight, max_kd, acc, touched[:0] if dense else touched,
    )
    if dense:
        return _collect_dense(acc, deleted, k, out_scores, out_docs, doc_base)
    return _collect_top_k(acc, touched, n_touched, deleted, k, out_scores, out_docs, doc_base, hist)


@njit(parallel=True, cache=True, nogil=True)
def search_many(
    q_offsets, q_terms, q_weights, k, n_blocks,
    postings_offsets, postings_docs, postings_weights, term_scales,
    transform, k_table, doc_norms, k1, b_over_avgdl, one_minus_b, doc_lengths, use_exact_lengths,
    deleted, doc_base, min_weight, max_kd, n_docs, out_scores, out_docs, out_counts,
):
    """Exact top-k for a batch of queries, queries split into ``n_blocks`` parallel blocks.

    Each block owns one accumulator, reused across its queries, so memory is
    ``n_blocks * n_docs`` floats whatever the batch size.
    """
    n_queries = len(q_offsets) - 1
    for blk in prange(n_blocks):
        acc = np.zeros(n_docs, np.float32)
        touched = np.empty(n_docs + 1, np.int32)
        hist = np.zeros(RADIX_BUCKETS if n_docs >= _RADIX_MIN_CANDIDATES else 0, np.int32)
        q_lo = n_queries * blk // n_blocks
        q_hi = n_queries * (blk + 1) // n_blocks
        for q in range(q_lo, q_hi):
            lo = q_offsets[q]
            hi = q_offsets[q + 1]
            out_counts[q] = search_one(
                q_terms[lo:hi], q_weights[lo:hi], k, postings_offsets, postings_docs, postings_weights,
                term_scales, transform, k_table, doc_norms, k1, b_over_avgdl, one_minus_b, doc_lengths,
                use_exact_lengths, deleted, doc_base, min_weight, max_kd, acc, touched, hist, out_scores[q],
                out_docs[q],
            )


@njit(cache=True, nogil=True)
def merge_top_k(scores_a, docs_a, counts_a, scores_b, docs_b, counts_b, k, out_scores, out_docs, out_counts):
    """Merge two per-query ranked lists (e.g. two segments) into one top-k, same order rules."""
    for q in range(len(counts_a)):
        i = 0
        j = 0
        n = 0
        while n < k and (i < counts_a[q] or j < counts_b[q]):
            take_a = j >= counts_b[q] or (
                i < counts_a[q] and not _worse(scores_a[q, i], docs_a[q, i], scores_b[q, j], docs_b[q, j])
            )
            if take_a:
                out_scores[q, n] = scores_a[q, i]
                out_docs[q, n] = docs_a[q, i]
                i += 1
            else:
                out_scores[q, n] = scores_b[q, j]
                out_docs[q, n] = docs_b[q, j]
                j += 1
            n += 1
        out_counts[q] = n
