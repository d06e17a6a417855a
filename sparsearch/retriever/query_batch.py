"""BM25 query rows for a batch of queries, in whole-batch steps instead of a Python loop per query and token.

A query of a dozen words costs ~8 µs to analyse and weigh one at a time,
about as much as scoring it on a small collection (SciFact).  For a batch,
the same steps run over all queries at once: the tokenizer's regular
expression and the token -> id cache through ``map`` (C loops), then the
per-row "distinct terms in first-occurrence order, with their counts" and
the IDF lookup in NumPy.  The rows are identical, term order included (the
kernels add contributions in row order, so order fixes the float32 score);
:class:`~sparsearch.retriever.bm25.BM25Encoder` keeps the per-query loop
for a few queries, where NumPy's fixed costs would dominate.
"""

from __future__ import annotations

import itertools
import operator
from typing import Callable, Sequence

import numpy as np

from sparsearch.retriever.analysis import ASCII_TOKEN_PATTERN, MAX_TOKEN_LENGTH, TOKEN_PATTERN

#: From this many queries on, a batch takes the whole-batch path: SciFact queries, per call, the per-query loop
#: against this path took 60 vs 71 µs for 8 queries, 91 vs 90 for 12, 117 vs 104 for 16 (NumPy's fixed costs).
MIN_BATCH = 12


def raw_token_rows(queries: Sequence[str], raw_tokens: Callable[[str], list[str]]) -> list[list[str]]:
    """Each query's lower-cased raw tokens, as ``raw_tokens`` gives them, with one ``findall`` per query in C."""
    lowered = list(map(str.lower, queries))
    rows = list(map(ASCII_TOKEN_PATTERN.findall, lowered))
    # The analyzer's choice per query: the full Unicode pattern (slower) only for the queries that need it.
    for i in itertools.compress(range(len(lowered)), map(operator.not_, map(str.isascii, lowered))):
        rows[i] = TOKEN_PATTERN.findall(lowered[i])
    # A token can only be over-long in a query that is: test the queries' lengths first (one per query).
    if max(map(len, lowered), default=0) > MAX_TOKEN_LENGTH and \
            max(map(len, itertools.chain.from_iterable(rows)), default=0) > MAX_TOKEN_LENGTH:
        return [raw_tokens(q) for q in queries]  # over-long tokens are split: the analyzer's own rule
    return rows


def distinct_counts(ids: np.ndarray, row_lengths: np.ndarray, n_ids: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row, the distinct non-negative ids in first-occurrence order and how often each occurs.

    ``ids`` holds every row's ids back to back (negative: dropped tokens),
    ``row_lengths`` how many belong to each row.  Returns ``(offsets, term_ids,
    counts)`` of the deduplicated rows.
    """
    n_rows = len(row_lengths)
    rows = np.repeat(np.arange(n_rows, dtype=np.int64), row_lengths)
    keep = ids >= 0
    ids, rows = ids[keep], rows[keep]
    position = np.flatnonzero(keep)
    key = rows * np.int64(n_ids + 1) + ids
    _, first, counts = np.unique(key, return_index=True, return_counts=True)
    order = np.argsort(position[first], kind="stable")  # back to (row, first occurrence) order
    first, counts = first[order], counts[order]
    offsets = np.zeros(n_rows + 1, np.int64)
    np.cumsum(np.bincount(rows[first], minlength=n_rows), out=offsets[1:])
    return offsets, ids[first], counts


def flatten(rows: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ids as one int64 array and the row lengths."""
    lengths = np.fromiter(map(len, rows), np.int64, count=len(rows))
    flat = np.fromiter(itertools.chain.from_iterable(rows), np.int64, count=int(lengths.sum()))
    return flat, lengths
