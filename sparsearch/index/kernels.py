"""Pure Numba kernels of the inverted index: building postings and scoring queries.

Everything here works on flat NumPy arrays and nothing else: no Python
objects, no I/O.  That keeps the kernels testable against plain NumPy
(``kernel.py_func`` runs the same code uncompiled) and lets them release the
GIL, so searches run in parallel with each other and with Python work.

Compilation is cached on disk (``cache=True``) so a CLI call pays the JIT only
the first time a given kernel signature is seen.  Importing this module does
not import Numba: the decorators below only record each kernel, and the first
use of any kernel (a call, or an attribute such as ``py_func``) imports Numba
and turns every recorded kernel into its dispatcher at once.  A process that
only ever takes the NumPy paths of small inputs (:mod:`sparsearch.index.small`)
therefore never pays Numba's import (~0.4 s) nor loads its cache.

Score transforms
----------------
The index stores per posting a non-negative weight ``w``.  Two transforms turn
it into a score contribution for a query term weight ``q``:

* ``TRANSFORM_LINEAR``: ``q * w`` (dot product; learned sparse models).
* ``TRANSFORM_SATURATE``: ``q * w / (w + K(d))`` with
  ``K(d) = k1 * (1 - b + b * len(d) / avgdl)``: term-frequency saturation with
  length normalisation (Robertson & Zaragoza 2009), which with ``w = tf`` and
  ``q = idf`` is BM25 in Lucene's form.  ``K`` is read from a 256-entry table
  indexed by the document's one-byte norm (Lucene's SmallFloat length), or
  computed from the exact length.  Computing it at query time, from
  collection-wide ``avgdl``, keeps scores exact when documents are added.
"""

from __future__ import annotations

import threading
from functools import update_wrapper
from typing import Any, Callable

import numpy as np

from sparsearch.scoring import TRANSFORM_LINEAR, TRANSFORM_SATURATE  # one definition, in the core

prange = range  # numba.prange once the kernels are compiled (see _materialize)
_materialized = False
_materialize_lock = threading.RLock()


