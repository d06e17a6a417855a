"""Block-max rows of one segment under one snapshot: built for the long posting lists that queries use.

:func:`~sparsearch.index.kernels_blockmax.blockmax_one` needs, for every
long list of a query, each block's largest contribution and where the block
starts in the list.  The maxima depend on the snapshot's ``avgdl``, so they
cannot be stored with the segment; computing them for every term up front
would read every posting of the segment (and repeat after each write of a
live collection), while a query touches a handful of terms.  So rows are
built on first use, per term, and kept for the snapshot's lifetime: memory
is ``12 bytes x blocks`` per distinct long term queried (~23 KB per term at
10^6 documents).
"""

from __future__ import annotations

import threading

import numpy as np

from sparsearch.index import kernels

#: Documents per block: 2**BLOCK_SHIFT (512: ~2,000 blocks at 10^6 documents).
BLOCK_SHIFT = 9
#: A list is "long" (bounded per block, not scored whole) from this many postings per block of the segment on.
LONG_POSTINGS_PER_BLOCK = 1.0


class BlockRows:
    """Per-term block rows of one segment under one snapshot, grown as queries bring new long terms."""

    def __init__(self, n_docs: int, postings_offsets: np.ndarray, common: tuple) -> None:
        self.shift = BLOCK_SHIFT
        self.n_blocks = max(1, (n_docs + (1 << BLOCK_SHIFT) - 1) >> BLOCK_SHIFT)
        lengths = np.diff(postings_offsets)
        self._long = lengths >= max(2.0, LONG_POSTINGS_PER_BLOCK * self.n_blocks)
        self.slot = np.full(len(lengths), -1, np.int32)
        self.offsets = np.zeros((0, self.n_blocks + 1), np.int64)
        self.max = np.zeros((0, self.n_blocks), np.float32)
        self._n = 0
        self._common = common[:12]  # postings_offsets .. use_exact_lengths: block_rows' scoring arguments
        self._lock = threading.Lock()

    def ensure(self, term_ids: np.ndarray) -> None:
        """Build the rows of the long lists among ``term_ids`` that have none yet (thread-safe)."""
        t = term_ids[(term_ids >= 0) & (term_ids < len(self.slot))]
        t = t[self._long[t]]
        if not len(t) or (self.slot[t] >= 0).all():
            return
        with self._lock:
            new = np.unique(t[self.slot[t] < 0])
            if not len(new):
                return
            offsets = np.empty((len(new), self.n_blocks + 1), np.int64)
            maxima = np.empty((len(new), self.n_blocks), np.float32)
            kernels.block_rows(*self._common, new, self.shift, offsets, maxima)
            n = self._n + len(new)
            if n > len(self.offsets):
                capacity = max(n, 2 * len(self.offsets), 16)
                self.offsets = _grown(self.offsets, capacity, self._n)
                self.max = _grown(self.max, capacity, self._n)
            self.offsets[self._n:n] = offsets
            self.max[self._n:n] = maxima
            # Published last: a concurrent search sees a slot only once its row is written.
            self.slot[new] = np.arange(self._n, n, dtype=np.int32)
            self._n = n

    def args(self) -> tuple:
        """The kernel's block arguments: slot, offsets, maxima, shift."""
        return self.slot, self.offsets, self.max, self.shift


def _grown(rows: np.ndarray, capacity: int, used: int) -> np.ndarray:
    out = np.zeros((capacity,) + rows.shape[1:], rows.dtype)
    out[:used] = rows[:used]
    return out
