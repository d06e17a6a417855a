"""BM25 query rows for a batch of queries, in whole-batch steps instead of a Python loop per query and token.

A query of a dozen words costs ~8 µs to analyse and weigh one at a time,
about as much as scoring it on a small collection (SciFact).  For a batch,
the same steps run over all queries at once: one byte translation and a C
``split`` per query where the tokenizer's pattern would find the same tokens
(:mod:`~sparsearch.retriever.ascii_split`; the pattern itself elsewhere), the
token -> id cache through ``map`` (C loops), then the per-row "distinct terms
in first-occurrence order, with their counts" in one compiled pass and the
IDF lookup in NumPy.  The rows are identical, term order included (the
kernels add contributions in row order, so order fixes the float32 score);
:class:`~sparsearch.retriever.bm25.BM25Encoder` keeps the per-query loop
for a few queries, where the fixed costs of these calls would dominate.
"""

from __future__ import annotations

import itertools
from typing import Callable, Sequence

import numpy as np

from sparsearch.retriever.analysis import ASCII_TOKEN_PATTERN, MAX_TOKEN_LENGTH, TOKEN_PATTERN
from sparsearch.retriever.ascii_split import split_ascii_rows

#: From this many queries on, a batch takes the whole-batch path.  Per call, the per-query rows against this path
#: (re-measured after the compiled steps): SciFact (13 tokens a query) 47 vs 50 µs for 6 queries, 63 vs 56 for 8,
#: 96 vs 66 for 12; NFCorpus (3 tokens) 28 vs 40 for 8, 43 vs 44 for 12, 57 vs 48 for 16.  The crossover is 6-8
#: queries of sentence length and ~12 of keywords; 12 keeps short queries from paying the batch's fixed costs.
MIN_BATCH = 12


def raw_token_rows(queries: Sequence[str], raw_tokens: Callable[[str], list[str]]) -> list[list[str]]:
    """Each query's lower-cased raw tokens, as ``raw_tokens`` gives them, in C calls over the whole batch."""
    lowered = list(map(str.lower, queries))
    ascii_rows = list(map(str.isascii, lowered))
    if all(ascii_rows):
        split = split_ascii_rows(lowered)
    else:
        split = [None] * len(lowered)
        where = list(itertools.compress(range(len(lowered)), ascii_rows))
        for i, row in zip(where, split_ascii_rows([lowered[i] for i in where])):
            split[i] = row
    # The analyzer's choice per query: a C split where it gives the pattern's tokens (ascii_split), the ASCII
    # pattern where joiners decide, the full Unicode pattern (slower) only for the queries that need it.
    rows = [row if row is not None else (ASCII_TOKEN_PATTERN if is_ascii else TOKEN_PATTERN).findall(text)
            for row, is_ascii, text in zip(split, ascii_rows, lowered)]
    # A token can only be over-long in a query that is: test the queries' lengths first (one per query).
    if max(map(len, lowered), default=0) > MAX_TOKEN_LENGTH and \
            max(map(len, itertools.chain.from_iterable(rows)), default=0) > MAX_TOKEN_LENGTH:
        return [raw_tokens(q) for q in queries]  # over-long tokens are split: the analyzer's own rule
    return rows


def distinct_counts(ids: np.ndarray, row_lengths: np.ndarray, n_ids: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row, the distinct non-negative ids in first-occurrence order and how often each occurs.

    ``ids`` holds every row's ids back to back (negative: dropped tokens),
    ``row_lengths`` how many belong to each row; ``n_ids`` bounds the ids.
    Returns ``(offsets, term_ids, counts)`` of the deduplicated rows.  One
    compiled pass: NumPy's unique, argsort and bincount over the batch cost
    ~1.3 µs a SciFact query, about as much as analysing it.
    """
    ids = np.ascontiguousarray(ids, np.int64)
    if len(ids) and ids.max() >= n_ids:
        raise ValueError(f"term id {int(ids.max())} is outside the vocabulary of {n_ids}")
    from sparsearch.retriever.query_kernels import distinct_counts_rows  # numba: only for a batch this large

    return distinct_counts_rows(ids, np.ascontiguousarray(row_lengths, np.int64))


def flatten(rows: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ids as one int64 array and the row lengths."""
    lengths = np.fromiter(map(len, rows), np.int64, count=len(rows))
    flat = np.fromiter(itertools.chain.from_iterable(rows), np.int64, count=int(lengths.sum()))
    return flat, lengths
