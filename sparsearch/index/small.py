"""Exact NumPy twins of the kernels a small build, open and search use, so that small inputs never JIT.

The Numba kernels (:mod:`sparsearch.index.kernels`) are compiled on first use
and cached on disk; the first compilation of the ones a ``sparsearch
quickstart`` touches costs about 25 s of CPU on this project's machines, which
is all of a first run on a 20-document corpus.  Below the thresholds here the
same computations run in NumPy instead — and ``numba`` is not even imported —
at a cost (a few ms) that is nothing next to that compilation; above them the
Numba kernels run, compiled once per machine, as before.

Every function returns exactly what its Numba twin returns: the same arrays,
dtypes and bit patterns, the same order among equal scores (lower doc id
first) and the same hit counts, corner cases included (contributions that
round to zero, repeated query terms, ``k`` larger than the matches).  Both paths must agree bit
for bit, because which one runs depends only on size: a collection that grows
past a threshold must not change its results.  ``tests/unit/test_small_paths.py``
checks that on random inputs.

The thresholds are measured (docs/benchmarks.md, "Start-up"): at
:data:`MAX_SEARCH_POSTINGS` a NumPy query is still well under a millisecond.
``SPARSEARCH_NUMPY_PATHS=0`` turns the NumPy paths off (every input takes the
Numba kernels), e.g. to test the kernels through the whole stack.
"""

from __future__ import annotations

import os

import numpy as np

from sparsearch.scoring import TRANSFORM_LINEAR, TRANSFORM_SATURATE

#: Builds (term frequencies, inversion, quantisation, norms, doc-frequency and structural
#: checks) of at most this many tokens or postings run in NumPy.
MAX_BUILD_POSTINGS = 1 << 16
#: Exhaustive searches of a segment of at most this many postings run in NumPy...
MAX_SEARCH_POSTINGS = 1 << 16
#: ...and of fewer documents than this (the kernel's radix pre-selection starts at 8,192 candidates).
MAX_SEARCH_DOCS = 8192
#: Lucene's SmallFloat: lengths below this are stored exactly in the one-byte norm.
NUM_FREE_VALUES = 24


#: Whether the NumPy paths may be used at all (``SPARSEARCH_NUMPY_PATHS=0`` turns them off).
ENABLED = os.environ.get("SPARSEARCH_NUMPY_PATHS", "1") != "0"


def small_build(n: int) -> bool:
    """Whether a build-side computation over ``n`` tokens or postings takes the NumPy path."""
    return ENABLED and n <= MAX_BUILD_POSTINGS


def small_search(n_postings: int, n_docs: int) -> bool:
    """Whether an exhaustive search of a segment this size takes the NumPy path."""
    return ENABLED and n_postings <= MAX_SEARCH_POSTINGS and n_docs < MAX_SEARCH_DOCS


def _row_of(offsets: np.ndarray) -> np.ndarray:
    """Row index of every entry of a CSR array (``offsets`` start at 0)."""
    return np.repeat(np.arange(len(offsets) - 1, dtype=np.int64), np.diff(np.asarray(offsets, np.int64)))


# ---------------------------------------------------------------- building