class _Deferred:
    """A kernel recorded by :func:`njit`; the first use turns every one of them into a Numba dispatcher."""

    def __init__(self, func: Callable[..., Any], options: dict[str, Any]) -> None:
        self._func = func
        self._options = options
        self._dispatcher: Any = None
        update_wrapper(self, func)

    def _get(self) -> Any:
        if self._dispatcher is None:
            _materialize()
        return self._dispatcher

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._get()(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_func", "_options", "_dispatcher"):
            raise AttributeError(name)
        return getattr(self._get(), name)


def njit(**options: Any) -> Callable[[Callable[..., Any]], Any]:
    """``numba.njit(**options)``, deferred: nothing is imported or compiled until a kernel is used."""
    return lambda func: _Deferred(func, options)


def _materialize() -> None:
    """Import Numba and replace every deferred kernel of this module by its dispatcher (once, thread-safe).

    All at once, before any compiles: a kernel's callees are looked up in this
    module's globals when it compiles, and must be dispatchers by then.
    """
    global _materialized, prange
    with _materialize_lock:
        if _materialized:
            return
        import numba

        prange = numba.prange
        namespace = globals()
        for name, value in list(namespace.items()):
            if isinstance(value, _Deferred):
                value._dispatcher = numba.njit(**value._options)(value._func)
                namespace[name] = value._dispatcher
        _materialized = True


def numba_loaded() -> bool:
    """Whether any kernel has been used in this process (and Numba imported)."""
    return _materialized


# ---------------------------------------------------------------- building


@njit(parallel=True, cache=True, nogil=True)
def term_frequencies(token_offsets, token_ids):
    """Collapse per-document token streams into (term, count) rows.

    Returns ``(row_offsets, term_ids, counts)`` with term ids sorted within each row.
    Two passes (count distinct, prefix-sum, fill) so each document is handled
    by one thread with no shared writes.
    """
    n_docs = len(token_offsets) - 1
    sorted_ids = np.empty_like(token_ids)
    n_unique = np.zeros(n_docs + 1, np.int64)
    for d in prange(n_docs):
        lo = token_offsets[d]
        hi = token_offsets[d + 1]
        if hi == lo:
            continue
        s = np.sort(token_ids[lo:hi])
        sorted_ids[lo:hi] = s
        u = 1
        for i in range(1, hi - lo):
            if s[i] != s[i - 1]:
                u += 1
        n_unique[d + 1] = u
    row_offsets = np.cumsum(n_unique)
    out_terms = np.empty(row_offsets[-1], token_ids.dtype)
    out_counts = np.empty(row_offsets[-1], np.float32)
    for d in prange(n_docs):
        lo = token_offsets[d]
        hi = token_offsets[d + 1]
        if hi == lo:
            continue
        pos = row_offsets[d]
        out_terms[pos] = sorted_ids[lo]
        out_counts[pos] = 1.0
        for i in range(lo + 1, hi):
            if sorted_ids[i] == sorted_ids[i - 1]:
                out_counts[pos] += 1.0
            else:
                pos += 1
                out_terms[pos] = sorted_ids[i]
                out_counts[pos] = 1.0
    return row_offsets, out_terms, out_counts


@njit(cache=True)
def _chunk_bounds(row_offsets, n_chunks):
    """Split rows into ``n_chunks`` contiguous ranges of about equal posting counts."""
    n_rows = len(row_offsets) - 1
    total = row_offsets[-1]
    bounds = np.zeros(n_chunks + 1, np.int64)
    for c in range(1, n_chunks):
        target = total * c // n_chunks
        bounds[c] = np.searchsorted(row_offsets, target)
        if bounds[c] < bounds[c - 1]:
            bounds[c] = bounds[c - 1]
        if bounds[c] > n_rows:
            bounds[c] = n_rows
    bounds[n_chunks] = n_rows
    return bounds


@njit(parallel=True, cache=True, nogil=True)
def invert(row_offsets, term_ids, weights, n_terms, n_chunks):
    """Transpose document-major rows into term-major postings (CSR by term).

    Count, prefix-sum, scatter: each chunk of documents counts its postings per
    term, a prefix sum over (term, chunk) gives every chunk its own write cursor
    per term, and the scatter pass writes without contention.  Doc ids come out
    ascending inside every posting list because chunks are in document order.
    """
    bounds = _chunk_bounds(row_offsets, n_chunks)
    counts = np.zeros((n_chunks, n_terms), np.int64)
    for c in prange(n_chunks):
        for p in range(row_offsets[bounds[c]], row_offsets[bounds[c + 1]]):
            counts[c, term_ids[p]] += 1
    postings_offsets = np.zeros(n_terms + 1, np.int64)
    for t in range(n_terms):
        s = 0
        for c in range(n_chunks):
            s += counts[c, t]
        postings_offsets[t + 1] = postings_offsets[t] + s
    for t in prange(n_terms):
        cursor = postings_offsets[t]
        for c in range(n_chunks):
            n = counts[c, t]
            counts[c, t] = cursor
            cursor += n
    n_postings = postings_offsets[-1]
    docs = np.empty(n_postings, np.uint32)
    out_weights = np.empty(n_postings, weights.dtype)
    for c in prange(n_chunks):
        for d in range(bounds[c], bounds[c + 1]):
            for p in range(row_offsets[d], row_offsets[d + 1]):
                t = term_ids[p]
                pos = counts[c, t]
                docs[pos] = d
                out_weights[pos] = weights[p]
                counts[c, t] = pos + 1
    return postings_offsets, docs, out_weights


@njit(parallel=True, cache=True, nogil=True)
def quantize_uint8(postings_offsets, weights):
    """Quantise weights to 8 bits with one scale per term.

    A term whose weights are all integers in [0, 255] (BM25 term frequencies,
    almost always) keeps scale 1 and is stored losslessly; any other term uses
    ``scale = max / 255`` and rounds to nearest, but never rounds a positive
    weight down to 0: a posting is a positive contribution (one quantised to 0
    would no longer make its document a hit).
    """
    n_terms = len(postings_offsets) - 1
    scales = np.ones(n_terms, np.float32)
    out = np.empty(len(weights), np.uint8)
    for t in prange(n_terms):
        lo = postings_offsets[t]
        hi = postings_offsets[t + 1]
        m = np.float32(0.0)
        integral = True
        for p in range(lo, hi):
            w = weights[p]
            if w > m:
                m = w
            if w != np.floor(w):
                integral = False
        scale = np.float32(1.0)
        if not (integral and m <= 255.0) and m > 0:
            scale = np.float32(m / 255.0)
        scales[t] = scale
        for p in range(lo, hi):
            q = np.floor(weights[p] / scale + 0.5)
            if q > 255.0:
                q = 255.0
            if q < 1.0 and weights[p] > 0.0:
                q = 1.0
            out[p] = np.uint8(q)
    return out, scales


# ---------------------------------------------------------------- norms


@njit(cache=True)
def _int_to_int4(i):
    n_bits = 0
    v = i
    while v > 0:
        n_bits += 1
        v >>= 1
    if n_bits < 4:
        return i
    shift = n_bits - 4
    encoded = (i >> shift) & 0x07
    return encoded | ((shift + 1) << 3)


@njit(cache=True)
def _int4_to_int(i):
    bits = i & 0x07
    shift = (i >> 3) - 1
    if shift == -1:
        return bits
    return (bits | 0x08) << shift


# Lucene's SmallFloat: values below NUM_FREE_VALUES are stored exactly.
_MAX_INT4 = 231  # _int_to_int4(2**31 - 1)
NUM_FREE_VALUES = 255 - _MAX_INT4


@njit(parallel=True, cache=True)
def encode_norms(lengths):
    """Lucene's one-byte document length (``SmallFloat.intToByte4``), used by its BM25.

    Exact up to 24 tokens, then 4 significant bits; matching it is what makes
    our BM25 scores equal Lucene's instead of merely close.
    """
    out = np.empty(len(lengths), np.uint8)
    for i in prange(len(lengths)):
        n = np.int64(lengths[i])
        if n < NUM_FREE_VALUES:
            out[i] = np.uint8(n)
        else:
            out[i] = np.uint8(NUM_FREE_VALUES + _int_to_int4(n - NUM_FREE_VALUES))
    return out


@njit(cache=True)
def decode_norm_table():
    """The length each of the 256 norm bytes stands for (``SmallFloat.byte4ToInt``)."""
    out = np.empty(256, np.float64)
    for b in range(256):
        if b < NUM_FREE_VALUES:
            out[b] = b
        else:
            out[b] = NUM_FREE_VALUES + _int4_to_int(b - NUM_FREE_VALUES)
    return out


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
    n = min(k, len(best))
    score_bits = np.empty(n, np.uint32)
    for j in range(n):
        key = best[j]
        score_bits[j] = np.uint32(key >> doc_bits)
        out_docs[j] = (doc_mask - (key & doc_mask)) + doc_base
    scores = score_bits.view(np.float32)
    for j in range(n):
        out_scores[j] = scores[j]
    return n


# ---------------------------------------------------------------- scoring


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
    """
    n_touched = 0
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
                for p in range(lo, hi):
                    d = postings_docs[p]
                    a = acc[d]
                    touched[n_touched] = d
                    n_touched += a == 0.0
                    acc[d] = a + qw * np.float32(postings_weights[p])
            else:
                for p in range(lo, hi):
                    d = postings_docs[p]
                    a = acc[d]
                    updated = a + qw * np.float32(postings_weights[p])
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
                    if use_exact_lengths:
                        kd = np.float32(k1 * (one_minus_b + b_over_avgdl * doc_lengths[d]))
                    else:
                        kd = k_table[doc_norms[d]]
                    a = acc[d]
                    touched[n_touched] = d
                    n_touched += a == 0.0
                    acc[d] = a + qs * (w / (w + kd))
            else:
                for p in range(lo, hi):
                    d = postings_docs[p]
                    w = np.float32(postings_weights[p]) * scale
                    if use_exact_lengths:
                        kd = np.float32(k1 * (one_minus_b + b_over_avgdl * doc_lengths[d]))
                    else:
                        kd = k_table[doc_norms[d]]
                    a = acc[d]
                    updated = a + qs * (w / (w + kd))
                    touched[n_touched] = d
                    n_touched += (a == 0.0) & (updated != 0.0)
                    acc[d] = updated
    return n_touched


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
    n_touched = _accumulate(
        q_terms, q_weights, postings_offsets, postings_docs, postings_weights, term_scales,
        transform, k_table, doc_norms, k1, b_over_avgdl, one_minus_b, doc_lengths, use_exact_lengths,
        min_weight, max_kd, acc, touched,
    )
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
            n_touched = _accumulate(
                q_terms[lo:hi], q_weights[lo:hi], postings_offsets, postings_docs, postings_weights,
                term_scales, transform, k_table, doc_norms, k1, b_over_avgdl, one_minus_b, doc_lengths,
                use_exact_lengths, min_weight, max_kd, acc, touched,
            )
            out_counts[q] = _collect_top_k(acc, touched, n_touched, deleted, k, out_scores[q], out_docs[q], doc_base,
                                           hist)


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


# ---------------------------------------------------------------- deletes


@njit(parallel=True, cache=True, nogil=True)
def live_doc_freq(postings_offsets, postings_docs, deleted):
    """Document frequency of every term counting only documents not marked deleted.

    Deleted documents stay in their immutable segment until a merge drops
    them; collection statistics must not count them, or scores after a delete
    would differ from a fresh build's.
    """
    n_terms = len(postings_offsets) - 1
    out = np.zeros(n_terms, np.int64)
    for t in prange(n_terms):
        c = 0
        for p in range(postings_offsets[t], postings_offsets[t + 1]):
            if not deleted[postings_docs[p]]:
                c += 1
        out[t] = c
    return out


# ---------------------------------------------------------------- validation
#
# The scoring kernels index arrays by stored doc ids and offsets without bounds checks (that is
# what makes them fast), so a segment read from disk is validated once, on open, by these passes:
# one read of each array, in parallel where the array is large.  Each returns the first bad
# position (or -1), so a caller can say where the damage is.


@njit(cache=True, nogil=True)
def first_bad_offset(offsets, end):
    """First position where CSR ``offsets`` break [0, non-decreasing, last == end], or -1."""
    n = len(offsets)
    if n == 0 or offsets[0] != 0:
        return 0
    for i in range(1, n):
        if offsets[i] < offsets[i - 1]:
            return i
    if offsets[n - 1] != end:
        return n - 1
    return -1


@njit(parallel=True, cache=True, nogil=True)
def first_bad_posting_list(postings_offsets, postings_docs, n_docs, term_bounds):
    """First term whose posting list holds a doc id >= ``n_docs`` or out of order, or -1.

    ``postings_offsets`` must already pass :func:`first_bad_offset`; terms are
    split into chunks ``term_bounds[c]:term_bounds[c+1]`` of similar posting
    counts, one per parallel task.  Doc ids must be non-decreasing per term
    (the MaxScore cursor relies on it; builds write them strictly ascending).
    """
    n_chunks = len(term_bounds) - 1
    first = np.full(n_chunks, -1, np.int64)
    for c in prange(n_chunks):
        for t in range(term_bounds[c], term_bounds[c + 1]):
            prev = np.int64(-1)
            bad = False
            for p in range(postings_offsets[t], postings_offsets[t + 1]):
                d = np.int64(postings_docs[p])
                if d >= n_docs or d < prev:
                    bad = True
                    break
                prev = d
            if bad:
                first[c] = t
                break
    for c in range(n_chunks):
        if first[c] >= 0:
            return first[c]
    return -1


@njit(parallel=True, cache=True, nogil=True)
def first_bad_weight(values, n_chunks):
    """First position holding NaN, an infinity or a negative number, or -1."""
    n = len(values)
    first = np.full(n_chunks, -1, np.int64)
    for c in prange(n_chunks):
        lo = c * n // n_chunks
        hi = (c + 1) * n // n_chunks
        for i in range(lo, hi):
            v = values[i]
            if not (v >= 0 and v < np.inf):
                first[c] = i
                break
    for c in range(n_chunks):
        if first[c] >= 0:
            return first[c]
    return -1
