"""A compiled table from raw query tokens to BM25 term ids, for the one-query path.

``Retriever.search`` on one query spent ~7.5 µs of a SciFact query's ~19 µs in
Python analysis: the tokenizer's regular expression (~3.3 µs), a dictionary
lookup per token, and two small NumPy arrays built from lists (~1.8 µs),
against ~10.5 µs for the whole query inside a batch.  Once the encoder has
answered enough single queries to pay for Numba, an ASCII query takes one
compiled call (:func:`~sparsearch.retriever.token_table_kernels.encode_ascii`)
from its bytes to its row: tokens, table lookups, counts and weights.

The table mirrors the encoder's own token cache (raw token → term id) and
learns from it: a query the compiled call cannot finish (a token not in the
table, an IDF not computed under this snapshot) takes the Python path, whose
answers are then copied in; text with glue only the tokenizer's pattern
splits (``3.5``, ``don't``) always takes the pattern.  So the rows are the
Python path's own, bit for bit (tests/unit/test_token_table.py).

A token unknown to the vocabulary is stored with the vocabulary's size and
counts as a miss once the vocabulary has grown, as the Python cache forgets
it.  Lookups and inserts both hold the GIL (the kernels are compiled without
``nogil``), so a lookup never sees a half-written entry; growth swaps in new
arrays.
"""

from __future__ import annotations

import threading

import numpy as np

from sparsearch.retriever import token_table_kernels as kernels


class TokenTable:
    """Open addressing over token bytes (FNV-1a, linear probing, load ≤ 1/2); values are term ids.

    The arrays travel as one tuple, swapped whole when the table grows, so a
    lookup reads one generation; inserts take a lock (they are rare: a token's
    first sight).
    """

    def __init__(self, capacity: int = 1024) -> None:
        self._lock = threading.Lock()
        self._n_entries = 0
        self._arrays = self._allocate(max(16, 1 << (2 * int(capacity) - 1).bit_length()), 16 * capacity)

    @staticmethod
    def _allocate(slots: int, arena: int) -> tuple[np.ndarray, ...]:
        """``(slots, key offsets, key bytes, hashes, values, stamps)``, empty; entries ≤ slots / 2."""
        rows = slots // 2
        return (np.full(slots, -1, np.int64), np.zeros(rows + 1, np.int64), np.zeros(arena, np.uint8),
                np.zeros(rows, np.uint64), np.zeros(rows, np.int64), np.zeros(rows, np.int64))

    def __len__(self) -> int:
        return self._n_entries

    def insert(self, token: str, value: int, stamp: int = 0) -> None:
        """Set an ASCII token's value: a term id, or :data:`~token_table_kernels.DROPPED` /
        :data:`~token_table_kernels.UNKNOWN` (then ``stamp`` is the vocabulary size it was unknown to)."""
        key = np.frombuffer(token.encode("ascii"), np.uint8)
        with self._lock:
            arrays = self._arrays
            if self._n_entries + 1 >= len(arrays[4]) or arrays[1][self._n_entries] + len(key) > len(arrays[2]):
                arrays = self._grown(arrays, len(key))
            self._n_entries = kernels.insert_entry(key, value, stamp, self._n_entries, *arrays)
            self._arrays = arrays

    def _grown(self, old: tuple[np.ndarray, ...], extra_bytes: int) -> tuple[np.ndarray, ...]:
        """A copy of the table in arrays twice as large (the caller holds the lock)."""
        _, offsets, arena, _, values, stamps = old
        used = int(offsets[self._n_entries])
        arrays = self._allocate(2 * len(old[0]), max(2 * len(arena), 2 * (used + extra_bytes)))
        n = 0
        for e in range(self._n_entries):
            n = kernels.insert_entry(arena[offsets[e]:offsets[e + 1]], values[e], stamps[e], n, *arrays)
        return arrays

    def lookup(self, token: str) -> tuple[int, int] | None:
        """``(value, stamp)`` of an ASCII token, or ``None`` (for tests and inspection)."""
        key = np.frombuffer(token.encode("ascii"), np.uint8)
        slots, offsets, arena, hashes, values, stamps = self._arrays
        e = kernels.lookup_entry(key, slots, offsets, arena, hashes)
        return None if e < 0 else (int(values[e]), int(stamps[e]))

    def encode(self, text: bytes, vocab_size: int, idf: np.ndarray, idf_known: np.ndarray
               ) -> tuple[int, np.ndarray, np.ndarray]:
        """``(status, term ids int32, weights float32)`` of ASCII ``text``: status ≥ 0 is the row's length,
        :data:`~token_table_kernels.PATTERN` or :data:`~token_table_kernels.MISSING` send it to the Python path."""
        return kernels.encode_ascii(text, vocab_size, *self._arrays, idf, idf_known)
