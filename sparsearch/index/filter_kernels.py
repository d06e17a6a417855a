"""The scorers of filtered search on large segments (small ones use the index kernels under a mask).

Candidates (:func:`search_serial_py`): a selective filter leaves a few
matching documents in a segment, and only they are scored, term at a time
into one float per candidate, with no accumulator written for any other
document.  Each query term's posting list meets the candidates one of three
ways, chosen per term by its cost (:func:`score_rows_py`):

* scan: the part of the list between the first and the last candidate is
  read once, each posting tested against the filter's bitset;
* gallop: a list many times longer than the candidates is searched from
  candidate to candidate by galloping;
* bitset: a long list also held as a bitset with a rank directory
  (:func:`term_bits_py`, built once per segment by
  :mod:`~sparsearch.index.filter_postings`) is intersected with the
  filter's bitset 64 documents at a time, never read posting by posting:
  a common word within the candidates' range costs its words of the bitset,
  whatever its length, and a candidate's posting is found by a popcount.

The top k is kept in a k-entry heap.  A full search instead scores every
posting and ranks every touched document.

Dense (:func:`dense_one_py`): a filter keeping many documents.  Every
posting is scored as in the exhaustive kernel, branch-free, but only kept
documents reach the accumulator, so ``kernels._collect_top_k`` ranks them
alone and needs no deletion mask.

Every contribution is computed with ``kernels._accumulate``'s float32
operations and added in query-term order, so each score equals the
exhaustive kernel's to the bit (a candidate's length term ``kd`` is computed
once per plan by :func:`candidate_kd_py`, with the kernels' expression);
candidates are keyed as ``kernels._collect_top_k`` keys them (score bits
above ``~doc``), so ties keep the lower doc id.

Compiled by Numba on first use (:func:`compiled`, cached on disk); the plain
Python functions document the code and can run it uncompiled.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from sparsearch.index import kernels
from sparsearch.index.kernels import TRANSFORM_LINEAR

#: A posting list longer than this many times the candidates is searched by galloping, not scanned.
GALLOP_RATIO = 32
#: A word of a term's bitset costs about this many postings scanned (benchmarks/filters.py, docs/filters.md).
WORD_RATIO = 1.0
#: How each term's list meets the candidates: chosen by cost, or forced (tests and benchmarks).
METHOD_AUTO, METHOD_SCAN, METHOD_GALLOP, METHOD_BITSET = 0, 1, 2, 3
#: Words of a term bitset per rank superblock (a rank within one fits uint16).
SUPER_WORDS = 1024
_LOW32 = 0xFFFFFFFF


def bitset_py(ids, n_docs):  # type: ignore[no-untyped-def]
    """Local ids (any order, repeats allowed) as ``(bits, cands, ranks, words)``.

    ``bits``: a bitset of 64-bit words (``n_docs / 8`` bytes: in the L1
    cache at 10^5 documents); ``cands``: the distinct ids ascending, read back
    from the bitset with no sort; ``ranks[w]``: how many candidates lie in the
    words before ``w``, so that a candidate's slot in ``cands`` is
    ``ranks[d >> 6]`` plus the bits below it in its word (no binary search,
    whose mispredicted branches cost more than the scan itself); ``words``:
    the words holding a candidate, ascending.
    """
    bits = np.zeros((n_docs + 63) >> 6, np.uint64)
    n_c = 0
    for j in range(len(ids)):
        d = ids[j]
        w = d >> 6
        bit = np.uint64(1) << np.uint64(d & 63)
        if not bits[w] & bit:
            bits[w] |= bit
            n_c += 1
    cands = np.empty(n_c, np.int32)
    ranks = np.empty(len(bits), np.int32)
    words = np.empty(len(bits), np.int32)
    c = 0
    n_w = 0
    for w in range(len(bits)):
        ranks[w] = c
        word = bits[w]
        if word:
            words[n_w] = w
            n_w += 1
        while word:
            low = word & (~word + np.uint64(1))  # lowest set bit
            cands[c] = (w << 6) + _DEBRUIJN[np.int64((low * np.uint64(_DEBRUIJN_MUL)) >> np.uint64(58))]
            c += 1
            word ^= low
    return bits, cands, ranks, words[:n_w].copy()


def popcount_py(x):  # type: ignore[no-untyped-def]
    """Set bits of a uint64 (SWAR: no branch, no table)."""
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return np.int64((x * np.uint64(0x0101010101010101)) >> np.uint64(56))


_DEBRUIJN_MUL = 0x03F79D71B4CB0A89
_DEBRUIJN = np.zeros(64, np.int64)
for _i in range(64):
    _DEBRUIJN[((1 << _i) * _DEBRUIJN_MUL & 0xFFFFFFFFFFFFFFFF) >> 58] = _i


def score_rows_py(q_lo, q_hi, q_offsets, q_terms, q_weights, match, cands, ranks, words, kdc,
                  postings_offsets, postings_docs, postings_weights, term_scales, transform,
                  term_slot, term_bits, term_rel, term_sup, method, k, doc_base, gallop_ratio, word_ratio,
                  row, hit_pos, hit_cand, heap, out_scores, out_docs, out_counts):  # type: ignore[no-untyped-def]
    """Top-``k`` among ``cands`` (``match``, ``ranks``: see :func:`bitset_py`) of queries [q_lo, q_hi).

    ``words``: the words of ``match`` holding a candidate, ascending.
    ``kdc``: each candidate's length term (:func:`candidate_kd_py`; unused
    by linear scoring).  ``term_slot``, ``term_bits``, ``term_rel``,
    ``term_sup``: the segment's term bitsets (:func:`term_bits_py`).  Each
    term takes the cheapest of three ways, in units of one posting scanned:
    scanning its list between the first and the last candidate (its length
    there), galloping from candidate to candidate (``gallop_ratio`` per
    candidate), or intersecting its bitset with ``match`` over ``words``
    (``word_ratio`` per word), where it has one; ``method`` forces one
    (``METHOD_BITSET`` scans a term without a bitset).
    ``row`` (one float per candidate), ``hit_pos``, ``hit_cand`` (one entry
    per candidate) and ``heap`` (``k`` int64) are scratch; results go to
    ``out_scores[q]``, ``out_docs[q]`` (``doc_base`` added) and
    ``out_counts[q]``.
    """
    n_terms = len(postings_offsets) - 1
    n_c = len(cands)
    linear = transform == TRANSFORM_LINEAR
    one = np.uint64(1)
    first_c = cands[0] if n_c else 0
    last_c = cands[n_c - 1] if n_c else 0
    n_w = len(words)
    for q in range(q_lo, q_hi):
        row[:] = 0.0
        for i in range(q_offsets[q], q_offsets[q + 1]):
            t = q_terms[i]
            if t < 0 or t >= n_terms:
                continue
            if not q_weights[i] > 0.0:
                continue
            start = postings_offsets[t]
            lo = start
            hi = postings_offsets[t + 1]
            if hi <= lo or n_c == 0:
                continue
            # Only the part of the list between the first and the last candidate can hold one.
            if postings_docs[lo] < first_c:
                lo = _first_geq(postings_docs, lo, hi, first_c)
            if lo < hi and postings_docs[hi - 1] > last_c:
                hi = _first_geq(postings_docs, lo, hi, last_c + 1)
            if hi <= lo:
                continue
            qw = np.float32(q_weights[i]) * term_scales[t]
            qs = np.float32(q_weights[i])
            scale = term_scales[t]
            s = term_slot[t]
            how = method
            if how == METHOD_AUTO:
                how = METHOD_SCAN
                cost = np.float64(hi - lo)
                if gallop_ratio * n_c < cost:
                    how = METHOD_GALLOP
                    cost = np.float64(gallop_ratio * n_c)
                if s >= 0 and word_ratio * n_w < cost:
                    how = METHOD_BITSET
            elif how == METHOD_BITSET and s < 0:
                how = METHOD_SCAN
            if how == METHOD_BITSET:
                # The term's bitset AND the filter's, a word at a time; a hit's posting and candidate
                # slot are ranks (superblock + word + popcount).  Hits first, then their scores: the
                # weight loads of the second loop do not wait on the first one's branches.
                n_h = 0
                for j in range(n_w):
                    w = words[j]
                    cword = match[w]
                    tword = term_bits[s, w]
                    x = tword & cword
                    if x == 0:
                        continue
                    base = term_sup[s, w // SUPER_WORDS] + np.int64(term_rel[s, w])
                    abase = ranks[w]
                    while x:
                        low = x & (~x + one)
                        below = low - one
                        hit_pos[n_h] = base + _popcount(tword & below)
                        hit_cand[n_h] = abase + _popcount(cword & below)
                        n_h += 1
                        x ^= low
                if linear:
                    for h in range(n_h):
                        a = hit_cand[h]
                        row[a] = row[a] + qw * np.float32(postings_weights[hit_pos[h]])
                else:
                    for h in range(n_h):
                        a = hit_cand[h]
                        w = np.float32(postings_weights[hit_pos[h]]) * scale
                        row[a] = row[a] + qs * (w / (w + kdc[a]))
                continue
            if how == METHOD_SCAN:
                for p in range(lo, hi):
                    d = postings_docs[p]
                    word = match[d >> 6]
                    shift = np.uint64(d & 63)
                    if not (word >> shift) & one:
                        continue
                    a = ranks[d >> 6] + _popcount(word & ((one << shift) - one))  # the candidate's slot
                    if linear:
                        row[a] = row[a] + qw * np.float32(postings_weights[p])
                    else:
                        w = np.float32(postings_weights[p]) * scale
                        row[a] = row[a] + qs * (w / (w + kdc[a]))
                continue
            p = lo
            for j in range(n_c):
                target = cands[j]
                if postings_docs[p] < target:
                    # galloping search for the first position >= target (postings_docs[p] < target)
                    step = 1
                    prev = p
                    cur = p + 1
                    while cur < hi and postings_docs[cur] < target:
                        prev = cur
                        step *= 2
                        cur = p + step
                    if cur > hi:
                        cur = hi
                    left = prev + 1
                    while left < cur:
                        mid = (left + cur) >> 1
                        if postings_docs[mid] < target:
                            left = mid + 1
                        else:
                            cur = mid
                    p = left
                    if p >= hi:
                        break
                if postings_docs[p] == target:
                    if linear:
                        row[j] = row[j] + qw * np.float32(postings_weights[p])
                    else:
                        w = np.float32(postings_weights[p]) * scale
                        row[j] = row[j] + qs * (w / (w + kdc[j]))
                    p += 1
                    if p >= hi:
                        break
        out_counts[q] = _select(row, cands, k, doc_base, heap, out_scores[q], out_docs[q])


def candidate_kd_py(cands, k_table, doc_norms, k1, b_over_avgdl, one_minus_b, doc_lengths,
                    use_exact_lengths):  # type: ignore[no-untyped-def]
    """Each candidate's ``kd``, as ``kernels._accumulate`` computes it (float32, the same expression)."""
    out = np.empty(len(cands), np.float32)
    for j in range(len(cands)):
        d = cands[j]
        if use_exact_lengths:
            out[j] = np.float32(k1 * (one_minus_b + b_over_avgdl * doc_lengths[d]))
        else:
            out[j] = k_table[doc_norms[d]]
    return out


