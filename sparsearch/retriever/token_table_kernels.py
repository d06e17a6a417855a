"""Compiled one-query BM25 analysis for ASCII text: tokens, term ids, counts and weights in one call.

:mod:`sparsearch.retriever.token_table` holds the table these kernels read.
Apart from it so that importing the BM25 encoder never imports Numba.
"""

from __future__ import annotations

import numpy as np
from numba import njit

FNV_OFFSET = np.uint64(14695981039346656037)
FNV_PRIME = np.uint64(1099511628211)
#: Entry values besides term ids: the token is dropped (stop word, possessive only), or unknown to the vocabulary
#: of the size in the entry's stamp.
DROPPED = -1
UNKNOWN = -2
#: Statuses of :func:`encode_ascii` besides a row length.
PATTERN = -1
MISSING = -2
#: Longest raw token the pattern keeps whole (analysis.MAX_TOKEN_LENGTH); a longer run is left to the pattern.
MAX_TOKEN_BYTES = 255
#: Distinct terms a row finds by scanning the ones before it; a longer query is left to the Python path.
MAX_SCAN_TERMS = 256


@njit(cache=True)
def token_hash(buf, lo, hi):
    """FNV-1a over ``buf[lo:hi]``."""
    h = FNV_OFFSET
    for i in range(lo, hi):
        h = (h ^ np.uint64(buf[i])) * FNV_PRIME
    return h


@njit(cache=True)
def find_entry(buf, lo, hi, h, slots, key_offsets, key_bytes, hashes):
    """The entry index of token ``buf[lo:hi]`` (hash ``h``), or -1; linear probing over ``slots``."""
    mask = len(slots) - 1
    s = np.int64(h & np.uint64(mask))
    n = hi - lo
    while True:
        e = slots[s]
        if e < 0:
            return -1
        if hashes[e] == h and key_offsets[e + 1] - key_offsets[e] == n:
            k0 = key_offsets[e]
            same = True
            for i in range(n):
                if key_bytes[k0 + i] != buf[lo + i]:
                    same = False
                    break
            if same:
                return e
        s = (s + 1) & mask


@njit(cache=True)
def lookup_entry(key, slots, key_offsets, key_bytes, hashes):
    """:func:`find_entry` of a whole key."""
    return find_entry(key, 0, len(key), token_hash(key, 0, len(key)), slots, key_offsets, key_bytes, hashes)


@njit(cache=True)
def insert_entry(key, value, stamp, n_entries, slots, key_offsets, key_bytes, hashes, values, stamps):
    """Set token ``key``'s value (adding it as entry ``n_entries`` if new); returns the new entry count.

    The caller guarantees room (a free slot, an entry row, arena bytes). Runs
    with the GIL held, like :func:`encode_ascii`, so a lookup never sees a
    half-written entry.
    """
    n = len(key)
    h = token_hash(key, 0, n)
    e = find_entry(key, 0, n, h, slots, key_offsets, key_bytes, hashes)
    if e >= 0:
        values[e] = value
        stamps[e] = stamp
        return n_entries
    e = n_entries
    k0 = key_offsets[e]
    key_bytes[k0:k0 + n] = key
    key_offsets[e + 1] = k0 + n
    hashes[e] = h
    values[e] = value
    stamps[e] = stamp
    mask = len(slots) - 1
    s = np.int64(h & np.uint64(mask))
    while slots[s] >= 0:
        s = (s + 1) & mask
    slots[s] = e  # published last
    return n_entries + 1


@njit(cache=True)
def encode_ascii(text, vocab_size, slots, key_offsets, key_bytes, hashes, values, stamps, idf, idf_known):
    """BM25 query row of ASCII ``text`` (``bytes``): ``(status, term ids int32, weights float32)``.

    ``status``: the row length; :data:`PATTERN` where only the tokenizer's
    pattern can split the text (or it holds over :data:`MAX_SCAN_TERMS`
    terms), :data:`MISSING` where the table or the IDF array lacks something
    the Python path will supply (:func:`row_into`).

    The query's bytes go in as they are and the two arrays come out at their
    size: a NumPy view and two output buffers made in Python cost as much as
    the whole compiled step (measured ~0.9 of ~2.1 µs a call).
    """
    terms = np.empty(len(text), np.int32)
    weights = np.empty(len(text), np.float32)
    n = row_into(text, vocab_size, slots, key_offsets, key_bytes, hashes, values, stamps, idf, idf_known, terms,
                 weights)
    n_out = max(n, 0)
    return n, terms[:n_out].copy(), weights[:n_out].copy()


@njit(cache=True)
def row_into(text, vocab_size, slots, key_offsets, key_bytes, hashes, values, stamps, idf, idf_known,
             out_terms, out_weights):
    """BM25 query row of ASCII ``text`` (uint8 bytes): distinct terms in first-occurrence order, weights
    ``count · idf`` (float32); returns the row length, or a status for the Python path.

    :data:`PATTERN` when the text holds what only the tokenizer's pattern
    decides (an underscore; ``.':`` between two letters, ``.,;'`` between two
    digits; a run longer than 255; more than :data:`MAX_SCAN_TERMS` distinct
    terms); :data:`MISSING` for a token the table does
    not know (or knows as unknown to a smaller vocabulary) or a term whose IDF
    under this snapshot is not computed yet.  ``out_*`` must hold
    ``len(text)`` entries.
    """
    n_text = len(text)
    low = np.empty(n_text, np.uint8)
    for i in range(n_text):
        c = text[i]
        low[i] = c + 32 if 65 <= c <= 90 else c
    # query_kernels.glued_rows' rule, inline: calling a shared per-byte predicate from here (or glued_rows on
    # one row) measured 0.5 µs a SciFact query; tests/unit/test_token_table.py checks both defer alike.
    for i in range(n_text):
        c = low[i]
        if c == 95:
            return PATTERN
        if (c == 46 or c == 39 or c == 58 or c == 44 or c == 59) and 0 < i < n_text - 1:
            before = low[i - 1]
            after = low[i + 1]
            if c != 44 and c != 59 and 97 <= before <= 122 and 97 <= after <= 122:
                return PATTERN
            if c != 58 and 48 <= before <= 57 and 48 <= after <= 57:
                return PATTERN
    counts = np.zeros(n_text, np.int64)
    n = 0
    i = 0
    while i < n_text:
        c = low[i]
        if not (97 <= c <= 122 or 48 <= c <= 57):
            i += 1
            continue
        j = i + 1
        while j < n_text and (97 <= low[j] <= 122 or 48 <= low[j] <= 57):
            j += 1
        if j - i > MAX_TOKEN_BYTES:
            return PATTERN
        e = find_entry(low, i, j, token_hash(low, i, j), slots, key_offsets, key_bytes, hashes)
        if e < 0:
            return MISSING
        t = values[e]
        if t == UNKNOWN:
            if stamps[e] != vocab_size:
                return MISSING
        elif t >= 0:
            if t >= len(idf_known) or not idf_known[t]:
                return MISSING
            if idf[t] > 0.0:  # only a term no live document holds has idf 0
                m = 0
                while m < n and out_terms[m] != t:
                    m += 1
                if m == n:
                    if n == MAX_SCAN_TERMS:  # a query-by-document: the Python path's dict, not a quadratic scan
                        return PATTERN
                    out_terms[n] = t
                    n += 1
                counts[m] += 1
        i = j
    for m in range(n):
        # count * idf rounded once to float32: the float64 product of the two is exact (as the Python path's)
        out_weights[m] = np.float32(np.float64(counts[m]) * np.float64(idf[out_terms[m]]))
    return n
