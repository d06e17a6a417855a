"""Filtered search: metadata filters evaluated per segment before top-k, never by over-fetching.

A filter becomes, per segment, the live documents it matches
(:func:`~sparsearch.index.columns.filter_masks`, from each segment's cached
metadata column index), and the search never ranks a document outside them:

* a segment where nothing matches is not searched at all (a filter matching
  nothing costs its evaluation, not a search);
* a selective filter (at most :data:`CANDIDATE_FRACTION` of a large
  segment) scores only the matching documents
  (:mod:`~sparsearch.index.filter_kernels`), with no score computed and no
  accumulator written for any other document: each query term's posting
  list is scanned against the filter's bitset, galloped through, or, for a
  long list, its bitset (:mod:`~sparsearch.index.filter_postings`) is
  intersected with the filter's, whichever costs least;
* otherwise the filter is folded into the segment's deletion mask
  (``seg.with_deletes(deleted | ~match)``) and the ordinary kernels run, which
  skip masked documents before their top-k selection.

Scores are those of the unfiltered search, bit for bit: collection
statistics (N, avgdl, df) stay the unfiltered snapshot's (:class:`_PinnedStats`:
an :class:`InvertedIndex` whose ``_collection_stats`` returns the snapshot's
instead of recounting them from the filtered masks), and the candidate scorer
adds each document's contributions in the kernels' order with their float32
operations.  Ties keep the lower internal id, as everywhere.

What a filter resolves to on a snapshot (matches, bitsets, the masked view) is
a :class:`Plan`, cached per snapshot for the last :data:`PLAN_CACHE` filters:
a snapshot is immutable, and searches repeat their filters (a tenant, a
language, a date range) far more often than they change them.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import numpy as np

from sparsearch.filters import Filter, cache_key, parse_filter
from sparsearch.index import filter_kernels, filter_postings
from sparsearch.index.columns import SegmentMatch, evaluate, filter_masks, segment_columns  # noqa: F401 (re-exported)
from sparsearch.index.inverted import InvertedIndex, TopK
from sparsearch.index.segment import Segment
from sparsearch.types import SparseBatch

#: A segment is scored candidate by candidate when at most this fraction of its documents match
#: (above it the masked kernels win; benchmarks/filters.py, docs/filters.md).
CANDIDATE_FRACTION = 0.15
#: ... and it holds at least this many documents (smaller ones take the masked path, whose
#: NumPy twin needs no JIT compilation: tests and small collections never compile the scorer).
MIN_CANDIDATE_DOCS = 8192
#: The ways a segment can be searched under a filter (see the module's docstring); "candidates:scan",
#: ":gallop" and ":bitset" force how every posting list meets the candidates (tests and benchmarks).
STRATEGIES = ("auto", "candidates", "dense", "mask", "candidates:scan", "candidates:gallop", "candidates:bitset")
_METHODS = {"candidates": filter_kernels.METHOD_AUTO, "candidates:scan": filter_kernels.METHOD_SCAN,
            "candidates:gallop": filter_kernels.METHOD_GALLOP, "candidates:bitset": filter_kernels.METHOD_BITSET}
#: Filters whose plan is kept per snapshot.
PLAN_CACHE = 32


class _PinnedStats(InvertedIndex):
    """Segments under filter masks, scored with the unfiltered snapshot's collection statistics.

    ``InvertedIndex`` counts N, avgdl and df from its segments' deletion
    masks; here those masks hide the filtered-out documents, which must not
    change any score, so the snapshot's statistics are kept instead (and the
    recount over every posting is skipped).
    """

    def __init__(self, base: InvertedIndex, segments: Sequence[Segment]) -> None:
        self._pinned = base.stats
        super().__init__(segments, base.scoring, base.config, base.manifest)
        if self.stats is not base.stats:
            raise RuntimeError("InvertedIndex no longer takes its statistics from _collection_stats")
        local = getattr(base, "_local", None)
        if local is not None:
            self._local = local  # the snapshot's per-thread scratch arrays: no O(n_docs) allocation per search

    def _collection_stats(self) -> Any:
        return self._pinned


@dataclass
class _Candidates:
    """One segment scored candidate by candidate: its matching documents as a bitset and ascending ids."""

    segment: Segment
    base: int
    bits: np.ndarray
    cands: np.ndarray
    ranks: np.ndarray
    #: The kernel's arguments after the queries' (filter_kernels.search_serial_py): bits, cands, ranks,
    #: the words holding candidates, each candidate's kd, the segment's postings and term bitsets, the
    #: method, the doc id base.
    args: tuple = ()


@dataclass
class _Dense:
    """One segment scored in full with the matching documents' byte mask (a filter keeping many)."""

    segment: Segment
    base: int
    match: np.ndarray  # uint8 per document
    min_weight: np.float32  # the segment's smallest stored weight ...
    max_kd: float  # ... and largest length term: can a contribution round to 0? (filter_kernels.accumulate_py)