def term_bits_py(postings_offsets, postings_docs, n_docs, terms):  # type: ignore[no-untyped-def]
    """The posting lists of ``terms`` as bitsets with rank directories: ``(slot, bits, rel, sup)``.

    ``slot[t]``: the row of term ``t`` (-1: none); ``bits[s]``: its
    documents, 64 to a word; the posting of document ``d`` (when its bit is
    set) is ``sup[s, w // SUPER_WORDS] + rel[s, w] + popcount(bits[s, w]
    & below(d))`` with ``w = d >> 6``: ``sup`` holds absolute positions,
    ``rel`` (uint16) the postings since the superblock's first word.  A list
    holding a document twice (which validation allows, builds never write)
    gets no bitset: its ranks would not be its positions.
    """
    n_terms = len(postings_offsets) - 1
    n_words = (n_docs + 63) >> 6
    slot = np.full(n_terms, -1, np.int32)
    bits = np.zeros((len(terms), n_words), np.uint64)
    rel = np.zeros((len(terms), n_words), np.uint16)
    sup = np.zeros((len(terms), (n_words + SUPER_WORDS - 1) // SUPER_WORDS), np.int64)
    for s in range(len(terms)):
        t = terms[s]
        lo = postings_offsets[t]
        ok = True
        prev = np.int64(-1)
        for p in range(lo, postings_offsets[t + 1]):
            d = np.int64(postings_docs[p])
            if d <= prev:
                ok = False
                break
            prev = d
            bits[s, d >> 6] |= np.uint64(1) << np.uint64(d & 63)
        if not ok:
            bits[s, :] = 0
            continue
        c = lo
        r = 0
        for w in range(n_words):
            if w % SUPER_WORDS == 0:
                sup[s, w // SUPER_WORDS] = c
                r = 0
            rel[s, w] = r
            n = _popcount(bits[s, w])
            c += n
            r += n
        slot[t] = s
    return slot, bits, rel, sup


def first_geq_py(docs, lo, hi, target):  # type: ignore[no-untyped-def]
    """First position in ``docs[lo:hi]`` (ascending) holding a doc id >= ``target`` (binary search)."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if docs[mid] < target:
            lo = mid + 1
        else:
            hi = mid
    return lo


def select_py(row, cands, k, doc_base, heap, out_scores, out_docs):  # type: ignore[no-untyped-def]
    """The ``k`` best scored candidates, best first; returns how many (candidates scoring 0 share no term).

    Keys pack the score's float32 bits (monotonic for non-negative floats)
    above ``2^32 - 1 - doc``: the largest keys are the best scores, ties going
    to the lower doc id.  A min-heap of ``k`` keys keeps the best seen.
    """
    bits = row.view(np.uint32)
    size = 0
    for j in range(len(row)):
        b = bits[j]
        if b == 0:
            continue
        key = (np.int64(b) << 32) | (np.int64(_LOW32) - np.int64(cands[j]))
        if size < k:
            heap[size] = key
            size += 1
            if size == k:
                for s in range(k // 2 - 1, -1, -1):
                    _sift_down(heap, k, s)
        elif key > heap[0]:
            heap[0] = key
            _sift_down(heap, k, 0)
    best = np.sort(heap[:size])
    out_bits = out_scores.view(np.uint32)
    for j in range(size):
        key = best[size - 1 - j]
        out_bits[j] = np.uint32(key >> 32)
        out_docs[j] = (np.int64(_LOW32) - (key & np.int64(_LOW32))) + doc_base
    return size


def sift_down_py(heap, size, i):  # type: ignore[no-untyped-def]
    while True:
        smallest = i
        left = 2 * i + 1
        right = left + 1
        if left < size and heap[left] < heap[smallest]:
            smallest = left
        if right < size and heap[right] < heap[smallest]:
            smallest = right
        if smallest == i:
            return
        heap[i], heap[smallest] = heap[smallest], heap[i]
        i = smallest


def search_serial_py(q_offsets, q_terms, q_weights, match, cands, ranks, words, kdc,
                     postings_offsets, postings_docs, postings_weights, term_scales, transform,
                     term_slot, term_bits, term_rel, term_sup, method, doc_base,
                     k, gallop_ratio, word_ratio, out_scores, out_docs, out_counts):  # type: ignore[no-untyped-def]
    """Top-``k`` among ``cands`` of every query (arguments: :func:`score_rows_py`): one dispatch."""
    n_c = len(cands)
    _score_rows(0, len(q_offsets) - 1, q_offsets, q_terms, q_weights, match, cands, ranks, words, kdc, postings_offsets,
                postings_docs, postings_weights, term_scales, transform, term_slot, term_bits, term_rel, term_sup,
                method, k, doc_base, gallop_ratio, word_ratio, np.zeros(n_c, np.float32), np.empty(n_c, np.int64),
                np.empty(n_c, np.int32), np.empty(k, np.int64), out_scores, out_docs, out_counts)


def search_parallel_py(n_blocks, q_offsets, q_terms, q_weights, match, cands, ranks, words, kdc,
                       postings_offsets, postings_docs, postings_weights, term_scales, transform,
                       term_slot, term_bits, term_rel, term_sup, method, doc_base,
                       k, gallop_ratio, word_ratio, out_scores, out_docs, out_counts):  # type: ignore[no-untyped-def]
    """:func:`search_serial_py` with the queries split into ``n_blocks`` parallel blocks."""
    n_q = len(q_offsets) - 1
    n_c = len(cands)
    for blk in _prange(n_blocks):
        _score_rows(n_q * blk // n_blocks, n_q * (blk + 1) // n_blocks, q_offsets, q_terms, q_weights, match, cands,
                    ranks, words, kdc, postings_offsets, postings_docs, postings_weights, term_scales, transform,
                    term_slot, term_bits, term_rel, term_sup, method, k, doc_base, gallop_ratio, word_ratio,
                    np.zeros(n_c, np.float32), np.empty(n_c, np.int64), np.empty(n_c, np.int32),
                    np.empty(k, np.int64), out_scores, out_docs, out_counts)


# ---------------------------------------------------------------- dense filters


def accumulate_py(q_terms, q_weights, match, postings_offsets, postings_docs, postings_weights, term_scales,
                  transform, k_table, doc_norms, k1, b_over_avgdl, one_minus_b, doc_lengths, use_exact_lengths,
                  min_weight, max_kd, acc, touched):  # type: ignore[no-untyped-def]
    """``kernels._accumulate`` over the documents ``match`` (one byte each) keeps; returns #touched.

    For a filter keeping many documents: every posting is scored as in the
    kernel, branch-free (times 1 or 0: exact), and only kept documents enter
    the accumulator and ``touched``, so the top-k selection that follows sees
    them alone and needs no deletion mask (whose per-document branch costs a
    misprediction a document when half of them are masked at random).

    A document is listed in ``touched`` once, when its score leaves 0
    (contributions are never negative, so it never returns there): at most
    ``n_docs`` entries.  A contribution that rounds to 0 must list nothing;
    ``min_weight`` (the segment's smallest stored weight) and ``max_kd`` (an
    upper bound of every ``kd``, 0 for linear scoring) tell per term whether
    one can (as in the index kernels).  Almost never: then "kept and the score
    was 0" is the whole test; otherwise the contribution is tested too, which
    puts the division into the loop's dependency chain (~35 % slower).
    """
    n_touched = 0
    n_terms = len(postings_offsets) - 1
    for i in range(len(q_terms)):
        t = q_terms[i]
        if t < 0 or t >= n_terms:
            continue
        if not q_weights[i] > 0.0:
            continue
        qw = np.float32(q_weights[i]) * term_scales[t]
        lo = postings_offsets[t]
        hi = postings_offsets[t + 1]
        qs = np.float32(q_weights[i])
        scale = term_scales[t]
        linear = transform == TRANSFORM_LINEAR
        if linear:
            safe = qw * np.float32(min_weight) > 0.0
        else:
            w_low = np.float64(min_weight) * np.float64(scale)
            ratio = w_low / (w_low + np.float64(max_kd))
            safe = ratio >= 1e-30 and qs * ratio >= 1e-30
        for p in range(lo, hi):
            d = postings_docs[p]
            keep = match[d]
            if linear:
                c = (qw * np.float32(postings_weights[p])) * np.float32(keep)  # x 1 or x 0: exact, no branch
            else:
                w = np.float32(postings_weights[p]) * scale
                if use_exact_lengths:
                    kd = np.float32(k1 * (one_minus_b + b_over_avgdl * doc_lengths[d]))
                else:
                    kd = k_table[doc_norms[d]]
                c = (qs * (w / (w + kd))) * np.float32(keep)
            a = acc[d]
            touched[n_touched] = d
            if safe:
                n_touched += (a == 0.0) & (keep != 0)
            else:
                n_touched += (a == 0.0) & (c != 0.0)
            acc[d] = a + c
    return n_touched


def dense_one_py(q_terms, q_weights, k, match, postings_offsets, postings_docs, postings_weights, term_scales,
                 transform, k_table, doc_norms, k1, b_over_avgdl, one_minus_b, doc_lengths, use_exact_lengths,
                 min_weight, max_kd, doc_base, acc, touched, hist, out_scores, out_docs):  # type: ignore[no-untyped-def]
    """``kernels.search_one`` over the documents ``match`` keeps (``acc``, ``touched``, ``hist``: its scratch)."""
    n_touched = _accumulate(q_terms, q_weights, match, postings_offsets, postings_docs, postings_weights, term_scales,
                            transform, k_table, doc_norms, k1, b_over_avgdl, one_minus_b, doc_lengths,
                            use_exact_lengths, min_weight, max_kd, acc, touched)
    return _collect(acc, touched, n_touched, _NO_DELETES, k, out_scores, out_docs, doc_base, hist)


def dense_many_py(q_offsets, q_terms, q_weights, k, n_blocks, match, postings_offsets, postings_docs,
                  postings_weights, term_scales, transform, k_table, doc_norms, k1, b_over_avgdl, one_minus_b,
                  doc_lengths, use_exact_lengths, min_weight, max_kd, doc_base, n_docs, out_scores, out_docs,
                  out_counts):  # type: ignore[no-untyped-def]
    """``kernels.search_many`` over the documents ``match`` keeps."""
    n_queries = len(q_offsets) - 1
    for blk in _prange(n_blocks):
        acc = np.zeros(n_docs, np.float32)
        touched = np.empty(n_docs + 1, np.int32)
        hist = np.zeros(_RADIX_BUCKETS if n_docs >= _RADIX_MIN else 0, np.int32)
        for q in range(n_queries * blk // n_blocks, n_queries * (blk + 1) // n_blocks):
            lo = q_offsets[q]
            hi = q_offsets[q + 1]
            n_touched = _accumulate(q_terms[lo:hi], q_weights[lo:hi], match, postings_offsets, postings_docs,
                                    postings_weights, term_scales, transform, k_table, doc_norms, k1, b_over_avgdl,
                                    one_minus_b, doc_lengths, use_exact_lengths, min_weight, max_kd, acc, touched)
            out_counts[q] = _collect(acc, touched, n_touched, _NO_DELETES, k, out_scores[q], out_docs[q], doc_base,
                                     hist)


_NO_DELETES = np.zeros(0, np.uint8)
_RADIX_BUCKETS = kernels.RADIX_BUCKETS
_RADIX_MIN = kernels._RADIX_MIN_CANDIDATES


def bitset(ids: np.ndarray, n_docs: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`bitset_py`, compiled: ``(bits, cands, ranks, words)`` of local ``ids``."""
    compiled()
    return _bitset(np.ascontiguousarray(ids, np.int32), n_docs)


def candidate_kd(cands: np.ndarray, *length_params: Any) -> np.ndarray:
    """:func:`candidate_kd_py`, compiled."""
    return compiled().candidate_kd(cands, *length_params)


def term_bits(postings_offsets: np.ndarray, postings_docs: np.ndarray, n_docs: int,
              terms: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`term_bits_py`, compiled."""
    return compiled().term_bits(postings_offsets, postings_docs, n_docs, np.ascontiguousarray(terms, np.int64))


# Names the functions call one another by: the plain functions until compiled(), then their dispatchers.
_prange = range
_sift_down: Any = sift_down_py
_popcount: Any = popcount_py
_first_geq: Any = first_geq_py
_select: Any = select_py
_bitset: Any = bitset_py
_score_rows: Any = score_rows_py
_accumulate: Any = accumulate_py
_collect: Any = None  # kernels._collect_top_k, once compiled
_compiled: Any = None
_lock = threading.Lock()


@dataclass(frozen=True)
class Compiled:
    candidates_serial: Any
    candidates_parallel: Any
    dense_one: Any
    dense_many: Any
    candidate_kd: Any
    term_bits: Any


def compiled() -> Compiled:
    """The entry points compiled by Numba (the first call imports Numba; compilation is cached on disk)."""
    global _compiled, _prange, _sift_down, _popcount, _first_geq, _select, _bitset, _score_rows, _accumulate, _collect
    if _compiled is not None:
        return _compiled
    with _lock:
        if _compiled is None:
            import numba

            kernels.search_one.py_func  # turns the index kernels into dispatchers (kernels._materialize)
            # Callees first: a kernel looks its callees up in this module's globals when it compiles.
            _prange = numba.prange
            _collect = kernels._collect_top_k
            jit = numba.njit(cache=True, nogil=True)
            _sift_down, _first_geq, _select = jit(sift_down_py), jit(first_geq_py), jit(select_py)
            _popcount = numba.njit(cache=True, nogil=True, inline="always")(popcount_py)
            _bitset, _score_rows, _accumulate = jit(bitset_py), jit(score_rows_py), jit(accumulate_py)
            parallel = numba.njit(cache=True, nogil=True, parallel=True)
            _compiled = Compiled(jit(search_serial_py), parallel(search_parallel_py), jit(dense_one_py),
                                 parallel(dense_many_py), jit(candidate_kd_py), jit(term_bits_py))
        return _compiled
