"""Numba kernels that build a segment: term counts, inversion to postings, quantisation, length norms.

Each is a count / prefix-sum / fill pass over flat NumPy arrays, parallel over
documents or terms with no shared writes, so it scales with cores and needs
no locks.  :mod:`sparsearch.index.small` holds their NumPy twins, taken for
small inputs; both must return identical arrays (tests/unit/test_small_paths.py).
Compiled lazily and cached on disk (:mod:`sparsearch.index.kernels_jit`).
"""

from __future__ import annotations

import numpy as np

from sparsearch.index.kernels_jit import njit

prange = range  # numba.prange once the kernels are compiled (kernels_jit.materialize)


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