@dataclass
class Plan:
    """What a filter resolves to on one snapshot."""

    count: int  # matching live documents (an upper bound where ids repeat)
    candidates: list[_Candidates] = field(default_factory=list)
    dense: list[_Dense] = field(default_factory=list)
    view: _PinnedStats | None = None  # the segments searched under filter masks
    shift: np.ndarray | None = None  # view segment -> snapshot internal id offset


_plans: "weakref.WeakKeyDictionary[InvertedIndex, OrderedDict[Any, Plan]]" = weakref.WeakKeyDictionary()
_plans_lock = threading.Lock()


def plan(inverted: InvertedIndex, flt: Filter, strategy: str = "auto", where: str = "this index") -> Plan:
    """The plan of ``flt`` on ``inverted`` (cached); raises ``FilterError`` when the filter does not fit the data."""
    try:
        key: Any = (cache_key(flt), strategy)
    except TypeError:  # a flat filter holding values JSON cannot write: evaluated every time
        key = None
    if key is not None:
        with _plans_lock:
            cached = _plans.get(inverted)
            found = cached.get(key) if cached is not None else None
            if found is not None:
                cached.move_to_end(key)
                return found
    made = _make_plan(inverted, flt, strategy, where)
    if key is not None:
        with _plans_lock:
            cached = _plans.setdefault(inverted, OrderedDict())
            cached[key] = made
            while len(cached) > PLAN_CACHE:
                cached.popitem(last=False)
    return made


def _make_plan(inverted: InvertedIndex, flt: Filter, strategy: str, where: str) -> Plan:
    matches = filter_masks(inverted, flt, where)
    out = Plan(sum(m.count for m in matches))
    masked: list[tuple[int, Segment]] = []
    for i, (seg, match) in enumerate(zip(inverted.segments, matches)):
        if match.count == 0:
            continue
        path = strategy
        if strategy == "auto":
            path = ("mask" if seg.n_docs < MIN_CANDIDATE_DOCS else
                    "candidates" if match.count <= CANDIDATE_FRACTION * seg.n_docs else "dense")
        if path.startswith("candidates"):
            bits, cands, ranks, words = filter_kernels.bitset(match.as_ids(), seg.n_docs)
            if len(cands):
                out.candidates.append(_candidates(inverted, seg, int(inverted.bases[i]), bits, cands, ranks, words,
                                                  _METHODS[path]))
            continue
        mask = match.as_mask(seg.n_docs)
        if not mask.any():
            continue
        if path == "dense":
            min_weight, max_kd = _underflow_bounds(inverted, seg)
            out.dense.append(_Dense(seg, int(inverted.bases[i]), mask.view(np.uint8), min_weight, max_kd))
        else:
            masked.append((i, seg.with_deletes(np.logical_not(mask).view(np.uint8))))
    if masked:
        out.view = _PinnedStats(inverted, [s for _, s in masked])
        out.shift = np.array([inverted.bases[i] - out.view.bases[j] for j, (i, _) in enumerate(masked)], np.int64)
    return out


def matches_nothing(inverted: InvertedIndex, flt: Any, where: str = "this index") -> bool:
    """Whether ``flt`` matches no live document (then a search need not even encode its queries)."""
    parsed = parse_filter(flt)
    return parsed is not None and plan(inverted, parsed, "auto", where).count == 0