def term_frequencies(token_offsets: np.ndarray, token_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`kernels.term_frequencies`: ``(row_offsets, term_ids, counts)``, term ids sorted per row."""
    offsets = np.asarray(token_offsets, np.int64)
    n_docs = len(offsets) - 1
    lo = int(offsets[0])
    tokens = token_ids[lo:int(offsets[-1])]
    doc = _row_of(offsets - lo)
    order = np.lexsort((tokens, doc))
    s, d = tokens[order], doc[order]
    new = np.ones(len(s), bool)
    new[1:] = (s[1:] != s[:-1]) | (d[1:] != d[:-1])
    starts = np.flatnonzero(new)
    row_offsets = np.zeros(n_docs + 1, np.int64)
    np.cumsum(np.bincount(d[starts], minlength=n_docs), out=row_offsets[1:])
    counts = np.diff(np.append(starts, len(s))).astype(np.float32)
    return row_offsets, s[starts].astype(token_ids.dtype, copy=False), counts


def invert(row_offsets: np.ndarray, term_ids: np.ndarray, weights: np.ndarray,
           n_terms: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`kernels.invert`: rows to term-major postings, doc ids ascending per term (a stable sort)."""
    offsets = np.asarray(row_offsets, np.int64)
    lo, hi = int(offsets[0]), int(offsets[-1])
    terms = term_ids[lo:hi]
    order = np.argsort(terms, kind="stable")
    postings_offsets = np.zeros(n_terms + 1, np.int64)
    np.cumsum(np.bincount(terms, minlength=n_terms)[:n_terms], out=postings_offsets[1:])
    docs = _row_of(offsets - lo)[order].astype(np.uint32)
    return postings_offsets, docs, weights[lo:hi][order]


def quantize_uint8(postings_offsets: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`kernels.quantize_uint8` for float32 weights: per-term scales, one byte per posting.

    The kernel's arithmetic, dtype for dtype: ``max / 255.0`` in float64 then
    float32; ``w / scale`` in float32, ``+ 0.5`` and ``floor`` in float64.
    """
    if weights.dtype != np.float32:
        raise TypeError("the NumPy quantisation handles float32 weights only")
    n_terms = len(postings_offsets) - 1
    term = _row_of(postings_offsets)
    top = np.zeros(n_terms, np.float32)
    np.maximum.at(top, term, weights)
    fractional = np.zeros(n_terms, bool)
    fractional[term[weights != np.floor(weights)]] = True
    scales = np.ones(n_terms, np.float32)
    lossy = ~(~fractional & (top <= 255.0)) & (top > 0)
    scales[lossy] = (top[lossy].astype(np.float64) / 255.0).astype(np.float32)
    with np.errstate(all="ignore"):
        q = np.floor((weights / scales[term]).astype(np.float64) + 0.5)
    q = np.minimum(q, 255.0)
    q[(q < 1.0) & (weights > 0.0)] = 1.0
    return q.astype(np.uint8), scales


def _int_to_int4(i: np.ndarray) -> np.ndarray:
    n_bits = np.zeros(len(i), np.int64)
    v = i.copy()
    while True:
        more = v > 0
        if not more.any():
            break
        n_bits += more
        v >>= 1
    shift = np.maximum(n_bits - 4, 0)
    encoded = ((i >> shift) & 0x07) | ((shift + 1) << 3)
    return np.where(n_bits < 4, i, encoded)


def encode_norms(lengths: np.ndarray) -> np.ndarray:
    """:func:`kernels.encode_norms`: Lucene's one-byte length (``SmallFloat.intToByte4``)."""
    n = np.asarray(lengths).astype(np.int64)
    out = np.where(n < NUM_FREE_VALUES, n, NUM_FREE_VALUES + _int_to_int4(np.maximum(n - NUM_FREE_VALUES, 0)))
    return out.astype(np.uint8)


def decode_norm_table() -> np.ndarray:
    """:func:`kernels.decode_norm_table`: the length each of the 256 norm bytes stands for."""
    out = np.empty(256, np.float64)
    for b in range(256):
        if b < NUM_FREE_VALUES:
            out[b] = b
            continue
        i = b - NUM_FREE_VALUES
        bits, shift = i & 0x07, (i >> 3) - 1
        out[b] = NUM_FREE_VALUES + (bits if shift == -1 else (bits | 0x08) << shift)
    return out


def live_doc_freq(postings_offsets: np.ndarray, postings_docs: np.ndarray, deleted: np.ndarray) -> np.ndarray:
    """:func:`kernels.live_doc_freq`: postings per term whose document is not marked deleted."""
    n_terms = len(postings_offsets) - 1
    term = _row_of(postings_offsets)
    live = np.asarray(deleted)[postings_docs[:len(term)]] == 0
    return np.bincount(term[live], minlength=n_terms).astype(np.int64)


# ---------------------------------------------------------------- structural checks


def first_bad_offset(offsets: np.ndarray, end: int) -> int:
    """:func:`kernels.first_bad_offset`: first entry breaking [0, non-decreasing, last == end], or -1."""
    n = len(offsets)
    if n == 0 or offsets[0] != 0:
        return 0
    o = np.asarray(offsets, np.int64)
    down = np.flatnonzero(o[1:] < o[:-1])
    if len(down):
        return int(down[0]) + 1
    return n - 1 if int(o[-1]) != end else -1


def first_bad_posting_list(postings_offsets: np.ndarray, postings_docs: np.ndarray, n_docs: int) -> int:
    """:func:`kernels.first_bad_posting_list`: first term with a doc id >= ``n_docs`` or out of order, or -1.

    ``postings_offsets`` must already pass :func:`first_bad_offset`.
    """
    term = _row_of(postings_offsets)
    if len(term) == 0:
        return -1
    d = np.asarray(postings_docs[:len(term)], np.int64)
    bad = d >= n_docs
    bad[1:] |= (d[1:] < d[:-1]) & (term[1:] == term[:-1])
    where = np.flatnonzero(bad)
    return int(term[where[0]]) if len(where) else -1


def first_bad_weight(values: np.ndarray) -> int:
    """:func:`kernels.first_bad_weight`: first NaN, infinity or negative number, or -1."""
    v = np.asarray(values)
    where = np.flatnonzero(~((v >= 0) & (v < np.inf)))
    return int(where[0]) if len(where) else -1


# ---------------------------------------------------------------- search


def search(
    q_offsets, q_terms, q_weights, k,
    postings_offsets, postings_docs, postings_weights, term_scales,
    transform, k_table, doc_norms, k1, b_over_avgdl, one_minus_b, doc_lengths, use_exact_lengths,
    deleted, doc_base, n_docs, out_scores, out_docs, out_counts,
):  # type: ignore[no-untyped-def]
    """:func:`kernels.search_many` (and :func:`kernels.search_one` per row): exact top-k per query.

    Each contribution is computed with :func:`kernels._accumulate`'s float32
    operations, and ``np.add.at`` adds them one at a time in the kernel's
    order (query term, then posting) to a float32 accumulator, so every score
    is the kernel's to the bit.  The candidates are the kernel's too: the
    documents whose score left 0 (contributions are never negative, so a
    score that left 0 is still non-zero at the end), ranked by score bits,
    then lower doc id.
    """
    n_terms = len(postings_offsets) - 1
    has_deletes = len(deleted) > 0
    acc = np.zeros(n_docs, np.float32)
    with np.errstate(all="ignore"):  # like the kernel: overflow gives inf, underflow 0, silently
        for q in range(len(q_offsets) - 1):
            lo, hi = q_offsets[q], q_offsets[q + 1]
            out_counts[q] = _search_row(q_terms[lo:hi], q_weights[lo:hi], k, postings_offsets, postings_docs,
                                        postings_weights, term_scales, transform, k_table, doc_norms, k1,
                                        b_over_avgdl, one_minus_b, doc_lengths, use_exact_lengths,
                                        deleted if has_deletes else None, doc_base, n_terms, acc,
                                        out_scores[q], out_docs[q])


def _search_row(q_terms, q_weights, k, postings_offsets, postings_docs, postings_weights, term_scales, transform,
                k_table, doc_norms, k1, b_over_avgdl, one_minus_b, doc_lengths, use_exact_lengths, deleted, doc_base,
                n_terms, acc, out_scores, out_docs) -> int:  # type: ignore[no-untyped-def]
    """One query of :func:`search`, all its terms at once; leaves ``acc`` zeroed."""
    terms = np.asarray(q_terms, np.int64)
    keep = (terms >= 0) & (terms < n_terms) & (np.asarray(q_weights) > 0.0)  # NaN weights fail "> 0" too
    if not keep.all():
        terms = terms[keep]
    if len(terms) == 0:
        return 0
    q = np.asarray(q_weights)[keep].astype(np.float32)  # the kernel's np.float32(q_weights[i])
    starts = postings_offsets[terms]
    lengths = postings_offsets[terms + 1] - starts
    total = int(lengths.sum())
    if total == 0:
        return 0
    # Every posting of every term, in query-term order: term j's list sits at starts[j] in the postings.
    first = np.cumsum(lengths) - lengths
    where = np.repeat(starts - first, lengths) + np.arange(total)
    docs = postings_docs[where]
    stored = postings_weights[where].astype(np.float32)
    scales = term_scales[terms]
    if transform == TRANSFORM_LINEAR:
        contrib = np.repeat(q * scales, lengths) * stored
    else:
        w = stored * np.repeat(scales, lengths)
        if use_exact_lengths:
            lens = doc_lengths[docs]
            if lens.dtype.kind in "ui" and lens.dtype.itemsize > 1:
                # Numba types float32 * (u)int16 and wider as float64 (NumPy would keep float32).
                lens = lens.astype(np.float64)
            kd = (k1 * (one_minus_b + b_over_avgdl * lens)).astype(np.float32)
        else:
            kd = k_table[doc_norms[docs]]
        contrib = np.repeat(q, lengths) * (w / (w + kd))
    np.add.at(acc, docs, contrib)  # one add at a time, in order: the kernel's float32 sums
    candidates = np.flatnonzero(acc)  # (NaN counts as non-zero, as in the kernel); fewer than MAX_SEARCH_DOCS
    scores = acc[candidates]
    acc[candidates] = 0.0
    if deleted is not None:
        live = deleted[candidates] == 0
        candidates, scores = candidates[live], scores[live]
    # The kernel orders by the float32 bit pattern (the value, for the non-negative scores it sees).
    order = np.lexsort((candidates, -scores.view(np.uint32).astype(np.int64)))[:k]
    n = len(order)
    out_scores[:n] = scores[order]
    out_docs[:n] = candidates[order] + doc_base
    return n


def merge_top_k(scores_a, docs_a, counts_a, scores_b, docs_b, counts_b, k, out_scores, out_docs,
                out_counts) -> None:  # type: ignore[no-untyped-def]
    """:func:`kernels.merge_top_k`: two ranked lists per query (disjoint doc ids) into one top-k."""
    for q in range(len(counts_a)):
        na, nb = int(counts_a[q]), int(counts_b[q])
        s = np.concatenate([scores_a[q, :na], scores_b[q, :nb]])
        d = np.concatenate([docs_a[q, :na], docs_b[q, :nb]])
        order = np.lexsort((d, -s))[:k]
        n = len(order)
        out_scores[q, :n] = s[order]
        out_docs[q, :n] = d[order]
        out_counts[q] = n
