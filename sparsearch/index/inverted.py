"""The generic inverted index: sparse vectors in, exact top-k out.

It knows nothing about any particular model.  It stores vectors (term id ->
non-negative weight) in immutable segments, keeps collection-wide statistics
across them, and scores with the :class:`~sparsearch.index.config.Scoring`
rule chosen by the encoder that built it.  BM25 is one such encoder; learned
sparse encoders are others.
"""

from __future__ import annotations

import threading
import weakref
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from sparsearch.errors import IndexFormatError
from sparsearch.filters import parse_filter
from sparsearch.index import impacts, kernels, small
from sparsearch.index.blockmax import BlockRows
from sparsearch.index.checksum import crc32_of_file, format_crc
from sparsearch.index.config import IndexConfig, Scoring
from sparsearch.index.documents import SegmentDocuments
from sparsearch.index.manifest import Manifest
from sparsearch.index.segment import Segment, open_segment
from sparsearch.types import CollectionStats, Hits, SparseBatch

_NORM_LENGTHS = small.decode_norm_table()  # equal to kernels.decode_norm_table(), without importing Numba
_NO_DELETES = np.zeros(0, np.uint8)


@dataclass
class TopK:
    """Ranked hits of a batch: row ``q`` holds ``counts[q]`` valid entries, best first."""

    scores: np.ndarray  # float32 [n_queries, k]
    doc_ids: np.ndarray  # int64 [n_queries, k]: index-wide internal ids
    counts: np.ndarray  # int64 [n_queries]

    def row(self, q: int) -> tuple[np.ndarray, np.ndarray]:
        n = int(self.counts[q])
        return self.doc_ids[q, :n], self.scores[q, :n]