def search(inverted: InvertedIndex, queries: SparseBatch, k: int, flt: Any, threads: int | None = None,
           method: str = "auto", strategy: str = "auto", where: str = "this index") -> TopK:
    """Exact top-``k`` of each query among the live documents matching ``flt``; ``InvertedIndex.search``'s scores.

    ``strategy``: ``"auto"``, or one of ``"candidates"``, ``"dense"``,
    ``"mask"`` to force that path on every segment (tests and benchmarks).  ``where`` names the
    collection in error messages.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown filter strategy {strategy!r}")
    parsed = parse_filter(flt)
    if parsed is None:
        return inverted.search(queries, k, threads=threads, method=method)
    p = plan(inverted, parsed, strategy, where)
    if len(p.candidates) == 1 and not p.dense and p.view is None:  # one large segment: the common case
        return _search_candidates(inverted, p.candidates[0], queries, k, threads)
    n_q = len(queries)
    parts = [_search_candidates(inverted, c, queries, k, threads) for c in p.candidates] if n_q else []
    parts += [_search_dense(inverted, d, queries, k, threads) for d in p.dense] if n_q else []
    if p.view is not None and n_q:
        top = p.view.search(queries, k, threads=threads, method=method)
        # The view numbers its segments from 0: back to the snapshot's internal ids.
        seg_of = np.searchsorted(p.view.bases, top.doc_ids, side="right") - 1
        top.doc_ids = top.doc_ids + p.shift[np.clip(seg_of, 0, len(p.shift) - 1)]
        parts.append(top)
    if len(parts) == 1:
        return parts[0]
    out = TopK(np.zeros((n_q, k), np.float32), np.zeros((n_q, k), np.int64), np.zeros(n_q, np.int64))
    for q in range(n_q if parts else 0):
        rows = [part.row(q) for part in parts]
        docs = np.concatenate([r[0] for r in rows])
        scores = np.concatenate([r[1] for r in rows])
        order = np.lexsort((docs, -scores))[:k]
        out.scores[q, : len(order)] = scores[order]
        out.doc_ids[q, : len(order)] = docs[order]
        out.counts[q] = len(order)
    return out


_extremes: dict[int, tuple[Any, np.float32, float]] = {}


def _underflow_bounds(inverted: InvertedIndex, seg: Segment) -> tuple[np.float32, float]:
    """(smallest stored weight, upper bound of ``kd``) of a segment under this snapshot's statistics."""
    anchor = seg.postings_weights
    entry = _extremes.get(id(anchor))
    if entry is None or entry[0]() is not anchor:
        min_weight = np.float32(np.min(anchor)) if len(anchor) else np.float32(0.0)
        max_length = float(np.max(seg.doc_lengths)) if len(seg.doc_lengths) else 0.0
        key = id(anchor)
        entry = (weakref.ref(anchor, lambda r, key=key: _extremes.pop(key, None)), min_weight, max_length)
        _extremes[key] = entry
    _, k_table, k1, b_over_avgdl, one_minus_b, exact = _length_params(inverted)
    if inverted.scoring.transform == "linear":
        return entry[1], 0.0
    if exact:  # the kernels round k1 * (1 - b + b * len / avgdl) to float32: 1e-6 covers it
        return entry[1], float(k1 * (one_minus_b + b_over_avgdl * entry[2])) * (1 + 1e-6)
    return entry[1], float(np.max(k_table))


_params: "weakref.WeakKeyDictionary[InvertedIndex, tuple]" = weakref.WeakKeyDictionary()


def _length_params(inverted: InvertedIndex) -> tuple:
    """The kernels' BM25 length terms under the snapshot's statistics, as they take them (once per snapshot)."""
    params = _params.get(inverted)
    if params is None:
        k_table, k1, b_over_avgdl, one_minus_b, exact = inverted._length_params()
        params = _params[inverted] = (inverted.scoring.transform_code, k_table, np.float32(k1),
                                      np.float32(b_over_avgdl), np.float32(one_minus_b), exact)
    return params


