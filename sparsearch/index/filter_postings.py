"""Term bitsets of a segment: its long posting lists again as bitsets, for selective filters.

A filter matching 1 % of a segment at random leaves candidates all over it,
so every posting list of a query must still be met against them: reading a
list posting by posting costs its length, however few candidates it holds.
A list of a common word also held as a bitset of the segment's documents (64
to a word) with a rank directory is intersected with the filter's bitset a
word at a time instead (:func:`~sparsearch.index.filter_kernels.score_rows_py`):
``n_docs / 64`` words within the candidates' range, whatever the list's
length, and a hit's posting is found by a popcount, so its weight is read
from the ordinary postings (the scores do not change).

Built once per immutable segment, on the first filtered search that scores
it candidate by candidate, and cached for the segment's life (weakly, by the
identity of its ``postings_docs``, which every view of it shares): only the
terms whose lists hold at least ``n_docs / TERM_SHARE`` documents, where a
bitset (``n_docs / 8`` bytes, plus a quarter for ranks) is no larger than
``1.25 x`` the list's doc ids, longest first, within :data:`BUDGET_SHARE` of
the segment's doc id bytes.  At 10^5 documents and 7.45 M postings: 531
terms holding 52 % of the postings, 8.9 MB (the doc ids take 29.8 MB),
built in 7 to 13 ms (benchmarks/filters.py, docs/filters.md).
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np

from sparsearch.index import filter_kernels
from sparsearch.index.segment import Segment

#: A term gets a bitset when its posting list holds at least n_docs / TERM_SHARE documents ...
TERM_SHARE = 32
#: ... within a budget of this share of the segment's doc id bytes (4 per posting), longest lists first,
BUDGET_SHARE = 0.5
#: ... or of this many bytes when that is more (small segments: tests force bitsets on every term).
MIN_BUDGET = 1 << 20


@dataclass(frozen=True)
class TermBits:
    """A segment's term bitsets (:func:`~sparsearch.index.filter_kernels.term_bits_py`)."""

    slot: np.ndarray  # int32 per term: its row below, -1 for none
    bits: np.ndarray  # uint64 [terms, words]
    rel: np.ndarray  # uint16 [terms, words]: postings before the word, since its superblock
    sup: np.ndarray  # int64 [terms, superblocks]: absolute position of each superblock's first posting

    @property
    def n_terms(self) -> int:
        return len(self.bits)

    @property
    def nbytes(self) -> int:
        return int(self.slot.nbytes + self.bits.nbytes + self.rel.nbytes + self.sup.nbytes)


def chosen_terms(seg: Segment, every_term: bool = False) -> np.ndarray:
    """The terms of ``seg`` that get a bitset: long lists (or all, ``every_term``), longest first, within budget."""
    lengths = np.diff(np.asarray(seg.postings_offsets, np.int64))
    n_docs = seg.n_docs
    if n_docs == 0 or len(lengths) == 0:
        return np.zeros(0, np.int64)
    floor = 1 if every_term else max(1, -(-n_docs // TERM_SHARE))
    terms = np.flatnonzero(lengths >= floor)
    terms = terms[np.argsort(-lengths[terms], kind="stable")]
    n_words = (n_docs + 63) >> 6
    per_term = n_words * 10 + 8 * -(-n_words // filter_kernels.SUPER_WORDS)  # bits + rel + sup
    budget = max(MIN_BUDGET, BUDGET_SHARE * 4 * seg.n_postings)
    return np.sort(terms[: int(budget // per_term)])


_cache: dict[tuple[int, bool], tuple[Any, TermBits]] = {}
_cache_lock = threading.Lock()
_build_lock = threading.Lock()


def term_bits(seg: Segment, every_term: bool = False) -> TermBits:
    """The term bitsets of ``seg`` (built once per immutable segment; ``every_term``: not only long lists)."""
    anchor = seg.postings_docs
    key = (id(anchor), every_term)
    entry = _cache.get(key)
    if entry is not None and entry[0]() is anchor:
        return entry[1]
    with _build_lock:  # one build at a time: concurrent searches wait for it rather than repeat it
        entry = _cache.get(key)
        if entry is not None and entry[0]() is anchor:
            return entry[1]
        made = TermBits(*filter_kernels.term_bits(seg.postings_offsets, anchor, seg.n_docs,
                                                  chosen_terms(seg, every_term)))
        try:
            ref = weakref.ref(anchor, lambda r, key=key: _forget(key, r))
        except TypeError:
            return made
        with _cache_lock:
            _cache[key] = (ref, made)
        return made


def _forget(key: tuple[int, bool], ref: Any) -> None:
    with _cache_lock:
        entry = _cache.get(key)
        if entry is not None and entry[0] is ref:
            del _cache[key]