class InvertedIndex(SegmentDocuments):
    """A snapshot of segments plus their global statistics; immutable once opened.

    Internal doc ids are global: segment ``i`` covers ``[bases[i], bases[i+1])``.
    """

    def __init__(self, segments: Sequence[Segment], scoring: Scoring, config: IndexConfig,
                 manifest: Manifest | None = None) -> None:
        self.segments = list(segments)
        self.scoring = scoring
        self.config = config
        self.manifest = manifest
        self.bases = np.zeros(len(self.segments) + 1, np.int64)
        np.cumsum([s.n_docs for s in self.segments], out=self.bases[1:])
        self._stats = self._collection_stats()
        self._local = threading.local()
        self._bound_cache: dict[int, np.ndarray] = {}
        self._params: tuple[np.ndarray, float, float, float, bool] | None = None
        self._floors: dict[int, tuple[np.float32, float]] = {}
        self._id_table: list[str] | None = None
        self._n_live: int | None = None
        self._plans: list[_SegmentPlan] | None = None
        self._rows: dict[int, BlockRows] = {}
        self._impacts: dict[int, _ImpactState] = {}
        self._impacts_lock = threading.Lock()
        self._single: tuple | None = None  # hits_one's kernel arguments, once they can no longer change

    # ------------------------------------------------------------ opening

    @classmethod
    def open(cls, directory: Path, manifest: Manifest, mmap: bool = True,
             verify_checksums: str = "auto") -> "InvertedIndex":
        """Open the segments ``manifest`` names; sizes, checksums and structure are checked (see ``open_segment``).

        The encoder's state files (vocabulary) are summed too: they are read
        whole by the encoder anyway, and a flipped bit in a term would
        silently send queries to the wrong posting lists.
        """
        masks = {info.deletes for info in manifest.segments if info.deletes}
        for name, expected in manifest.crc32.items():
            if name not in masks and (verify_checksums != "lazy" or mmap is False):
                actual = crc32_of_file(directory / name)
                if actual != expected:
                    raise IndexFormatError(f"{directory / name}: checksum mismatch (CRC-32 {format_crc(actual)}, "
                                           f"manifest says {format_crc(expected)}): the file is corrupt; restore "
                                           f"the index from a copy or rebuild it")
        segments = [open_segment(directory, info, mmap=mmap, deletes_size=manifest.files.get(info.deletes or ""),
                                 verify_checksums=verify_checksums)
                    for info in manifest.segments]
        return cls(segments, Scoring.from_dict(manifest.scoring), IndexConfig.from_dict(manifest.config), manifest)

    # ------------------------------------------------------------ statistics

    @property
    def n_docs(self) -> int:
        """Live documents (deleted ones excluded); counted once, a snapshot's deletes never change."""
        n = self._n_live
        if n is None:
            n = self._n_live = self.id_space - sum(int(s.deleted.sum()) for s in self.segments if s.deleted is not None)
        return n

    @property
    def id_space(self) -> int:
        """Internal ids in use, deleted documents included: segment i covers [bases[i], bases[i+1])."""
        return int(self.bases[-1])

    @property
    def stats(self) -> CollectionStats:
        """Collection-wide statistics of this snapshot (N, total length, df per term)."""
        return self._stats

    @property
    def n_terms(self) -> int:
        return max((s.n_terms for s in self.segments), default=0)

    @property
    def n_postings(self) -> int:
        return sum(s.n_postings for s in self.segments)

    def _collection_stats(self) -> CollectionStats:
        df = np.zeros(self.n_terms, np.int64)
        n_docs = 0
        total = 0.0
        for s in self.segments:
            df[: s.n_terms] += s.doc_freq()
            lengths = s.doc_lengths if s.deleted is None else np.asarray(s.doc_lengths)[s.deleted == 0]
            n_docs += int(np.count_nonzero(lengths))
            total += float(np.sum(lengths, dtype=np.float64))
        text_n, text_df = self._text_doc_freq()
        return CollectionStats(n_docs=n_docs, total_length=total, doc_freq=df, text_n_docs=text_n,
                               text_doc_freq=text_df)

    def _text_doc_freq(self) -> tuple[int, np.ndarray | None]:
        """Live documents, and per token the live documents whose text holds it (segments' ``text_tokens``).

        ``None`` as soon as a segment with a live document has no token sets
        (an index built without them: its first segment says so, before any
        allocation).  Each segment's count over all its rows is cached with
        its token sets, so a snapshot costs a sum over the vocabulary per
        segment plus its deleted rows' tokens, whatever the segments' sizes.
        """
        for s in self.segments:
            if s.text_tokens is None and s.n_docs and (s.deleted is None or not s.deleted.all()):
                return 0, None
        df = np.zeros(self.n_terms, np.int64)
        n_live = 0
        for s in self.segments:
            if s.text_tokens is not None:
                counts = s.text_tokens.doc_freq(s.deleted)
                df[: len(counts)] += counts
                n_live += s.n_docs - (0 if s.deleted is None else int(np.count_nonzero(s.deleted)))
        return n_live, df

    # ------------------------------------------------------------ search

    def _length_params(self) -> tuple[np.ndarray, float, float, float, bool]:
        """(k_table, k1, b / avgdl, 1 - b, exact lengths?) of this snapshot; computed once (the stats never change)."""
        params = self._params
        if params is None:
            sc = self.scoring
            avgdl = self._stats.avg_length or 1.0
            k_table = norm_k_table(sc, avgdl)
            params = self._params = (k_table, sc.k1, sc.b / avgdl, 1.0 - sc.b, sc.length_norm == "exact")
        return params

    def _underflow_bounds(self, seg: Segment, params: tuple) -> tuple[np.float32, float]:
        """``(min_weight, max_kd)`` of a segment under this snapshot, for the kernels' zero-contribution test.

        See :func:`kernels._accumulate`: the smallest stored weight and an upper
        bound of every document's ``kd`` tell per query term whether a
        contribution can round to 0.  Cached per snapshot (and the segment's
        extremes per segment).
        """
        key = id(seg)
        floors = self._floors.get(key)
        if floors is None:
            min_weight, max_length = _segment_extremes(seg)
            k_table, k1, b_over_avgdl, one_minus_b, exact = params
            if self.scoring.transform == "linear":
                max_kd = 0.0
            elif exact:
                # The kernel rounds k1 * (1 - b + b * len / avgdl) to float32: 1e-6 covers that rounding.
                max_kd = float(k1 * (one_minus_b + b_over_avgdl * max_length)) * (1 + 1e-6)
            else:
                max_kd = float(np.max(k_table))
            floors = self._floors[key] = (min_weight, max_kd)
        return floors

    def _workspace(self, n_docs: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """This thread's scratch arrays for single-query search (accumulator, touched list, histogram)."""
        ws = getattr(self._local, "ws", None)
        if ws is None or len(ws[0]) < n_docs:
            hist = np.zeros(kernels.RADIX_BUCKETS, np.int32)
            ws = (np.zeros(n_docs, np.float32), np.empty(n_docs + 1, np.int32), hist)
            self._local.ws = ws
        return ws

    def search(self, queries: SparseBatch, k: int, threads: int | None = None, method: str = "auto") -> TopK:
        """Exact top-``k`` per query row; ties broken by lower internal doc id.

        ``method``: ``"exhaustive"`` (term at a time, every posting scored),
        ``"pruned"`` (MaxScore term at a time: long lists of low-weight terms
        only probed for candidates, :func:`kernels_prune.pruned_one`),
        ``"blockmax"`` (block-max MaxScore over blocks of documents,
        :func:`kernels_blockmax.blockmax_one`) or ``"maxscore"`` (document at
        a time); all give the same hits and scores.  ``"auto"`` is
        exhaustive: on SciFact, NFCorpus and the 10^5 and 10^6 BM25 corpora
        it measured faster than every pruned method at k = 10
        (docs/query_speed.md), because BM25's per-term (and per-block)
        maxima of long queries over common words leave little to prune.

        Segments are searched largest first, and from the second on the k-th
        score found so far seeds each query's pruning threshold: a small
        segment that cannot beat it is all but skipped.
        """
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        if method not in METHODS:
            raise ValueError(f"unknown search method {method!r} (expected one of {', '.join(METHODS)})")
        n_q = len(queries)
        k = int(k)
        result: TopK | None = None
        plans = self._segment_plans()
        # Merging per-segment lists in NumPy too when every segment was searched in NumPy (small index).
        numpy_merge = len(plans) > 1 and method != "maxscore" and all(plan.small for plan in plans)
        for plan in plans:
            seeds = None if result is None else _seeds(result, k)
            part = self._search_segment(plan, queries, k, threads, _method_for(plan, method, k), seeds)
            result = part if result is None else _merge(result, part, k, numpy_merge)
        if result is None:
            result = TopK(np.zeros((n_q, k), np.float32), np.zeros((n_q, k), np.int64), np.zeros(n_q, np.int64))
        return result

    def _segment_plans(self) -> list["_SegmentPlan"]:
        """Every non-empty segment with its kernel arguments, largest first (built once per snapshot).

        Largest first: its k-th scores are the best seeds for the rest.
        """
        plans = self._plans
        if plans is None:
            params = self._length_params()
            k_table, k1, b_over_avgdl, one_minus_b, exact = params
            transform = self.scoring.transform_code
            plans = []
            for seg, base in zip(self.segments, self.bases[:-1].tolist()):
                if seg.n_docs == 0:
                    continue
                deleted = seg.deleted if seg.deleted is not None else _NO_DELETES
                common = (seg.postings_offsets, seg.postings_docs, seg.postings_weights, seg.scales,
                          transform, k_table, seg.doc_norms, np.float32(k1), np.float32(b_over_avgdl),
                          np.float32(one_minus_b), seg.doc_lengths, exact, deleted, base)
                plans.append(_SegmentPlan(seg, base, common, small.small_search(seg.n_postings, seg.n_docs)))
            plans.sort(key=lambda plan: -plan.seg.n_docs)
            self._plans = plans
        return plans

    def _bounds(self, seg: Segment, params: tuple) -> np.ndarray:
        """Per-term score bounds of a segment under this snapshot's statistics (cached)."""
        key = id(seg)
        bounds = self._bound_cache.get(key)
        if bounds is None:
            k_table, k1, b_over_avgdl, one_minus_b, exact = params
            bounds = kernels.term_bounds(seg.postings_offsets, seg.postings_docs, seg.postings_weights, seg.scales,
                                         self.scoring.transform_code, k_table, seg.doc_norms, np.float32(k1),
                                         np.float32(b_over_avgdl), np.float32(one_minus_b), seg.doc_lengths, exact)
            self._bound_cache[key] = bounds
        return bounds

    def _block_rows(self, plan: "_SegmentPlan") -> BlockRows:
        """The segment's block-max rows under this snapshot (built term by term as queries need them)."""
        rows = self._rows.get(plan.base)
        if rows is None:
            with _rows_lock:
                rows = self._rows.get(plan.base)
                if rows is None:
                    rows = self._rows[plan.base] = BlockRows(plan.seg.n_docs, plan.seg.postings_offsets, plan.common)
        return rows

    def _search_segment(self, plan: "_SegmentPlan", queries: SparseBatch, k: int, threads: int | None,
                        method: str, seeds: np.ndarray | None) -> TopK:
        seg, common = plan.seg, plan.common
        n_q = len(queries)
        scores = np.zeros((n_q, k), np.float32)
        docs = np.zeros((n_q, k), np.int64)
        counts = np.zeros(n_q, np.int64)
        if method == "exhaustive" and plan.small:
            # A small segment: the same scores and order from NumPy, no JIT compilation (index/small.py).
            small.search(queries.offsets, queries.term_ids, queries.weights, k, *common, seg.n_docs,
                         scores, docs, counts)
            return TopK(scores, docs, counts)
        params = self._length_params()
        floors = () if method == "maxscore" else self._underflow_bounds(seg, params)
        if method == "exhaustive" and plan.saturating:
            fast = self._impact_arguments(plan, queries.term_ids)
            if fast is not None:
                common, floors = fast
        bounds = self._bounds(seg, params) if method in ("pruned", "maxscore") else None
        if method == "blockmax":
            rows = self._block_rows(plan)
            rows.ensure(queries.term_ids)
            bounds = rows.args()
        if n_q == 1:
            # One query: this thread's scratch arrays rather than n_docs fresh floats, and no thread pool.
            t, w = queries.term_ids, queries.weights
            if method == "maxscore":
                counts[0] = kernels.maxscore_one(t, w, k, *common, bounds, scores[0], docs[0])
            elif method == "blockmax":
                acc, touched, hist = self._workspace(seg.n_docs)
                seed = np.float32(0.0) if seeds is None else seeds[0]
                counts[0] = kernels.blockmax_one(t, w, k, *common, *floors, *bounds, seed, acc, touched, hist,
                                                 scores[0], docs[0])
            elif method == "pruned":
                acc, touched, hist = self._workspace(seg.n_docs)
                seed = np.float32(0.0) if seeds is None else seeds[0]
                counts[0] = kernels.pruned_one(t, w, k, *common, *floors, bounds, seed, PRUNE_MIN_POSTINGS, acc,
                                               touched, hist, scores[0], docs[0])
            else:
                acc, touched, hist = self._workspace(seg.n_docs)
                counts[0] = kernels.search_one(t, w, k, *common, *floors, acc[: seg.n_docs], touched[: seg.n_docs + 1],
                                               hist, scores[0], docs[0])
            return TopK(scores, docs, counts)
        import numba

        n_threads = min(threads or numba.get_num_threads(), numba.config.NUMBA_NUM_THREADS)
        n_blocks = max(1, min(n_threads, n_q))
        q = (queries.offsets, queries.term_ids, queries.weights, k, n_blocks)
        with _numba_threads(n_threads):
            if method == "maxscore":
                kernels.maxscore_many(*q, *common, bounds, scores, docs, counts)
            elif method == "blockmax":
                seeds = np.zeros(n_q, np.float32) if seeds is None else seeds
                kernels.blockmax_many(*q, *common, *floors, *bounds, seeds, scores, docs, counts)
            elif method == "pruned":
                seeds = np.zeros(n_q, np.float32) if seeds is None else seeds
                kernels.pruned_many(*q, *common, *floors, bounds, seeds, PRUNE_MIN_POSTINGS, seg.n_docs, scores, docs,
                                    counts)
            else:
                kernels.search_many(*q, *common, *floors, seg.n_docs, scores, docs, counts)
        return TopK(scores, docs, counts)

    def hits_one(self, term_ids: np.ndarray, weights: np.ndarray, k: int) -> Hits | None:
        """Exact top-``k`` of one unfiltered query row on the calling thread; ``None`` where :meth:`hits` must serve it.

        The same kernel, arguments and hits as ``hits`` with one query, minus
        the batch machinery around them (a batch object, per-call plan and
        argument lookups, a result matrix and its row views): on a small
        collection that machinery cost as much as the scoring, and one query
        at a time is what the service and interactive users run.  Only the
        common case takes this path: one segment, large enough for the
        compiled kernel, exhaustive (``auto``) scoring.
        ``term_ids`` int32 and ``weights`` float32, as in a :class:`SparseBatch` row.
        """
        single = self._single
        if single is None:
            plans = self._segment_plans()
            if len(plans) != 1 or plans[0].small:
                return None
            single = self._single_arguments(plans[0], term_ids)
        args, seg_docs, live = single
        scratch = getattr(self._local, "single", None)
        if scratch is None:  # this thread's scratch arrays, cut to the segment once
            acc, touched, hist = self._workspace(seg_docs)
            scratch = self._local.single = (acc[:seg_docs], touched[: seg_docs + 1], hist)
        top_k = min(int(k), live)  # k clamped to the live documents, as in hits()
        scores = np.empty(top_k, np.float32)
        docs = np.empty(top_k, np.int64)
        n = kernels.search_one(term_ids, weights, top_k, *args, *scratch, scores, docs)
        if n < top_k:
            scores, docs = scores[:n], docs[:n]
        return Hits(None, scores, docs, self.resolve_ids, self.stored_fields)

    def _single_arguments(self, plan: "_SegmentPlan", term_ids: np.ndarray) -> tuple[tuple, int, int]:
        """``search_one``'s segment arguments for :meth:`hits_one`, the segment's id space and the live count.

        Kept for the snapshot once final (impacts built or declined, or a
        linear index); until then each query's postings count toward the
        impact rule, as in :meth:`search`.
        """
        common, floors = plan.common, self._underflow_bounds(plan.seg, self._length_params())
        final = True
        if plan.saturating:
            fast = self._impact_arguments(plan, term_ids)
            state = self._impacts[plan.base]
            final = state.ready is not None or state.declined
            if fast is not None:
                common, floors = fast
        single = ((*common, *floors), plan.seg.n_docs, max(self.n_docs, 1))
        if final:
            self._single = single
        return single

    def _impact_arguments(self, plan: "_SegmentPlan", term_ids: np.ndarray) -> tuple[tuple, tuple] | None:
        """The segment's kernel arguments over precomputed BM25 impacts, once this snapshot has scored enough.

        ``None`` until then (and past the memory budget): see
        :mod:`sparsearch.index.impacts` for the rule and why the scores are
        the same to the bit.
        """
        state = self._impacts.get(plan.base)
        if state is None:
            state = self._impacts[plan.base] = _ImpactState(impacts.statistics_key(plan.common))
            found = impacts.cached(plan.seg.postings_weights, state.key)
            if found is not None:
                state.ready = (found.common(plan.common), found.floors())
        if state.ready is not None or state.declined:
            return state.ready
        state.scored += impacts.postings_of(plan.seg.postings_offsets, term_ids)
        if state.scored < impacts.policy().build_ratio * plan.seg.n_postings:
            return None
        with self._impacts_lock:
            if state.ready is None and not state.declined:
                built = impacts.build(plan.common, state.key)
                if built is None:
                    state.declined = True
                else:
                    state.ready = (built.common(plan.common), built.floors())
        return state.ready

    def hits(self, queries: SparseBatch, k: int, filter: Any = None, threads: int | None = None,
             where: str = "this index", method: str = "auto", mode: str = "exact",
             approx: Any = None) -> list[Hits]:
        """Top-``k`` per query row as :class:`Hits` (external ids resolved lazily, stored fields on demand).

        ``k`` is clamped to the collection (asking for more hits than documents
        is not an error).  ``filter``: a metadata filter (:mod:`sparsearch.filters`),
        evaluated as bitsets before ranking; scores are the unfiltered ones.
        ``method``: see :meth:`search` (every method gives the same hits).
        ``mode``: ``"exact"`` (exhaustive or ``method``), ``"bmp"`` (exact, block-max pruning;
        on a BM25 index ``method="blockmax"``) or ``"approx"`` (learned sparse, tuned by ``approx``,
        an :class:`~sparsearch.index.approx.ApproxSettings`; a BM25 index is searched exactly);
        see :mod:`sparsearch.index.approx`.
        """
        parsed = None if filter is None else parse_filter(filter)
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        top_k = min(int(k), max(self.n_docs, 1))
        top = None
        if mode != "exact" or approx is not None:
            from sparsearch.index import approx as modes

            modes.check_mode(mode, approx)
            if mode == "bmp" and self.scoring.transform != "linear" and method == "auto":
                method = "blockmax"  # BM25's exact block-max pruning (block maxima under this snapshot's avgdl)
            if mode != "exact":
                top = modes.top_k(self, queries, top_k, parsed, mode, approx, threads, where)
        if top is not None:
            pass
        elif parsed is None:
            top = self.search(queries, top_k, threads=threads, method=method)
        else:
            from sparsearch.index import filtering  # imports this module

            if filtering.matches_nothing(self, parsed, where):
                return [Hits([], np.zeros(0, np.float32), np.zeros(0, np.int64)) for _ in range(len(queries))]
            top = filtering.search(self, queries, top_k, parsed, threads=threads, method=method, where=where)
        resolve, fetch = self.resolve_ids, self.stored_fields
        full = top.scores.shape[1]
        # Row views from one C-level iteration; a second slice only for a row with fewer than k hits.
        return [Hits(None, s if n == full else s[:n], d if n == full else d[:n], resolve, fetch)
                for s, d, n in zip(list(top.scores), list(top.doc_ids), top.counts.tolist())]


_extremes: dict[int, tuple[Any, np.float32, float]] = {}
_extremes_lock = threading.Lock()


def norm_k_table(scoring: Scoring, avgdl: float) -> np.ndarray:
    """BM25's ``K(d) = k1·(1 − b + b·len/avgdl)`` for each of the 256 Lucene length-norm bytes, float32."""
    return (scoring.k1 * ((1.0 - scoring.b) + scoring.b * _NORM_LENGTHS / np.float32(avgdl))).astype(np.float32)


def _segment_extremes(seg: Segment) -> tuple[np.float32, float]:
    """(smallest stored weight, largest document length) of a segment's arrays, computed once per segment.

    Cached by the identity of ``postings_weights``, which every view of the
    segment (``with_deletes``, every snapshot) shares, under a weak reference.
    """
    anchor = seg.postings_weights
    key = id(anchor)
    entry = _extremes.get(key)
    if entry is not None and entry[0]() is anchor:
        return entry[1], entry[2]
    min_weight = np.float32(np.min(anchor)) if len(anchor) else np.float32(0.0)
    max_length = float(np.max(seg.doc_lengths)) if len(seg.doc_lengths) else 0.0
    try:
        ref = weakref.ref(anchor, lambda r, key=key: _forget_extremes(key, r))
    except TypeError:
        return min_weight, max_length
    with _extremes_lock:
        _extremes[key] = (ref, min_weight, max_length)
    return min_weight, max_length


def _forget_extremes(key: int, ref: Any) -> None:
    with _extremes_lock:
        entry = _extremes.get(key)
        if entry is not None and entry[0] is ref:
            del _extremes[key]


#: Search methods of :meth:`InvertedIndex.search` (all exact).
METHODS = ("auto", "exhaustive", "blockmax", "pruned", "maxscore")
_rows_lock = threading.Lock()
#: The pruned kernel scores a query exhaustively when its lists hold fewer postings than this (below it,
#: pruning's bookkeeping measured slower on the 10^5 corpus: docs/query_speed.md).
PRUNE_MIN_POSTINGS = 20_000


@dataclass(frozen=True)
class _SegmentPlan:
    """One segment as every search of a snapshot passes it to the kernels (built once per snapshot)."""

    seg: Segment
    base: int
    common: tuple  # the kernels' segment arguments, from postings_offsets to doc_base
    small: bool  # small enough for the NumPy path (index/small.py)

    @property
    def saturating(self) -> bool:
        return self.common[4] != kernels.TRANSFORM_LINEAR


@dataclass
class _ImpactState:
    """One segment's impacts in one snapshot: postings scored so far, and the impact arguments once built."""

    key: tuple
    scored: int = 0
    ready: tuple[tuple, tuple] | None = None
    declined: bool = False  # over the memory budget: this snapshot keeps the raw arguments


def _method_for(plan: _SegmentPlan, method: str, k: int) -> str:
    """The method a segment is searched with: ``auto`` is exhaustive (the measured winner, see ``search``)."""
    return "exhaustive" if method == "auto" else method


def _seeds(result: TopK, k: int) -> np.ndarray:
    """Per query, the k-th score found so far (0 where fewer than k hits): a lower bound of the final k-th."""
    seeds = result.scores[:, k - 1].copy()
    seeds[result.counts < k] = 0.0
    return seeds


@contextmanager
def _numba_threads(n: int) -> Iterator[None]:
    import numba

    previous = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        yield
    finally:
        numba.set_num_threads(previous)


def _merge(a: TopK, b: TopK, k: int, numpy_merge: bool = False) -> TopK:
    n_q = len(a.counts)
    out = TopK(np.zeros((n_q, k), np.float32), np.zeros((n_q, k), np.int64), np.zeros(n_q, np.int64))
    merge = small.merge_top_k if numpy_merge else kernels.merge_top_k
    merge(a.scores, a.doc_ids, a.counts, b.scores, b.doc_ids, b.counts, k, out.scores, out.doc_ids, out.counts)
    return out
