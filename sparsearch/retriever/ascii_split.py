"""The ASCII tokenizer's common case for a batch of queries: byte translation and ``split`` instead of a regex.

``ASCII_TOKEN_PATTERN`` (:mod:`sparsearch.retriever.analysis`) costs Python's
regex engine 30-45 ns a character: 2.5-4 µs of a SciFact query, a sixth of
what a batch spends on it.  In lower-cased ASCII text its tokens are the
maximal runs of ``[a-z0-9]``, except where an underscore or a joiner between
two letters (``.':``) or two digits (``.,;'``) glues runs together ("3.5",
"don't", "foo_bar").  For a batch, one translation of all queries and a
``split`` per query give the runs in C, and one compiled pass over the bytes
(:func:`~sparsearch.retriever.query_kernels.glued_rows`) finds the queries
that hold glue: those (2-3% of SciFact's and NFCorpus' queries) keep the
pattern, so every row is the pattern's own (tested against it on random
text, tests/unit/test_ascii_split.py).

A single query gains nothing: the fixed cost of the extra calls is what the
regex spends on a short text, so :meth:`LuceneEnglishAnalyzer.raw_tokens`
keeps the pattern.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

_WORD = b"abcdefghijklmnopqrstuvwxyz0123456789"
#: Letters and digits stay, the row separator ``\x00`` stays, everything else becomes a break.
_KEEP_ROWS = bytes(c if c in _WORD or c == 0 else 32 for c in range(256))


def split_ascii_rows(lowered: Sequence[str]) -> list[list[str] | None]:
    """The pattern's tokens of each lower-cased ASCII text, or ``None`` where only the pattern can tell (glue)."""
    joined = "\x00".join(lowered)
    if joined.count("\x00") != len(lowered) - 1:  # a text holds the separator itself: leave it all to the pattern
        return [None] * len(lowered)
    from sparsearch.retriever.query_kernels import glued_rows  # numba: only once a batch is this large

    raw = joined.encode("ascii")
    rows: list[list[str] | None] = list(map(str.split, raw.translate(_KEEP_ROWS).decode("ascii").split("\x00")))
    for i in np.flatnonzero(glued_rows(np.frombuffer(raw, np.uint8), len(lowered))).tolist():
        rows[i] = None
    return rows