def _candidates(inverted: InvertedIndex, seg: Segment, base: int, bits: np.ndarray, cands: np.ndarray,
                ranks: np.ndarray, words: np.ndarray, method: int) -> _Candidates:
    transform, k_table, k1, b_over_avgdl, one_minus_b, exact = _length_params(inverted)
    kdc = (np.zeros(0, np.float32) if inverted.scoring.transform == "linear" else
           filter_kernels.candidate_kd(cands, k_table, seg.doc_norms, k1, b_over_avgdl, one_minus_b, seg.doc_lengths,
                                       exact))
    tb = filter_postings.term_bits(seg, every_term=method == filter_kernels.METHOD_BITSET)
    args = (bits, cands, ranks, words, kdc, seg.postings_offsets, seg.postings_docs, seg.postings_weights, seg.scales,
            transform, tb.slot, tb.bits, tb.rel, tb.sup, method, base)
    return _Candidates(seg, base, bits, cands, ranks, args)


def _search_candidates(inverted: InvertedIndex, c: _Candidates, queries: SparseBatch, k: int,
                       threads: int | None) -> TopK:
    n_q = len(queries)
    out = TopK(np.zeros((n_q, k), np.float32), np.zeros((n_q, k), np.int64), np.zeros(n_q, np.int64))
    compiled = filter_kernels.compiled()
    if n_q == 1 or threads == 1:
        compiled.candidates_serial(queries.offsets, queries.term_ids, queries.weights, *c.args, k,
                                   filter_kernels.GALLOP_RATIO, filter_kernels.WORD_RATIO, out.scores, out.doc_ids,
                                   out.counts)
        return out
    import numba

    n_threads = min(threads or numba.get_num_threads(), numba.config.NUMBA_NUM_THREADS)
    with _numba_threads(numba, n_threads):
        compiled.candidates_parallel(max(1, min(n_threads, n_q)), queries.offsets, queries.term_ids, queries.weights,
                                     *c.args, k, filter_kernels.GALLOP_RATIO, filter_kernels.WORD_RATIO, out.scores,
                                     out.doc_ids, out.counts)
    return out


_local = threading.local()


def _workspace(n_docs: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """This thread's scratch for one dense query: accumulator and histogram zeroed (the kernels leave them so)."""
    ws = getattr(_local, "ws", None)
    if ws is None or len(ws[0]) < n_docs:
        ws = (np.zeros(n_docs, np.float32), np.empty(n_docs + 1, np.int32),
              np.zeros(filter_kernels._RADIX_BUCKETS, np.int32))
        _local.ws = ws
    return ws


def _search_dense(inverted: InvertedIndex, d: _Dense, queries: SparseBatch, k: int, threads: int | None) -> TopK:
    transform, k_table, k1, b_over_avgdl, one_minus_b, exact = _length_params(inverted)
    seg = d.segment
    n_q = len(queries)
    out = TopK(np.zeros((n_q, k), np.float32), np.zeros((n_q, k), np.int64), np.zeros(n_q, np.int64))
    common = (d.match, seg.postings_offsets, seg.postings_docs, seg.postings_weights, seg.scales, transform, k_table,
              seg.doc_norms, k1, b_over_avgdl, one_minus_b, seg.doc_lengths, exact, d.min_weight, d.max_kd)
    compiled = filter_kernels.compiled()
    if n_q == 1:
        acc, touched, hist = _workspace(seg.n_docs)
        t, w = queries.row(0)
        out.counts[0] = compiled.dense_one(t, w, k, *common, d.base, acc, touched, hist, out.scores[0],
                                           out.doc_ids[0])
        return out
    import numba

    n_threads = min(threads or numba.get_num_threads(), numba.config.NUMBA_NUM_THREADS)
    with _numba_threads(numba, n_threads):
        compiled.dense_many(queries.offsets, queries.term_ids, queries.weights, k, max(1, min(n_threads, n_q)),
                            *common, d.base, seg.n_docs, out.scores, out.doc_ids, out.counts)
    return out


@contextmanager
def _numba_threads(numba: Any, n: int) -> Iterator[None]:
    previous = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        yield
    finally:
        numba.set_num_threads(previous)
