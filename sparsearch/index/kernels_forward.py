"""Numba kernels of the per-segment forward index and the impact-ordered, statically pruned postings.

The forward index is the postings transposed (document -> its terms in
ascending order, with the very weights the postings store), so a document's
exact score can be recomputed from it without touching any posting list:
that is what approximate search re-ranks its candidates with and what
block-max pruning scores a block with (:mod:`sparsearch.index.kernels_bmp`).

:func:`score_doc` reproduces the exhaustive kernel's float32 arithmetic bit
for bit: ``kernels_topk._accumulate`` adds ``qw * w`` to a document's score
in query-term order, starting from 0, with ``qw = q * scale[t]``; here the
query positions are walked in the same order and each one's term looked up
in the document's row.  Scores from the
forward index therefore equal exhaustive scores exactly, which the exact
block-max mode and the tests rely on.

Static pruning keeps, per term, the ``lam`` postings of largest weight
(Seismic, Bruch et al. SIGIR 2024), ordered by weight descending, so that a
query may also read just a prefix of each list (an impact-ordered index in
the sense of Anh & Moffat 2006).
"""

from __future__ import annotations

import numpy as np

from sparsearch.index.kernels_jit import njit

prange = range  # numba.prange once the kernels are compiled (kernels_jit.materialize)


@njit(cache=True, nogil=True)
def query_weights(q_terms, q_weights, term_scales, n_terms, qw):
    """Each query position's scaled weight into ``qw``: 0 where the exhaustive kernel skips the term.

    (Skipped: a term outside the vocabulary or a weight that is not positive.)
    """
    for i in range(len(q_terms)):
        t = q_terms[i]
        qw[i] = 0.0
        if t >= 0 and t < n_terms and q_weights[i] > 0.0:
            qw[i] = np.float32(q_weights[i]) * term_scales[t]


@njit(cache=True, nogil=True)
def score_doc(d, fwd_offsets, fwd_terms, fwd_weights, q_terms, qw):
    """Exact linear score of local document ``d``: the exhaustive kernel's float32 sum, in its order.

    Each query position (in query order, repeats included) binary-searches the
    document's ascending terms: ~log2(row length) compares within the row's
    few cache lines, where scanning the row against a per-term table cost
    one table lookup per document term (SciFact's inference-free rows hold
    ~240 terms, its queries ~20).
    """
    lo0 = fwd_offsets[d]
    hi0 = fwd_offsets[d + 1]
    s = np.float32(0.0)
    for i in range(len(q_terms)):
        w_q = qw[i]
        if w_q == 0.0:
            continue
        t = q_terms[i]
        lo = lo0
        hi = hi0
        while lo < hi:
            mid = (lo + hi) >> 1
            if fwd_terms[mid] < t:
                lo = mid + 1
            else:
                hi = mid
        if lo < hi0 and fwd_terms[lo] == t:
            s = s + w_q * np.float32(fwd_weights[lo])
    return s


@njit(parallel=True, cache=True, nogil=True)
def prune_impact_ordered(postings_offsets, postings_docs, postings_weights, lam):
    """Per term, the ``lam`` postings of largest weight, heaviest first (ties: lower doc id first).

    Returns ``(offsets, docs, weights)`` in CSR by term; a list no longer than
    ``lam`` is kept whole (reordered).
    """
    n_terms = len(postings_offsets) - 1
    offsets = np.zeros(n_terms + 1, np.int64)
    for t in range(n_terms):
        offsets[t + 1] = offsets[t] + min(lam, postings_offsets[t + 1] - postings_offsets[t])
    docs = np.empty(offsets[-1], np.uint32)
    weights = np.empty(offsets[-1], postings_weights.dtype)
    for t in prange(n_terms):
        lo = postings_offsets[t]
        n = postings_offsets[t + 1] - lo
        if n == 0:
            continue
        w = postings_weights[lo:lo + n].astype(np.float64)
        # Stable sort on -w keeps ascending doc ids among equal weights.
        order = np.argsort(-w, kind="mergesort")
        out = offsets[t]
        for j in range(offsets[t + 1] - out):
            docs[out + j] = postings_docs[lo + order[j]]
            weights[out + j] = postings_weights[lo + order[j]]
    return offsets, docs, weights
