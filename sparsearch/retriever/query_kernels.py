"""Compiled steps of a batch's BM25 query rows (:mod:`query_batch`, :mod:`ascii_split`).

Apart from their callers so that importing the analyzers and the BM25
encoder does not import Numba: a small index answers a few queries on the
NumPy paths without compiling anything (``sparsearch quickstart``).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def glued_rows(raw: np.ndarray, n_rows: int) -> np.ndarray:
    """Per ``\\x00``-separated row of ``raw``: whether the pattern joins what a split on non-``[a-z0-9]`` breaks.

    That is an underscore, a joiner ``.':`` between two letters or ``.,;'``
    between two digits; an upper-case letter (text not lower-cased) counts
    too, so the pattern decides that row.
    """
    glued = np.zeros(n_rows, np.bool_)
    row = 0
    n = len(raw)
    for i in range(n):
        c = raw[i]
        if c == 0:
            row += 1
        elif c == 95 or 65 <= c <= 90:  # "_", "A".."Z"
            glued[row] = True
        elif (c == 46 or c == 39 or c == 58 or c == 44 or c == 59) and 0 < i < n - 1:  # . ' : , ;
            before = raw[i - 1]
            after = raw[i + 1]
            if c != 44 and c != 59 and 97 <= before <= 122 and 97 <= after <= 122:
                glued[row] = True
            elif c != 58 and 48 <= before <= 57 and 48 <= after <= 57:
                glued[row] = True
    return glued


#: Rows up to this long find repeats by scanning the row's distinct ids so far; longer ones sort (never quadratic).
_SCAN_ROW = 64


@njit(cache=True, nogil=True)
def distinct_counts_rows(ids, row_lengths):  # type: ignore[no-untyped-def]
    """:func:`sparsearch.retriever.query_batch.distinct_counts` (ids checked there), compiled."""
    n_rows = len(row_lengths)
    offsets = np.zeros(n_rows + 1, np.int64)
    term_ids = np.empty(len(ids), np.int64)
    counts = np.empty(len(ids), np.int64)
    n = 0
    lo = 0
    for r in range(n_rows):
        hi = lo + row_lengths[r]
        start = n
        if hi - lo <= _SCAN_ROW:
            for i in range(lo, hi):
                t = ids[i]
                if t < 0:
                    continue
                j = start
                while j < n and term_ids[j] != t:
                    j += 1
                if j < n:
                    counts[j] += 1
                else:
                    term_ids[n] = t
                    counts[n] = 1
                    n += 1
        else:
            row = ids[lo:hi]
            order = np.argsort(row, kind="mergesort")  # stable: each run of equal ids starts at its first occurrence
            firsts = np.empty(hi - lo, np.int64)
            run_counts = np.empty(hi - lo, np.int64)
            m = 0
            i = 0
            while i < len(order):
                t = row[order[i]]
                j = i
                while j < len(order) and row[order[j]] == t:
                    j += 1
                if t >= 0:
                    firsts[m] = order[i]
                    run_counts[m] = j - i
                    m += 1
                i = j
            by_first = np.argsort(firsts[:m])
            for g in range(m):
                term_ids[n] = row[firsts[by_first[g]]]
                counts[n] = run_counts[by_first[g]]
                n += 1
        offsets[r + 1] = n
        lo = hi
    return offsets, term_ids[:n].copy(), counts[:n].copy()
