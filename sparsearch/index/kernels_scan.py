"""Numba kernels that scan a whole segment once: live document frequencies and structural validation.

Neither scores anything: :func:`live_doc_freq` gives collection statistics
that ignore deleted documents, and the ``first_bad_*`` passes check a
segment read from disk before any scoring kernel trusts its doc ids and
offsets (:mod:`sparsearch.index.verify`).  :mod:`sparsearch.index.small`
holds their NumPy twins for small segments.  Compiled lazily and cached on
disk (:mod:`sparsearch.index.kernels_jit`).
"""

from __future__ import annotations

import numpy as np

from sparsearch.index.kernels_jit import njit

prange = range  # numba.prange once the kernels are compiled (kernels_jit.materialize)


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
