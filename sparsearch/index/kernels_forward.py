"""Numba kernels of the per-segment forward index and the impact-ordered, statically pruned postings.

The forward index is the postings transposed (document -> its terms in
ascending order, with the very weights the postings store), so a document's
exact score can be recomputed from it without touching any posting list:
that is what approximate search re-ranks its candidates with and what
block-max pruning scores a block with (:mod:`sparsearch.index.kernels_bmp`).

:func:`score_doc` reproduces the exhaustive kernel's float32 arithmetic bit
for bit: ``kernels_topk._accumulate`` adds ``qw * w`` to a document's score
in query-term order, starting from 0, with ``qw = q * scale[t]``; here each
query position's contribution is written into a slot and the slots are
summed in query order (a missing term adds an exact 0.0).  Scores from the
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
def query_slots(q_terms, q_weights, term_scales, n_terms, slot_of, next_slot, qw):
    """Prepare a query for :func:`score_doc`; returns how many positions it holds.

    ``slot_of`` (int32 per term, -1 on entry) gets each term's first query
    position, ``next_slot`` chains further positions of a repeated term, and
    ``qw[i]`` is position ``i``'s scaled weight (0 where the exhaustive kernel
    skips the term: out of range or a weight that is not positive).  Undo with
    :func:`clear_slots`.
    """
    n = len(q_terms)
    for i in range(n - 1, -1, -1):
        t = q_terms[i]
        next_slot[i] = -1
        qw[i] = 0.0
        if t < 0 or t >= n_terms or not q_weights[i] > 0.0:
            continue
        qw[i] = np.float32(q_weights[i]) * term_scales[t]
        next_slot[i] = slot_of[t]
        slot_of[t] = i
    return n


@njit(cache=True, nogil=True)
def clear_slots(q_terms, n_terms, slot_of):
    """Reset ``slot_of`` to -1 for the query's terms (the scratch array is reused by the next query)."""
    for i in range(len(q_terms)):
        t = q_terms[i]
        if t >= 0 and t < n_terms:
            slot_of[t] = -1


@njit(cache=True, nogil=True)
def score_doc(d, fwd_offsets, fwd_terms, fwd_weights, slot_of, next_slot, qw, n_q, contrib):
    """Exact linear score of local document ``d``: the exhaustive kernel's float32 sum, in its order.

    ``contrib`` is ``n_q`` zeroed floats; it is zeroed again on return.
    """
    for p in range(fwd_offsets[d], fwd_offsets[d + 1]):
        i = slot_of[fwd_terms[p]]
        w = np.float32(fwd_weights[p])
        while i >= 0:
            contrib[i] = qw[i] * w
            i = next_slot[i]
    s = np.float32(0.0)
    for i in range(n_q):
        s = s + contrib[i]
        contrib[i] = 0.0
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
